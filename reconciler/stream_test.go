package reconciler

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"

	"certops.dev/certops/gitsource"
	"certops.dev/certops/reconciler/issuer"
	"certops.dev/certops/reconciler/issuer/selfsigned"
	"certops.dev/certops/spec"
)

// streamRepo has n certificates, c00 to c<n-1>, in one file; the even ones
// name issuer even, the odd ones odd. Issuer self is selfSigned, broken is
// exec.
func streamRepo(n int, even string, odd ...string) fstest.MapFS {
	files := fstest.MapFS{
		"issuers/self.yaml":   {Data: []byte("apiVersion: certops.dev/v1alpha1\nkind: Issuer\nmetadata: {name: self}\nspec: {selfSigned: {}}\n")},
		"issuers/broken.yaml": {Data: []byte("apiVersion: certops.dev/v1alpha1\nkind: Issuer\nmetadata: {name: broken}\nspec: {exec: {command: [x]}}\n")},
	}
	var b strings.Builder
	for i := range n {
		iss := even
		if i%2 == 1 && len(odd) > 0 {
			iss = odd[0]
		}
		fmt.Fprintf(&b, "---\napiVersion: certops.dev/v1alpha1\nkind: Certificate\nmetadata: {name: c%02d, namespace: team}\nspec: {dnsNames: [c%02d.example.com], privateKey: {algorithm: ECDSA}, issuerRef: {name: %s}}\n", i, i, iss)
	}
	files["certificates/team.yaml"] = &fstest.MapFile{Data: []byte(b.String())}
	return files
}

// countingSource counts the Secret files committed so far; the commit
// numbered failAt (from 1) fails.

type countingSource struct {
	*memSource
	failAt    int
	mu        sync.Mutex
	committed int
	subjects  []string
}

func (c *countingSource) Commit(ctx context.Context, ch gitsource.Change) (string, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.subjects)+1 == c.failAt {
		c.failAt = 0
		return "", false, errors.New("disk full")
	}
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
	// goroutines is the most the process had at a signature.
	goroutines int
}

func (w *watchingSigner) SignSelf(ctx context.Context, req *issuer.Request, key crypto.Signer) (*issuer.Result, error) {
	w.src.mu.Lock()
	committed := w.src.committed
	w.src.mu.Unlock()
	w.mu.Lock()
	w.signed++
	w.ahead = append(w.ahead, w.signed-committed)
	w.goroutines = max(w.goroutines, runtime.NumGoroutine())
	w.mu.Unlock()
	return w.Issuer.SignSelf(ctx, req, key)
}

