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
// once, through package unique, and each value holds only its file's
// values: about a third of the memory of a map[string]string, which was
// most of what a repository of 10,000 certificates kept between passes.
// The zero value is empty.
type Annotations struct {
	keys unique.Handle[string] // sorted keys, each after its uvarint length
	vals []string              // in the order of keys
}

// NewAnnotations returns m as Annotations. m is not retained.
func NewAnnotations(m map[string]string) Annotations {
	if len(m) == 0 {
		return Annotations{}
	}
	keys := slices.Sorted(maps.Keys(m))
	n := 0
	for _, k := range keys {
		n += binary.MaxVarintLen64 + len(k)
	}
	b := make([]byte, 0, n)
	vals := make([]string, len(keys))
	for i, k := range keys {
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
		vals[i] = m[k]
	}
	return Annotations{keys: unique.Make(string(b)), vals: vals}
}

// Len is the number of annotations.
func (a Annotations) Len() int { return len(a.vals) }

// All yields every annotation, by key in order.
func (a Annotations) All() iter.Seq2[string, string] {
	return func(yield func(string, string) bool) {
		if len(a.vals) == 0 {
			return
		}
		s := a.keys.Value()
		for _, v := range a.vals {
			var k string
			k, s = nextKey(s)
			if !yield(k, v) {
				return
			}
		}
	}
}

// nextKey splits the first key off s, the keys of NewAnnotations.
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
	if len(a.vals) == 0 {
		return nil
	}
	m := make(map[string]string, len(a.vals))
	for k, v := range a.All() {
		m[k] = v
	}
	return m
}

// Equal reports whether a and b hold the same annotations.
func (a Annotations) Equal(b Annotations) bool {
	return len(a.vals) == len(b.vals) && (len(a.vals) == 0 || a.keys == b.keys) && slices.Equal(a.vals, b.vals)
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
