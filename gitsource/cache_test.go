package gitsource

import (
	"fmt"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
)

func memObject(t plumbing.ObjectType, content string) plumbing.EncodedObject {
	o := &plumbing.MemoryObject{}
	o.SetType(t)
	_, _ = o.Write([]byte(content))
	return o
}

// TestObjectCacheKeepsTreesPastManyBlobs: reading many blobs, as an apply
// pass does, keeps at most restCacheSize of them and of commits, and does
// not push trees out of the cache.
func TestObjectCacheKeepsTreesPastManyBlobs(t *testing.T) {
	c := newObjectCache()
	tree := memObject(plumbing.TreeObject, "a tree")
	commit := memObject(plumbing.CommitObject, "a commit")
	c.Put(tree)
	c.Put(commit)
	var blobs []plumbing.EncodedObject
	const n, size = 2000, 3000 // about 6 MB of blobs, more than restCacheSize
	for i := range n {
		b := memObject(plumbing.BlobObject, fmt.Sprintf("%0*d", size, i))
		blobs = append(blobs, b)
		c.Put(b)
	}
	if got, ok := c.Get(tree.Hash()); !ok || got != tree {
		t.Errorf("tree not in the cache after %d blobs", n)
	}
	if _, ok := c.Get(commit.Hash()); ok {
		t.Errorf("a commit read before %d blobs is still in the cache", n)
	}
	if _, ok := c.Get(blobs[n-1].Hash()); !ok {
		t.Errorf("the last blob read is not in the cache")
	}
	kept := 0
	for _, b := range blobs {
		if _, ok := c.Get(b.Hash()); ok {
			kept++
		}
	}
	if max := int(restCacheSize) / size; kept > max || kept == 0 {
		t.Errorf("%d blobs of %d bytes kept, want 1 to %d (restCacheSize)", kept, size, max)
	}
	c.Clear()
	if _, ok := c.Get(tree.Hash()); ok {
		t.Errorf("tree still cached after Clear")
	}
	if _, ok := c.Get(blobs[n-1].Hash()); ok {
		t.Errorf("blob still cached after Clear")
	}
}