// TestIssuanceStreamsIntoCommits: a pass larger than CommitBatch commits
// each batch while the next certificates are issued, and issuance runs at
// most a batch ahead of the commits (three batches in memory: one issuing,
// one encrypting, one committing), not all of the pass. Nor does it start a
// goroutine per certificate.
func TestIssuanceStreamsIntoCommits(t *testing.T) {
	const n, batch = 40, 4
	src := &countingSource{memSource: &memSource{commits: []fstest.MapFS{streamRepo(n, "self")}, pushed: 1}}
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
	before := runtime.NumGoroutine()
	rep := rec.Pass(t.Context(), false)
	if rep.Error != "" || rep.Failed() > 0 || len(rep.Problems) > 0 {
		t.Fatalf("pass: error %q, problems %v", rep.Error, rep.Problems)
	}
	if started := w.goroutines - before; started > n/2 {
		t.Errorf("%d goroutines started for %d certificates and 3 workers", started, n)
	}
	if rec.current.Load() != nil {
		t.Errorf("the pass is kept after it ended, with all it issued")
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

// TestOneCommitIsNotNumbered: a pass that plans two commits but makes one,
// because half its certificates fail to issue, does not number it.
func TestOneCommitIsNotNumbered(t *testing.T) {
	src := &countingSource{memSource: &memSource{commits: []fstest.MapFS{streamRepo(4, "self", "broken")}, pushed: 1}}
	rec, err := New(Options{Source: src, Crypter: plainCrypter{}, StateDir: t.TempDir(), CommitBatch: 2, Workers: 2,
		Issuers: map[string]IssuerFactory{
			"selfSigned": func(context.Context, *spec.Issuer, IssuerEnv) (issuer.Issuer, error) {
				return selfsigned.New(selfsigned.NewDefaultConfig())
			},
			"exec": func(context.Context, *spec.Issuer, IssuerEnv) (issuer.Issuer, error) { return alwaysFails{}, nil },
		}})
	if err != nil {
		t.Fatal(err)
	}
	if rep := rec.Pass(t.Context(), false); rep.Failed() != 2 {
		t.Fatalf("%d failed, want 2", rep.Failed())
	}
	if len(src.subjects) != 1 || src.subjects[0] != "certops: issue 2" {
		t.Errorf("commits %q, want one, \"certops: issue 2\"", src.subjects)
	}
}

// accountWriter is a self-signed backend that, like ACME registering an
// account, writes a file of its own before its first certificate.
type accountWriter struct {
	*selfsigned.Issuer
	env     IssuerEnv
	written atomic.Bool
}

const accountFile = "secrets/certops-system/acme-account.yaml"

func (w *accountWriter) SignSelf(ctx context.Context, req *issuer.Request, key crypto.Signer) (*issuer.Result, error) {
	if w.written.CompareAndSwap(false, true) {
		if err := w.env.WriteSecret(accountFile, []byte("apiVersion: v1\nkind: Secret\nmetadata: {name: account, namespace: certops-system}\nstringData: {tls.key: x}\n")); err != nil {
			return nil, err
		}
	}
	return w.Issuer.SignSelf(ctx, req, key)
}

// TestIssuerFileGoesWithTheFirstCommitAfterIt: a backend's own file is
// committed with the first batch after it is written, once, so a later
// commit that fails cannot keep it out of Git.
func TestIssuerFileGoesWithTheFirstCommitAfterIt(t *testing.T) {
	src := &countingSource{memSource: &memSource{commits: []fstest.MapFS{streamRepo(12, "self")}, pushed: 1}, failAt: 2}
	ss, err := selfsigned.New(selfsigned.NewDefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	rec, err := New(Options{Source: src, Crypter: plainCrypter{}, StateDir: t.TempDir(), CommitBatch: 4, Workers: 2,
		Issuers: map[string]IssuerFactory{"selfSigned": func(_ context.Context, _ *spec.Issuer, env IssuerEnv) (issuer.Issuer, error) {
			return &accountWriter{Issuer: ss, env: env}, nil
		}}})
	if err != nil {
		t.Fatal(err)
	}
	if rep := rec.Pass(t.Context(), false); !strings.Contains(rep.Error, "disk full") {
		t.Fatalf("pass error %q, want the failed second commit", rep.Error)
	}
	commits := src.commits
	if len(commits) != 2 {
		t.Fatalf("%d commits, want the first batch's alone", len(commits)-1)
	}
	if _, ok := commits[1][accountFile]; !ok {
		t.Errorf("the first commit lacks the backend's file")
	}
	// The next pass commits the rest, without the file again.
	before := len(commits)
	if rep := rec.Pass(t.Context(), false); rep.Error != "" || rep.Failed() > 0 {
		t.Fatalf("second pass: %q, %d failed", rep.Error, rep.Failed())
	}
	for _, c := range src.commits[before:] {
		if f, ok := c[accountFile]; ok && f != commits[1][accountFile] {
			t.Errorf("a later commit rewrote the backend's file")
		}
	}
}

// alwaysFails is an issuer whose every request fails transiently; unlike
// failing, it counts nothing, so several workers may share it.
type alwaysFails struct{}

func (alwaysFails) Sign(context.Context, *issuer.Request) (*issuer.Result, error) {
	return nil, issuer.Transient(errors.New("ca unavailable"))
}

// TestLongLivedBackendWritesThroughTheCurrentPass: a backend kept from
// one pass to the next (vault, acme) reads and writes Secret files through
// the pass running now. Built in the first pass, it writes its own file
// in the second; that pass commits it.
func TestLongLivedBackendWritesThroughTheCurrentPass(t *testing.T) {
	files := streamRepo(1, "self")
	files["issuers/vault.yaml"] = &fstest.MapFile{Data: []byte("apiVersion: certops.dev/v1alpha1\nkind: Issuer\nmetadata: {name: vault}\n" +
		"spec: {vault: {server: \"https://vault.example.com:8200\", path: pki/sign/x, auth: {token: {env: VAULT_TOKEN}}}}\n")}
	files["certificates/v.yaml"] = &fstest.MapFile{Data: []byte("apiVersion: certops.dev/v1alpha1\nkind: Certificate\nmetadata: {name: v1, namespace: team}\n" +
		"spec: {dnsNames: [v1.example.com], privateKey: {algorithm: ECDSA}, issuerRef: {name: vault}}\n")}
	src := &countingSource{memSource: &memSource{commits: []fstest.MapFS{files}, pushed: 1}}
	ss, err := selfsigned.New(selfsigned.NewDefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	var built atomic.Int32
	var w *accountWriter
	rec, err := New(Options{Source: src, Crypter: plainCrypter{}, StateDir: t.TempDir(),
		Issuers: map[string]IssuerFactory{
			"selfSigned": func(context.Context, *spec.Issuer, IssuerEnv) (issuer.Issuer, error) { return ss, nil },
			"vault": func(_ context.Context, _ *spec.Issuer, env IssuerEnv) (issuer.Issuer, error) {
				built.Add(1)
				w = &accountWriter{Issuer: ss, env: env}
				w.written.Store(true) // nothing to write in the first pass
				return w, nil
			},
		}})
	if err != nil {
		t.Fatal(err)
	}
	if rep := rec.Pass(t.Context(), false); rep.Error != "" || rep.Failed() > 0 {
		t.Fatalf("first pass: %q, %d failed", rep.Error, rep.Failed())
	}
	// The second pass renews v1 with the same backend, which now writes.
	w.written.Store(false)
	src.edit(map[string]string{"certificates/v.yaml": strings.Replace(string(files["certificates/v.yaml"].Data), "name: v1,", "name: v1, annotations: {certops.dev/renew: \"1\"},", 1)})
	if rep := rec.Pass(t.Context(), false); rep.Error != "" || rep.Failed() > 0 {
		t.Fatalf("second pass: %q, %d failed", rep.Error, rep.Failed())
	}
	if built.Load() != 1 {
		t.Fatalf("the vault backend was built %d times, want once", built.Load())
	}
	if _, ok := src.commits[len(src.commits)-1][accountFile]; !ok {
		t.Errorf("the file the backend wrote in the second pass is in no commit")
	}
}
