package peer

import (
	"os"
	"os/exec"
	"testing"
)

// startLogged starts cmd with its output in the file logPath, kills it when
// the test ends (printing the log's tail if the test failed), and returns a
// channel closed when the process exits.
func startLogged(t testing.TB, name string, cmd *exec.Cmd, logPath string) <-chan struct{} {
	t.Helper()
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
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
