package gitsource

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// packThreshold is the number of new objects above which they are written
// as one packfile instead of loose objects: thousands of loose files cost a
// create and rename each, one pack costs one of each.
const packThreshold = 64

// changeNode is one directory of a change set.
type changeNode struct {
	files  map[string][]byte
	remove map[string]bool
	dirs   map[string]*changeNode
}

func newChangeNode() *changeNode {
	return &changeNode{files: map[string][]byte{}, remove: map[string]bool{}, dirs: map[string]*changeNode{}}
}

// cleanPath validates a repository path from the caller: relative, slash
// separated, clean, and outside .git.
func cleanPath(p string) (string, error) {
	if p == "" || strings.HasPrefix(p, "/") || strings.Contains(p, "\\") || path.Clean(p) != p || p == "." {
		return "", fmt.Errorf("invalid path %q", p)
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == ".." || strings.EqualFold(seg, ".git") {
			return "", fmt.Errorf("invalid path %q", p)
		}
	}
	return p, nil
}

// buildChangeTree arranges files and removals by directory and reports
// every invalid or conflicting path at once.
func buildChangeTree(files map[string][]byte, remove []string) (*changeNode, error) {
	root := newChangeNode()
	var errs []error
	walk := func(p string) (*changeNode, string) {
		n := root
		dir, base := path.Split(p)
		if dir != "" {
			for _, seg := range strings.Split(strings.TrimSuffix(dir, "/"), "/") {
				c, ok := n.dirs[seg]
				if !ok {
					c = newChangeNode()
					n.dirs[seg] = c
				}
				n = c
			}
		}
		return n, base
	}
	for p, content := range files {
		if _, err := cleanPath(p); err != nil {
			errs = append(errs, err)
			continue
		}
		n, base := walk(p)
		n.files[base] = content
	}
	for _, p := range remove {
		if _, err := cleanPath(p); err != nil {
			errs = append(errs, err)
			continue
		}
		if _, ok := files[p]; ok {
			errs = append(errs, fmt.Errorf("path %q is both written and removed", p))
			continue
		}
		n, base := walk(p)
		n.remove[base] = true
	}
	// A name that is written as a file and also holds written paths below it.
	var check func(n *changeNode, prefix string)
	check = func(n *changeNode, prefix string) {
		for name, c := range n.dirs {
			if _, ok := n.files[name]; ok {
				errs = append(errs, fmt.Errorf("path %q is written both as a file and as a directory", prefix+name))
			}
			check(c, prefix+name+"/")
		}
	}
	check(root, "")
	if len(errs) > 0 {
		sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
		return nil, errors.Join(errs...)
	}
	return root, nil
}

// treeBuilder writes new tree and blob objects for a change set on top of
// an existing tree, touching only the directories on the changed paths.
type treeBuilder struct {
	s      storer.EncodedObjectStorer
	staged map[plumbing.Hash]plumbing.EncodedObject
	order  []plumbing.Hash
}

func newTreeBuilder(s storer.EncodedObjectStorer) *treeBuilder {
	return &treeBuilder{s: s, staged: map[plumbing.Hash]plumbing.EncodedObject{}}
}

func (b *treeBuilder) stage(o plumbing.EncodedObject) plumbing.Hash {
	h := o.Hash()
	if _, ok := b.staged[h]; !ok {
		b.staged[h] = o
		b.order = append(b.order, h)
	}
	return h
}

