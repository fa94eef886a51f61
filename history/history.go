package history

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"

	"certops.dev/certops/spec"
)

// Event is one thing certops did to one certificate, from one commit.
type Event struct {
	Time        time.Time `json:"time"`   // the certops commit's committer time
	Commit      string    `json:"commit"` // the certops commit
	Certificate string    `json:"certificate"`
	Action      string    `json:"action"` // issue, reissue, renew or remove
	Reason      string    `json:"reason"` // DoesNotExist, SpecChanged, ..., Deleted
	Serial      string    `json:"serial,omitempty"`
	NotAfter    time.Time `json:"notAfter,omitzero"`
	Issuer      string    `json:"issuer,omitempty"`
	SpecFile    string    `json:"specFile,omitempty"`
	Secret      string    `json:"secret,omitempty"` // the Secret file in the repository
	Cause       *Cause    `json:"cause,omitempty"`  // nil when the spec file is unknown
}

// Cause is the commit that last changed the certificate's spec file at or
// before the event.
type Cause struct {
	Commit  string    `json:"commit"`
	Author  string    `json:"author"`
	Email   string    `json:"email"`
	Time    time.Time `json:"time"` // author time
	Subject string    `json:"subject"`
	// Boundary is set when the commit is the edge of a shallow clone: the
	// real cause may be older.
	Boundary bool `json:"boundary,omitempty"`
}

// Options select what Read returns.
type Options struct {
	// Name keeps only one certificate: "namespace/name", or "name" for
	// every namespace. Empty: every certificate.
	Name string
	// Rev is the revision to read from (default HEAD).
	Rev string
}

// History is what Read returns: events oldest first.
type History struct {
	Head   string  `json:"head"`
	Events []Event `json:"events"`
	// Truncated is set when the repository is a shallow clone: events and
	// causes older than its boundary are missing.
	Truncated bool `json:"truncated,omitempty"`
}

