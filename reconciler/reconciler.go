package reconciler

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"certops.dev/certops/gitsource"
	"certops.dev/certops/reconciler/issuer"
	"certops.dev/certops/sops"
	"certops.dev/certops/spec"
)

// Source is the Git side of a pass (gitsource.Repo implements it).
type Source interface {
	Poll(ctx context.Context) (head string, changed bool, err error)
	Sync(ctx context.Context) (string, error)
	Files(commit string) (fs.FS, error)
	Commit(ctx context.Context, change gitsource.Change) (hash string, changed bool, err error)
	Push(ctx context.Context) error
	Pending() (int, error)
}

// Crypter encrypts and decrypts the owned files (sops.Codec implements it).
type Crypter interface {
	Update(repo fs.FS, file string, old, plain []byte) (out []byte, changed bool, err error)
	Decrypt(file string, ciphertext []byte) ([]byte, error)
}

// DataDecrypter is the optional capability of a Crypter to return a Secret
// file's data without writing out and parsing the plaintext manifest
// (sops.Codec implements it). The apply step decrypts through it.
type DataDecrypter interface {
	DecryptData(file string, ciphertext []byte) (map[string][]byte, error)
}

// SecretUpdater is the optional capability of a Crypter to encrypt a Secret
// given as fields (Update of its manifest, without rendering YAML and
// parsing it back; sops.Codec implements it).
type SecretUpdater interface {
	UpdateSecret(repo fs.FS, file string, old []byte, s *sops.Secret) (out []byte, changed bool, err error)
}

// Rekeyer is the optional capability of a Crypter to re-encrypt files to
// the recipients their rules name now (sops.Codec implements it). It
// returns only the files that changed, all or nothing.
type Rekeyer interface {
	Rekey(ctx context.Context, repo fs.FS, files map[string][]byte) (map[string][]byte, error)
}

// IssuerEnv is what a backend factory may use besides the issuer's spec.
type IssuerEnv struct {
	// CA is the decrypted CA keypair of a ca issuer (nil for others).
	CA *Keypair
	// ReadSecret decrypts a Secret file of the repository (for example an
	// ACME account key); fs.ErrNotExist when there is none.
	ReadSecret func(path string) (map[string][]byte, error)
	// WriteSecret queues a Secret file (plaintext manifest) to be encrypted
	// and committed with this pass.
	WriteSecret func(path string, manifest []byte) error
	Logger      *slog.Logger
}

// Keypair is a certificate chain (leaf first) and its private key.
type Keypair struct {
	Chain []*x509.Certificate
	Key   crypto.Signer
}

// IssuerFactory builds the backend for one issuer spec.
type IssuerFactory func(ctx context.Context, iss *spec.Issuer, env IssuerEnv) (issuer.Issuer, error)

// Applier applies Secrets to clusters. It is optional.
type Applier interface {
	Apply(ctx context.Context, req ApplyRequest) ApplyReport
}

// ApplyRequest is one pass' cluster step: every valid certificate's Secret
// for every target, and the repository's settings.
type ApplyRequest struct {
	Config  *spec.Config
	Desired []Desired
	// ReadSecret decrypts a Secret file of the commit (for example an
	// encrypted kubeconfig), in memory only.
	ReadSecret func(path string) (map[string][]byte, error)
}

// Desired is one Secret for one target.
type Desired struct {
	Cert   string // namespace/name of the certificate
	Target spec.ResolvedTarget
	Type   string
	// Data is set for a Secret issued in this pass. For the others it is
	// nil and Load decrypts the certificate's file (once, however many
	// targets share it; each call, when there is one target, so the data
	// is not held after its apply); an applier calls it only when the
	// cluster's Secret is not known to hold Source already.
	Data map[string][]byte
	Load func() (map[string][]byte, error)
	// Source is the Git blob id of the certificate's encrypted file: the
	// same Source means the same Data.
	Source string
	// Labels are the certificate's secretTemplate labels, nil without
	// one; certops' own (app.kubernetes.io/managed-by and
	// certops.dev/certificate) are the applier's to add. Labels may be
	// shared with other Desired, and Annotations with the reconciler's
	// caches: an applier reads them and never modifies them.
	Labels      map[string]string
	Annotations spec.Annotations
	Spec        *spec.CertificateSpec // keystores, output formats
}

// ApplyReport is what an apply step did.
type ApplyReport struct {
	Applied, Unchanged, Skipped int
	Errors                      []error
}

