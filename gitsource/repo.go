package gitsource

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// Identity is a commit author or committer.
type Identity struct {
	Name, Email string
}

// Options configures Open.
type Options struct {
	// URL of the remote: https://, http://, ssh://, scp-like user@host:path
	// or file://. User-info in an HTTP(S) URL is used as basic auth when
	// Auth has none, and is never stored or printed.
	URL string
	// Branch is the tracked branch (default "main").
	Branch string
	// PushBranch, when set, receives certops' commits instead of Branch.
	PushBranch string
	// PushRefSpec, when set, names the remote ref to push to as
	// "<src>:<dst>" (src is ignored: the local commit is pushed) and wins
	// over PushBranch. A leading '+' (force) is refused.
	PushRefSpec string
	// PushOptions are sent with every push (git push -o key=value).
	PushOptions map[string]string
	// CacheDir holds the persistent clone; each URL gets its own folder.
	CacheDir string
	// Auth holds the credentials; when nil, AuthDir is read with LoadAuth.
	Auth    *Auth
	AuthDir string
	// Author of certops' commits (default "certops <certops@localhost>");
	// Committer defaults to Author.
	Author, Committer Identity
	// Signer signs every commit certops writes (nil: unsigned).
	Signer Signer
	// Verifier, when set, refuses tip commits not signed by a trusted key.
	// The Signer's key must be trusted by it.
	Verifier *Verifier
	// PushAttempts bounds the fetch-rebase-push cycle (default 5).
	PushAttempts int
	// Backoff is the first wait between push attempts (default 250ms); it
	// doubles per attempt up to 8s and each wait is jittered by ±50%.
	Backoff time.Duration
	// Logger receives one line per remote operation (default: discard).
	Logger *slog.Logger
	// Observe, when set, is called after each Git operation with its name
	// ("ls-remote", "fetch", "clone" — the first fetch into an empty cache —,
	// "commit" or "push"), its duration and its error (nil on success; an
	// up-to-date fetch or push is a success). It runs with the Repo's lock
	// held, so it must be quick and must not call back into the Repo.
	Observe func(op string, d time.Duration, err error)
	// Now and Rand are injected for tests (defaults: time.Now, a random
	// source).
	Now  func() time.Time
	Rand *rand.Rand
}

// Repo is the persistent local clone of one branch of a remote. Its methods
// are safe for concurrent use; they run one at a time.
type Repo struct {
	storage  *filesystem.Storage
	opts     Options
	ep       *endpoint
	redacted string
	secrets  secrets
	log      *slog.Logger
	repo     *git.Repository
	remote   *git.Remote
	branch   plumbing.ReferenceName // tracked branch on the remote
	target   plumbing.ReferenceName // push destination on the remote
	gitDir   string                 // the bare clone in the cache
	// reads guards go-git's object storage, which is not safe for
	// concurrent use: the fs.FS values from Files hold it for each object
	// read (fs.go), and Commit and Push for their whole work, so a tree
	// stays safe to read while the Repo commits or pushes.
	reads sync.Mutex

	mu sync.Mutex
	// packs holds the packfile of each unpushed commit written since Open
	// (pack.go); guarded by mu.
	packs heldPacks
}

// Local references inside the cache.
const (
	// refLocal is certops' view: baseRef plus commits not yet pushed.
	refLocal = plumbing.ReferenceName("refs/heads/certops")
	// refBase is the remote commit the local commits are built on.
	refBase = plumbing.ReferenceName("refs/certops/base")
	// refSeen is the last tip of the tracked branch fetched (verified or
	// not); Poll compares with it.
	refSeen = plumbing.ReferenceName("refs/remotes/origin/tracked")
	// refTarget is the last fetched tip of the push target.
	refTarget = plumbing.ReferenceName("refs/remotes/origin/target")
)

