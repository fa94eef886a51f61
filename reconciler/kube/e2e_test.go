package kube_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"

	"certops.dev/certops/e2e/peer/kubepeer"
	"certops.dev/certops/reconciler/kube"
	"certops.dev/certops/spec"
)

// testCluster is a real apiserver plus an admin client to inspect it.
type testCluster struct {
	*kubepeer.Kube
	admin kubernetes.Interface
}

func startCluster(t testing.TB) testCluster {
	t.Helper()
	k := kubepeer.StartKube(t)
	admin, err := kubernetes.NewForConfig(k.Config)
	if err != nil {
		t.Fatal(err)
	}
	return testCluster{Kube: k, admin: admin}
}

func (c testCluster) namespaces(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		_, err := c.admin.CoreV1().Namespaces().Create(context.Background(),
			&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n}}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
}

func (c testCluster) secret(t testing.TB, ns, name string) *corev1.Secret {
	t.Helper()
	s, err := c.admin.CoreV1().Secrets(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get secret %s/%s: %v", ns, name, err)
	}
	return s
}

func logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func requireE2E(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts kube-apiserver and etcd; run without -short")
	}
}

// certSecrets is what certops wants for one certificate in some namespaces.
func certSecrets(cert string, namespaces ...string) []kube.Desired {
	var out []kube.Desired
	for _, ns := range namespaces {
		out = append(out, kube.Desired{
			Namespace: ns, Name: cert + "-tls", CertName: cert,
			Data: map[string][]byte{
				"tls.crt": []byte("-----BEGIN CERTIFICATE-----\n" + cert + "\n"),
				"tls.key": []byte("test-only, not a key"),
				"ca.crt":  []byte("ca"),
			},
			Labels:      map[string]string{"team": "a"},
			Annotations: spec.NewAnnotations(map[string]string{"cert-manager.io/certificate-name": cert, "certops.dev/serial": "beef"}),
		})
	}
	return out
}

