package main

import (
	"fmt"
	"log"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// harness gives the peers of e2e/peer, written for tests, the little of
// testing.TB they use, so this command starts the same real Git server,
// etcd and kube-apiserver the e2e tests do. A failure (the peers' or the
// command's own) runs the cleanups, which stop those processes, and exits;
// so does an interrupt.
//
// The embedded TB is nil: a method the peers begin to use that harness does
// not provide panics at once instead of silently doing nothing.
type harness struct {
	testing.TB

	// starting is held while peers start: their cleanup is registered only
	// once they run, so an interrupt waits for it rather than orphan them.
	starting sync.Mutex

	mu       sync.Mutex
	cleanups []func()
	failed   bool
	exiting  sync.Once
}

func newHarness() *harness {
	h := &harness{}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sig
		h.starting.Lock()
		h.Fatalf("scale: %v", s)
	}()
	return h
}

func (h *harness) Helper() {}

func (h *harness) Logf(format string, args ...any) { log.Printf(format, args...) }

func (h *harness) Errorf(format string, args ...any) {
	h.mu.Lock()
	h.failed = true
	h.mu.Unlock()
	log.Printf(format, args...)
}

func (h *harness) Fatal(args ...any) { h.Fatalf("%s", fmt.Sprint(args...)) }

// Fatalf logs, stops every peer and exits with status 1. It does not
// return.
func (h *harness) Fatalf(format string, args ...any) {
	h.exiting.Do(func() {
		h.mu.Lock()
		h.failed = true
		h.mu.Unlock()
		log.Printf(format, args...)
		h.Close()
		os.Exit(1)
	})
	select {} // another goroutine is exiting
}

func (h *harness) Failed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.failed
}

func (h *harness) Cleanup(f func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.cleanups = append(h.cleanups, f)
}

func (h *harness) TempDir() string {
	dir, err := os.MkdirTemp("", "certops-scale-")
	if err != nil {
		h.Fatalf("scale: %v", err)
	}
	h.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// Close runs the cleanups, last registered first, as testing does.
func (h *harness) Close() {
	for {
		h.mu.Lock()
		n := len(h.cleanups)
		if n == 0 {
			h.mu.Unlock()
			return
		}
		f := h.cleanups[n-1]
		h.cleanups = h.cleanups[:n-1]
		h.mu.Unlock()
		f()
	}
}

// cpuSeconds is the user plus system CPU time this process has used. The
// peers (git, etcd, kube-apiserver) are other processes and not counted.
// peerCPUSeconds is the CPU time of this process's children: the running
// ones (kube-apiserver, etcd) read from /proc, plus every descendant
// already reaped (git http-backend and the index-pack it runs for a push).
// The peers share the machine with certops; a phase's wall time is bounded
// by both.
func peerCPUSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	total := tv(ru.Utime) + tv(ru.Stime)
	procs, _ := os.ReadDir("/proc")
	me := strconv.Itoa(os.Getpid())
	for _, p := range procs {
		if _, err := strconv.Atoi(p.Name()); err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + p.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ... utime stime: fields 14 and 15, after
		// a comm that may hold spaces.
		_, rest, ok := strings.Cut(string(stat), ") ")
		f := strings.Fields(rest)
		if !ok || len(f) < 13 || f[1] != me {
			continue
		}
		utime, _ := strconv.ParseFloat(f[11], 64)
		stime, _ := strconv.ParseFloat(f[12], 64)
		total += (utime + stime) / clockTicks
	}
	return total
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times: 100 on every
// Linux architecture Go supports.
const clockTicks = 100

func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}
