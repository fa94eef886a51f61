package main

import (
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"certops.dev/certops/reconciler"
)

// TestCommitBatchFlag: --commit-batch defaults to the reconciler's batch,
// comes from the environment like every flag, and refuses a batch that
// could hold nothing.
func TestCommitBatchFlag(t *testing.T) {
	parse := func(env map[string]string, args ...string) (*daemonFlags, error) {
		var f daemonFlags
		fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
		f.register(fs)
		if err := fs.Parse(append([]string{"--repo", "file:///repo.git"}, args...)); err != nil {
			return nil, err
		}
		return &f, f.resolve(fs, func(k string) string { return env[k] })
	}
	f, err := parse(nil)
	if err != nil || f.commitBatch != reconciler.DefaultCommitBatch {
		t.Fatalf("default: %v, %v; want %d", f, err, reconciler.DefaultCommitBatch)
	}
	if f, err = parse(map[string]string{"CERTOPS_COMMIT_BATCH": "50"}); err != nil || f.commitBatch != 50 {
		t.Fatalf("from the environment: %v, %v; want 50", f, err)
	}
	if f, err = parse(map[string]string{"CERTOPS_COMMIT_BATCH": "50"}, "--commit-batch", "7"); err != nil || f.commitBatch != 7 {
		t.Fatalf("flag over environment: %v, %v; want 7", f, err)
	}
	if _, err = parse(nil, "--commit-batch", "0"); err == nil || !strings.Contains(err.Error(), "--commit-batch") {
		t.Fatalf("--commit-batch 0: %v; want an error naming the flag", err)
	}
}