// Options configure a Reconciler.
type Options struct {
	Source                 Source
	Crypter                Crypter
	Issuers                map[string]IssuerFactory // by issuer type: acme, ca, selfSigned, vault, exec
	Applier                Applier                  // nil: no cluster step
	StateDir               string                   // backoff state survives restarts here; "" keeps it in memory
	Policy                 *spec.Policy             // the daemon's own policy
	Workers                int                      // issuances in flight; default 2×GOMAXPROCS
	CommitBatch            int                      // issued certificates per commit; default DefaultCommitBatch
	BackoffMin, BackoffMax time.Duration
	// HostConfig is mixed into the fingerprint of every failure hold: a
	// certificate held after a permanent failure is tried again when its
	// spec, its issuer or this changes — a digest of the daemon's own
	// settings that decide whether an issuer can work (--allow-exec).
	HostConfig string
	Logger     *slog.Logger
	Now        func() time.Time
	Rand       *rand.Rand
	Journal    Sealer // seals the order journal in StateDir (journal.go); nil keeps none

	// Notify receives an event per certificate issued, renewed, reissued
	// or removed once its commit is pushed, and per new failure (see
	// notify.go). Each has a queue of NotifyQueue events (default
	// DefaultNotifyQueue); OnNotified, when set, is told each outcome.
	Notify      []Notifier
	NotifyQueue int
	OnNotified  func(sink, result string)
}

// Reconciler runs passes. Pass must not be called concurrently; status
// reads (Status) are safe from any goroutine.
type Reconciler struct {
	o     Options
	log   *slog.Logger
	state map[string]*certState

	mu       sync.Mutex
	last     *Report
	nextDue  time.Time
	seenHead string
	rulesSum string                   // hash of the .sops.yaml files at the last re-key check
	backends map[string]issuer.Issuer // cached long-lived backends (acme, vault)
	// current is the pass running now: the long-lived backends read and
	// write Secret files through it, not through the pass that built them.
	current  atomic.Pointer[pass]
	verified map[string]string // Secret file → content hash last verified (verify.go); pass goroutine only
	journal  *journal          // order journal; nil keeps none
	notify   *notifier
	// observedCache spares re-reading unchanged Secret files' metadata at
	// each new commit (10,000 of them take seconds).
	observedCache spec.ObservedCache
	loadCache     spec.LoadCache // the same for spec files
}

// New validates the options and loads the persisted state.
func New(o Options) (*Reconciler, error) {
	if o.Source == nil || o.Crypter == nil || len(o.Issuers) == 0 {
		return nil, errors.New("reconciler: Source, Crypter and Issuers are required")
	}
	if o.Workers <= 0 {
		o.Workers = 2 * runtime.GOMAXPROCS(0)
	}
	if o.CommitBatch <= 0 {
		o.CommitBatch = DefaultCommitBatch
	}
	if o.BackoffMin <= 0 {
		o.BackoffMin = DefaultBackoffMin
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = DefaultBackoffMax
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
	st, err := loadState(o.StateDir)
	if err != nil {
		return nil, err
	}
	verified, err := loadVerified(o.StateDir)
	if err != nil {
		return nil, err
	}
	r := &Reconciler{o: o, log: o.Logger, state: st, backends: map[string]issuer.Issuer{}, verified: verified,
		journal: newJournal(o.StateDir, o.Journal)}
	r.notify = newNotifier(r, o.Notify, o.NotifyQueue)
	return r, nil
}

// CertResult is what a pass did with one certificate.
type CertResult struct {
	Name      string      `json:"name"`
	File      string      `json:"file,omitempty"`
	Issuer    string      `json:"issuer,omitempty"`
	Action    spec.Action `json:"action"`
	Reason    spec.Reason `json:"reason"`
	Serial    string      `json:"serial,omitempty"`
	NotBefore time.Time   `json:"notBefore,omitzero"`
	NotAfter  time.Time   `json:"notAfter,omitzero"`
	RenewAt   time.Time   `json:"renewAt,omitzero"`
	Error     string      `json:"error,omitempty"`
	RetryAt   time.Time   `json:"retryAt,omitzero"`
	Waiting   bool        `json:"waiting,omitempty"` // held back by backoff
	Targets   []string    `json:"targets,omitempty"`
}

// Report is the outcome of one pass.
type Report struct {
	Started  time.Time      `json:"started"`
	Duration time.Duration  `json:"duration"`
	Idle     bool           `json:"idle"` // nothing new, nothing due: no fetch
	Commit   string         `json:"commit,omitempty"`
	Pushed   string         `json:"pushed,omitempty"`
	Problems []spec.Problem `json:"problems,omitempty"`
	Results  []CertResult   `json:"certificates,omitempty"`
	Apply    *ApplyReport   `json:"-"`
	Error    string         `json:"error,omitempty"` // the pass as a whole failed (git, push)
	NextDue  time.Time      `json:"nextDue,omitzero"`
}

// Failed counts the certificates whose issuance failed in this pass, plus
// one when the pass itself failed.
func (r *Report) Failed() int {
	n := 0
	for _, c := range r.Results {
		if c.Error != "" && !c.Waiting {
			n++
		}
	}
	if r.Error != "" {
		n++
	}
	return n
}

// Last returns the latest report (nil before the first pass).
func (r *Reconciler) Last() *Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

// NextDue is when the next renewal or retry falls due.
func (r *Reconciler) NextDue() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.nextDue
}

