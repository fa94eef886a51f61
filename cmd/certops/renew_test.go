package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"certops.dev/certops/examples"
	"certops.dev/certops/spec"
)

func TestRenewEditsOnlyItsDocument(t *testing.T) {
	dir := t.TempDir()
	if err := copyFS(examples.Quickstart(), dir); err != nil {
		t.Fatal(err)
	}
	before := spec.Load(os.DirFS(dir), spec.LoadOptions{})
	if _, errOut, code := run(t, "renew", "api/api-client", dir); code != 0 {
		t.Fatalf("renew: %s", errOut)
	}
	after := spec.Load(os.DirFS(dir), spec.LoadOptions{})
	if len(after.Problems) > 0 {
		t.Fatalf("renew broke the spec: %v", after.Problems)
	}
	if after.Certificate("api/api-client").Metadata.Annotations[spec.AnnotationRenew] == "" {
		t.Error("api/api-client has no renew annotation")
	}
	// The other document of the same file keeps its hash and gets no annotation.
	a, b := before.Certificate("api/api"), after.Certificate("api/api")
	if b.Metadata.Annotations[spec.AnnotationRenew] != "" || a.SpecHash() != b.SpecHash() {
		t.Error("renew changed the other certificate of the file")
	}
	// Renewal is not a spec change: the hash of the renewed one is unchanged.
	if before.Certificate("api/api-client").SpecHash() != after.Certificate("api/api-client").SpecHash() {
		t.Error("renew changed the spec hash")
	}
	data, _ := os.ReadFile(filepath.Join(dir, "certificates/team-b/api.yaml"))
	if !strings.Contains(string(data), "# Two certificates in one file") {
		t.Error("renew dropped the file's comment")
	}
}
