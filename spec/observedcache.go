package spec

import (
	"errors"
	"io/fs"
	"path"
	"strings"
	"sync"
)

// ContentHasher is the optional capability of an fs.FS to name a file's
// content without reading it: two files with the same hash have the same
// bytes (a Git blob id). ok is false when it cannot tell.
type ContentHasher interface {
	ContentHash(name string) (hash string, ok bool)
}

// ObservedCache keeps what ReadObserved found in each Secret file, by path
// and content hash, from one pass to the next, so that an unchanged file of
// a new commit is not parsed again. It holds only the files of the last
// directory it read. Its zero value is ready; it is safe for concurrent use.
type ObservedCache struct {
	mu      sync.Mutex
	entries map[string]observedEntry // by path
}

type observedEntry struct {
	hash    string
	o       *Observed // nil: a problem, or not certops' file
	problem string
}

// ReadDir is ReadObservedDir, answering from the cache for files whose
// content hash it has seen at the same path. Without a ContentHasher it
// reads every file. The values are shared with the cache and with other
// calls, as objects from a client-go informer's cache are: callers must
// not modify them (nothing in certops does). A copy per pass was a fifth
// of the live heap of a pass over 10,000 certificates.
func (c *ObservedCache) ReadDir(fsys fs.FS, dir string) (map[string]*Observed, []Problem) {
	hasher, _ := fsys.(ContentHasher)
	c.mu.Lock()
	old := c.entries
	c.mu.Unlock()
	seen := map[string]observedEntry{}
	out := map[string]*Observed{}
	var problems []Problem
	err := fs.WalkDir(fsys, dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == dir && errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			problems = append(problems, Problem{File: p, Message: "cannot read: " + cleanErr(err)})
			return nil
		}
		if d.IsDir() || !isYAML(p) || path.Base(p) == "kustomization.yaml" {
			return nil
		}
		var hash string
		if hasher != nil {
			hash, _ = hasher.ContentHash(p)
		}
		e, ok := old[p]
		if !ok || hash == "" || e.hash != hash {
			data, err := fs.ReadFile(fsys, p)
			if err != nil {
				// Not cached: a read error may be passing.
				problems = append(problems, Problem{File: p, Message: "cannot read: " + cleanErr(err)})
				return nil
			}
			e = observedEntry{hash: hash}
			if e.o, err = ReadObserved(p, data); err != nil {
				e.o, e.problem = nil, strings.TrimPrefix(err.Error(), "spec: "+p+": ")
			} else {
				e.o.Hash = hash
			}
		}
		if hash != "" {
			seen[p] = e
		}
		if e.problem != "" {
			problems = append(problems, Problem{File: p, Message: e.problem})
			return nil
		}
		if key := e.o.Certificate(); key != "" {
			out[key] = e.o
		}
		return nil
	})
	if err != nil {
		problems = append(problems, Problem{File: dir, Message: "cannot list: " + cleanErr(err)})
	}
	c.mu.Lock()
	c.entries = seen // only what this tree holds: the cache never outgrows it
	c.mu.Unlock()
	return out, problems
}

// Add records what file holds, written with content hash hash (as the
// file system's ContentHasher will name it), so that the next ReadDir need
// not parse it. A writer that knows the bytes it committed calls it.
func (c *ObservedCache) Add(file, hash string, data []byte) {
	if hash == "" || !isYAML(file) || path.Base(file) == "kustomization.yaml" {
		return
	}
	e := observedEntry{hash: hash}
	var err error
	if e.o, err = ReadObserved(file, data); err != nil {
		e.o, e.problem = nil, strings.TrimPrefix(err.Error(), "spec: "+file+": ")
	} else {
		e.o.Hash = hash
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[string]observedEntry{}
	}
	c.entries[file] = e
}
