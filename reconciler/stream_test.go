package reconciler

import (
	"context"
	"crypto"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"certops.dev/certops/gitsource"
	"certops.dev/certops/reconciler/issuer"
	"certops.dev/certops/reconciler/issuer/selfsigned"
	"certops.dev/certops/spec"
)

// countingSource counts the Secret files committed so far.
type countingSource struct {
	*memSource
	mu        sync.Mutex
	committed int
	subjects  []string
}

func (c *countingSource) Commit(ctx context.Context, ch gitsource.Change) (string, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for f := range ch.Files {
		if !strings.HasSuffix(f, "kustomization.yaml") {
			c.committed++
		}
	}
	c.subjects = append(c.subjects, ch.Message.Subject)
	return c.memSource.Commit(ctx, ch)
}

// watchingSigner records, at each signature, how many certificates were
// signed and how many committed by then.
type watchingSigner struct {
	*selfsigned.Issuer
	src    *countingSource
	mu     sync.Mutex
	signed int
	ahead  []int // signed - committed, at each signature
}

func (w *watchingSigner) SignSelf(ctx context.Context, req *issuer.Request, key crypto.Signer) (*issuer.Result, error) {
	w.src.mu.Lock()
	committed := w.src.committed
	w.src.mu.Unlock()
	w.mu.Lock()
	w.signed++
	w.ahead = append(w.ahead, w.signed-committed)
	w.mu.Unlock()
	return w.Issuer.SignSelf(ctx, req, key)
}

// TestIssuanceStreamsIntoCommits: a pass larger than CommitBatch commits
// each batch while the next certificates are issued, and issuance runs at
// most a batch ahead of the commits (three batches in memory: one issuing,
// one encrypting, one committing), not all of the pass.
func TestIssuanceStreamsIntoCommits(t *testing.T) {
	const n, batch = 40, 4
	files := fstest.MapFS{
		"issuers/self.yaml": {Data: []byte("apiVersion: certops.dev/v1alpha1\nkind: Issuer\nmetadata: {name: self}\nspec: {selfSigned: {}}\n")},
	}
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "---\napiVersion: certops.dev/v1alpha1\nkind: Certificate\nmetadata: {name: c%02d, namespace: team}\nspec: {dnsNames: [c%02d.example.com], privateKey: {algorithm: ECDSA}, issuerRef: {name: self}}\n", i, i)
	}
	files["certificates/team.yaml"] = &fstest.MapFile{Data: []byte(b.String())}
	src := &countingSource{memSource: &memSource{commits: []fstest.MapFS{files}, pushed: 1}}
	ss, err := selfsigned.New(selfsigned.NewDefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	w := &watchingSigner{Issuer: ss, src: src}
	rec, err := New(Options{Source: src, Crypter: plainCrypter{}, StateDir: t.TempDir(), CommitBatch: batch, Workers: 3,
		Issuers: map[string]IssuerFactory{"selfSigned": func(context.Context, *spec.Issuer, IssuerEnv) (issuer.Issuer, error) { return w, nil }}})
	if err != nil {
		t.Fatal(err)
	}
	rep := rec.Pass(t.Context(), false)
	if rep.Error != "" || rep.Failed() > 0 || len(rep.Problems) > 0 {
		t.Fatalf("pass: error %q, problems %v", rep.Error, rep.Problems)
	}
	if src.committed != n || len(src.subjects) != n/batch {
		t.Fatalf("%d Secret files in %d commits, want %d in %d", src.committed, len(src.subjects), n, n/batch)
	}
	if want := fmt.Sprintf("certops: issue %d (%d/%d)", batch, n/batch, n/batch); src.subjects[n/batch-1] != want {
		t.Errorf("last commit %q, want %q", src.subjects[n/batch-1], want)
	}
	overlapped, most := false, 0
	for i, a := range w.ahead {
		most = max(most, a)
		overlapped = overlapped || a < i+1 // something was committed before this signature
	}
	if !overlapped {
		t.Errorf("every certificate was issued before the first commit")
	}
	if most > 3*batch {
		t.Errorf("issuance ran %d certificates ahead of the commits, want at most %d", most, 3*batch)
	}
}