// Pass runs one reconciliation. With force false, a pass whose poll finds
// the remote unchanged and nothing due makes one ls-remote and returns.
func (r *Reconciler) Pass(ctx context.Context, force bool) *Report {
	start := r.o.Now()
	rep := &Report{Started: start}
	defer func() {
		rep.Duration = r.o.Now().Sub(start)
		r.mu.Lock()
		r.last = rep
		r.mu.Unlock()
	}()
	if err := r.pass(ctx, force, rep); err != nil {
		rep.Error = err.Error()
		r.log.Error("pass failed", "error", err)
	}
	r.notify.flush()
	return rep
}

func (r *Reconciler) pass(ctx context.Context, force bool, rep *Report) error {
	now := r.o.Now()
	// An unpushed commit from an earlier pass or run goes first.
	if n, err := r.o.Source.Pending(); err == nil && n > 0 {
		r.log.Info("pushing commits left from an earlier pass", "commits", n)
		if err := r.o.Source.Push(ctx); err != nil {
			return fmt.Errorf("pushing earlier commits: %w", err)
		}
		r.notify.pushed()
	}
	if !force {
		head, changed, err := r.o.Source.Poll(ctx)
		if err != nil {
			return fmt.Errorf("polling: %w", err)
		}
		r.mu.Lock()
		due := r.nextDue
		seen := r.seenHead
		r.mu.Unlock()
		if !changed && head == seen && (due.IsZero() || now.Before(due)) {
			rep.Idle, rep.Commit, rep.NextDue = true, head, due
			return nil
		}
	}
	commit, err := r.o.Source.Sync(ctx)
	if err != nil && commit == "" {
		return fmt.Errorf("fetching: %w", err)
	}
	if err != nil {
		// Verification failed: keep acting on the last verified commit.
		r.log.Warn("remote tip refused; working on the last verified commit", "commit", commit, "error", err)
		rep.Error = err.Error()
	}
	rep.Commit = commit
	fsys, err := r.o.Source.Files(commit)
	if err != nil {
		return fmt.Errorf("reading commit %s: %w", short(commit), err)
	}
	p := &pass{r: r, ctx: ctx, now: now, fsys: fsys, config: newReadCache(fsys), rep: rep, commit: commit,
		issued: map[string]*issued{}, writes: map[string][]byte{}}
	r.current.Store(p)
	// Not kept between passes: it holds what the pass issued and read.
	defer r.current.CompareAndSwap(p, nil)
	if err := p.run(); err != nil {
		return err
	}
	r.mu.Lock()
	r.seenHead = commit
	if rep.Pushed != "" {
		r.seenHead = rep.Pushed
	}
	r.nextDue = rep.NextDue
	r.mu.Unlock()
	return nil
}

func short(h string) string {
	if len(h) > 7 {
		return h[:7]
	}
	return h
}

// pass is the state of one pass.
type pass struct {
	r      *Reconciler
	ctx    context.Context
	now    time.Time
	fsys   fs.FS
	config *readCache // fsys, for the Crypter's configuration reads
	commit string
	rep    *Report
	repo   *spec.Repository

	observed map[string]*spec.Observed
	mu       sync.Mutex
	issued   map[string]*issued // by certificate key, this pass
	// lateFailures are issued certificates whose Secret could not be
	// encrypted (markFailed).
	lateFailures map[string]error
	writes       map[string][]byte // extra plaintext Secret files from backends
	// writesCommitted are the writes a commit of this pass carries, as
	// they were then; only commitAndPush's goroutine uses it.
	writesCommitted map[string][]byte

	backendsMu sync.Mutex
	backends   map[string]backendResult // by issuer name, this pass

	touched map[string]bool // Secret files marked verified in this pass (verify.go)
}