// Open validates the options, loads the credentials and opens (or creates)
// the cache; it does not touch the network. Commits left unpushed by an
// earlier run are kept: see Pending and Push.
func Open(ctx context.Context, o Options) (*Repo, error) {
	if o.URL == "" {
		return nil, errors.New("gitsource: open: no url")
	}
	if o.CacheDir == "" {
		return nil, errors.New("gitsource: open: no cache directory")
	}
	if o.Branch == "" {
		o.Branch = "main"
	}
	if o.Author.Name == "" {
		o.Author = Identity{Name: "certops", Email: "certops@localhost"}
	}
	if o.Committer.Name == "" {
		o.Committer = o.Author
	}
	if o.PushAttempts <= 0 {
		o.PushAttempts = 5
	}
	if o.Backoff <= 0 {
		o.Backoff = 250 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	redacted := RedactURL(o.URL)
	if !plumbing.ReferenceName("refs/heads/"+o.Branch).IsBranch() || strings.ContainsAny(o.Branch, " ~^:?*[\\") {
		return nil, fmt.Errorf("gitsource: open %s: invalid branch %q", redacted, o.Branch)
	}
	target := plumbing.ReferenceName("refs/heads/" + o.Branch)
	if o.PushBranch != "" {
		target = plumbing.ReferenceName("refs/heads/" + o.PushBranch)
	}
	if o.PushRefSpec != "" {
		if strings.HasPrefix(o.PushRefSpec, "+") {
			return nil, fmt.Errorf("gitsource: open %s: push refspec %q forces the update; force-push is never done", redacted, o.PushRefSpec)
		}
		_, dst, ok := strings.Cut(o.PushRefSpec, ":")
		if !ok || !strings.HasPrefix(dst, "refs/") {
			return nil, fmt.Errorf("gitsource: open %s: push refspec %q needs the form <src>:refs/<name>", redacted, o.PushRefSpec)
		}
		target = plumbing.ReferenceName(dst)
	}
	if o.Signer != nil && o.Verifier != nil {
		if err := o.Verifier.trusts(o.Signer); err != nil {
			return nil, fmt.Errorf("gitsource: open %s: the signing key is not in the trusted set: %w", redacted, ErrVerification)
		}
	}

	auth := o.Auth
	if auth == nil {
		var err error
		if auth, err = LoadAuth(o.AuthDir); err != nil {
			return nil, err
		}
	}
	// One folder per remote and branch, so a changed URL never reuses a
	// clone of something else.
	sum := sha256.Sum256([]byte(redacted + "\x00" + o.Branch))
	dir := filepath.Join(o.CacheDir, hex.EncodeToString(sum[:8]))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("gitsource: open %s: cache: %w", redacted, err)
	}
	ep, err := newEndpoint(o.URL, auth, dir)
	if err != nil {
		return nil, err
	}
	gitDir := filepath.Join(dir, "repo.git")
	if err := os.MkdirAll(gitDir, 0o700); err != nil {
		return nil, fmt.Errorf("gitsource: open %s: cache: %w", redacted, err)
	}
	// KeepDescriptors keeps the packfiles open: without it go-git opens
	// and closes a pack for every object read, which dominates reading a
	// 10,000-file tree.
	//
	// The object cache is small (objectCache). go-git's LargeObjectThreshold,
	// which would stream large objects rather than read them whole, stays
	// off: in go-git 5.19 it rebuilds a large delta wrongly, without an
	// error, when the delta copies from its base out of order
	// (TestLargeDeltaReadsBack).
	storage := filesystem.NewStorageWithOptions(idxReadFS{osfs.New(gitDir)}, newObjectCache(), filesystem.Options{KeepDescriptors: true})
	repo, err := git.Open(storage, nil)
	if errors.Is(err, git.ErrRepositoryNotExists) {
		repo, err = git.Init(storage, nil) // no work tree: a bare clone
	}
	if err == nil {
		err = noDeltas(repo)
	}
	if err != nil {
		_ = storage.Close()
		return nil, fmt.Errorf("gitsource: open %s: cache %s: %w", redacted, gitDir, err)
	}
	r := &Repo{gitDir: gitDir,
		storage:  storage,
		opts:     o,
		ep:       ep,
		redacted: redacted,
		secrets:  ep.secrets,
		log:      o.Logger.With("repo", redacted, "branch", o.Branch),
		repo:     repo,
		// An anonymous remote: the URL is not written to the cache's
		// config, so nothing on disk holds it.
		remote: git.NewRemote(repo.Storer, &config.RemoteConfig{Name: "origin", URLs: []string{ep.url}}),
		branch: plumbing.ReferenceName("refs/heads/" + o.Branch),
		target: target,
	}
	pending, err := r.pending()
	if err != nil {
		_ = storage.Close()
		return nil, r.wrap("open", err)
	}
	if len(pending) > 0 {
		r.log.Info("unpushed commits in the cache", "pending", len(pending))
	}
	return r, nil
}

// Close releases the open files of the cache. The fs.FS values from Files
// must not be used after it.
func (r *Repo) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.storage.Close()
}

// URL is the remote URL without user-info.
func (r *Repo) URL() string { return r.redacted }

