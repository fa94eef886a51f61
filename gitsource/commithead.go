package gitsource

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// commitHead is what certops reads of a commit to follow history: its
// tree and parents, without the rest. certops' own commits carry a line
// and four trailers per certificate, about 250 KB for a batch of 500, and
// decoding that message whenever a push listed what it sends, or a commit
// looked up its parent's tree, kept megabytes in flight in a large pass.
type commitHead struct {
	hash    plumbing.Hash
	tree    plumbing.Hash
	parents []plumbing.Hash
}

// readCommitHead reads the header lines of commit h, up to the blank line
// that ends them; the message is never decoded.
func readCommitHead(s storer.EncodedObjectStorer, h plumbing.Hash) (commitHead, error) {
	o, err := s.EncodedObject(plumbing.CommitObject, h)
	if err != nil {
		return commitHead{}, err
	}
	rd, err := o.Reader()
	if err != nil {
		return commitHead{}, err
	}
	defer rd.Close()
	c := commitHead{hash: h}
	br := bufio.NewReaderSize(rd, 1024)
	tree := false
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A long header line (a signature's): skip the rest of it.
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
			if err != nil {
				return commitHead{}, fmt.Errorf("commit %s: %w", h, err)
			}
			continue
		}
		content := bytes.TrimSuffix(line, []byte("\n"))
		switch {
		case bytes.HasPrefix(content, []byte("tree ")):
			c.tree, tree = plumbing.NewHash(string(content[len("tree "):])), true
		case bytes.HasPrefix(content, []byte("parent ")):
			c.parents = append(c.parents, plumbing.NewHash(string(content[len("parent "):])))
		}
		// The blank line that ends the headers, or the end of a commit
		// without a message.
		if len(content) == 0 || err != nil {
			if err != nil && !errors.Is(err, io.EOF) {
				return commitHead{}, fmt.Errorf("commit %s: %w", h, err)
			}
			if !tree {
				return commitHead{}, fmt.Errorf("commit %s: no tree", h)
			}
			return c, nil
		}
	}
}
