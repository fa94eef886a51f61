package spec

import (
	"io/fs"
	"reflect"
	"sync"

	yaml "go.yaml.in/yaml/v3"
)

// LoadCache keeps what Load decoded from each spec file, by path and
// content hash, from one Load to the next, so that a file whose content did
// not change is not parsed and decoded again. Checks across files (issuer
// references, duplicates, clusters, policy) still run on the whole set at
// every Load. It holds only the files of the last tree loaded. Its zero
// value is ready; it is safe for concurrent use.
//
// The Certificates of a Repository loaded through a cache are the cache's
// own, shared with every other Load of the same file, as objects from a
// client-go informer's cache are: callers must not modify them (nothing in
// certops does; Load sets every default when it decodes). A copy per Load
// was an eighth of the live heap of a pass over 10,000 certificates. The
// Config and Issuers are copies.
type LoadCache struct {
	mu      sync.Mutex
	entries map[string]loadedFile // by path
}

// loadedFile is the outcome of reading and decoding one file on its own.
type loadedFile struct {
	hash     string
	problems []Problem
	docs     []loadedDoc
}

// loadedDoc is one document that decoded and validated on its own.
type loadedDoc struct {
	obj any // *Config, *Issuer or *Certificate; never handed out
	// dec holds the positions of obj's fields, for problems found across
	// files. A certificate's is not kept: a repository holds thousands,
	// and their positions were a sixth of its memory. Load decodes the
	// file again in the rare pass that has a problem to place in it
	// (Repository.decoderOf).
	dec       *decoder
	index     int // of the document in its file
	line, col int // of the document, for problems about it as a whole
}

// loadFile returns the decoded documents of file name, from the cache when
// its content hash matches, and records the entry in seen.
func (c *LoadCache) loadFile(fsys fs.FS, name string, seen map[string]loadedFile) loadedFile {
	var hash string
	if h, ok := fsys.(ContentHasher); ok {
		hash, _ = h.ContentHash(name)
	}
	if hash != "" {
		c.mu.Lock()
		e, ok := c.entries[name]
		c.mu.Unlock()
		if ok && e.hash == hash {
			seen[name] = e
			return e
		}
	}
	scratch, docs, objs := decodeFile(fsys, name)
	e := loadedFile{hash: hash}
	for i, obj := range objs {
		if obj == nil {
			continue
		}
		doc := docs[i]
		d := loadedDoc{obj: obj, dec: scratch.positions[obj], index: i, line: doc.Line, col: doc.Column}
		if _, ok := obj.(*Certificate); ok {
			d.dec = nil
		}
		if doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
			d.line, d.col = doc.Content[0].Line, doc.Content[0].Column
		}
		e.docs = append(e.docs, d)
	}
	e.problems = scratch.Problems
	if hash != "" {
		seen[name] = e
	}
	return e
}

// decodeFile decodes each document of file name on a scratch Repository,
// so that the file's problems are its own: scratch holds them and each
// object's field positions. objs[i] is the object of docs[i], nil when it
// did not decode.
func decodeFile(fsys fs.FS, name string) (scratch *Repository, docs []*yaml.Node, objs []any) {
	scratch = &Repository{Issuers: map[string]*Issuer{}, positions: map[any]*decoder{}}
	docs, ok := scratch.readDocuments(fsys, name)
	if !ok {
		return scratch, nil, nil
	}
	objs = make([]any, len(docs))
	for i, doc := range docs {
		objs[i] = scratch.decodeDocument(name, doc)
	}
	return scratch, docs, objs
}

// keep replaces the cache's entries with those of the tree just loaded.
func (c *LoadCache) keep(seen map[string]loadedFile) {
	c.mu.Lock()
	c.entries = seen
	c.mu.Unlock()
}

// deepCopy copies a decoded spec object: pointers, slices and maps are
// copied, so the copy shares nothing mutable with the original. Spec types
// have only exported fields.
func deepCopy(v reflect.Value) reflect.Value {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return v
		}
		out := reflect.New(v.Type().Elem())
		out.Elem().Set(deepCopy(v.Elem()))
		return out
	case reflect.Struct:
		out := reflect.New(v.Type()).Elem()
		out.Set(v)
		for i := range v.NumField() {
			if f := out.Field(i); f.CanSet() {
				f.Set(deepCopy(v.Field(i)))
			}
		}
		return out
	case reflect.Slice:
		if v.IsNil() {
			return v
		}
		out := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		for i := range v.Len() {
			out.Index(i).Set(deepCopy(v.Index(i)))
		}
		return out
	case reflect.Map:
		if v.IsNil() {
			return v
		}
		out := reflect.MakeMapWithSize(v.Type(), v.Len())
		iter := v.MapRange()
		for iter.Next() {
			out.SetMapIndex(iter.Key(), deepCopy(iter.Value()))
		}
		return out
	case reflect.Interface:
		if v.IsNil() {
			return v
		}
		out := reflect.New(v.Type()).Elem()
		out.Set(deepCopy(v.Elem()))
		return out
	case reflect.Array:
		out := reflect.New(v.Type()).Elem()
		for i := range v.Len() {
			out.Index(i).Set(deepCopy(v.Index(i)))
		}
		return out
	}
	return v
}

func copyObject(obj any) any {
	return deepCopy(reflect.ValueOf(obj)).Interface()
}