func (r *Repo) ref(name plumbing.ReferenceName) (plumbing.Hash, error) {
	ref, err := r.repo.Storer.Reference(name)
	if errors.Is(err, plumbing.ErrReferenceNotFound) {
		return plumbing.ZeroHash, nil
	}
	if err != nil {
		return plumbing.ZeroHash, err
	}
	return ref.Hash(), nil
}

// observe reports one operation to Options.Observe. The duration is wall
// time (time.Since), not Options.Now, which tests may freeze.
func (r *Repo) observe(op string, start time.Time, err error) {
	if r.opts.Observe != nil {
		r.opts.Observe(op, time.Since(start), err)
	}
}

func (r *Repo) setRef(name plumbing.ReferenceName, h plumbing.Hash) error {
	return r.repo.Storer.SetReference(plumbing.NewHashReference(name, h))
}

// Poll asks the remote for the tip of the tracked branch (one ls-remote,
// no fetch) and reports whether it differs from the last tip fetched.
func (r *Repo) Poll(ctx context.Context) (head string, changed bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	tip, err := r.lsRemote(ctx, r.branch)
	if err != nil {
		return "", false, r.wrap("poll", err)
	}
	seen, err := r.ref(refSeen)
	if err != nil {
		return "", false, r.wrap("poll", err)
	}
	return tip.String(), tip != seen, nil
}

// lsRemote returns the hash of ref on the remote; a missing ref or an empty
// remote is ErrNotFound.
func (r *Repo) lsRemote(ctx context.Context, ref plumbing.ReferenceName) (plumbing.Hash, error) {
	start := time.Now()
	refs, err := r.remote.ListContext(ctx, &git.ListOptions{
		Auth:       r.ep.auth,
		CABundle:   r.ep.caBundle,
		ClientCert: r.ep.clientCert,
		ClientKey:  r.ep.clientKey,
	})
	r.observe("ls-remote", start, err)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	for _, x := range refs {
		if x.Name() == ref {
			return x.Hash(), nil
		}
	}
	return plumbing.ZeroHash, fmt.Errorf("%w: no ref %s on the remote", ErrNotFound, ref)
}

// fetch brings the tip of the remote ref into local ref dst and returns it.
//
// Only the first fetch into an empty cache is shallow (depth 1: one commit
// and its tree). Later fetches are incremental: without a depth, the server
// sends only the objects our refs do not reach. A depth-1 fetch would
// re-send the whole tree every time, because go-git takes no thin packs (a
// one-file change to a 3,000-file tree pulled a 5.2 MB pack).
//
// go-git wants the tip again on every depth-0 fetch into a shallow
// repository, even one it already holds, so fetch asks ls-remote first and
// skips the transfer when the tip is already here (certops' own pushed
// commit, or an unchanged remote).
func (r *Repo) fetch(ctx context.Context, ref, dst plumbing.ReferenceName) (plumbing.Hash, error) {
	seen, err := r.ref(refSeen)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	base, err := r.ref(refBase)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	target, err := r.ref(refTarget)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if seen.IsZero() && base.IsZero() && target.IsZero() {
		return r.fetchDepth(ctx, "clone", ref, dst, 1) // nothing fetched into this cache yet
	}
	prev, err := r.ref(dst)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	tip, err := r.lsRemote(ctx, ref)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if _, err := object.GetCommit(r.repo.Storer, tip); err == nil {
		if err := r.setRef(dst, tip); err != nil {
			return plumbing.ZeroHash, err
		}
	} else if tip, err = r.fetchDepth(ctx, "fetch", ref, dst, 0); err != nil {
		return plumbing.ZeroHash, err
	}
	// The server believes we hold all history behind our refs, but the cache
	// is shallow: a tree that reuses objects only older commits held (a merge
	// of an old commit, a revert past the shallow boundary) arrives without
	// them. Then fetch again with a depth: go-git then sends our shallow
	// boundary, the server sends what lies behind it, and the depth (2: the
	// tip and its parents) keeps the history short. Depth 1 would not do:
	// go-git does not ask for a tip it already holds at depth 1. dst goes
	// back first: a ref on the incomplete tip would be sent as a "have".
	if !base.IsZero() && tip != base {
		missing, err := r.missingObjects(tip, base)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		if missing {
			r.log.Info("incremental fetch left objects out; fetching again with the shallow boundary", "commit", tip.String())
			if prev.IsZero() {
				err = r.repo.Storer.RemoveReference(dst)
			} else {
				err = r.setRef(dst, prev)
			}
			if err != nil {
				return plumbing.ZeroHash, err
			}
			if tip, err = r.fetchDepth(ctx, "fetch", ref, dst, 2); err != nil {
				return plumbing.ZeroHash, err
			}
			if missing, err := r.missingObjects(tip, base); err != nil || missing {
				return plumbing.ZeroHash, errors.Join(err, fmt.Errorf("commit %s: objects of its tree are missing after a full fetch", tip))
			}
		}
	}
	return tip, nil
}

