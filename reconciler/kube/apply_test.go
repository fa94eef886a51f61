package kube

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"certops.dev/certops/spec"
)

func fakeCluster(t *testing.T, cfg ClusterConfig, objs ...*corev1.Secret) (*Cluster, *fake.Clientset) {
	t.Helper()
	cs := fake.NewClientset()
	for _, o := range objs {
		if _, err := cs.CoreV1().Secrets(o.Namespace).Create(context.Background(), o, metav1.CreateOptions{FieldManager: "kubectl-create"}); err != nil {
			t.Fatal(err)
		}
	}
	cs.ClearActions()
	return NewClusterForClient("test", cfg, cs), cs
}

func writes(cs *fake.Clientset) int {
	n := 0
	for _, a := range cs.Actions() {
		switch a.GetVerb() {
		case "create", "update", "patch", "delete":
			n++
		}
	}
	return n
}

func desired(ns, name string) Desired {
	return Desired{
		Namespace: ns, Name: name, CertName: "web",
		Data:        map[string][]byte{"tls.crt": []byte("cert"), "tls.key": []byte("key")},
		Labels:      map[string]string{"team": "a"},
		Annotations: spec.NewAnnotations(map[string]string{"cert-manager.io/common-name": "web.example.test"}),
	}
}

func TestApplyCreatesThenSkips(t *testing.T) {
	ctx := context.Background()
	c, cs := fakeCluster(t, ClusterConfig{})
	want := []Desired{desired("web", "web-tls"), desired("api", "web-tls")}

	rep, err := c.Apply(ctx, want)
	if err != nil {
		t.Fatal(err)
	}
	if got := rep.Count(Created); got != 2 {
		t.Errorf("first pass created %d; want 2", got)
	}
	s, err := cs.CoreV1().Secrets("web").Get(ctx, "web-tls", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantLabels := map[string]string{LabelManagedBy: "certops", LabelCertificate: "web", "team": "a"}
	if diff := cmp.Diff(wantLabels, s.Labels); diff != "" {
		t.Errorf("labels (-want +got):\n%s", diff)
	}
	if s.Type != corev1.SecretTypeTLS || s.Annotations[AnnotationContentHash] != rep.Results[0].Hash {
		t.Errorf("type %q, hash annotation %q; want %q, %q", s.Type, s.Annotations[AnnotationContentHash], corev1.SecretTypeTLS, rep.Results[0].Hash)
	}

	cs.ClearActions()
	rep, err = c.Apply(ctx, want)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Count(Unchanged) != 2 || rep.Writes != 0 || writes(cs) != 0 {
		t.Errorf("second pass: %d unchanged, %d writes reported, %d write actions; want 2, 0, 0", rep.Count(Unchanged), rep.Writes, writes(cs))
	}
	var lists int
	for _, a := range cs.Actions() {
		if a.GetVerb() == "list" {
			lists++
		}
	}
	if lists != 2 {
		t.Errorf("second pass made %d lists; want one per namespace (2)", lists)
	}

	// Drift behind an unchanged hash annotation is repaired.
	s.Data["tls.crt"] = []byte("edited")
	if _, err := cs.CoreV1().Secrets("web").Update(ctx, s, metav1.UpdateOptions{FieldManager: FieldManager}); err != nil {
		t.Fatal(err)
	}
	rep, _ = c.Apply(ctx, want)
	if rep.Results[0].Outcome != Updated {
		t.Errorf("after an edit by hand: %s; want updated", rep.Results[0].Outcome)
	}
}

func TestApplyLeavesForeignSecretsAlone(t *testing.T) {
	ctx := context.Background()
	foreignSecret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "web", Name: "web-tls"},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{"tls.crt": []byte("theirs"), "tls.key": []byte("theirs")},
	}
	c, cs := fakeCluster(t, ClusterConfig{}, foreignSecret)

	rep, err := c.Apply(ctx, []Desired{desired("web", "web-tls")})
	if err != nil {
		t.Fatalf("a conflict is reported, not returned as an error: %v", err)
	}
	var conflict *ConflictError
	if rep.Results[0].Outcome != Skipped || !errors.As(rep.Results[0].Err, &conflict) || conflict.Reason != "unlabelled" {
		t.Fatalf("result %+v; want skipped with an unlabelled conflict", rep.Results[0])
	}
	if writes(cs) != 0 {
		t.Errorf("%d write actions; want 0", writes(cs))
	}
	s, _ := cs.CoreV1().Secrets("web").Get(ctx, "web-tls", metav1.GetOptions{})
	if string(s.Data["tls.crt"]) != "theirs" {
		t.Errorf("foreign secret changed: %q", s.Data["tls.crt"])
	}

	d := desired("web", "web-tls")
	d.TakeOver = true
	rep, err = c.Apply(ctx, []Desired{d})
	if err != nil || rep.Results[0].Outcome != Updated {
		t.Fatalf("take over: %+v, %v; want updated", rep.Results[0], err)
	}
	s, _ = cs.CoreV1().Secrets("web").Get(ctx, "web-tls", metav1.GetOptions{})
	if string(s.Data["tls.crt"]) != "cert" || s.Labels[LabelManagedBy] != "certops" {
		t.Errorf("after take over: data %q, labels %v", s.Data["tls.crt"], s.Labels)
	}
}

