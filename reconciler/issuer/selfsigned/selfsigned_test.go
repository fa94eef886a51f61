package selfsigned_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"certops.dev/certops/reconciler/issuer"
	"certops.dev/certops/reconciler/issuer/issuertest"
	"certops.dev/certops/reconciler/issuer/selfsigned"
)

func TestConformance(t *testing.T) {
	issuertest.Run(t, func(t testing.TB) *issuertest.Harness {
		iss, err := selfsigned.New(selfsigned.NewDefaultConfig())
		if err != nil {
			t.Fatal(err)
		}
		return &issuertest.Harness{
			Issuer:    iss,
			DNSName:   func(i int) string { return fmt.Sprintf("host%d.example.test", i) },
			IPAddress: issuertest.LoopbackIP,
			URI:       "spiffe://example.test/ns/default/sa/web",
			Email:     "ops@example.test",
		}
	}, issuertest.Unsupported{})
}

func TestSignWithoutKeyIsPermanent(t *testing.T) {
	iss, err := selfsigned.New(selfsigned.NewDefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	key, _, err := issuer.GenerateKey(issuer.KeySpec{Algorithm: issuer.Ed25519})
	if err != nil {
		t.Fatal(err)
	}
	req, err := issuer.Template{CommonName: "root"}.NewRequest("t/root", key, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := iss.Sign(context.Background(), req); issuer.ClassOf(err) != issuer.ClassPermanent {
		t.Errorf("Sign without key: got %v (class %s), want a permanent error", err, issuer.ClassOf(err))
	}
	other, _, err := issuer.GenerateKey(issuer.KeySpec{Algorithm: issuer.Ed25519})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := iss.SignSelf(context.Background(), req, other); issuer.ClassOf(err) != issuer.ClassPermanent {
		t.Errorf("SignSelf with another key: got %v (class %s), want a permanent error", err, issuer.ClassOf(err))
	}
}