// fetchDepth fetches ref into dst (depth 0: incremental) and returns the
// new dst; op names the operation for Options.Observe.
func (r *Repo) fetchDepth(ctx context.Context, op string, ref, dst plumbing.ReferenceName, depth int) (plumbing.Hash, error) {
	start := time.Now()
	err := r.remote.FetchContext(ctx, &git.FetchOptions{
		RefSpecs:   []config.RefSpec{config.RefSpec("+" + ref.String() + ":" + dst.String())},
		Depth:      depth,
		Tags:       git.NoTags,
		Auth:       r.ep.auth,
		CABundle:   r.ep.caBundle,
		ClientCert: r.ep.clientCert,
		ClientKey:  r.ep.clientKey,
	})
	if errors.Is(err, git.NoErrAlreadyUpToDate) {
		r.observe(op, start, nil)
	} else {
		r.observe(op, start, err)
	}
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		var nm git.NoMatchingRefSpecError
		if errors.As(err, &nm) {
			return plumbing.ZeroHash, fmt.Errorf("%w: no ref %s on the remote", ErrNotFound, ref)
		}
		return plumbing.ZeroHash, err
	}
	return r.ref(dst)
}

// missingObjects reports whether the tree of commit tip lacks an object in
// the store. Subtrees and blobs the tree of commit known holds at the same
// path are complete already and are not visited, so the walk follows the
// size of the change.
func (r *Repo) missingObjects(tip, known plumbing.Hash) (bool, error) {
	tc, err := object.GetCommit(r.repo.Storer, tip)
	if errors.Is(err, plumbing.ErrObjectNotFound) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	var old *object.Tree
	if kc, err := object.GetCommit(r.repo.Storer, known); err == nil {
		if old, err = kc.Tree(); err != nil {
			return false, err
		}
	}
	return r.missingIn(tc.TreeHash, old)
}

func (r *Repo) missingIn(h plumbing.Hash, old *object.Tree) (bool, error) {
	if old != nil && old.Hash == h {
		return false, nil
	}
	t, err := object.GetTree(r.repo.Storer, h)
	if errors.Is(err, plumbing.ErrObjectNotFound) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	have := map[string]object.TreeEntry{}
	if old != nil {
		for _, e := range old.Entries {
			have[e.Name] = e
		}
	}
	for _, e := range t.Entries {
		if o, ok := have[e.Name]; ok && o.Hash == e.Hash {
			continue
		}
		switch e.Mode {
		case filemode.Submodule:
			continue // a commit of another repository: never fetched
		case filemode.Dir:
			var sub *object.Tree
			if o, ok := have[e.Name]; ok && o.Mode == filemode.Dir {
				sub, _ = object.GetTree(r.repo.Storer, o.Hash) // absent: walk without a baseline
			}
			if missing, err := r.missingIn(e.Hash, sub); missing || err != nil {
				return missing, err
			}
		default:
			if err := r.repo.Storer.HasEncodedObject(e.Hash); errors.Is(err, plumbing.ErrObjectNotFound) {
				return true, nil
			} else if err != nil {
				return false, err
			}
		}
	}
	return false, nil
}

func (r *Repo) verify(h plumbing.Hash) error {
	if r.opts.Verifier == nil {
		return nil
	}
	c, err := object.GetCommit(r.repo.Storer, h)
	if err != nil {
		return err
	}
	signer, err := r.opts.Verifier.VerifyCommit(c)
	if err != nil {
		return err
	}
	r.log.Debug("commit verified", "commit", h.String(), "signer", signer)
	return nil
}

// Sync fetches the tracked branch when it moved, verifies its tip and
// returns the commit to work on: the remote tip, with any commits certops
// has not pushed yet re-applied on top. When the tip fails verification it
// returns ErrVerification and keeps the last verified commit, which Head
// still returns.
func (r *Repo) Sync(ctx context.Context) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	tip, err := r.fetch(ctx, r.branch, refSeen)
	if err != nil {
		return "", r.wrap("fetch", err)
	}
	base, err := r.ref(refBase)
	if err != nil {
		return "", r.wrap("fetch", err)
	}
	if tip != base {
		if err := r.verify(tip); err != nil {
			r.log.Warn("refusing unverified commit; keeping the last verified one", "commit", tip.String(), "last_verified", base.String())
			return "", r.wrap("verify", err)
		}
		if err := r.rebase(tip); err != nil {
			return "", r.wrap("fetch", err)
		}
		r.log.Info("synced", "commit", tip.String())
	}
	head, err := r.ref(refLocal)
	if err != nil {
		return "", r.wrap("fetch", err)
	}
	return head.String(), nil
}

