package spec

import (
	"encoding/binary"
	"fmt"
	"iter"
	"maps"
	"slices"
	"strings"
	"unique"
)

// Annotations is a read-only string map for the annotations certops reads
// from every Secret file of a repository, and hands to the apply step.
// Files certops writes carry the same keys, so one set of keys is held
// once, through package unique, and each value holds its file's values in
// one string: about a fifth of the memory of a map[string]string, which
// was most of what a repository of 10,000 certificates kept between
// passes. (A slice of strings instead took 16 bytes and an allocation per
// value.) The zero value is empty.
type Annotations struct {
	keys unique.Handle[string] // sorted keys, each after its uvarint length
	vals string                // the values in the order of keys, likewise
	n    int
}

// NewAnnotations returns m as Annotations. m is not retained.
func NewAnnotations(m map[string]string) Annotations {
	if len(m) == 0 {
		return Annotations{}
	}
	keys := slices.Sorted(maps.Keys(m))
	nk, nv := 0, 0
	for _, k := range keys {
		nk += binary.MaxVarintLen64 + len(k)
		nv += binary.MaxVarintLen64 + len(m[k])
	}
	kb, vb := make([]byte, 0, nk), make([]byte, 0, nv)
	for _, k := range keys {
		kb = binary.AppendUvarint(kb, uint64(len(k)))
		kb = append(kb, k...)
		vb = binary.AppendUvarint(vb, uint64(len(m[k])))
		vb = append(vb, m[k]...)
	}
	return Annotations{keys: unique.Make(string(kb)), vals: string(vb), n: len(keys)}
}

// Len is the number of annotations.
func (a Annotations) Len() int { return a.n }

// All yields every annotation, by key in order.
func (a Annotations) All() iter.Seq2[string, string] {
	return func(yield func(string, string) bool) {
		if a.n == 0 {
			return
		}
		ks, vs := a.keys.Value(), a.vals
		for range a.n {
			var k, v string
			k, ks = nextKey(ks)
			v, vs = nextKey(vs)
			if !yield(k, v) {
				return
			}
		}
	}
}

// nextKey splits the first key or value off s, the keys or values of
// NewAnnotations.
func nextKey(s string) (key, rest string) {
	n, shift, i := 0, 0, 0
	for i < len(s) {
		c := s[i]
		i++
		n |= int(c&0x7f) << shift
		if c < 0x80 {
			break
		}
		shift += 7
	}
	return s[i : i+n], s[i+n:]
}

// Lookup returns the value of key, and whether it is set.
func (a Annotations) Lookup(key string) (string, bool) {
	for k, v := range a.All() {
		if k == key {
			return v, true
		}
	}
	return "", false
}

// Get returns the value of key, "" when it is not set.
func (a Annotations) Get(key string) string {
	v, _ := a.Lookup(key)
	return v
}

// Map returns the annotations as a new map, nil when there are none.
func (a Annotations) Map() map[string]string {
	if a.n == 0 {
		return nil
	}
	m := make(map[string]string, a.n)
	for k, v := range a.All() {
		m[k] = v
	}
	return m
}

// Equal reports whether a and b hold the same annotations.
func (a Annotations) Equal(b Annotations) bool {
	return a.n == b.n && (a.n == 0 || a.keys == b.keys && a.vals == b.vals)
}

// String formats the annotations as fmt formats a map.
func (a Annotations) String() string {
	var b strings.Builder
	b.WriteString("map[")
	for k, v := range a.All() {
		if b.Len() > len("map[") {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s:%s", k, v)
	}
	b.WriteByte(']')
	return b.String()
}