func TestE2E(t *testing.T) {
	requireE2E(t)
	ctx := context.Background()
	a, b := startCluster(t), startCluster(t)
	v, err := a.admin.Discovery().ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kube-apiserver %s (%s)", v.GitVersion, a.APIServer)
	if v.GitVersion == "" || strings.HasPrefix(v.GitVersion, "v0.0.0") {
		t.Errorf("apiserver reports version %q; the build must stamp it", v.GitVersion)
	}

	// Cluster a is reached through a kubeconfig file, b through kubeconfig
	// bytes: two of the three ways certops.yaml offers.
	kubeconfigB, err := os.ReadFile(b.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	newClusters := func(t *testing.T, cfg kube.ClusterConfig) (*kube.Cluster, *kube.Cluster) {
		t.Helper()
		cfg.Logger = logger(t)
		ca := cfg
		ca.KubeconfigPath = a.Kubeconfig
		ka, err := kube.NewCluster("a", ca)
		if err != nil {
			t.Fatal(err)
		}
		cb := cfg
		cb.Kubeconfig = kubeconfigB
		kb, err := kube.NewCluster("b", cb)
		if err != nil {
			t.Fatal(err)
		}
		return ka, kb
	}

	t.Run("absent", func(t *testing.T) {
		// A cluster rebuilt from Git has none of the Secrets: one list of
		// names per namespace stands for a lookup of each.
		a.namespaces(t, "absent-web", "absent-api")
		var gets atomic.Int32
		k := watchedCluster(t, a.Config, func(r *http.Request) {
			if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/secrets/") {
				gets.Add(1)
			}
		})
		want := append(certSecrets("web", "absent-web", "absent-api"), certSecrets("api", "absent-api")...)
		rep, err := k.Apply(ctx, want)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Count(kube.Created) != len(want) {
			t.Errorf("%+v; want %d created", rep.Results, len(want))
		}
		if n := gets.Load(); n != 0 {
			t.Errorf("%d lookups of single Secrets; want 0", n)
		}
	})

	t.Run("created then trimmed", func(t *testing.T) {
		// A Secret certops created (a plain create: an Update entry) loses
		// the label, annotation and data key the spec stops setting, as one
		// it applied would.
		a.namespaces(t, "trim")
		k, _ := newClusters(t, kube.ClusterConfig{})
		want := certSecrets("trim", "trim")
		if rep, err := k.Apply(ctx, want); err != nil || rep.Count(kube.Created) != 1 {
			t.Fatalf("%+v, %v; want created", rep.Results, err)
		}
		d := want[0]
		d.Labels = nil
		d.Annotations = spec.NewAnnotations(map[string]string{"cert-manager.io/certificate-name": "trim"})
		d.Data = maps.Clone(d.Data)
		delete(d.Data, "ca.crt")
		before := a.WriteCount(t, "secrets")
		if rep, err := k.Apply(ctx, []kube.Desired{d}); err != nil || rep.Count(kube.Updated) != 1 || rep.Writes != 2 {
			t.Fatalf("%+v, %v, %d writes; want updated with 2", rep.Results, err, rep.Writes)
		}
		if got := a.WriteCount(t, "secrets") - before; got != 2 {
			t.Errorf("trim made %d write requests; want 2 (hand-over and apply)", got)
		}
		s := a.secret(t, "trim", "trim-tls")
		if _, ok := s.Labels["team"]; ok {
			t.Errorf("label team stayed: %v", s.Labels)
		}
		if _, ok := s.Annotations["certops.dev/serial"]; ok {
			t.Errorf("annotation certops.dev/serial stayed: %v", s.Annotations)
		}
		if _, ok := s.Data["ca.crt"]; ok {
			t.Errorf("data key ca.crt stayed: %v", slices.Sorted(maps.Keys(s.Data)))
		}
		for _, m := range s.ManagedFields {
			if m.Manager != kube.FieldManager || m.Operation != metav1.ManagedFieldsOperationApply {
				t.Errorf("managed fields entry %s/%s; want only certops/Apply", m.Manager, m.Operation)
			}
		}
	})

	t.Run("fan-out", func(t *testing.T) {
		a.namespaces(t, "fan-web", "fan-api")
		b.namespaces(t, "fan-web", "fan-api")
		ka, kb := newClusters(t, kube.ClusterConfig{Namespaces: []string{"fan-web", "fan-api"}})
		fleet, err := kube.NewFleet(ka, kb)
		if err != nil {
			t.Fatal(err)
		}
		want := certSecrets("web", "fan-web", "fan-api")
		pass := kube.Pass{Desired: map[string][]kube.Desired{"a": want, "b": want}}

		rep := fleet.Apply(ctx, pass)
		if err := rep.Err(); err != nil {
			t.Fatal(err)
		}
		for _, c := range []testCluster{a, b} {
			for _, d := range want {
				s := c.secret(t, d.Namespace, d.Name)
				if diff := cmp.Diff(d.Data, s.Data); diff != "" {
					t.Errorf("%s data (-want +got):\n%s", d.Key(), diff)
				}
				wantLabels := map[string]string{"app.kubernetes.io/managed-by": "certops", "certops.dev/certificate": "web", "team": "a"}
				if diff := cmp.Diff(wantLabels, s.Labels); diff != "" {
					t.Errorf("%s labels (-want +got):\n%s", d.Key(), diff)
				}
				wantAnn := d.Annotations.Map()
				wantAnn[kube.AnnotationContentHash] = kube.ContentHash(corev1.SecretTypeTLS, d.Data, wantLabels, d.Annotations.Map())
				if diff := cmp.Diff(wantAnn, s.Annotations); diff != "" {
					t.Errorf("%s annotations (-want +got):\n%s", d.Key(), diff)
				}
				if s.Type != corev1.SecretTypeTLS {
					t.Errorf("%s type %s", d.Key(), s.Type)
				}
				if m := managers(s); !slices.Equal(m, []string{"certops"}) {
					t.Errorf("%s field managers %v; want [certops]", d.Key(), m)
				}
			}
		}

		before := a.WriteCount(t, "secrets") + b.WriteCount(t, "secrets")
		rep = fleet.Apply(ctx, pass)
		if err := rep.Err(); err != nil {
			t.Fatal(err)
		}
		after := a.WriteCount(t, "secrets") + b.WriteCount(t, "secrets")
		if after != before {
			t.Errorf("unchanged pass made %d write requests (counted by the apiservers); want 0", after-before)
		}
		for name, o := range rep.Clusters {
			if o.Apply.Count(kube.Unchanged) != 2 {
				t.Errorf("cluster %s: %d unchanged; want 2", name, o.Apply.Count(kube.Unchanged))
			}
		}

		// A changed certificate is written, once per target.
		changed := certSecrets("web", "fan-web", "fan-api")
		for i := range changed {
			changed[i].Data["tls.crt"] = []byte("renewed")
		}
		rep = fleet.Apply(ctx, kube.Pass{Desired: map[string][]kube.Desired{"a": changed, "b": changed}})
		if err := rep.Err(); err != nil {
			t.Fatal(err)
		}
		if got := a.WriteCount(t, "secrets") + b.WriteCount(t, "secrets") - after; got != 4 {
			t.Errorf("renewal made %d write requests; want 4", got)
		}
	})

	t.Run("other-managers", func(t *testing.T) {
		a.namespaces(t, "own")
		ka, _ := newClusters(t, kube.ClusterConfig{})
		theirs := func(name string, labels map[string]string) *corev1.Secret {
			s, err := a.admin.CoreV1().Secrets("own").Create(ctx, &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
				Type:       corev1.SecretTypeTLS,
				Data:       map[string][]byte{"tls.crt": []byte("theirs"), "tls.key": []byte("theirs")},
			}, metav1.CreateOptions{FieldManager: "cert-manager-certificates-issuing"})
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		unlabelled := theirs("unlabelled-tls", nil)
		// Labelled like certops' but its data written by cert-manager.
		labelled := theirs("labelled-tls", map[string]string{"app.kubernetes.io/managed-by": "certops", "certops.dev/certificate": "labelled"})

		want := append(certSecrets("unlabelled", "own"), certSecrets("labelled", "own")...)
		before := a.WriteCount(t, "secrets")
		rep, err := ka.Apply(ctx, want)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range rep.Results {
			var conflict *kube.ConflictError
			if r.Outcome != kube.Skipped || !errors.As(r.Err, &conflict) || !slices.Contains(conflict.Managers, "cert-manager-certificates-issuing") {
				t.Errorf("result %d: %+v; want skipped, naming cert-manager's field manager", i, r)
			}
		}
		if n := a.WriteCount(t, "secrets") - before; n != 0 {
			t.Errorf("%d write requests to Secrets another manager owns; want 0", n)
		}
		for _, s := range []*corev1.Secret{unlabelled, labelled} {
			if got := a.secret(t, "own", s.Name); got.ResourceVersion != s.ResourceVersion {
				t.Errorf("%s changed (resourceVersion %s → %s)", s.Name, s.ResourceVersion, got.ResourceVersion)
			}
		}

		for i := range want {
			want[i].TakeOver = true
		}
		rep, err = ka.Apply(ctx, want)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Count(kube.Updated) != 2 {
			t.Errorf("take over: %+v; want 2 updated", rep.Results)
		}
		for _, d := range want {
			s := a.secret(t, "own", d.Name)
			if !strings.HasPrefix(string(s.Data["tls.crt"]), "-----BEGIN") || s.Labels["certops.dev/certificate"] != d.CertName {
				t.Errorf("%s after take over: data %q, labels %v", d.Name, s.Data["tls.crt"], s.Labels)
			}
			if m := managers(s); !slices.Contains(m, "certops") {
				t.Errorf("%s managers %v; want certops among them", d.Name, m)
			}
		}
		// Taken over and unchanged: the next pass writes nothing.
		before = a.WriteCount(t, "secrets")
		if _, err := ka.Apply(ctx, want); err != nil {
			t.Fatal(err)
		}
		if n := a.WriteCount(t, "secrets") - before; n != 0 {
			t.Errorf("pass after take over made %d writes; want 0", n)
		}
	})

	t.Run("source", func(t *testing.T) {
		// Data named by a source (the blob id of its encrypted file) is
		// loaded once; a pass over the unchanged cluster loads nothing and
		// writes nothing, and an edit by hand is still repaired.
		a.namespaces(t, "src-web", "src-api")
		ka, _ := newClusters(t, kube.ClusterConfig{Namespaces: []string{"src-web", "src-api"}})
		var loads atomic.Int64
		lazy := func(source string) []kube.Desired {
			want := certSecrets("web", "src-web", "src-api")
			for i := range want {
				data := want[i].Data
				want[i].Data, want[i].Source = nil, source
				want[i].Load = func() (map[string][]byte, error) { loads.Add(1); return maps.Clone(data), nil }
			}
			return want
		}
		rep, err := ka.Apply(ctx, lazy("blob-1"))
		if err != nil || rep.Count(kube.Created) != 2 || loads.Load() != 2 {
			t.Fatalf("first pass: %+v, %v, %d loads; want 2 created, 2 loads", rep.Results, err, loads.Load())
		}
		s := a.secret(t, "src-web", "web-tls")
		if s.Annotations[kube.AnnotationSourceBlob] != "blob-1" || !strings.HasPrefix(string(s.Data["tls.crt"]), "-----BEGIN") {
			t.Errorf("applied Secret: annotations %v, tls.crt %q", s.Annotations, s.Data["tls.crt"])
		}

		loads.Store(0)
		before := a.WriteCount(t, "secrets")
		rep, err = ka.Apply(ctx, lazy("blob-1"))
		if err != nil || rep.Count(kube.Unchanged) != 2 || rep.Writes != 0 {
			t.Errorf("unchanged pass: %+v, %v, %d writes reported; want 2 unchanged, 0 writes", rep.Results, err, rep.Writes)
		}
		if n := a.WriteCount(t, "secrets") - before; n != 0 || loads.Load() != 0 {
			t.Errorf("unchanged pass: %d write requests (counted by the apiserver), %d loads; want 0, 0", n, loads.Load())
		}

		s.Data["tls.crt"] = []byte("edited by hand")
		if _, err := a.admin.CoreV1().Secrets("src-web").Update(ctx, s, metav1.UpdateOptions{FieldManager: "certops"}); err != nil {
			t.Fatal(err)
		}
		rep, err = ka.Apply(ctx, lazy("blob-1"))
		if err != nil || rep.Count(kube.Updated) != 1 || rep.Count(kube.Unchanged) != 1 || loads.Load() != 1 {
			t.Errorf("after an edit by hand: %+v, %v, %d loads; want 1 updated, 1 unchanged, 1 load", rep.Results, err, loads.Load())
		}
		if s := a.secret(t, "src-web", "web-tls"); !strings.HasPrefix(string(s.Data["tls.crt"]), "-----BEGIN") {
			t.Errorf("tls.crt %q after repair; want certops' data", s.Data["tls.crt"])
		}
	})

	t.Run("pages", func(t *testing.T) {
		// Apply reads certops' Secrets, and the names of the others, a page
		// at a time; none on a later page is missed.
		a.namespaces(t, "pages")
		kube.SetListPage(t, 2)
		var labelled, gets atomic.Int32
		k := watchedCluster(t, a.Config, func(r *http.Request) {
			switch {
			case r.Method != http.MethodGet:
			case strings.HasSuffix(r.URL.Path, "/namespaces/pages/secrets") && r.URL.Query().Get("labelSelector") != "":
				labelled.Add(1)
			case strings.Contains(r.URL.Path, "/secrets/"):
				gets.Add(1)
			}
		})
		// Two Secrets of other names come first in the list, so the one
		// named like a wanted Secret is on the second page of names.
		for _, name := range []string{"a-other", "b-other", "p6-tls"} {
			if _, err := a.admin.CoreV1().Secrets("pages").Create(ctx, &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: name}, StringData: map[string]string{"k": "v"},
			}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		var want []kube.Desired
		for _, c := range []string{"p1", "p2", "p3", "p4", "p5", "p6"} {
			want = append(want, certSecrets(c, "pages")...)
		}
		rep, err := k.Apply(ctx, want)
		if err != nil || rep.Count(kube.Created) != 5 || rep.Count(kube.Skipped) != 1 {
			t.Fatalf("first pass: %+v, %v; want 5 created, p6-tls skipped", rep.Results, err)
		}
		if n := gets.Load(); n != 1 {
			t.Errorf("first pass: %d lookups of single Secrets; want 1 (p6-tls, found on the second page of names)", n)
		}

		labelled.Store(0)
		before := a.WriteCount(t, "secrets")
		rep, err = k.Apply(ctx, want)
		if err != nil || rep.Count(kube.Unchanged) != 5 || rep.Count(kube.Skipped) != 1 || rep.Writes != 0 {
			t.Errorf("unchanged pass: %+v, %v, %d writes; want 5 unchanged, 1 skipped, 0 writes", rep.Results, err, rep.Writes)
		}
		if n := a.WriteCount(t, "secrets") - before; n != 0 {
			t.Errorf("unchanged pass: %d write requests; want 0", n)
		}
		if n := labelled.Load(); n != 3 {
			t.Errorf("unchanged pass: %d lists of certops' Secrets; want 3 (five Secrets, two a page)", n)
		}

		// A create is answered with metadata only, and its errors are the
		// usual ones.
		answer, err := k.CreateAnswer(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "pages", Name: "answer"}, Data: map[string][]byte{"k": []byte("data-not-wanted-back")}})
		if err != nil || !bytes.Contains(answer, []byte("PartialObjectMetadata")) || bytes.Contains(answer, []byte("data-not-wanted-back")) {
			t.Errorf("create answered with %q, %v; want metadata only", answer, err)
		}
		if err := k.CreateSecret(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "pages", Name: "p6-tls"}}); !apierrors.IsAlreadyExists(err) {
			t.Errorf("create of an existing Secret: %v; want already exists", err)
		}
	})

	t.Run("prune", func(t *testing.T) {
		a.namespaces(t, "prune-a", "prune-b", "prune-out")
		ka, _ := newClusters(t, kube.ClusterConfig{Namespaces: []string{"prune-a", "prune-b"}, Prune: true})
		outside, _ := newClusters(t, kube.ClusterConfig{Namespaces: []string{"prune-out"}})
		if _, err := ka.Apply(ctx, append(certSecrets("keep", "prune-a", "prune-b"), certSecrets("stale", "prune-a", "prune-b")...)); err != nil {
			t.Fatal(err)
		}
		// certops' Secret in a namespace this cluster config does not cover,
		// and a Secret certops never wrote.
		if _, err := outside.Apply(ctx, certSecrets("stale", "prune-out")); err != nil {
			t.Fatal(err)
		}
		if _, err := a.admin.CoreV1().Secrets("prune-a").Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "someone-elses"}, StringData: map[string]string{"k": "v"},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}

		// The certificate "stale" lost its prune-b target... and prune-a too:
		// only "keep" is wanted.
		keep := map[kube.Key]bool{}
		for _, d := range certSecrets("keep", "prune-a", "prune-b") {
			keep[d.Key()] = true
		}
		// One Secret per list request: Prune must follow the pages (the
		// apiserver lists by name, keep-tls before stale-tls).
		kube.SetListPage(t, 1)
		rep, err := ka.Prune(ctx, keep)
		if err != nil {
			t.Fatal(err)
		}
		var deleted []string
		for _, r := range rep.Results {
			if r.Outcome == kube.Deleted {
				deleted = append(deleted, r.Key.String())
			}
		}
		slices.Sort(deleted)
		if diff := cmp.Diff([]string{"prune-a/stale-tls", "prune-b/stale-tls"}, deleted); diff != "" {
			t.Errorf("deleted (-want +got):\n%s", diff)
		}
		for _, k := range []kube.Key{{"prune-a", "keep-tls"}, {"prune-b", "keep-tls"}, {"prune-out", "stale-tls"}, {"prune-a", "someone-elses"}} {
			a.secret(t, k.Namespace, k.Name)
		}
	})

	t.Run("rbac", func(t *testing.T) {
		applyManifests(t, a.admin, filepath.Join("..", "..", "examples", "deploy"), "namespace.yaml", "serviceaccount.yaml", "rbac.yaml")
		a.namespaces(t, "web", "api", "platform", "elsewhere")
		sa := rest.CopyConfig(a.Config)
		sa.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:certops:certops"}
		kc, err := kube.NewCluster("a", kube.ClusterConfig{REST: sa, Prune: true, Logger: logger(t)})
		if err != nil {
			t.Fatal(err)
		}
		rep, err := kc.Apply(ctx, certSecrets("rbac", "web", "api", "platform"))
		if err != nil || rep.Count(kube.Created) != 3 {
			t.Fatalf("writes in the target namespaces: %+v, %v; want 3 created", rep.Results, err)
		}
		if _, err := kc.Apply(ctx, certSecrets("rbac", "web", "api", "platform")); err != nil {
			t.Errorf("unchanged pass as the service account: %v", err)
		}
		if rep, err := kc.Prune(ctx, map[kube.Key]bool{}); err == nil {
			t.Errorf("cluster-wide prune as the service account succeeded (%+v); want forbidden", rep)
		}
		scoped, err := kube.NewCluster("a", kube.ClusterConfig{REST: sa, Prune: true, Namespaces: []string{"web", "api", "platform"}})
		if err != nil {
			t.Fatal(err)
		}
		if rep, err := scoped.Prune(ctx, map[kube.Key]bool{{"web", "rbac-tls"}: true, {"api", "rbac-tls"}: true}); err != nil || len(rep.Results) != 1 {
			t.Errorf("prune in the target namespaces: %+v, %v; want platform/rbac-tls deleted", rep.Results, err)
		}

		_, err = kc.Apply(ctx, certSecrets("rbac", "elsewhere"))
		if !errors.Is(err, kube.ErrForbidden) {
			t.Fatalf("write outside the target namespaces: %v; want ErrForbidden", err)
		}
		t.Logf("error outside the targets: %v", err)
		for _, want := range []string{"cluster a", "elsewhere", "forbidden", "system:serviceaccount:certops:certops"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not mention %q", err, want)
			}
		}

		saClient, err := kubernetes.NewForConfig(sa)
		if err != nil {
			t.Fatal(err)
		}
		lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "certops-leader", Namespace: "certops"}}
		if _, err := saClient.CoordinationV1().Leases("certops").Create(ctx, lease, metav1.CreateOptions{}); err != nil {
			t.Errorf("leader-election lease in certops' namespace: %v", err)
		}
		if _, err := saClient.CoordinationV1().Leases("web").Create(ctx, lease, metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
			t.Errorf("lease elsewhere: %v; want forbidden", err)
		}
		if _, err := saClient.RbacV1().Roles("web").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
			t.Errorf("reading roles: %v; want forbidden", err)
		}
	})

	// Last: it stops cluster b.
	t.Run("one-cluster-stopped", func(t *testing.T) {
		a.namespaces(t, "stop")
		b.namespaces(t, "stop")
		ka, kb := newClusters(t, kube.ClusterConfig{Namespaces: []string{"stop"}})
		fleet, err := kube.NewFleet(ka, kb)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		fleet.Now = func() time.Time { return now }
		fleet.Timeout = 30 * time.Second

		b.Stop(t)
		pass := kube.Pass{Desired: map[string][]kube.Desired{"a": certSecrets("stop", "stop"), "b": certSecrets("stop", "stop")}}
		rep := fleet.Apply(ctx, pass)
		if o := rep.Clusters["a"]; o.Err != nil || o.Apply.Count(kube.Created) != 1 {
			t.Errorf("running cluster: %+v; want converged", o)
		}
		ob := rep.Clusters["b"]
		if !errors.Is(ob.Err, kube.ErrUnreachable) || ob.RetryAt.IsZero() {
			t.Fatalf("stopped cluster: err %v, retry at %v; want ErrUnreachable and a retry time", ob.Err, ob.RetryAt)
		}
		t.Logf("stopped cluster's error: %v", ob.Err)

		b.Restart(t)
		rep = fleet.Apply(ctx, pass)
		if !rep.Clusters["b"].Deferred {
			t.Errorf("cluster b contacted before its retry time: %+v", rep.Clusters["b"])
		}
		now = rep.NextRetry
		rep = fleet.Apply(ctx, pass)
		if o := rep.Clusters["b"]; o.Err != nil || o.Apply.Count(kube.Created) != 1 {
			t.Fatalf("restarted cluster: %+v; want converged", o)
		}
		b.secret(t, "stop", "stop-tls")
		if !rep.NextRetry.IsZero() {
			t.Errorf("next retry %v; want none", rep.NextRetry)
		}
	})
}

