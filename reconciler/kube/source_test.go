package kube

import (
	"context"
	"errors"
	"maps"
	"sync/atomic"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"certops.dev/certops/spec"
)

// lazy turns a Desired into one whose data comes from a counting loader,
// named by source.
func lazy(d Desired, source string, loads *atomic.Int64) Desired {
	data := d.Data
	d.Data, d.Source = nil, source
	d.Load = func() (map[string][]byte, error) {
		loads.Add(1)
		return maps.Clone(data), nil
	}
	return d
}

func TestApplySourceSkipsLoad(t *testing.T) {
	ctx := context.Background()
	c, cs := fakeCluster(t, ClusterConfig{})
	var loads atomic.Int64
	want := []Desired{lazy(desired("web", "web-tls"), "blob-1", &loads), lazy(desired("api", "web-tls"), "blob-1", &loads)}

	rep, err := c.Apply(ctx, want)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Count(Created) != 2 || loads.Load() != 2 {
		t.Fatalf("first pass: %d created, %d loads; want 2, 2", rep.Count(Created), loads.Load())
	}
	s, err := cs.CoreV1().Secrets("web").Get(ctx, "web-tls", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Annotations[AnnotationSourceBlob]; got != "blob-1" {
		t.Errorf("source annotation %q; want %q", got, "blob-1")
	}
	if string(s.Data["tls.crt"]) != "cert" {
		t.Errorf("tls.crt %q; want the loaded data", s.Data["tls.crt"])
	}
	// The same content without a source hashes differently: the source
	// annotation is covered by the content hash.
	plain, _ := c.Apply(ctx, []Desired{desired("other", "web-tls")})
	if plain.Results[0].Hash == rep.Results[0].Hash {
		t.Error("content hash does not cover the source annotation")
	}

	// Same source: unchanged, nothing loaded, nothing written.
	loads.Store(0)
	cs.ClearActions()
	rep, err = c.Apply(ctx, want)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Count(Unchanged) != 2 || loads.Load() != 0 || writes(cs) != 0 {
		t.Errorf("same source: %d unchanged, %d loads, %d writes; want 2, 0, 0", rep.Count(Unchanged), loads.Load(), writes(cs))
	}
	if rep.Results[0].Hash != s.Annotations[AnnotationContentHash] {
		t.Errorf("unchanged result hash %q; want the live one %q", rep.Results[0].Hash, s.Annotations[AnnotationContentHash])
	}

	// A changed label in the spec is applied although the source is the same.
	relabelled := desired("web", "web-tls")
	relabelled.Labels = map[string]string{"team": "b"}
	rep, _ = c.Apply(ctx, []Desired{lazy(relabelled, "blob-1", &loads)})
	if rep.Results[0].Outcome != Updated || loads.Load() != 1 {
		t.Errorf("label changed: %s, %d loads; want updated, 1", rep.Results[0].Outcome, loads.Load())
	}
	rep, _ = c.Apply(ctx, want[:1])
	if rep.Results[0].Outcome != Updated {
		t.Errorf("label changed back: %s; want updated", rep.Results[0].Outcome)
	}

	// An edit by hand of a label behind an unchanged source is repaired.
	loads.Store(0)
	s, _ = cs.CoreV1().Secrets("web").Get(ctx, "web-tls", metav1.GetOptions{})
	s.Labels["team"] = "edited"
	if _, err := cs.CoreV1().Secrets("web").Update(ctx, s, metav1.UpdateOptions{FieldManager: FieldManager}); err != nil {
		t.Fatal(err)
	}
	rep, _ = c.Apply(ctx, want[:1])
	s, _ = cs.CoreV1().Secrets("web").Get(ctx, "web-tls", metav1.GetOptions{})
	if rep.Results[0].Outcome != Updated || loads.Load() != 1 || s.Labels["team"] != "a" {
		t.Errorf("after a label edit by hand: %s, %d loads, team=%q; want updated, 1, %q", rep.Results[0].Outcome, loads.Load(), s.Labels["team"], "a")
	}

	// An edit by hand of the data behind an unchanged source is repaired.
	loads.Store(0)
	s.Data["tls.crt"] = []byte("edited")
	if _, err := cs.CoreV1().Secrets("web").Update(ctx, s, metav1.UpdateOptions{FieldManager: FieldManager}); err != nil {
		t.Fatal(err)
	}
	rep, _ = c.Apply(ctx, want[:1])
	s, _ = cs.CoreV1().Secrets("web").Get(ctx, "web-tls", metav1.GetOptions{})
	if rep.Results[0].Outcome != Updated || loads.Load() != 1 || string(s.Data["tls.crt"]) != "cert" {
		t.Errorf("after an edit by hand: %s, %d loads, tls.crt %q; want updated, 1, %q", rep.Results[0].Outcome, loads.Load(), s.Data["tls.crt"], "cert")
	}

	// A new source (a re-encrypted file) with the same data loads it and
	// updates only the annotation.
	loads.Store(0)
	before := s
	rep, _ = c.Apply(ctx, []Desired{lazy(desired("web", "web-tls"), "blob-2", &loads)})
	s, _ = cs.CoreV1().Secrets("web").Get(ctx, "web-tls", metav1.GetOptions{})
	if rep.Results[0].Outcome != Updated || loads.Load() != 1 {
		t.Errorf("new source: %s, %d loads; want updated, 1", rep.Results[0].Outcome, loads.Load())
	}
	wantAnn := maps.Clone(before.Annotations)
	wantAnn[AnnotationSourceBlob] = "blob-2"
	wantAnn[AnnotationContentHash] = rep.Results[0].Hash
	if !maps.Equal(s.Annotations, wantAnn) || !maps.EqualFunc(s.Data, before.Data, func(a, b []byte) bool { return string(a) == string(b) }) ||
		!maps.Equal(s.Labels, before.Labels) || s.Type != before.Type {
		t.Errorf("after a new source: annotations %v, labels %v, type %s; want only the source and hash annotations changed: %v", s.Annotations, s.Labels, s.Type, wantAnn)
	}

	// Without a source the annotation goes and the data is compared in full.
	loads.Store(0)
	rep, _ = c.Apply(ctx, []Desired{desired("web", "web-tls")})
	s, _ = cs.CoreV1().Secrets("web").Get(ctx, "web-tls", metav1.GetOptions{})
	if _, ok := s.Annotations[AnnotationSourceBlob]; rep.Results[0].Outcome != Updated || ok {
		t.Errorf("without a source: %s, annotations %v; want updated, no %s", rep.Results[0].Outcome, s.Annotations, AnnotationSourceBlob)
	}
}

func TestApplySourceOlderSecret(t *testing.T) {
	// A Secret applied before sources existed: decrypted and updated once.
	ctx := context.Background()
	c, cs := fakeCluster(t, ClusterConfig{})
	if _, err := c.Apply(ctx, []Desired{desired("web", "web-tls")}); err != nil {
		t.Fatal(err)
	}
	var loads atomic.Int64
	d := lazy(desired("web", "web-tls"), "blob-1", &loads)
	for i, want := range []Outcome{Updated, Unchanged} {
		rep, err := c.Apply(ctx, []Desired{d})
		if err != nil || rep.Results[0].Outcome != want {
			t.Errorf("pass %d: %s, %v; want %s", i, rep.Results[0].Outcome, err, want)
		}
	}
	if loads.Load() != 1 {
		t.Errorf("%d loads; want 1", loads.Load())
	}
	if s, _ := cs.CoreV1().Secrets("web").Get(ctx, "web-tls", metav1.GetOptions{}); s.Annotations[AnnotationSourceBlob] != "blob-1" {
		t.Errorf("annotations %v; want %s", s.Annotations, AnnotationSourceBlob)
	}
}

func TestApplyLoadError(t *testing.T) {
	ctx := context.Background()
	c, cs := fakeCluster(t, ClusterConfig{})
	var loads atomic.Int64
	errDecrypt := errors.New("secrets/web/web-tls.yaml: MAC mismatch")
	bad := lazy(desired("web", "bad-tls"), "blob-bad", &loads)
	bad.Load = func() (map[string][]byte, error) { return nil, errDecrypt }
	rep, err := c.Apply(ctx, []Desired{bad, lazy(desired("web", "good-tls"), "blob-good", &loads)})
	var ce *ClusterError
	if !errors.Is(err, errDecrypt) || !errors.As(err, &ce) || ce.Name != "bad-tls" || ce.Namespace != "web" {
		t.Errorf("err = %v; want a ClusterError naming web/bad-tls wrapping the loader's error", err)
	}
	if rep.Results[0].Outcome != Failed || rep.Results[1].Outcome != Created {
		t.Errorf("outcomes %s, %s; want failed, created", rep.Results[0].Outcome, rep.Results[1].Outcome)
	}
	if _, err := cs.CoreV1().Secrets("web").Get(ctx, "bad-tls", metav1.GetOptions{}); err == nil {
		t.Error("a Secret whose data did not load was written")
	}
}

func TestApplyRefusesBadSourceInput(t *testing.T) {
	c, _ := fakeCluster(t, ClusterConfig{})
	noData := desired("web", "x")
	noData.Data = nil
	own := desired("web", "x")
	own.Annotations = spec.NewAnnotations(map[string]string{AnnotationSourceBlob: "x"})
	for name, d := range map[string]Desired{"no data, no loader": noData, "own source annotation": own} {
		t.Run(name, func(t *testing.T) {
			rep, err := c.Apply(context.Background(), []Desired{d})
			if !errors.Is(err, ErrInvalid) || rep.Results[0].Outcome != Failed {
				t.Errorf("got %s, %v; want failed, ErrInvalid", rep.Results[0].Outcome, err)
			}
		})
	}
}