// apply returns the hash of tree base with the changes of n applied, and
// false when the result is an empty tree.
func (b *treeBuilder) apply(base plumbing.Hash, n *changeNode, prefix string) (plumbing.Hash, bool, error) {
	entries := map[string]object.TreeEntry{}
	if !base.IsZero() {
		t, err := object.GetTree(b.s, base)
		if err != nil {
			return plumbing.ZeroHash, false, fmt.Errorf("read tree %s: %w", prefix, err)
		}
		for _, e := range t.Entries {
			entries[e.Name] = e
		}
	}
	for name := range n.remove {
		delete(entries, name)
	}
	for name, content := range n.files {
		h := plumbing.ComputeHash(plumbing.BlobObject, content)
		mode := filemode.Regular
		if old, ok := entries[name]; ok {
			if old.Mode == filemode.Dir {
				return plumbing.ZeroHash, false, fmt.Errorf("path %q is a directory in the tree", prefix+name)
			}
			if old.Hash == h && old.Mode.IsFile() {
				continue
			}
			if old.Mode == filemode.Executable {
				mode = filemode.Executable
			}
		}
		b.stage(&blobObject{hash: h, data: content})
		entries[name] = object.TreeEntry{Name: name, Mode: mode, Hash: h}
	}
	for name, child := range n.dirs {
		var sub plumbing.Hash
		if old, ok := entries[name]; ok {
			if old.Mode != filemode.Dir {
				if len(child.files) > 0 || len(child.dirs) > 0 {
					return plumbing.ZeroHash, false, fmt.Errorf("path %q is a file in the tree", prefix+name)
				}
				continue // removals below a file: nothing to do
			}
			sub = old.Hash
		}
		h, nonEmpty, err := b.apply(sub, child, prefix+name+"/")
		if err != nil {
			return plumbing.ZeroHash, false, err
		}
		if !nonEmpty {
			delete(entries, name)
			continue
		}
		entries[name] = object.TreeEntry{Name: name, Mode: filemode.Dir, Hash: h}
	}
	if len(entries) == 0 {
		return plumbing.ZeroHash, false, nil
	}
	t := &object.Tree{Entries: make([]object.TreeEntry, 0, len(entries))}
	for _, e := range entries {
		t.Entries = append(t.Entries, e)
	}
	sort.Sort(object.TreeEntrySorter(t.Entries))
	o := &plumbing.MemoryObject{}
	if err := t.Encode(o); err != nil {
		return plumbing.ZeroHash, false, err
	}
	if o.Hash() == base {
		return base, true, nil
	}
	return b.stage(o), true, nil
}

// emptyTree returns the hash of the empty tree, staging it.
func (b *treeBuilder) emptyTree() (plumbing.Hash, error) {
	o := &plumbing.MemoryObject{}
	if err := (&object.Tree{}).Encode(o); err != nil {
		return plumbing.ZeroHash, err
	}
	return b.stage(o), nil
}

// flush writes the staged objects and returns them as one packfile (see
// pack.go): the packfile goes into the store when it holds many objects
// and the storage keeps pack files; otherwise the objects are written
// loose.
func (b *treeBuilder) flush() (heldPack, error) {
	if len(b.order) == 0 {
		return heldPack{}, nil
	}
	defer func() { b.staged, b.order = map[plumbing.Hash]plumbing.EncodedObject{}, nil }()
	objs := make([]plumbing.EncodedObject, len(b.order))
	for i, h := range b.order {
		objs[i] = b.staged[h]
	}
	if ps, ok := b.s.(packStore); ok && len(objs) > packThreshold {
		// Held as the file it is written to: at 10,000 certificates the
		// pack of an initial issuance is tens of MiB.
		file, size, err := writePack(ps, objs)
		return heldPack{file: file, size: size}, err
	}
	data, err := encodePackBytes(objs)
	if err != nil {
		return heldPack{}, err
	}
	held := heldPack{data: data, size: int64(len(data))}
	for _, o := range objs {
		if _, err := b.s.SetEncodedObject(o); err != nil {
			return heldPack{}, err
		}
	}
	return held, nil
}

// blobObject is a blob staged for a commit: the content of Change.Files
// as it is. A plumbing.MemoryObject would copy it, and a batch of a large
// pass held every file twice until its commit was written.
type blobObject struct {
	hash plumbing.Hash
	data []byte
}

var _ plumbing.EncodedObject = (*blobObject)(nil)

func (o *blobObject) Hash() plumbing.Hash         { return o.hash }
func (o *blobObject) Type() plumbing.ObjectType   { return plumbing.BlobObject }
func (o *blobObject) SetType(plumbing.ObjectType) {}
func (o *blobObject) Size() int64                 { return int64(len(o.data)) }
func (o *blobObject) SetSize(int64)               {}
func (o *blobObject) Reader() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(o.data)), nil
}
func (o *blobObject) Writer() (io.WriteCloser, error) {
	return nil, errors.New("gitsource: a staged blob is read-only")
}
