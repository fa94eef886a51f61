package acme_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"certops.dev/certops/e2e/peer"
	"certops.dev/certops/reconciler/issuer"
)

// TestResumeOrder runs Resume against Pebble: a valid order's certificate
// is downloaded again and a pending order (the client died after creating
// it) is completed, both by a new Issuer on the same account and without
// a new order; an unknown order or another key's CSR wraps ErrReorder.
func TestResumeOrder(t *testing.T) {
	e := startEnv(t, peer.PebbleOptions{})
	store := &memStore{}
	request := func(name string) *issuer.Request {
		key, _, err := issuer.GenerateKey(issuer.KeySpec{Algorithm: issuer.ECDSA})
		if err != nil {
			t.Fatal(err)
		}
		req, err := issuer.Template{DNSNames: []string{name}}.NewRequest("t/"+name, key, 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		return req
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// A valid order.
	req := request("valid.example.test")
	var url string
	req.OnOrder = func(u string) { url = u }
	first, err := newIssuer(t, e.config(store)).Sign(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if url == "" {
		t.Fatal("Sign reported no order URL")
	}
	orders := e.pebble.Orders()
	again, err := newIssuer(t, e.config(store)).Resume(ctx, req, url)
	if err != nil {
		t.Fatalf("resume a valid order: %v", err)
	}
	if again.Leaf().SerialNumber.Cmp(first.Leaf().SerialNumber) != 0 {
		t.Errorf("resumed serial %x, want %x", again.Leaf().SerialNumber, first.Leaf().SerialNumber)
	}

	// A pending order: the client gives up as soon as the order exists.
	req = request("pending.example.test")
	octx, ocancel := context.WithCancel(ctx)
	req.OnOrder = func(u string) { url = u; ocancel() }
	if _, err := newIssuer(t, e.config(store)).Sign(octx, req); err == nil {
		t.Fatal("Sign succeeded after its context was cancelled")
	}
	orders = e.pebble.Orders() - orders // the one new order just placed
	before := e.pebble.Orders()
	res, err := newIssuer(t, e.config(store)).Resume(ctx, req, url)
	if err != nil {
		t.Fatalf("resume a pending order: %v", err)
	}
	if got := res.Leaf().DNSNames; len(got) != 1 || got[0] != "pending.example.test" || !issuer.SamePublicKey(res.Leaf().PublicKey, req.CSR.PublicKey) {
		t.Errorf("resumed certificate for %v, want pending.example.test with the request's key", got)
	}
	if got := e.pebble.Orders(); got != before || orders != 1 {
		t.Errorf("resuming placed %d new orders, want 0", got-before)
	}

	// Nothing to resume.
	iss := newIssuer(t, e.config(store))
	if _, err := iss.Resume(ctx, req, url+"-gone"); !errors.Is(err, issuer.ErrReorder) {
		t.Errorf("unknown order: got %v, want ErrReorder", err)
	}
	if _, err := iss.Resume(ctx, request("pending.example.test"), url); !errors.Is(err, issuer.ErrReorder) {
		t.Errorf("another key: got %v, want ErrReorder", err)
	}
}