func TestApplyRefusesBadInput(t *testing.T) {
	c, cs := fakeCluster(t, ClusterConfig{Namespaces: []string{"web"}})
	bad := func(f func(*Desired)) Desired { d := desired("web", "x"); f(&d); return d }
	tests := []struct {
		name string
		d    Desired
		want error
	}{
		{"namespace not allowed", desired("kube-system", "x"), ErrNamespaceNotAllowed},
		{"bad name", bad(func(d *Desired) { d.Name = "Not_A_Name" }), ErrInvalid},
		{"no certificate", bad(func(d *Desired) { d.CertName = "" }), ErrInvalid},
		{"own label", bad(func(d *Desired) { d.Labels = map[string]string{LabelManagedBy: "me"} }), ErrInvalid},
		{"own annotation", bad(func(d *Desired) { d.Annotations = spec.NewAnnotations(map[string]string{AnnotationContentHash: "x"}) }), ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, err := c.Apply(context.Background(), []Desired{tt.d})
			if !errors.Is(err, tt.want) || rep.Results[0].Outcome != Failed {
				t.Errorf("got %s, %v; want failed, %v", rep.Results[0].Outcome, err, tt.want)
			}
		})
	}
	if writes(cs) != 0 {
		t.Errorf("%d write actions; want 0", writes(cs))
	}
	rep, err := c.Apply(context.Background(), []Desired{desired("web", "x"), desired("web", "y"), desired("web", "x")})
	if !errors.Is(err, ErrInvalid) || rep.Results[2].Outcome != Failed {
		t.Errorf("duplicate: %v; want ErrInvalid", err)
	}
	if rep.Results[0].Outcome == Failed || rep.Results[1].Outcome == Failed {
		t.Errorf("duplicate: the first entry or another Secret failed too: %+v", rep.Results[:2])
	}
}

func TestApplyReportsForbiddenList(t *testing.T) {
	c, cs := fakeCluster(t, ClusterConfig{})
	cs.PrependReactor("list", "secrets", func(k8stesting.Action) (bool, runtimeObject, error) {
		return true, nil, forbidden()
	})
	rep, err := c.Apply(context.Background(), []Desired{desired("web", "a")})
	if !errors.Is(err, ErrForbidden) || errors.Is(err, ErrUnreachable) {
		t.Errorf("err = %v; want ErrForbidden", err)
	}
	var ce *ClusterError
	if !errors.As(err, &ce) || ce.Cluster != "test" || ce.Op != "list secrets" {
		t.Errorf("err = %#v; want a ClusterError naming the cluster and the list", err)
	}
	if rep.Results[0].Outcome != Failed {
		t.Errorf("outcome %s; want failed", rep.Results[0].Outcome)
	}
}

// pagedLists makes the fake answer lists of Secrets in pages of two, as
// the API server does with a limit; then(n, opts) may answer the n-th list
// request itself (handled true).
func pagedLists(t *testing.T, cs *fake.Clientset, then func(n int, opts metav1.ListOptions) (bool, error)) *int {
	t.Helper()
	all, err := cs.CoreV1().Secrets("web").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(all.Items, func(a, b corev1.Secret) int { return strings.Compare(a.Name, b.Name) })
	cs.ClearActions()
	calls := 0
	cs.PrependReactor("list", "secrets", func(a k8stesting.Action) (bool, runtime.Object, error) {
		calls++
		opts := a.(k8stesting.ListActionImpl).ListOptions
		if handled, err := then(calls, opts); handled {
			return true, nil, err
		}
		from := 0
		if opts.Continue != "" {
			from = int(opts.Continue[0] - '0')
		}
		page := &corev1.SecretList{Items: all.Items[from:min(from+2, len(all.Items))]}
		if from+2 < len(all.Items) {
			page.Continue = string(rune('0' + from + 2))
		}
		return true, page, nil
	})
	return &calls
}

// fourApplied is a fake cluster with four of certops' Secrets in web,
// and what certops wants there.
func fourApplied(t *testing.T) (*Cluster, *fake.Clientset, []Desired) {
	t.Helper()
	c, cs := fakeCluster(t, ClusterConfig{})
	want := []Desired{desired("web", "a"), desired("web", "b"), desired("web", "c"), desired("web", "d")}
	if rep, err := c.Apply(context.Background(), want); err != nil || rep.Count(Created) != 4 {
		t.Fatalf("first pass: %+v, %v", rep.Results, err)
	}
	return c, cs, want
}

