package reconciler_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"certops.dev/certops/gitsource"
	"certops.dev/certops/reconciler"
)

// sourceApplier stands in for a cluster: it remembers the Source each
// target got and, like reconciler/kube, loads a Secret's data only when
// the Source it holds differs.
type sourceApplier struct {
	mu      sync.Mutex
	held    map[string]string // target -> Source
	applied int
}

func (a *sourceApplier) Apply(_ context.Context, req reconciler.ApplyRequest) reconciler.ApplyReport {
	a.mu.Lock()
	defer a.mu.Unlock()
	var rep reconciler.ApplyReport
	for _, d := range req.Desired {
		key := d.Target.Cluster + "/" + d.Target.Namespace + "/" + d.Target.SecretName
		if d.Source != "" && a.held[key] == d.Source {
			rep.Unchanged++
			continue
		}
		data := d.Data
		if data == nil {
			var err error
			if data, err = d.Load(); err != nil {
				rep.Errors = append(rep.Errors, err)
				continue
			}
		}
		if len(data["tls.crt"]) == 0 || len(data["tls.key"]) == 0 {
			rep.Errors = append(rep.Errors, fmt.Errorf("%s: no keypair", key))
			continue
		}
		a.held[key] = d.Source
		a.applied++
		rep.Applied++
	}
	return rep
}

// TestApplyDecryptsOnlyWhatChanged: Secrets issued in a pass are applied
// from memory with their file's blob id, so the next pass, whose applier
// already holds them, decrypts no Secret file; an applier that holds
// nothing decrypts each certificate's file once, however many targets it
// has.
func TestApplyDecryptsOnlyWhatChanged(t *testing.T) {
	v := newVerifyRig(t)
	app := &sourceApplier{held: map[string]string{}}
	newRec := func() *reconciler.Reconciler {
		repo, err := gitsource.Open(context.Background(), gitsource.Options{URL: v.url, Branch: "main", CacheDir: t.TempDir(),
			Author: gitsource.Identity{Name: "certops", Email: "certops@example.com"}})
		if err != nil {
			t.Fatal(err)
		}
		rec, err := reconciler.New(reconciler.Options{Source: repo, Crypter: v.cr, Issuers: countingFactories(&v.signs),
			StateDir: v.stateDir, Applier: app})
		if err != nil {
			t.Fatal(err)
		}
		return rec
	}
	rec := newRec()
	rep := v.pass(rec, false)
	if rep.Apply == nil || len(rep.Apply.Errors) != 0 || rep.Apply.Applied == 0 {
		t.Fatalf("first pass apply: %+v; want every target applied", rep.Apply)
	}
	targets := rep.Apply.Applied
	for key, src := range app.held {
		if src == "" {
			t.Errorf("%s applied without a source", key)
		}
	}

	v.cr.decrypts.Store(0)
	rep = v.pass(rec, true)
	if rep.Apply == nil || rep.Apply.Unchanged != targets || rep.Apply.Applied != 0 || len(rep.Apply.Errors) != 0 {
		t.Errorf("forced pass apply: %+v; want all %d unchanged", rep.Apply, targets)
	}
	if n := v.cr.decrypts.Load(); n != 0 {
		t.Errorf("forced pass over unchanged Secrets decrypted %d files, want 0", n)
	}

	// A cluster that holds nothing: each certificate with targets is
	// decrypted once (web/web, api/api, api/api-client), not once per target.
	clear(app.held)
	v.cr.decrypts.Store(0)
	rep = v.pass(newRec(), true)
	if rep.Apply == nil || rep.Apply.Applied != targets || len(rep.Apply.Errors) != 0 {
		t.Errorf("pass into an empty cluster: %+v; want %d applied", rep.Apply, targets)
	}
	if n := v.cr.decrypts.Load(); n != 3 || targets <= 3 {
		t.Errorf("pass into an empty cluster decrypted %d files for %d targets, want 3 (one per certificate)", n, targets)
	}
}