func managers(s *corev1.Secret) []string {
	var out []string
	for _, m := range s.ManagedFields {
		if !slices.Contains(out, m.Manager) {
			out = append(out, m.Manager)
		}
	}
	slices.Sort(out)
	return out
}

// applyManifests creates the objects of some files of a kustomize folder,
// as `kubectl apply` would for these kinds.
func applyManifests(t *testing.T, cs kubernetes.Interface, dir string, files ...string) {
	t.Helper()
	ctx := context.Background()
	for _, f := range files {
		raw, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(string(raw)), 4096)
		for {
			var ext runtime.RawExtension
			if err := dec.Decode(&ext); err != nil {
				if err.Error() == "EOF" {
					break
				}
				t.Fatalf("%s: %v", f, err)
			}
			if len(ext.Raw) == 0 {
				continue
			}
			obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(ext.Raw, nil, nil)
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			switch o := obj.(type) {
			case *corev1.Namespace:
				_, err = cs.CoreV1().Namespaces().Create(ctx, o, metav1.CreateOptions{})
			case *corev1.ServiceAccount:
				_, err = cs.CoreV1().ServiceAccounts(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
			case *rbacv1.Role:
				_, err = cs.RbacV1().Roles(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
			case *rbacv1.RoleBinding:
				_, err = cs.RbacV1().RoleBindings(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
			default:
				t.Fatalf("%s: unexpected kind %T", f, obj)
			}
			if apierrors.IsNotFound(err) {
				// A Role in a namespace not created yet: create it and retry.
				ns := obj.(metav1.Object).GetNamespace()
				if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
					t.Fatal(err)
				}
				applyManifests(t, cs, dir, f)
				return
			}
			if err != nil && !apierrors.IsAlreadyExists(err) {
				t.Fatalf("%s: %v", f, err)
			}
		}
	}
}

// BenchmarkApply1000 applies 1,000 Secrets to one apiserver: a first pass
// that creates them all, and an unchanged pass that lists and skips them.
func BenchmarkApply1000(b *testing.B) {
	requireE2E(b)
	ctx := context.Background()
	c := startCluster(b)
	kc, err := kube.NewCluster("bench", kube.ClusterConfig{KubeconfigPath: c.Kubeconfig})
	if err != nil {
		b.Fatal(err)
	}
	const n = 1000
	batch := func(ns string) []kube.Desired {
		out := make([]kube.Desired, n)
		for i := range out {
			out[i] = certSecrets(fmt.Sprintf("c%04d", i), ns)[0]
		}
		return out
	}
	run := 0
	first := func(kc *kube.Cluster) func(b *testing.B) {
		return func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				run++
				ns := fmt.Sprintf("bench-%d", run)
				c.namespaces(b, ns)
				want := batch(ns)
				b.StartTimer()
				rep, err := kc.Apply(ctx, want)
				if err != nil || rep.Count(kube.Created) != n {
					b.Fatalf("%d created, %v", rep.Count(kube.Created), err)
				}
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "secrets/s")
		}
	}
	b.Run("first", first(kc))
	// The same with the client's rate limit raised for bulk apply
	// (certops.yaml: clusters[].qps and burst): the default 50 QPS bounds
	// the first pass at about 50 Secrets/s.
	bulk, err := kube.NewCluster("bench-bulk", kube.ClusterConfig{KubeconfigPath: c.Kubeconfig, QPS: 5000, Burst: 10000, Workers: 16})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("first-qps5000", first(bulk))
	b.Run("unchanged", func(b *testing.B) {
		want := batch("bench-1")
		before := c.WriteCount(b, "secrets")
		for b.Loop() {
			rep, err := kc.Apply(ctx, want)
			if err != nil || rep.Count(kube.Unchanged) != n {
				b.Fatalf("%d unchanged, %v", rep.Count(kube.Unchanged), err)
			}
		}
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "secrets/s")
		if w := c.WriteCount(b, "secrets") - before; w != 0 {
			b.Errorf("unchanged passes made %d write requests", w)
		}
	})
}

// watchedCluster is cluster "a" reached through cfg, with see called on
// every request before it is sent.
func watchedCluster(t *testing.T, cfg *rest.Config, see func(*http.Request)) *kube.Cluster {
	t.Helper()
	rc := rest.CopyConfig(cfg)
	rc.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripper(func(r *http.Request) (*http.Response, error) {
			see(r)
			return rt.RoundTrip(r)
		})
	})
	k, err := kube.NewCluster("a", kube.ClusterConfig{REST: rc, Logger: logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
