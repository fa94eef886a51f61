package peer

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
)

// startLogged starts cmd with its output in the file logPath, kills it when
// the test ends (printing the log's tail if the test failed), and returns a
// channel closed when the process exits.
//
// The process leads its own process group and the cleanup kills the whole
// group: a peer started through a wrapper (runuser for BIND) would otherwise
// outlive the test, because the wrapper does not pass SIGKILL on.
func startLogged(t testing.TB, name string, cmd *exec.Cmd, logPath string) <-chan struct{} {
	t.Helper()
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Process.Kill()
		<-exited
		logf.Close()
		if t.Failed() {
			out, _ := os.ReadFile(logPath)
			t.Logf("%s log:\n%s", name, tail(out, 4000))
		}
	})
	return exited
}