// TestApplyListFailsPartWay: Secrets on the pages read before a list fails
// are applied; only those not yet listed fail.
func TestApplyListFailsPartWay(t *testing.T) {
	ctx := context.Background()
	c, cs, want := fourApplied(t)
	pagedLists(t, cs, func(n int, _ metav1.ListOptions) (bool, error) {
		return n == 2, apierrors.NewInternalError(errors.New("etcd went away"))
	})
	rep, err := c.Apply(ctx, want)
	var ce *ClusterError
	if !errors.As(err, &ce) || ce.Op != "list secrets" {
		t.Errorf("err = %v; want the list's ClusterError", err)
	}
	var got []Outcome
	for _, r := range rep.Results {
		got = append(got, r.Outcome)
	}
	if diff := cmp.Diff([]Outcome{Unchanged, Unchanged, Failed, Failed}, got); diff != "" {
		t.Errorf("outcomes (-want +got):\n%s", diff)
	}
	if n := writes(cs); n != 0 {
		t.Errorf("%d writes; want 0", n)
	}
}

// TestApplyListRestartsOnExpiredToken: a continue token the API server no
// longer knows starts the list again; no Secret is handed out twice.
func TestApplyListRestartsOnExpiredToken(t *testing.T) {
	ctx := context.Background()
	c, cs, want := fourApplied(t)
	calls := pagedLists(t, cs, func(n int, opts metav1.ListOptions) (bool, error) {
		if n == 2 && opts.Continue == "" {
			t.Errorf("second list without the continue token")
		}
		return n == 2, apierrors.NewResourceExpired("the continue token is too old")
	})
	rep, err := c.Apply(ctx, want)
	if err != nil || rep.Count(Unchanged) != 4 || len(rep.Results) != 4 {
		t.Errorf("%+v, %v; want 4 unchanged", rep.Results, err)
	}
	// Page 1, the expired page 2, then pages 1 and 2 again.
	if *calls != 4 {
		t.Errorf("%d list requests; want 4", *calls)
	}
	if n := writes(cs); n != 0 {
		t.Errorf("%d writes; want 0", n)
	}
}

func TestPrune(t *testing.T) {
	ctx := context.Background()
	mine := func(ns, name string) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name,
			Labels: map[string]string{LabelManagedBy: "certops", LabelCertificate: "old"}}}
	}
	notMine := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "web", Name: "theirs"}}
	labelOnly := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "web", Name: "label-only",
		Labels: map[string]string{LabelManagedBy: "certops"}}}
	objs := []*corev1.Secret{mine("web", "keep"), mine("web", "orphan"), mine("other", "orphan"), notMine, labelOnly}

	off, cs := fakeCluster(t, ClusterConfig{Namespaces: []string{"web"}}, objs...)
	if rep, err := off.Prune(ctx, nil); err != nil || len(rep.Results) != 0 || writes(cs) != 0 {
		t.Fatalf("prune disabled: %+v, %v, %d writes; want nothing", rep, err, writes(cs))
	}

	c, cs := fakeCluster(t, ClusterConfig{Namespaces: []string{"web"}, Prune: true}, objs...)
	rep, err := c.Prune(ctx, map[Key]bool{{"web", "keep"}: true})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]Result{{Key: Key{"web", "orphan"}, Outcome: Deleted}}, rep.Results); diff != "" {
		t.Errorf("pruned (-want +got):\n%s", diff)
	}
	for _, k := range []Key{{"web", "keep"}, {"other", "orphan"}, {"web", "theirs"}, {"web", "label-only"}} {
		if _, err := cs.CoreV1().Secrets(k.Namespace).Get(ctx, k.Name, metav1.GetOptions{}); err != nil {
			t.Errorf("%s: %v; want it kept", k, err)
		}
	}
}

