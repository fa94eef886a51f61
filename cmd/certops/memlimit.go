package main

import (
	"bufio"
	"bytes"
	"io/fs"
	"log/slog"
	"path"
	"runtime/debug"
	"strconv"
	"strings"
)

// memoryLimitShare is the part of the container's memory limit given to
// the Go runtime as its soft limit: the rest is for what the runtime does
// not count (the binary's mapped pages, the kernel's buffers).
const memoryLimitShare = 0.9

// minMemoryLimit is the smallest container limit acted on: below it the
// soft limit would keep the collector running all the time.
const minMemoryLimit = 64 << 20

// setMemoryLimit gives the Go runtime a soft memory limit of 90% of the
// memory limit of the container certops runs in, so that the collector
// works harder as the process nears the limit instead of letting the heap
// grow to twice what is live and being killed for it. Go sizes GOMAXPROCS
// from the container's CPU quota but not its heap from the memory limit.
//
// GOMEMLIMIT in the environment wins, "off" included. Without a limit
// (none set, or not in a container) nothing changes. sys is the root of
// the host's /sys and /proc (os.DirFS("/")). It returns the limit set, or 0.
func setMemoryLimit(log *slog.Logger, sys fs.FS, getenv func(string) string) int64 {
	if v := getenv("GOMEMLIMIT"); v != "" {
		log.Debug("memory limit from GOMEMLIMIT", "GOMEMLIMIT", v)
		return 0
	}
	limit, file := cgroupMemoryLimit(sys)
	if limit < minMemoryLimit {
		return 0
	}
	soft := int64(float64(limit) * memoryLimitShare)
	debug.SetMemoryLimit(soft)
	log.Info("soft memory limit set from the container's", "limit_mib", soft>>20, "container_limit_mib", limit>>20, "from", "/"+file)
	return soft
}

// cgroupMemoryLimit returns the memory limit of the process's cgroup and
// the file it was read from, or 0: cgroup v2's memory.max, else v1's
// memory.limit_in_bytes, at the process's own cgroup path (as
// /proc/self/cgroup names it) and then at the mount's root (a container
// with its own cgroup namespace sees its cgroup there). The first finite
// limit found wins.
func cgroupMemoryLimit(sys fs.FS) (int64, string) {
	var v2, v1 string
	if data, err := fs.ReadFile(sys, "proc/self/cgroup"); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			// hierarchy-ID:controllers:path
			parts := strings.SplitN(sc.Text(), ":", 3)
			if len(parts) != 3 {
				continue
			}
			switch {
			case parts[0] == "0" && parts[1] == "":
				v2 = parts[2]
			case strings.Contains(","+parts[1]+",", ",memory,"):
				v1 = parts[2]
			}
		}
	}
	var candidates []string
	if v2 != "" {
		candidates = append(candidates, path.Join("sys/fs/cgroup", v2, "memory.max"))
	}
	candidates = append(candidates, "sys/fs/cgroup/memory.max")
	if v1 != "" {
		candidates = append(candidates, path.Join("sys/fs/cgroup/memory", v1, "memory.limit_in_bytes"))
	}
	candidates = append(candidates, "sys/fs/cgroup/memory/memory.limit_in_bytes")
	for _, file := range candidates {
		data, err := fs.ReadFile(sys, file)
		if err != nil {
			continue
		}
		// "max" (v2) or a number near 2^63 (v1) is no limit.
		n, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
		if err == nil && n > 0 && n < 1<<60 {
			return n, file
		}
	}
	return 0, ""
}