// GitDir is the bare clone in the cache. Readers that open it themselves
// (git.PlainOpen, the git CLI) get their own handles and never share
// go-git's pack readers with the Repo.
func (r *Repo) GitDir() string { return r.gitDir }

// Head returns the commit to work on: the last verified remote tip plus
// unpushed commits ("" before the first Sync).
func (r *Repo) Head() (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	h, err := r.ref(refLocal)
	if err != nil || h.IsZero() {
		return "", r.wrap("head", err)
	}
	return h.String(), nil
}

// rebase moves the local branch onto onto, re-applying unpushed commits.
func (r *Repo) rebase(onto plumbing.Hash) error {
	pending, err := r.pending()
	if err != nil {
		return err
	}
	head := onto
	if len(pending) > 0 {
		if head, err = r.reapply(onto, pending); err != nil {
			return err
		}
		r.log.Info("re-applied unpushed commits on the new tip", "commit", onto.String(), "pending", len(pending))
	}
	if err := r.setRef(refLocal, head); err != nil {
		return err
	}
	return r.setRef(refBase, onto)
}

// pending lists the local commits not yet on the remote, oldest first.
func (r *Repo) pending() ([]commitHead, error) {
	head, err := r.ref(refLocal)
	if err != nil || head.IsZero() {
		return nil, err
	}
	base, err := r.ref(refBase)
	if err != nil {
		return nil, err
	}
	var out []commitHead
	for h := head; h != base; {
		c, err := readCommitHead(r.repo.Storer, h)
		if err != nil {
			return nil, fmt.Errorf("local commit %s: %w", h, err)
		}
		out = append(out, c)
		if len(c.parents) != 1 {
			return nil, fmt.Errorf("local commit %s does not descend from %s", h, base)
		}
		h = c.parents[0]
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

// Pending reports how many local commits are not on the remote yet; Push
// sends them.
func (r *Repo) Pending() (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, err := r.pending()
	if err != nil {
		return 0, r.wrap("pending", err)
	}
	return len(p), nil
}

// lockStorage takes mu and then reads (always in that order), and returns
// the function that releases both.
func (r *Repo) lockStorage() func() {
	r.mu.Lock()
	r.reads.Lock()
	return func() {
		r.reads.Unlock()
		r.mu.Unlock()
	}
}

// Files returns the files of commit (its tree, not a work tree).
func (r *Repo) Files(commit string) (fs.FS, error) {
	h := plumbing.NewHash(commit)
	if h.IsZero() || h.String() != strings.ToLower(commit) {
		return nil, newError("files", r.redacted, ErrNotFound, fmt.Sprintf("invalid commit %q", commit))
	}
	r.reads.Lock()
	defer r.reads.Unlock()
	c, err := object.GetCommit(r.repo.Storer, h)
	if err != nil {
		return nil, r.wrap("files", fmt.Errorf("commit %s: %w", commit, err))
	}
	t, err := c.Tree()
	if err != nil {
		return nil, r.wrap("files", fmt.Errorf("commit %s: %w", commit, err))
	}
	return newTreeFS(r.repo.Storer, &r.reads, t, c.Committer.When), nil
}

// Trailer is one "Key: value" line at the end of a commit message.
type Trailer struct {
	Key, Value string
}

// Message is a commit message.
type Message struct {
	Subject  string
	Body     string
	Trailers []Trailer
}

// String formats m the way git does: subject, blank line, body, blank line,
// trailers.
func (m Message) String() string {
	var b strings.Builder
	b.WriteString(strings.TrimSpace(m.Subject))
	b.WriteString("\n")
	if body := strings.TrimSpace(m.Body); body != "" {
		b.WriteString("\n")
		b.WriteString(body)
		b.WriteString("\n")
	}
	if len(m.Trailers) > 0 {
		b.WriteString("\n")
		for _, t := range m.Trailers {
			fmt.Fprintf(&b, "%s: %s\n", t.Key, strings.ReplaceAll(t.Value, "\n", " "))
		}
	}
	return b.String()
}

// Change is one commit's worth of owned files.
type Change struct {
	// Files maps slash-separated repository paths to their new content.
	// The content is committed as it is, not copied, and may be kept by
	// the object storage: it must not change once passed.
	Files map[string][]byte
	// Remove lists paths (files or whole directories) to delete.
	Remove  []string
	Message Message
	// Author overrides Options.Author for this commit.
	Author *Identity
}

// Commit writes change as one commit on top of the local branch (see
// Sync). It builds only the trees on the changed paths, never reading a
// work tree. A change that alters nothing returns changed == false and no
// commit.
func (r *Repo) Commit(ctx context.Context, change Change) (hash string, changed bool, err error) {
	defer r.lockStorage()()
	if err := ctx.Err(); err != nil {
		return "", false, r.wrap("commit", err)
	}
	if strings.TrimSpace(change.Message.Subject) == "" {
		return "", false, newError("commit", r.redacted, nil, "empty subject")
	}
	parent, err := r.ref(refLocal)
	if err != nil {
		return "", false, r.wrap("commit", err)
	}
	if parent.IsZero() {
		return "", false, newError("commit", r.redacted, ErrNotFound, "no local branch yet: call Sync first")
	}
	author := r.opts.Author
	if change.Author != nil {
		author = *change.Author
	}
	start := time.Now()
	h, err := r.commitOn(parent, change.Files, change.Remove, change.Message.String(), author, r.opts.Now())
	r.observe("commit", start, err)
	if err != nil {
		return "", false, r.wrap("commit", err)
	}
	if h == parent {
		return "", false, nil
	}
	if err := r.setRef(refLocal, h); err != nil {
		return "", false, r.wrap("commit", err)
	}
	r.log.Info("committed", "commit", h.String(), "files", len(change.Files), "removed", len(change.Remove))
	return h.String(), true, nil
}

// commitOn writes a commit with parent and the given changes; it returns
// parent itself when the tree would not change.
func (r *Repo) commitOn(parent plumbing.Hash, files map[string][]byte, remove []string, msg string, author Identity, when time.Time) (plumbing.Hash, error) {
	pc, err := readCommitHead(r.repo.Storer, parent)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	changes, err := buildChangeTree(files, remove)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	b := newTreeBuilder(r.repo.Storer)
	tree, nonEmpty, err := b.apply(pc.tree, changes, "")
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if !nonEmpty {
		if tree, err = b.emptyTree(); err != nil {
			return plumbing.ZeroHash, err
		}
	}
	if tree == pc.tree {
		return parent, nil
	}
	c := &object.Commit{
		Author:       object.Signature{Name: author.Name, Email: author.Email, When: when},
		Committer:    object.Signature{Name: r.opts.Committer.Name, Email: r.opts.Committer.Email, When: when},
		Message:      msg,
		TreeHash:     tree,
		ParentHashes: []plumbing.Hash{parent},
	}
	if r.opts.Signer != nil {
		enc := &plumbing.MemoryObject{}
		if err := c.EncodeWithoutSignature(enc); err != nil {
			return plumbing.ZeroHash, err
		}
		rd, err := enc.Reader()
		if err != nil {
			return plumbing.ZeroHash, err
		}
		sig, err := r.opts.Signer.Sign(rd)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		c.PGPSignature = string(sig)
	}
	obj := &plumbing.MemoryObject{}
	if err := c.Encode(obj); err != nil {
		return plumbing.ZeroHash, err
	}
	b.stage(obj)
	pack, err := b.flush()
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("write objects: %w", err)
	}
	r.packs.hold(obj.Hash(), pack)
	return obj.Hash(), nil
}

// reapply recreates each pending commit's change (its diff to its parent)
// on top of onto, oldest first, and returns the new head. A commit whose
// change is already in place is dropped.
func (r *Repo) reapply(onto plumbing.Hash, pending []commitHead) (plumbing.Hash, error) {
	head := onto
	for _, p := range pending {
		c, err := object.GetCommit(r.repo.Storer, p.hash)
		if err != nil {
			return plumbing.ZeroHash, fmt.Errorf("re-apply %s: %w", p.hash, err)
		}
		files, remove, err := r.changeOf(c)
		if err != nil {
			return plumbing.ZeroHash, fmt.Errorf("re-apply %s: %w", c.Hash, err)
		}
		author := Identity{Name: c.Author.Name, Email: c.Author.Email}
		h, err := r.commitOn(head, files, remove, c.Message, author, r.opts.Now())
		if err != nil {
			return plumbing.ZeroHash, fmt.Errorf("re-apply %s: %w", c.Hash, err)
		}
		if h == head {
			r.log.Info("dropped a commit already applied upstream", "commit", c.Hash.String())
		}
		head = h
	}
	return head, nil
}

// changeOf returns the files written and removed by commit c relative to
// its parent.
func (r *Repo) changeOf(c *object.Commit) (map[string][]byte, []string, error) {
	parent, err := c.Parent(0)
	if err != nil {
		return nil, nil, err
	}
	from, err := parent.Tree()
	if err != nil {
		return nil, nil, err
	}
	to, err := c.Tree()
	if err != nil {
		return nil, nil, err
	}
	changes, err := object.DiffTree(from, to)
	if err != nil {
		return nil, nil, err
	}
	files := map[string][]byte{}
	var remove []string
	for _, ch := range changes {
		if ch.To.Name == "" {
			remove = append(remove, ch.From.Name)
			continue
		}
		blob, err := object.GetBlob(r.repo.Storer, ch.To.TreeEntry.Hash)
		if err != nil {
			return nil, nil, err
		}
		rd, err := blob.Reader()
		if err != nil {
			return nil, nil, err
		}
		b, err := io.ReadAll(rd)
		rd.Close()
		if err != nil {
			return nil, nil, err
		}
		files[ch.To.Name] = b
	}
	return files, remove, nil
}

// Push sends the unpushed commits to the push target. When the remote
// moved meanwhile, it fetches the new tip, verifies it, re-applies the same
// changes on top, and tries again, at most PushAttempts times with jittered
// exponential backoff; then it fails with ErrNonFastForward. It never
// force-pushes. Nothing to push is not an error.
func (r *Repo) Push(ctx context.Context) error {
	defer r.lockStorage()()
	for attempt := 1; ; attempt++ {
		pending, err := r.pending()
		if err != nil {
			return r.wrap("push", err)
		}
		if len(pending) == 0 {
			return nil
		}
		head, err := r.ref(refLocal)
		if err != nil {
			return r.wrap("push", err)
		}
		start := time.Now()
		objects, err := r.push(ctx, pending, head)
		if errors.Is(err, git.NoErrAlreadyUpToDate) {
			r.observe("push", start, nil)
		} else {
			r.observe("push", start, err)
		}
		if err == nil || errors.Is(err, git.NoErrAlreadyUpToDate) {
			if err := r.pushed(head); err != nil {
				return r.wrap("push", err)
			}
			r.log.Info("pushed", "commit", head.String(), "ref", r.target.String(), "attempt", attempt, "objects", objects)
			return nil
		}
		if k := classify(err); errors.Is(k, ErrAuth) || errors.Is(k, ErrHostKey) || ctx.Err() != nil {
			return r.wrap("push", err)
		}
		// Did the remote move? If the target is still at (or behind) what
		// we built on, the push was refused for another reason (a hook, a
		// protected branch): report it as it is.
		tip, lerr := r.lsRemote(ctx, r.target)
		if lerr != nil && !errors.Is(lerr, ErrNotFound) {
			return r.wrap("push", lerr)
		}
		if tip.IsZero() || r.contains(pending, tip) {
			return r.wrap("push", fmt.Errorf("rejected by the remote: %w", err))
		}
		if attempt >= r.opts.PushAttempts {
			return newError("push", r.redacted, ErrNonFastForward,
				fmt.Sprintf("%s moved on every attempt; gave up after %d", r.target, attempt))
		}
		// Work on what the fetch brought, not on the tip ls-remote saw: the
		// remote may have moved again in between, and a shallow fetch of the
		// newer tip does not carry the older one.
		fetched, err := r.fetch(ctx, r.target, refTarget)
		if err != nil {
			return r.wrap("push", err)
		}
		if !fetched.IsZero() {
			tip = fetched
		}
		r.log.Info("remote moved; re-applying on the new tip", "ref", r.target.String(), "commit", tip.String(), "attempt", attempt)
		if err := r.verify(tip); err != nil {
			return r.wrap("verify", err)
		}
		if err := r.rebase(tip); err != nil {
			return r.wrap("push", err)
		}
		if r.target == r.branch {
			if err := r.setRef(refSeen, tip); err != nil {
				return r.wrap("push", err)
			}
		}
		if err := r.sleep(ctx, attempt); err != nil {
			return r.wrap("push", err)
		}
	}
}

// push sends head, the last of pending, to the target, and says how it
// found the objects to send. When the packs of every pending commit are
// held and the remote's target is still at their base, it sends those
// packs as they are ("held"); otherwise go-git walks the history to find
// and pack what the remote lacks ("walked").
func (r *Repo) push(ctx context.Context, pending []commitHead, head plumbing.Hash) (string, error) {
	hashes := make([]plumbing.Hash, len(pending))
	for i, c := range pending {
		hashes[i] = c.hash
	}
	if packs := r.packs.keepOnly(hashes); packs != nil {
		pack, release, err := readPacks(r.storage.Filesystem(), packs)
		if err != nil {
			// A pack file gone from the cache (a git gc run in it, say):
			// go-git finds the objects wherever they are now.
			r.log.Debug("held packs unreadable; walking instead", "error", err)
			r.packs.keepOnly(nil)
		} else {
			err = r.sendPack(ctx, pending[0].parents[0], head, pack)
			release()
			if !errors.Is(err, errRemoteNotAtBase) {
				return "held", err
			}
		}
	}
	return "walked", r.remote.PushContext(ctx, &git.PushOptions{
		RefSpecs:   []config.RefSpec{config.RefSpec(refLocal.String() + ":" + r.target.String())},
		Auth:       r.ep.auth,
		CABundle:   r.ep.caBundle,
		ClientCert: r.ep.clientCert,
		ClientKey:  r.ep.clientKey,
		Options:    r.opts.PushOptions,
		Force:      false,
	})
}

// contains reports whether h is the base of pending or one of its commits.
func (r *Repo) contains(pending []commitHead, h plumbing.Hash) bool {
	if base, err := r.ref(refBase); err == nil && base == h {
		return true
	}
	for _, c := range pending {
		if c.hash == h {
			return true
		}
	}
	return false
}

// pushed records that head is on the remote.
func (r *Repo) pushed(head plumbing.Hash) error {
	if err := r.setRef(refBase, head); err != nil {
		return err
	}
	if r.target == r.branch {
		// The bot's own commit must not look like news to Poll.
		return r.setRef(refSeen, head)
	}
	return r.setRef(refTarget, head)
}

// sleep waits before push attempt n+1: Backoff·2^(n-1), capped at 8s,
// jittered by ±50% so that several writers do not collide again.
func (r *Repo) sleep(ctx context.Context, n int) error {
	d := r.opts.Backoff << (n - 1)
	if d > 8*time.Second || d <= 0 {
		d = 8 * time.Second
	}
	d = d/2 + time.Duration(r.opts.Rand.Int64N(int64(d)))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// objectCache is go-git's object cache for a Repo: an LRU of trees of
// treeCacheSize and one of every other object of restCacheSize.
//
// go-git's default keeps 96 MiB of objects of any type, and every object a
// push sends passes through it: after a large pass it held tens of MiB of
// encrypted blobs nobody reads again. A pass reads each blob once (treeFS
// keeps decoded trees), and a commit is read again only to list the
// commits not pushed yet: blobs and commits are cached only for what go-git
// needs them for, the base of a delta read just after it. Commits are large
// here, with a line and trailers per certificate: in one shared LRU, those
// of a pass of 10,000 filled it for good. Trees, read again whenever
// certops builds a commit on another, have their own budget, so that a
// pass reading 10,000 blobs does not push them out.
type objectCache struct {
	trees, rest *cache.ObjectLRU
}

const (
	treeCacheSize = 4 * cache.MiByte
	restCacheSize = 1 * cache.MiByte
)

func newObjectCache() *objectCache {
	return &objectCache{trees: cache.NewObjectLRU(treeCacheSize), rest: cache.NewObjectLRU(restCacheSize)}
}

func (c *objectCache) Put(o plumbing.EncodedObject) {
	if o.Type() == plumbing.TreeObject {
		c.trees.Put(o)
		return
	}
	c.rest.Put(o)
}

func (c *objectCache) Get(h plumbing.Hash) (plumbing.EncodedObject, bool) {
	if o, ok := c.rest.Get(h); ok {
		return o, true
	}
	return c.trees.Get(h)
}

func (c *objectCache) Clear() {
	c.trees.Clear()
	c.rest.Clear()
}

// noDeltas turns delta compression off for the packs this cache pushes
// (pack.window 0 in its config). What certops pushes is almost all new
// SOPS-encrypted blobs, which share nothing with earlier objects: the delta
// search found nothing and was a fifth of the CPU of a pass that issues
// 1,000 certificates. Tree objects go whole, a few KiB per changed folder.
func noDeltas(repo *git.Repository) error {
	cfg, err := repo.Config()
	if err != nil {
		return err
	}
	if cfg.Pack.Window == 0 {
		return nil
	}
	cfg.Pack.Window = 0
	return repo.SetConfig(cfg)
}
