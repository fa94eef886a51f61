package gitsource

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-billy/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// treeFS is a read-only io/fs view of one commit's tree, read from the
// object store (never a work tree). Decoded directories are cached, so
// reading every file of a large tree decodes each tree object once.
//
// go-git's object storage is not safe for concurrent use (two goroutines
// inflating from one packfile read each other's bytes), so every object
// read holds reads, which the Repo shares among all its trees.
type treeFS struct {
	s       storer.EncodedObjectStorer
	reads   *sync.Mutex
	modTime time.Time

	mu    sync.Mutex
	trees map[string]*object.Tree // "." for the root
}

var (
	_ fs.ReadFileFS = (*treeFS)(nil)
	_ fs.ReadDirFS  = (*treeFS)(nil)
	_ fs.StatFS     = (*treeFS)(nil)
)

func newTreeFS(s storer.EncodedObjectStorer, reads *sync.Mutex, root *object.Tree, modTime time.Time) *treeFS {
	return &treeFS{s: s, reads: reads, modTime: modTime, trees: map[string]*object.Tree{".": root}}
}

// tree returns the decoded directory dir ("." or "a/b").
func (f *treeFS) tree(dir string) (*object.Tree, error) {
	f.mu.Lock()
	t, ok := f.trees[dir]
	f.mu.Unlock()
	if ok {
		return t, nil
	}
	parent, base := path.Split(dir)
	parent = strings.TrimSuffix(parent, "/")
	if parent == "" {
		parent = "."
	}
	pt, err := f.tree(parent)
	if err != nil {
		return nil, err
	}
	f.mu.Lock() // FindEntry builds the tree's lookup map lazily
	e, err := pt.FindEntry(base)
	f.mu.Unlock()
	if err != nil || e.Mode != filemode.Dir {
		return nil, fs.ErrNotExist
	}
	f.reads.Lock()
	t, err = object.GetTree(f.s, e.Hash)
	f.reads.Unlock()
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.trees[dir] = t
	f.mu.Unlock()
	return t, nil
}

// entry finds name; the root is reported as a directory entry.
func (f *treeFS) entry(op, name string) (object.TreeEntry, error) {
	if !fs.ValidPath(name) {
		return object.TreeEntry{}, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	if name == "." {
		return object.TreeEntry{Name: ".", Mode: filemode.Dir}, nil
	}
	dir, base := path.Split(name)
	dir = strings.TrimSuffix(dir, "/")
	if dir == "" {
		dir = "."
	}
	t, err := f.tree(dir)
	if err != nil {
		return object.TreeEntry{}, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
	}
	// FindEntry with one path segment looks it up in the tree's own map.
	f.mu.Lock()
	e, err := t.FindEntry(base)
	f.mu.Unlock()
	if err != nil {
		return object.TreeEntry{}, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
	}
	return *e, nil
}

func (f *treeFS) info(e object.TreeEntry, size int64) *fileInfo {
	return &fileInfo{name: path.Base(e.Name), entry: e, size: size, mod: f.modTime}
}

func (f *treeFS) Stat(name string) (fs.FileInfo, error) {
	e, err := f.entry("stat", name)
	if err != nil {
		return nil, err
	}
	var size int64
	if e.Mode != filemode.Dir && e.Mode != filemode.Submodule {
		f.reads.Lock()
		size, err = f.s.EncodedObjectSize(e.Hash)
		f.reads.Unlock()
		if err != nil {
			return nil, &fs.PathError{Op: "stat", Path: name, Err: err}
		}
	}
	fi := f.info(e, size)
	fi.name = path.Base(name)
	return fi, nil
}

// BlobID is the Git blob id of data: what ContentHash reports for a file
// holding data.
func BlobID(data []byte) string {
	return plumbing.ComputeHash(plumbing.BlobObject, data).String()
}

// ContentHash is the blob id of file name: equal ids, equal bytes. It
// reads no blob.
func (f *treeFS) ContentHash(name string) (string, bool) {
	e, err := f.entry("stat", name)
	if err != nil || e.Mode == filemode.Dir || e.Mode == filemode.Submodule {
		return "", false
	}
	return e.Hash.String(), true
}

func (f *treeFS) ReadFile(name string) ([]byte, error) {
	e, err := f.entry("readfile", name)
	if err != nil {
		return nil, err
	}
	if e.Mode == filemode.Dir || e.Mode == filemode.Submodule {
		return nil, &fs.PathError{Op: "readfile", Path: name, Err: errors.New("is a directory")}
	}
	b, err := f.blob(e.Hash)
	if err != nil {
		return nil, &fs.PathError{Op: "readfile", Path: name, Err: err}
	}
	return b, nil
}

func (f *treeFS) blob(h plumbing.Hash) ([]byte, error) {
	f.reads.Lock()
	defer f.reads.Unlock()
	o, err := f.s.EncodedObject(plumbing.BlobObject, h)
	if err != nil {
		return nil, err
	}
	r, err := o.Reader()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	buf := make([]byte, 0, o.Size())
	w := bytes.NewBuffer(buf)
	if _, err := io.Copy(w, r); err != nil {
		return nil, err
	}
	return w.Bytes(), nil
}

func (f *treeFS) ReadDir(name string) ([]fs.DirEntry, error) {
	e, err := f.entry("readdir", name)
	if err != nil {
		return nil, err
	}
	if e.Mode != filemode.Dir {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errors.New("not a directory")}
	}
	t, err := f.tree(name)
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: err}
	}
	out := make([]fs.DirEntry, 0, len(t.Entries))
	for _, te := range t.Entries {
		out = append(out, &dirEntry{fs: f, entry: te})
	}
	// Tree order puts "a/" after "a.b"; io/fs wants plain name order.
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out, nil
}