func (p *pass) run() error {
	r := p.r
	p.repo = spec.Load(p.fsys, spec.LoadOptions{ExternalPolicy: r.o.Policy, Cache: &r.loadCache})
	p.rep.Problems = p.repo.Problems
	for _, prob := range p.repo.Problems {
		r.log.Warn("invalid spec skipped", "file", prob.File, "line", prob.Line, "field", prob.Field, "error", prob.Message)
	}
	outDir := p.repo.Config.Spec.Output.Path
	var oprobs []spec.Problem
	p.observed, oprobs = r.observedCache.ReadDir(p.fsys, outDir)
	p.rep.Problems = append(p.rep.Problems, oprobs...)

	entries := spec.PlanObserved(p.repo, p.observed, p.now)
	// Decrypt what changed since it was last verified: key mismatches,
	// adoption of committed keypairs, files that cannot be read (verify.go).
	entries = p.verify(entries)
	var due []*spec.Certificate
	reasons := map[string]spec.Decision{} // of the due certificates
	var removals []spec.PlanEntry
	// One result per certificate, kept as the last report: sized once,
	// not grown through copies of 10,000.
	p.rep.Results = slices.Grow(p.rep.Results, len(entries))
	for _, e := range entries {
		if e.Decision.Action == spec.ActionRemove {
			removals = append(removals, e)
			continue
		}
		c := p.repo.Certificate(e.Name)
		if e.Decision.Action == spec.ActionNone {
			p.rep.Results = append(p.rep.Results, CertResult{Name: e.Name, File: e.File, Issuer: e.Issuer,
				Action: spec.ActionNone, Reason: e.Decision.Reason, NotBefore: e.NotBefore, NotAfter: e.NotAfter, RenewAt: e.Decision.RenewAt,
				Targets: targetStrings(e.Targets)})
			delete(r.state, e.Name)
			continue
		}
		fp := p.fingerprint(c)
		if st := r.state[e.Name]; st != nil {
			if st.Fingerprint != fp {
				delete(r.state, e.Name) // a spec or issuer change resets the backoff
			} else if st.Permanent || p.now.Before(st.NextRetry) {
				p.rep.Results = append(p.rep.Results, CertResult{Name: e.Name, File: e.File, Issuer: e.Issuer,
					Action: e.Decision.Action, Reason: e.Decision.Reason, NotAfter: e.NotAfter, Waiting: true,
					Error: st.LastError, RetryAt: st.NextRetry, Targets: targetStrings(e.Targets)})
				continue
			}
		}
		due = append(due, c)
		reasons[e.Name] = e.Decision
	}
	p.sweepJournal(entries)
	if len(due) > 0 {
		r.log.Info("issuing", "certificates", len(due), "commit", short(p.commit))
	}
	crashPoint("before-issue")
	// Issuance hands what it issued to commitAndPush in batches, which
	// commits them while the next are issued.
	p.mu.Lock()
	planned := len(due) + len(p.issued) // and the adopted
	p.mu.Unlock()
	batches := make(chan []string)
	issuedAll := make(chan struct{})
	go func() {
		defer close(issuedAll)
		p.issueAll(due, reasons, batches, r.o.CommitBatch)
	}()
	err := p.commitAndPush(removals, batches, planned)
	<-issuedAll
	for i, res := range p.rep.Results {
		if ferr := p.lateFailures[res.Name]; ferr != nil {
			p.rep.Results[i] = p.fail(p.repo.Certificate(res.Name), spec.Decision{Action: res.Action, Reason: res.Reason}, ferr)
		}
	}
	slices.SortFunc(p.rep.Results, func(a, b CertResult) int { return strings.Compare(a.Name, b.Name) })

	p.saveVerified()
	p.failureEvents()
	if err != nil {
		return err
	}
	p.rep.NextDue = p.nextDue()
	if err := saveState(r.o.StateDir, r.state); err != nil {
		r.log.Error("saving state", "error", err)
	}
	if r.o.Applier != nil {
		p.apply()
	}
	return nil
}

func targetStrings(ts []spec.ResolvedTarget) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.String()
	}
	return out
}

// fingerprint identifies what a failure was for: the spec hash and the
// issuer's spec. Either changing resets the backoff.
func (p *pass) fingerprint(c *spec.Certificate) string {
	h := sha256.New()
	h.Write([]byte(c.SpecHash()))
	h.Write([]byte(p.r.o.HostConfig))
	if iss := p.repo.Issuers[c.Spec.IssuerRef.Name]; iss != nil {
		b, _ := json.Marshal(iss.Spec)
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}

// nextDue is the earliest renewal or retry over all certificates.
func (p *pass) nextDue() time.Time {
	var next time.Time
	consider := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	for _, res := range p.rep.Results {
		if res.Error == "" {
			consider(res.RenewAt)
		}
		consider(res.RetryAt)
	}
	return next
}

// forEach calls fn(i) for every i in [0, n) on at most workers goroutines
// and returns when all calls have. A goroutine per item would do the same
// with less code, but 10,000 of them, mostly waiting for a turn, hold
// their descriptors and stacks for the whole pass, and the descriptors
// for the life of the process.
func forEach(n, workers int, fn func(i int)) {
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Go(func() {
			for i := range next {
				fn(i)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}
