package gitsource

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/storage/filesystem"
	"github.com/go-git/go-git/v5/storage/memory"
)

// TestReadCommitHeadIsGoGits: readCommitHead finds the tree and parents
// go-git decodes, for commits with and without a message, with several
// parents, with a signature longer than its buffer, and with a message
// of 180 KB.
func TestReadCommitHeadIsGoGits(t *testing.T) {
	sig := object.Signature{Name: "a", Email: "a@example.test", When: time.Unix(1700000000, 0)}
	h := func(i int) plumbing.Hash { return plumbing.NewHash(fmt.Sprintf("%040x", i)) }
	commits := []*object.Commit{
		{Author: sig, Committer: sig, TreeHash: h(1), Message: "one line\n"},
		{Author: sig, Committer: sig, TreeHash: h(2), ParentHashes: []plumbing.Hash{h(3)}},
		{Author: sig, Committer: sig, TreeHash: h(4), ParentHashes: []plumbing.Hash{h(5), h(6), h(7)}, Message: "merge"},
		{Author: sig, Committer: sig, TreeHash: h(8), ParentHashes: []plumbing.Hash{h(9)}, Message: "signed\n\nbody\n",
			PGPSignature: "-----BEGIN PGP SIGNATURE-----\n" + strings.Repeat(strings.Repeat("s", 3000)+"\n", 3) + "-----END PGP SIGNATURE-----\n"},
		{Author: sig, Committer: sig, TreeHash: h(10), ParentHashes: []plumbing.Hash{h(11)},
			Message: "large\n\n" + strings.Repeat("Certificate: team/c\nSerial: 0123456789abcdef\n", 4000)},
	}
	stores := map[string]storer.EncodedObjectStorer{
		"memory":     memory.NewStorage(),
		"filesystem": filesystem.NewStorageWithOptions(osfs.New(t.TempDir()), newObjectCache(), filesystem.Options{}),
	}
	for name, s := range stores {
		for i, c := range commits {
			o := s.NewEncodedObject()
			if err := c.Encode(o); err != nil {
				t.Fatal(err)
			}
			hash, err := s.SetEncodedObject(o)
			if err != nil {
				t.Fatal(err)
			}
			want, err := object.GetCommit(s, hash)
			if err != nil {
				t.Fatal(err)
			}
			got, err := readCommitHead(s, hash)
			if err != nil {
				t.Fatalf("%s, commit %d: %v", name, i, err)
			}
			if got.hash != hash || got.tree != want.TreeHash || fmt.Sprint(got.parents) != fmt.Sprint(want.ParentHashes) {
				t.Errorf("%s, commit %d: %+v; want tree %s, parents %v", name, i, got, want.TreeHash, want.ParentHashes)
			}
		}
		if _, err := readCommitHead(s, h(99)); err == nil {
			t.Errorf("%s: no error for a missing commit", name)
		}
	}
}