func (f *treeFS) Open(name string) (fs.File, error) {
	e, err := f.entry("open", name)
	if err != nil {
		return nil, err
	}
	if e.Mode == filemode.Dir {
		entries, err := f.ReadDir(name)
		if err != nil {
			return nil, err
		}
		fi := f.info(e, 0)
		fi.name = path.Base(name)
		return &dirFile{info: fi, entries: entries}, nil
	}
	b, err := f.ReadFile(name)
	if err != nil {
		return nil, err
	}
	fi := f.info(e, int64(len(b)))
	fi.name = path.Base(name)
	return &file{info: fi, r: bytes.NewReader(b)}, nil
}

type fileInfo struct {
	name  string
	entry object.TreeEntry
	size  int64
	mod   time.Time
}

func (i *fileInfo) Name() string       { return i.name }
func (i *fileInfo) Size() int64        { return i.size }
func (i *fileInfo) ModTime() time.Time { return i.mod }
func (i *fileInfo) IsDir() bool        { return i.entry.Mode == filemode.Dir }
func (i *fileInfo) Sys() any           { return i.entry }
func (i *fileInfo) Mode() fs.FileMode {
	switch i.entry.Mode {
	case filemode.Dir:
		return fs.ModeDir | 0o555
	case filemode.Executable:
		return 0o555
	case filemode.Symlink:
		return fs.ModeSymlink | 0o444
	case filemode.Submodule:
		return fs.ModeIrregular
	}
	return 0o444
}

type dirEntry struct {
	fs    *treeFS
	entry object.TreeEntry
}

func (d *dirEntry) Name() string      { return d.entry.Name }
func (d *dirEntry) IsDir() bool       { return d.entry.Mode == filemode.Dir }
func (d *dirEntry) Type() fs.FileMode { return (&fileInfo{entry: d.entry}).Mode().Type() }
func (d *dirEntry) Info() (fs.FileInfo, error) {
	var size int64
	if !d.IsDir() && d.entry.Mode != filemode.Submodule {
		var err error
		d.fs.reads.Lock()
		size, err = d.fs.s.EncodedObjectSize(d.entry.Hash)
		d.fs.reads.Unlock()
		if err != nil {
			return nil, err
		}
	}
	return d.fs.info(d.entry, size), nil
}

type file struct {
	info *fileInfo
	r    *bytes.Reader
}

func (f *file) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *file) Read(p []byte) (int, error) { return f.r.Read(p) }
func (f *file) Close() error               { return nil }

type dirFile struct {
	info    *fileInfo
	entries []fs.DirEntry
	off     int
}

func (d *dirFile) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *dirFile) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.info.name, Err: errors.New("is a directory")}
}
func (d *dirFile) Close() error { return nil }
func (d *dirFile) ReadDir(n int) ([]fs.DirEntry, error) {
	rest := d.entries[d.off:]
	if n <= 0 {
		d.off = len(d.entries)
		return rest, nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	if n > len(rest) {
		n = len(rest)
	}
	d.off += n
	return rest[:n], nil
}

// idxReadFS reads pack index files through a buffer. go-git's index
// decoder reads an index a few bytes at a time, a system call each, and it
// reads every index of the cache again after each pack certops writes (a
// pass that commits 20 batches read some 200): 3% of the CPU of a pass
// that issues 10,000 certificates.
type idxReadFS struct{ billy.Filesystem }

// Chmod and Capabilities are the wrapped filesystem's: go-git asks for
// billy.Chmod to make what it writes read-only, as git does.
func (f idxReadFS) Chmod(name string, mode os.FileMode) error {
	if c, ok := f.Filesystem.(billy.Chmod); ok {
		return c.Chmod(name, mode)
	}
	return errors.New("gitsource: chmod is not supported")
}

func (f idxReadFS) Capabilities() billy.Capability { return billy.Capabilities(f.Filesystem) }

func (f idxReadFS) Open(name string) (billy.File, error) {
	file, err := f.Filesystem.Open(name)
	if err != nil || !strings.HasSuffix(name, ".idx") {
		return file, err
	}
	return &bufferedFile{File: file, r: bufio.NewReaderSize(file, 32<<10)}, nil
}

// bufferedFile reads a billy.File sequentially through r; it cannot seek.
type bufferedFile struct {
	billy.File
	r *bufio.Reader
}

func (b *bufferedFile) Read(p []byte) (int, error) { return b.r.Read(p) }

func (b *bufferedFile) Seek(int64, int) (int64, error) {
	return 0, errors.New("gitsource: a buffered index file cannot seek")
}

func (b *bufferedFile) ReadAt([]byte, int64) (int, error) {
	return 0, errors.New("gitsource: a buffered index file reads only in order")
}
