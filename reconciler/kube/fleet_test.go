package kube

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"syscall"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8stesting "k8s.io/client-go/testing"
)

type runtimeObject = runtime.Object

func forbidden() error {
	return apierrors.NewForbidden(schema.GroupResource{Resource: "secrets"}, "", errors.New(`User "x" cannot list resource "secrets"`))
}

func refused() error {
	return &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
}

func TestBackoff(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	tests := []struct {
		failures int
		min, max time.Duration
	}{
		{0, 0, 0},
		{1, 4 * time.Second, 6 * time.Second},
		{2, 8 * time.Second, 12 * time.Second},
		{4, 32 * time.Second, 48 * time.Second},
		{20, 4 * time.Minute, 6 * time.Minute},
	}
	for _, tt := range tests {
		for range 50 {
			if got := Backoff(tt.failures, r); got < tt.min || got > tt.max {
				t.Fatalf("Backoff(%d) = %v; want within [%v, %v]", tt.failures, got, tt.min, tt.max)
			}
		}
	}
}

func TestFleetBacksOffOnlyTheFailingCluster(t *testing.T) {
	ctx := context.Background()
	good, _ := fakeCluster(t, ClusterConfig{})
	good.name = "good"
	down, downCS := fakeCluster(t, ClusterConfig{})
	down.name = "down"
	broken := true
	downCS.PrependReactor("*", "*", func(k8stesting.Action) (bool, runtimeObject, error) {
		if broken {
			return true, nil, refused()
		}
		return false, nil, nil
	})
	f, err := NewFleet(good, down)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	f.Now = func() time.Time { return now }
	f.Rand = rand.New(rand.NewPCG(1, 2))
	pass := Pass{Desired: map[string][]Desired{"good": {desired("web", "a")}, "down": {desired("web", "a")}}}

	rep := f.Apply(ctx, pass)
	if o := rep.Clusters["good"]; o.Err != nil || o.Apply.Count(Created) != 1 {
		t.Errorf("good cluster: %+v; want 1 created", o)
	}
	o := rep.Clusters["down"]
	if !errors.Is(o.Err, ErrUnreachable) || o.RetryAt.IsZero() || rep.NextRetry != o.RetryAt {
		t.Fatalf("down cluster: err %v, retry at %v, next retry %v; want unreachable with a retry time", o.Err, o.RetryAt, rep.NextRetry)
	}

	broken = false
	rep = f.Apply(ctx, pass)
	if o := rep.Clusters["down"]; !o.Deferred {
		t.Errorf("before its retry time the down cluster was contacted: %+v", o)
	}
	if o := rep.Clusters["good"]; o.Apply.Count(Unchanged) != 1 {
		t.Errorf("good cluster on the second pass: %+v; want unchanged", o)
	}

	now = rep.NextRetry
	rep = f.Apply(ctx, pass)
	if o := rep.Clusters["down"]; o.Err != nil || o.Deferred || o.Apply.Count(Created) != 1 || !rep.NextRetry.IsZero() {
		t.Errorf("after its retry time: %+v, next retry %v; want converged", o, rep.NextRetry)
	}
}

func TestNewFleetRejectsDuplicates(t *testing.T) {
	a, _ := fakeCluster(t, ClusterConfig{})
	b, _ := fakeCluster(t, ClusterConfig{})
	if _, err := NewFleet(a, b); !errors.Is(err, ErrInvalid) {
		t.Errorf("err = %v; want ErrInvalid", err)
	}
}
