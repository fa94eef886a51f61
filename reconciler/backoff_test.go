package reconciler

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"testing"
	"testing/fstest"
	"testing/synctest"
	"time"

	"certops.dev/certops/gitsource"
	"certops.dev/certops/reconciler/issuer"
	"certops.dev/certops/spec"
)

// memSource is an in-memory Source for unit tests: a map of files per
// commit, numbered.
type memSource struct {
	commits []fstest.MapFS
	pushed  int
}

func (m *memSource) head() string { return fmt.Sprintf("c%d", len(m.commits)) }

func (m *memSource) Poll(context.Context) (string, bool, error) { return m.head(), false, nil }
func (m *memSource) Sync(context.Context) (string, error)       { return m.head(), nil }
func (m *memSource) Files(string) (fs.FS, error)                { return m.commits[len(m.commits)-1], nil }
func (m *memSource) Push(context.Context) error                 { m.pushed = len(m.commits); return nil }
func (m *memSource) Pending() (int, error)                      { return len(m.commits) - max(m.pushed, 1), nil }

func (m *memSource) Commit(_ context.Context, c gitsource.Change) (string, bool, error) {
	next := fstest.MapFS{}
	for k, v := range m.commits[len(m.commits)-1] {
		next[k] = v
	}
	for p, b := range c.Files {
		next[p] = &fstest.MapFile{Data: b}
	}
	for _, p := range c.Remove {
		delete(next, p)
	}
	m.commits = append(m.commits, next)
	return m.head(), true, nil
}

// edit makes a human commit.
func (m *memSource) edit(files map[string]string) {
	next := fstest.MapFS{}
	for k, v := range m.commits[len(m.commits)-1] {
		next[k] = v
	}
	for p, s := range files {
		next[p] = &fstest.MapFile{Data: []byte(s)}
	}
	m.commits = append(m.commits, next)
	m.pushed = len(m.commits)
}

// plainCrypter stores plaintext: the unit tests here are about scheduling.
type plainCrypter struct{}

func (plainCrypter) Update(_ fs.FS, _ string, old, plain []byte) ([]byte, bool, error) {
	return plain, string(old) != string(plain), nil
}
func (plainCrypter) Decrypt(_ string, b []byte) ([]byte, error) { return b, nil }

// failing is an issuer whose every request fails transiently.
type failing struct{ calls int }

func (f *failing) Sign(context.Context, *issuer.Request) (*issuer.Result, error) {
	f.calls++
	return nil, issuer.Transient(errors.New("ca unavailable"))
}

const failingRepoCert = `apiVersion: certops.dev/v1alpha1
kind: Certificate
metadata: {name: web}
spec:
  dnsNames: [%s]
  issuerRef: {name: broken}
`

// TestBackoffDoublesToCapAndResetsOnSpecChange runs passes on a fake clock:
// a failing certificate is retried after 1h, 2h, 4h … 32h, 32h; a spec edit
// retries at once and starts again from 1h.
func TestBackoffDoublesToCapAndResetsOnSpecChange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &memSource{commits: []fstest.MapFS{{
			"issuers/broken.yaml":   {Data: []byte("apiVersion: certops.dev/v1alpha1\nkind: Issuer\nmetadata: {name: broken}\nspec: {exec: {command: [x]}}\n")},
			"certificates/web.yaml": {Data: []byte(fmt.Sprintf(failingRepoCert, "a.example.com"))},
		}}, pushed: 1}
		iss := &failing{}
		rec, err := New(Options{Source: src, Crypter: plainCrypter{}, StateDir: t.TempDir(),
			Issuers: map[string]IssuerFactory{"exec": func(context.Context, *spec.Issuer, IssuerEnv) (issuer.Issuer, error) { return iss, nil }}})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		var waits []time.Duration
		for range 8 {
			start := time.Now()
			rep := rec.Pass(ctx, false)
			if rep.Failed() != 1 {
				t.Fatalf("pass: %d failures, want 1 (%+v)", rep.Failed(), rep.Results)
			}
			retry := rep.Results[0].RetryAt
			waits = append(waits, retry.Sub(start))
			// Just before the retry time, a pass leaves the certificate alone.
			time.Sleep(time.Until(retry) - time.Minute)
			before := iss.calls
			if rep := rec.Pass(ctx, true); iss.calls != before || !rep.Results[0].Waiting {
				t.Fatalf("retried %s early", time.Minute)
			}
			time.Sleep(time.Minute)
		}
		want := []time.Duration{1, 2, 4, 8, 16, 32, 32, 32}
		for i := range want {
			want[i] *= time.Hour
		}
		if fmt.Sprint(waits) != fmt.Sprint(want) {
			t.Errorf("backoff waits = %v, want %v", waits, want)
		}

		// A spec change resets it: retried now, then after 1h again.
		src.edit(map[string]string{"certificates/web.yaml": fmt.Sprintf(failingRepoCert, "b.example.com")})
		before := iss.calls
		rep := rec.Pass(ctx, false)
		if iss.calls != before+1 {
			t.Fatalf("spec change: issuer called %d times, want 1", iss.calls-before)
		}
		if got := time.Until(rep.Results[0].RetryAt); got != time.Hour {
			t.Errorf("after a spec change the backoff is %s, want 1h", got)
		}

		// The state survives a restart: a new reconciler waits too.
		rec2, err := New(Options{Source: src, Crypter: plainCrypter{}, StateDir: rec.o.StateDir,
			Issuers: rec.o.Issuers})
		if err != nil {
			t.Fatal(err)
		}
		before = iss.calls
		if rep := rec2.Pass(ctx, true); iss.calls != before || !rep.Results[0].Waiting {
			t.Errorf("after a restart the certificate was retried before its time")
		}
	})
}

func TestBackoffAfter(t *testing.T) {
	for n, want := range map[int]time.Duration{1: time.Hour, 2: 2 * time.Hour, 6: 32 * time.Hour, 7: 32 * time.Hour, 60: 32 * time.Hour} {
		if got := backoffAfter(n, time.Hour, 32*time.Hour); got != want {
			t.Errorf("backoffAfter(%d) = %s, want %s", n, got, want)
		}
	}
}
