package main

import (
	"log/slog"
	"math"
	"runtime/debug"
	"testing"
	"testing/fstest"
)

func TestCgroupMemoryLimit(t *testing.T) {
	file := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }
	for _, tc := range []struct {
		name     string
		sys      fstest.MapFS
		want     int64
		wantFile string
	}{
		{"v2 namespaced", fstest.MapFS{
			"proc/self/cgroup":         file("0::/\n"),
			"sys/fs/cgroup/memory.max": file("268435456\n"),
		}, 256 << 20, "sys/fs/cgroup/memory.max"},
		{"v2 own path", fstest.MapFS{
			"proc/self/cgroup":                             file("0::/kubepods/pod1/c1\n"),
			"sys/fs/cgroup/kubepods/pod1/c1/memory.max":    file("536870912\n"),
			"sys/fs/cgroup/memory.max":                     file("max\n"),
			"sys/fs/cgroup/kubepods/pod1/c1/memory.events": file(""),
		}, 512 << 20, "sys/fs/cgroup/kubepods/pod1/c1/memory.max"},
		{"v2 unlimited", fstest.MapFS{
			"proc/self/cgroup":         file("0::/\n"),
			"sys/fs/cgroup/memory.max": file("max\n"),
		}, 0, ""},
		{"v1", fstest.MapFS{
			"proc/self/cgroup": file("5:devices:/x\n4:memory:/process_api/abc\n0::/\n"),
			"sys/fs/cgroup/memory/process_api/abc/memory.limit_in_bytes": file("1073741824\n"),
			"sys/fs/cgroup/memory/memory.limit_in_bytes":                 file("9223372036854771712\n"),
		}, 1 << 30, "sys/fs/cgroup/memory/process_api/abc/memory.limit_in_bytes"},
		{"v1 unlimited", fstest.MapFS{
			"proc/self/cgroup":                           file("4:memory:/\n"),
			"sys/fs/cgroup/memory/memory.limit_in_bytes": file("9223372036854771712\n"),
		}, 0, ""},
		{"garbage", fstest.MapFS{
			"proc/self/cgroup":         file("0::/\n"),
			"sys/fs/cgroup/memory.max": file("lots\n"),
		}, 0, ""},
		{"no cgroup fs", fstest.MapFS{}, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, f := cgroupMemoryLimit(tc.sys)
			if got != tc.want || (tc.want != 0 && f != tc.wantFile) {
				t.Errorf("cgroupMemoryLimit = %d from %q, want %d from %q", got, f, tc.want, tc.wantFile)
			}
		})
	}
}

func TestSetMemoryLimit(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	log := slog.New(slog.DiscardHandler)
	limited := fstest.MapFS{
		"proc/self/cgroup":         &fstest.MapFile{Data: []byte("0::/\n")},
		"sys/fs/cgroup/memory.max": &fstest.MapFile{Data: []byte("268435456\n")},
	}
	noEnv := func(string) string { return "" }

	mib256 := float64(256 << 20)
	if got, want := setMemoryLimit(log, limited, noEnv), int64(mib256*memoryLimitShare); got != want || debug.SetMemoryLimit(-1) != want {
		t.Errorf("set %d (runtime has %d), want 90%% of 256 MiB = %d", got, debug.SetMemoryLimit(-1), want)
	}
	debug.SetMemoryLimit(math.MaxInt64)
	for _, env := range []string{"200MiB", "off"} {
		if got := setMemoryLimit(log, limited, func(k string) string {
			if k == "GOMEMLIMIT" {
				return env
			}
			return ""
		}); got != 0 || debug.SetMemoryLimit(-1) != math.MaxInt64 {
			t.Errorf("GOMEMLIMIT=%s: set %d; want the environment to win", env, got)
		}
	}
	small := fstest.MapFS{
		"proc/self/cgroup":         &fstest.MapFile{Data: []byte("0::/\n")},
		"sys/fs/cgroup/memory.max": &fstest.MapFile{Data: []byte("33554432\n")},
	}
	if got := setMemoryLimit(log, small, noEnv); got != 0 || debug.SetMemoryLimit(-1) != math.MaxInt64 {
		t.Errorf("32 MiB container: set %d; want nothing below 64 MiB", got)
	}
}
