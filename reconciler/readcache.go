package reconciler

import (
	"io/fs"
	"sync"
)

// readCache is an fs.FS over one commit's files that keeps what ReadFile
// returned (content or error) by path. The Crypter reads the same few
// .sops.yaml files for every Secret it encrypts; through a readCache each is
// read from the object store once a pass, and encryption workers do not wait
// for the store while the pass commits or pushes. A commit's files never
// change, so the cache is never stale; it is dropped with the pass. Only use
// it for small files read many times.
type readCache struct {
	fs.FS

	mu    sync.Mutex
	reads map[string]cachedRead
}

type cachedRead struct {
	data []byte
	err  error
}

var _ fs.ReadFileFS = (*readCache)(nil)

func newReadCache(fsys fs.FS) *readCache {
	return &readCache{FS: fsys, reads: map[string]cachedRead{}}
}

// ReadFile returns the cached content of name, reading it on first use. The
// slice is shared: callers must not change it.
func (c *readCache) ReadFile(name string) ([]byte, error) {
	c.mu.Lock()
	r, ok := c.reads[name]
	c.mu.Unlock()
	if ok {
		return r.data, r.err
	}
	data, err := fs.ReadFile(c.FS, name)
	c.mu.Lock()
	c.reads[name] = cachedRead{data: data, err: err}
	c.mu.Unlock()
	return data, err
}