func TestContentHash(t *testing.T) {
	base := func() (corev1.SecretType, map[string][]byte, map[string]string, map[string]string) {
		return corev1.SecretTypeTLS, map[string][]byte{"a": []byte("1")}, map[string]string{"l": "1"}, map[string]string{"n": "1"}
	}
	ref := ContentHash(base())
	if again := ContentHash(base()); again != ref {
		t.Fatalf("hash not stable: %s then %s", ref, again)
	}
	changes := map[string]func(*corev1.SecretType, map[string][]byte, map[string]string, map[string]string){
		"type":           func(t *corev1.SecretType, _ map[string][]byte, _, _ map[string]string) { *t = corev1.SecretTypeOpaque },
		"data value":     func(_ *corev1.SecretType, d map[string][]byte, _, _ map[string]string) { d["a"] = []byte("2") },
		"data key":       func(_ *corev1.SecretType, d map[string][]byte, _, _ map[string]string) { d["b"] = nil },
		"label":          func(_ *corev1.SecretType, _ map[string][]byte, l, _ map[string]string) { l["l"] = "2" },
		"annotation":     func(_ *corev1.SecretType, _ map[string][]byte, _, a map[string]string) { a["n"] = "2" },
		"label moved":    func(_ *corev1.SecretType, _ map[string][]byte, l, a map[string]string) { delete(l, "l"); a["l"] = "1" },
		"key boundaries": func(_ *corev1.SecretType, d map[string][]byte, _, _ map[string]string) { delete(d, "a"); d["a1"] = nil },
	}
	for name, change := range changes {
		t.Run(name, func(t *testing.T) {
			typ, d, l, a := base()
			change(&typ, d, l, a)
			if got := ContentHash(typ, d, l, a); got == ref {
				t.Errorf("hash unchanged after changing the %s", name)
			}
		})
	}
}

func TestForeign(t *testing.T) {
	labelled := map[string]string{LabelManagedBy: "certops"}
	mf := func(manager, fields string) metav1.ManagedFieldsEntry {
		return metav1.ManagedFieldsEntry{Manager: manager, FieldsV1: metav1.NewFieldsV1(fields)}
	}
	tests := []struct {
		name   string
		labels map[string]string
		fields []metav1.ManagedFieldsEntry
		want   string // conflict reason, "" for none
	}{
		{"ours", labelled, []metav1.ManagedFieldsEntry{mf("certops", `{"f:data":{"f:tls.crt":{}}}`)}, ""},
		{"unlabelled", nil, nil, "unlabelled"},
		{"someone labelled it", labelled, []metav1.ManagedFieldsEntry{mf("kubectl-label", `{"f:metadata":{"f:labels":{"f:x":{}}}}`)}, ""},
		{"cert-manager owns data", labelled, []metav1.ManagedFieldsEntry{mf("certops", `{}`), mf("cert-manager-certificates-issuing", `{"f:data":{".":{},"f:tls.crt":{}}}`)}, "managed-fields"},
		{"empty data set", labelled, []metav1.ManagedFieldsEntry{mf("other", `{"f:data":{}}`)}, ""},
		{"unreadable", labelled, []metav1.ManagedFieldsEntry{mf("other", `not json`)}, "managed-fields"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Labels: tt.labels, ManagedFields: tt.fields}}
			got := ""
			if c := foreign(s); c != nil {
				got = c.Reason
			}
			if got != tt.want {
				t.Errorf("reason %q; want %q", got, tt.want)
			}
		})
	}
}

// A Secret certops created keeps its fields under an Update entry; when
// handing them to the Apply entry fails, nothing is applied (the new
// content hash would make later passes skip it with the dropped label
// still there), and the Secret is reported Failed for the next pass.
func TestApplyHandOverFailureWritesNothing(t *testing.T) {
	ctx := context.Background()
	c, cs := fakeCluster(t, ClusterConfig{})
	first := desired("web", "web-tls")
	if rep, err := c.Apply(ctx, []Desired{first}); err != nil || rep.Count(Created) != 1 {
		t.Fatalf("%+v, %v", rep.Results, err)
	}
	s, err := cs.CoreV1().Secrets("web").Get(ctx, "web-tls", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(s.ManagedFields, func(e metav1.ManagedFieldsEntry) bool {
		return e.Manager == FieldManager && e.Operation == metav1.ManagedFieldsOperationUpdate
	}) {
		t.Fatalf("created Secret's managed fields %+v; want a certops Update entry", s.ManagedFields)
	}
	cs.PrependReactor("patch", "secrets", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.(k8stesting.PatchAction).GetPatchType() == types.JSONPatchType {
			return true, nil, apierrors.NewConflict(corev1.Resource("secrets"), "web-tls", errors.New("the object has been modified"))
		}
		return false, nil, nil
	})
	cs.ClearActions()
	trimmed := desired("web", "web-tls")
	trimmed.Labels = nil
	rep, err := c.Apply(ctx, []Desired{trimmed})
	if err == nil || rep.Count(Failed) != 1 {
		t.Fatalf("%+v, %v; want failed", rep.Results, err)
	}
	for _, a := range cs.Actions() {
		if p, ok := a.(k8stesting.PatchAction); ok && p.GetPatchType() == types.ApplyPatchType {
			t.Errorf("applied after the hand-over failed: %s", p.GetPatch())
		}
	}
	if rep.Writes != 1 {
		t.Errorf("%d writes reported; want 1 (the refused hand-over)", rep.Writes)
	}
}