// Read returns the history of the certificates of repo from Git alone.
func Read(ctx context.Context, repo *git.Repository, o Options) (*History, error) {
	rev := o.Rev
	if rev == "" {
		rev = "HEAD"
	}
	head, err := repo.ResolveRevision(plumbing.Revision(rev))
	if err != nil {
		return nil, fmt.Errorf("history: resolving %s: %w", rev, err)
	}
	r := &reader{repo: repo, commits: map[plumbing.Hash]*object.Commit{}, trees: map[plumbing.Hash]*object.Tree{},
		changed: map[plumbing.Hash]map[string]bool{}, shallow: map[plumbing.Hash]bool{}}
	sh, err := repo.Storer.Shallow()
	if err != nil {
		return nil, fmt.Errorf("history: reading the shallow list: %w", err)
	}
	for _, h := range sh {
		r.shallow[h] = true
	}
	order, err := r.topo(ctx, *head)
	if err != nil {
		return nil, err
	}
	out := &History{Head: head.String(), Truncated: len(sh) > 0, Events: []Event{}}
	for _, c := range order {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		blocks := parseTrailers(c.Message)
		var want []block
		for _, b := range blocks {
			if matches(o.Name, b.cert) {
				want = append(want, b)
			}
		}
		if len(want) == 0 {
			continue
		}
		files, err := r.secretFiles(c, want)
		if err != nil {
			return nil, err
		}
		for _, b := range want {
			e := Event{Time: c.Committer.When.UTC(), Commit: c.Hash.String(), Certificate: b.cert, Reason: b.reason,
				Action: action(b.reason), Serial: b.serial, Issuer: b.issuer}
			if b.notAfter != "" {
				if t, err := time.Parse(time.RFC3339, b.notAfter); err == nil {
					e.NotAfter = t.UTC()
				}
			}
			if f := files[b.cert]; f != nil {
				e.Secret, e.SpecFile = f.file, f.spec
			}
			out.Events = append(out.Events, e)
		}
	}
	// Causes: one restricted diff per commit over just the spec files
	// the events name, then a walk per event that is mostly map lookups.
	r.relevant = map[string]bool{}
	for _, e := range out.Events {
		if e.SpecFile != "" {
			r.relevant[e.SpecFile] = true
		}
	}
	r.dirs = prefixes(r.relevant)
	for i := range out.Events {
		e := &out.Events[i]
		if e.SpecFile == "" {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		c, err := r.lastChange(plumbing.NewHash(e.Commit), e.SpecFile)
		if err != nil {
			return nil, err
		}
		if c != nil {
			e.Cause = &Cause{Commit: c.Hash.String(), Author: c.Author.Name, Email: c.Author.Email,
				Time: c.Author.When.UTC(), Subject: subject(c.Message), Boundary: r.shallow[c.Hash]}
		}
	}
	return out, nil
}

func matches(filter, cert string) bool {
	if filter == "" {
		return true
	}
	if strings.Contains(filter, "/") {
		return cert == filter
	}
	return strings.HasSuffix(cert, "/"+filter)
}

func action(reason string) string {
	switch spec.Reason(reason) {
	case spec.ReasonDeleted:
		return string(spec.ActionRemove)
	case spec.ReasonDoesNotExist:
		return string(spec.ActionIssue)
	case spec.ReasonSpecChanged, spec.ReasonIssuerChanged:
		return string(spec.ActionReissue)
	}
	return string(spec.ActionRenew)
}

func subject(msg string) string {
	s, _, _ := strings.Cut(strings.TrimSpace(msg), "\n")
	return strings.TrimSpace(s)
}

// block is one certificate's trailers.
type block struct{ cert, serial, notAfter, issuer, reason string }

// parseTrailers reads the trailer paragraph (the last one) of a commit
// message; each Certificate key starts a new block.
func parseTrailers(msg string) []block {
	msg = strings.TrimRight(msg, "\n ")
	i := strings.LastIndex(msg, "\n\n")
	if i < 0 {
		return nil
	}
	var out []block
	for line := range strings.SplitSeq(msg[i+2:], "\n") {
		k, v, ok := strings.Cut(line, ": ")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		if k == "Certificate" {
			out = append(out, block{cert: v})
			continue
		}
		if len(out) == 0 {
			continue
		}
		b := &out[len(out)-1]
		switch k {
		case "Serial":
			b.serial = v
		case "Not-After":
			b.notAfter = v
		case "Issuer":
			b.issuer = v
		case "Reason":
			b.reason = v
		}
	}
	return slices.DeleteFunc(out, func(b block) bool { return b.cert == "" || b.reason == "" })
}

type reader struct {
	repo     *git.Repository
	commits  map[plumbing.Hash]*object.Commit
	trees    map[plumbing.Hash]*object.Tree
	shallow  map[plumbing.Hash]bool
	relevant map[string]bool                   // spec files some event names
	dirs     map[string]bool                   // their parent folders, "" for the root
	changed  map[plumbing.Hash]map[string]bool // commit → relevant files changed against its first parent
}

// topo returns the commits reachable from head, parents before children
// (ties by committer time), reading each commit object once.
func (r *reader) topo(ctx context.Context, head plumbing.Hash) ([]*object.Commit, error) {
	stack := []plumbing.Hash{head}
	for len(stack) > 0 {
		h := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if _, ok := r.commits[h]; ok {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		c, err := r.repo.CommitObject(h)
		if err != nil {
			if errors.Is(err, plumbing.ErrObjectNotFound) && len(r.shallow) > 0 {
				continue // beyond the shallow boundary
			}
			return nil, fmt.Errorf("history: reading commit %s: %w", h, err)
		}
		r.commits[h] = c
		if !r.shallow[h] {
			stack = append(stack, c.ParentHashes...)
		}
	}
	// Kahn's algorithm over the loaded commits.
	children := map[plumbing.Hash][]plumbing.Hash{}
	pending := map[plumbing.Hash]int{}
	var ready []*object.Commit
	for h, c := range r.commits {
		n := 0
		for _, p := range r.parents(c) {
			children[p.Hash] = append(children[p.Hash], h)
			n++
		}
		pending[h] = n
		if n == 0 {
			ready = append(ready, c)
		}
	}
	out := make([]*object.Commit, 0, len(r.commits))
	older := func(a, b *object.Commit) int {
		if c := a.Committer.When.Compare(b.Committer.When); c != 0 {
			return -c // newest last, so it is popped... see below
		}
		return strings.Compare(b.Hash.String(), a.Hash.String())
	}
	for len(ready) > 0 {
		// Pop the oldest ready commit: the result is oldest first.
		slices.SortFunc(ready, older)
		c := ready[len(ready)-1]
		ready = ready[:len(ready)-1]
		out = append(out, c)
		for _, ch := range children[c.Hash] {
			pending[ch]--
			if pending[ch] == 0 {
				ready = append(ready, r.commits[ch])
			}
		}
	}
	return out, nil
}

// parents returns the loaded parents of c (none beyond a shallow edge).
func (r *reader) parents(c *object.Commit) []*object.Commit {
	var out []*object.Commit
	for _, h := range c.ParentHashes {
		if p := r.commits[h]; p != nil {
			out = append(out, p)
		}
	}
	return out
}

func (r *reader) tree(h plumbing.Hash) (*object.Tree, error) {
	if t := r.trees[h]; t != nil {
		return t, nil
	}
	t, err := r.repo.TreeObject(h)
	if err != nil {
		return nil, fmt.Errorf("history: reading tree %s: %w", h, err)
	}
	if len(r.trees) > 4096 {
		clear(r.trees)
	}
	r.trees[h] = t
	return t, nil
}

type secretInfo struct{ file, spec string }

// secretFiles finds, among the files commit c changed against its first
// parent, the Secret file of each certificate of want, and the spec file
// its clear-text annotation names (read before the change for a removal).
func (r *reader) secretFiles(c *object.Commit, want []block) (map[string]*secretInfo, error) {
	var parentTree plumbing.Hash
	if ps := r.parents(c); len(ps) > 0 {
		parentTree = ps[0].TreeHash
	}
	var changes []change
	if err := r.diff(parentTree, c.TreeHash, "", nil, &changes); err != nil {
		return nil, err
	}
	need := map[string]bool{}
	for _, b := range want {
		need[b.cert] = true
	}
	// Try the likely file first (secretName defaults to the name).
	likely := func(ch change) bool {
		return need[path.Base(path.Dir(ch.path))+"/"+strings.TrimSuffix(path.Base(ch.path), ".yaml")]
	}
	if len(need) < len(changes) {
		slices.SortStableFunc(changes, func(a, b change) int {
			la, lb := likely(a), likely(b)
			switch {
			case la && !lb:
				return -1
			case lb && !la:
				return 1
			}
			return 0
		})
	}
	out := map[string]*secretInfo{}
	for _, ch := range changes {
		if len(need) == 0 {
			break
		}
		if !strings.HasSuffix(ch.path, ".yaml") || path.Base(ch.path) == "kustomization.yaml" {
			continue
		}
		blob := ch.to
		if blob.IsZero() {
			blob = ch.from // removed: the annotations are in the old file
		}
		head, err := r.head(blob)
		if err != nil {
			return nil, err
		}
		o, err := spec.ReadObserved(ch.path, head)
		if err != nil || !need[o.Certificate()] {
			continue
		}
		out[o.Certificate()] = &secretInfo{file: ch.path, spec: o.Annotations.Get(spec.AnnotationSpecFile)}
		delete(need, o.Certificate())
	}
	return out, nil
}

// head reads the clear-text part of a Secret file: up to its first
// data, stringData or sops key.
func (r *reader) head(h plumbing.Hash) ([]byte, error) {
	b, err := r.repo.BlobObject(h)
	if err != nil {
		return nil, fmt.Errorf("history: reading blob %s: %w", h, err)
	}
	rd, err := b.Reader()
	if err != nil {
		return nil, fmt.Errorf("history: reading blob %s: %w", h, err)
	}
	defer rd.Close()
	var out bytes.Buffer
	br := bufio.NewReader(rd)
	for {
		line, err := br.ReadBytes('\n')
		if bytes.HasPrefix(line, []byte("data:")) || bytes.HasPrefix(line, []byte("stringData:")) || bytes.HasPrefix(line, []byte("sops:")) {
			break
		}
		out.Write(line)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("history: reading blob %s: %w", h, err)
		}
		if out.Len() > 1<<20 {
			break
		}
	}
	return out.Bytes(), nil
}

type change struct {
	path     string
	from, to plumbing.Hash
}

// diff appends the blobs that differ between trees a and b (zero: empty)
// under prefix. keep, when set, prunes folders and files that cannot hold
// a wanted path. Equal subtrees are skipped by hash.
func (r *reader) diff(a, b plumbing.Hash, prefix string, keep func(p string, dir bool) bool, out *[]change) error {
	if a == b {
		return nil
	}
	var ea, eb []object.TreeEntry
	if !a.IsZero() {
		t, err := r.tree(a)
		if err != nil {
			return err
		}
		ea = t.Entries
	}
	if !b.IsZero() {
		t, err := r.tree(b)
		if err != nil {
			return err
		}
		eb = t.Entries
	}
	ma := make(map[string]object.TreeEntry, len(ea))
	for _, e := range ea {
		ma[e.Name] = e
	}
	visit := func(name string, x, y *object.TreeEntry) error {
		p := name
		if prefix != "" {
			p = prefix + "/" + name
		}
		var xd, yd bool
		var xh, yh plumbing.Hash
		if x != nil {
			xd, xh = x.Mode == filemode.Dir, x.Hash
		}
		if y != nil {
			yd, yh = y.Mode == filemode.Dir, y.Hash
		}
		if xh == yh && xd == yd {
			return nil
		}
		if xd || yd {
			if keep != nil && !keep(p, true) {
				return nil
			}
			var sa, sb plumbing.Hash
			if xd {
				sa = xh
			}
			if yd {
				sb = yh
			}
			if err := r.diff(sa, sb, p, keep, out); err != nil {
				return err
			}
		}
		fa, fb := plumbing.ZeroHash, plumbing.ZeroHash
		if x != nil && !xd {
			fa = xh
		}
		if y != nil && !yd {
			fb = yh
		}
		if fa != fb && (keep == nil || keep(p, false)) {
			*out = append(*out, change{path: p, from: fa, to: fb})
		}
		return nil
	}
	for i := range eb {
		e := &eb[i]
		var x *object.TreeEntry
		if o, ok := ma[e.Name]; ok {
			x = &o
			delete(ma, e.Name)
		}
		if err := visit(e.Name, x, e); err != nil {
			return err
		}
	}
	for name, e := range ma {
		if err := visit(name, &e, nil); err != nil {
			return err
		}
	}
	return nil
}

func prefixes(files map[string]bool) map[string]bool {
	out := map[string]bool{}
	for f := range files {
		for d := path.Dir(f); d != "." && !out[d]; d = path.Dir(d) {
			out[d] = true
		}
	}
	return out
}

// changedRelevant lists the spec files some event names that commit c
// changed against its first parent (all present ones for a root).
func (r *reader) changedRelevant(c *object.Commit) (map[string]bool, error) {
	if m, ok := r.changed[c.Hash]; ok {
		return m, nil
	}
	var parentTree plumbing.Hash
	if ps := r.parents(c); len(ps) > 0 {
		parentTree = ps[0].TreeHash
	}
	var changes []change
	keep := func(p string, dir bool) bool {
		if dir {
			return r.dirs[p]
		}
		return r.relevant[p]
	}
	if err := r.diff(parentTree, c.TreeHash, "", keep, &changes); err != nil {
		return nil, err
	}
	m := map[string]bool{}
	for _, ch := range changes {
		m[ch.path] = true
	}
	r.changed[c.Hash] = m
	return m, nil
}

// blobAt returns the hash of file in commit c's tree (zero when absent).
func (r *reader) blobAt(c *object.Commit, file string) (plumbing.Hash, error) {
	t, err := r.tree(c.TreeHash)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	e, err := t.FindEntry(file)
	if err != nil {
		if errors.Is(err, object.ErrEntryNotFound) || errors.Is(err, object.ErrDirectoryNotFound) {
			return plumbing.ZeroHash, nil
		}
		return plumbing.ZeroHash, fmt.Errorf("history: finding %s in %s: %w", file, c.Hash, err)
	}
	return e.Hash, nil
}

// lastChange is `git log -1 start -- file`: walk back while a parent has
// the same version of file; the commit none of whose parents has it is the
// one that changed it. Nil when file never existed.
func (r *reader) lastChange(start plumbing.Hash, file string) (*object.Commit, error) {
	c := r.commits[start]
	for c != nil {
		m, err := r.changedRelevant(c)
		if err != nil {
			return nil, err
		}
		ps := r.parents(c)
		if len(ps) == 0 {
			if m[file] {
				return c, nil
			}
			return nil, nil
		}
		if !m[file] {
			c = ps[0]
			continue
		}
		if len(ps) == 1 {
			return c, nil
		}
		// A merge changed it against its first parent: pass through to
		// another parent that has the same version, as git does.
		mine, err := r.blobAt(c, file)
		if err != nil {
			return nil, err
		}
		var next *object.Commit
		for _, p := range ps[1:] {
			h, err := r.blobAt(p, file)
			if err != nil {
				return nil, err
			}
			if h == mine {
				next = p
				break
			}
		}
		if next == nil {
			return c, nil
		}
		c = next
	}
	return nil, nil
}
