package spec

import (
	"fmt"
	"maps"
	"strings"
	"testing"
)

// TestAnnotationsIsAMap: Annotations answers as the map it was made from,
// for keys of every length (their length prefix takes one to three
// bytes), and files with the same keys share one copy of them.
func TestAnnotationsIsAMap(t *testing.T) {
	m := map[string]string{"": "empty key", "a": "1", "certops.dev/serial": "beef", strings.Repeat("k", 200): "long", strings.Repeat("x", 20000): "longer", "v": strings.Repeat("v", 300), "w": ""}
	a := NewAnnotations(m)
	if a.Len() != len(m) || !maps.Equal(a.Map(), m) {
		t.Fatalf("Map() = %v, want %v", a.Map(), m)
	}
	for k, v := range m {
		if got, ok := a.Lookup(k); !ok || got != v || a.Get(k) != v {
			t.Errorf("Lookup(%.10q) = %q, %v; want %q", k, got, ok, v)
		}
	}
	for _, k := range []string{"b", "certops.dev/seria", "certops.dev/serial2", strings.Repeat("k", 199)} {
		if v, ok := a.Lookup(k); ok || a.Get(k) != "" {
			t.Errorf("Lookup(%.10q) = %q, true; want absent", k, v)
		}
	}
	var keys []string
	for k := range a.All() {
		keys = append(keys, k)
	}
	if len(keys) != len(m) || keys[0] != "" || keys[1] != "a" {
		t.Errorf("All() keys out of order: %.20q", keys)
	}
	other := maps.Clone(m)
	other["a"] = "2"
	b := NewAnnotations(other)
	if a.keys != b.keys {
		t.Errorf("two maps with the same keys hold them twice")
	}
	if a.Equal(b) || !a.Equal(NewAnnotations(maps.Clone(m))) || !NewAnnotations(nil).Equal(Annotations{}) {
		t.Errorf("Equal disagrees with the maps")
	}
	if got, want := NewAnnotations(map[string]string{"b": "2", "a": "1"}).String(), fmt.Sprint(map[string]string{"a": "1", "b": "2"}); got != want {
		t.Errorf("String() = %s, want %s", got, want)
	}
	var zero Annotations
	if zero.Len() != 0 || zero.Map() != nil || zero.Get("a") != "" {
		t.Errorf("the zero value is not empty")
	}
	for range zero.All() {
		t.Errorf("the zero value yields")
	}
}
