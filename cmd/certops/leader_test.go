package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"certops.dev/certops/e2e/peer"
	"certops.dev/certops/e2e/peer/kubepeer"
	"certops.dev/certops/reconciler"
)

func TestLeaseNamespace(t *testing.T) {
	missing := func(string) ([]byte, error) { return nil, os.ErrNotExist }
	pod := func(name string) ([]byte, error) {
		if name != serviceAccountNamespace {
			return nil, os.ErrNotExist
		}
		return []byte("certops-system\n"), nil
	}
	for _, tc := range []struct {
		flag string
		read func(string) ([]byte, error)
		want string
	}{
		{"", missing, "default"},
		{"", pod, "certops-system"},
		{"ops", pod, "ops"},
	} {
		l := leaderFlags{namespace: tc.flag}
		if got := l.leaseNamespace(tc.read); got != tc.want {
			t.Errorf("leaseNamespace(flag %q) = %q, want %q", tc.flag, got, tc.want)
		}
	}
}

// replica is one daemon of TestLeaderElection, run in process.
type replica struct {
	el     *election
	base   string
	cancel context.CancelFunc
	done   chan error
}

func (r *replica) get(path string) (int, string) {
	resp, err := http.Get(r.base + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestLeaderElection runs two daemons on one repository with a real
// kube-apiserver holding the Lease: only the holder passes and pushes, the
// follower serves the offline status, the follower takes over when the
// leader stops, and a leader whose Lease is taken from it exits with an
// error.
func TestLeaderElection(t *testing.T) {
	kc := kubepeer.StartKube(t)
	g := peer.StartGit(t, peer.GitOptions{})
	tmp := t.TempDir()
	id := filepath.Join(tmp, "age.key")
	work := filepath.Join(tmp, "work")
	if _, errOut, code := run(t, "init", "--identity", id, work); code != 0 {
		t.Fatal(errOut)
	}
	for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"add", "-A"}, {"commit", "-qm", "specs"}, {"push", "-q", g.URL("http", "repo.git"), "main"}} {
		g.Run(t, work, args...)
	}
	seedHead := g.Head(t, "repo.git", "main")

	cs, err := kubernetes.NewForConfig(kc.Config)
	if err != nil {
		t.Fatal(err)
	}
	holder := func() string {
		l, err := cs.CoordinationV1().Leases("default").Get(context.Background(), "certops", metav1.GetOptions{})
		if err != nil || l.Spec.HolderIdentity == nil {
			return ""
		}
		return *l.Spec.HolderIdentity
	}
	// Timings shorter than the defaults, yet with a renew deadline that a
	// loaded machine meets: failover after a release takes one retry period.
	lf := leaderFlags{enabled: true, namespace: "default", name: "certops", kubeconfig: kc.Kubeconfig,
		leaseDuration: 10 * time.Second, renewDeadline: 8 * time.Second, retryPeriod: time.Second}
	start := func(name string) *replica {
		f := daemonFlags{repo: g.URL("http", "repo.git"), branch: "main", stateDir: filepath.Join(tmp, name),
			ageIdentity: id, interval: time.Second, apply: false}
		log := slog.New(slog.DiscardHandler)
		ctx, cancel := context.WithCancel(context.Background())
		rec, repo, err := f.build(ctx, log)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { repo.Close() })
		el, err := lf.electionFor(log, &f, repo)
		if err != nil {
			t.Fatal(err)
		}
		addr := fmt.Sprintf("127.0.0.1:%d", peer.FreePort(t)) // outside the ephemeral range: see peer.FreePort
		r := &replica{el: el, base: "http://" + addr, cancel: cancel, done: make(chan error, 1)}
		go func() { r.done <- serveDaemon(ctx, log, rec, time.Second, addr, nil, el, nil) }()
		t.Cleanup(func() {
			cancel()
			<-r.done
		})
		return r
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(120 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("after 120 s: %s", what)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	hasMetric := func(r *replica, row string) bool {
		_, m := r.get("/metrics")
		return strings.Contains(m, row)
	}

	a, b := start("a"), start("b")
	waitFor("one replica holds the Lease", func() bool { h := holder(); return h == a.el.identity || h == b.el.identity })
	leader, follower := a, b
	if holder() == b.el.identity {
		leader, follower = b, a
	}
	waitFor("the leader pushes its first pass", func() bool {
		return hasMetric(leader, `certops_passes_total{result="ok"} 1`) && g.Head(t, "repo.git", "main") != seedHead
	})
	pushed := g.Head(t, "repo.git", "main")
	waitFor("the follower is ready and lists the certificates of the pushed commit", func() bool {
		code, body := follower.get("/api/v1/status")
		var st reconciler.Status
		return code == http.StatusOK && json.Unmarshal([]byte(body), &st) == nil && len(st.Certificates) == 4 && st.Commit == pushed
	})
	if code, _ := follower.get("/readyz"); code != http.StatusOK {
		t.Errorf("follower /readyz: %d, want 200", code)
	}
	if !hasMetric(leader, "certops_leader 1") || !hasMetric(follower, "certops_leader 0") {
		t.Errorf("certops_leader: leader %q, follower %q; want 1 and 0",
			grepLines(must(leader.get("/metrics")), "certops_leader "), grepLines(must(follower.get("/metrics")), "certops_leader "))
	}
	if _, m := follower.get("/metrics"); strings.Contains(m, "certops_passes_total{") {
		t.Errorf("the follower ran passes:\n%s", grepLines(m, "certops_passes_total"))
	}
	// One commit on top of the seed: only the leader pushed.
	if n := strings.TrimSpace(g.Run(t, g.Dir("repo.git"), "rev-list", "--count", seedHead+"..main")); n != "1" {
		t.Errorf("%s commits after the seed, want 1 (the leader's)", n)
	}

	// Stop the leader: it releases the Lease and the follower takes it and
	// runs a pass.
	leader.cancel()
	if err := <-leader.done; err != nil {
		t.Errorf("stopped leader: %v, want a clean exit", err)
	}
	leader.done <- nil // for the cleanup
	waitFor("the follower takes the Lease", func() bool { return holder() == follower.el.identity })
	waitFor("the new leader runs a pass", func() bool {
		return hasMetric(follower, `certops_passes_total{result="ok"}`) && hasMetric(follower, "certops_leader 1")
	})
	if got := g.Head(t, "repo.git", "main"); got != pushed {
		t.Errorf("the new leader pushed %s though nothing was due", got)
	}

	// Take the Lease away: the leader gives up the lead and the daemon
	// ends with an error, for the pod to restart.
	// The leader renews the same object: retry on a conflict.
	waitFor("the Lease is given to an intruder", func() bool {
		l, err := cs.CoordinationV1().Leases("default").Get(context.Background(), "certops", metav1.GetOptions{})
		if err != nil {
			return false
		}
		intruder, hour := "intruder", int32(3600)
		now := metav1.NewMicroTime(time.Now())
		l.Spec.HolderIdentity, l.Spec.LeaseDurationSeconds = &intruder, &hour
		l.Spec.AcquireTime, l.Spec.RenewTime = &now, &now
		_, err = cs.CoordinationV1().Leases("default").Update(context.Background(), l, metav1.UpdateOptions{})
		return err == nil
	})
	select {
	case err := <-follower.done:
		if err == nil || !strings.Contains(err.Error(), "lost the lease") {
			t.Errorf("daemon after losing the Lease: %v, want %v", err, errLeaseLost)
		}
		follower.done <- nil
	case <-time.After(120 * time.Second):
		t.Fatal("after 120 s the daemon still runs without its Lease")
	}
}

func must(_ int, body string) string { return body }
