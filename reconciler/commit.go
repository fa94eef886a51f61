package reconciler

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"certops.dev/certops/gitsource"
	"certops.dev/certops/spec"
)

// DefaultCommitBatch is how many issued certificates one commit holds at
// most (Options.CommitBatch).
const DefaultCommitBatch = 500

// batch is one commit of a pass.
type batch struct {
	files  map[string][]byte
	remove []string
	msg    gitsource.Message
	lines  []string
	counts map[string]int
	events []Event
	keys   []string // the issued certificates it writes
	// issuerFiles are the files of backends (p.writes) it writes or finds
	// already written.
	issuerFiles []string
	// observed are the files the observed cache already holds.
	observed map[string]bool
}

// commitAndPush encrypts what was issued, removes the Secrets of deleted
// specs, refreshes secrets/kustomization.yaml, and commits and pushes it.
// The issued certificates arrive on batches in groups of up to CommitBatch
// (issueAll), while issuance goes on; each group is one commit, so memory
// is bounded by a few groups and each commit message stays readable.
// planned is how many certificates the pass means to commit: commit
// subjects number the batches out of what it plans. Group i+1 is encrypted
// while group i is committed and pushed, which are mostly one core's work.
// The first commit after a backend writes a file of its own (an ACME
// account key, during issuance) carries it; the last carries re-keyed
// files, removals and the kustomization.
//
// A failed encryption leaves that certificate's file as it was. A failed
// push keeps its commit for the next pass; the later batches are still
// committed, not pushed, so nothing issued is lost or issued again.
func (p *pass) commitAndPush(removals []spec.PlanEntry, batches <-chan []string, planned int) error {
	r := p.r
	outDir := p.repo.Config.Spec.Output.Path
	n := max(1, (planned+r.o.CommitBatch-1)/r.o.CommitBatch)
	written := map[string]bool{} // files the pass' commits write
	type group struct {
		keys []string
		encs <-chan []encrypted
	}
	receive := func() *group {
		keys, ok := <-batches
		if !ok {
			return nil
		}
		return &group{keys, p.encryptIssued(keys)}
	}
	next := receive()
	defer func() {
		if next != nil {
			<-next.encs // an early return still waits for the encryption it started
		}
		for range batches {
			// Let issuance finish; what it still issues is not committed.
		}
	}()
	crashPoint("after-issue")
	var pushErr error
	for i := 0; ; i++ {
		var keys []string
		var encs []encrypted
		if g := next; g != nil {
			keys, encs = g.keys, <-g.encs
		}
		next = receive()
		last := next == nil
		b := &batch{files: map[string][]byte{}, counts: map[string]int{}, observed: map[string]bool{}}
		p.addIssued(b, keys, encs)
		p.addIssuerFiles(b)
		for f := range b.files {
			written[f] = true
		}
		if last {
			p.addRekeyed(b, outDir, written)
			p.addRemovals(b, removals)
			// The kustomization lists exactly the Secret files of the new tree.
			kpath := outDir + "/kustomization.yaml"
			if k := kustomization(outDir, p.secretFiles(outDir, written, b.remove)); !bytesEqualFile(p.fsys, kpath, k) {
				b.files[kpath] = k
			}
		}
		if len(b.files) > 0 || len(b.remove) > 0 {
			// A pass of one commit numbers none; one whose certificates
			// fail to issue may end below the batches it planned.
			of := max(n, i+1)
			if i == 0 && last {
				of = 1
			}
			hash, changed, err := p.commitBatch(b, i, of)
			if err != nil {
				return errors.Join(pushErr, fmt.Errorf("committing: %w", err))
			}
			p.release(b.keys)
			if changed && pushErr == nil { // a commit after a failed push waits for the next pass
				if err := r.o.Source.Push(p.ctx); err != nil {
					// The commit stays in the local clone and is pushed first
					// next pass; nothing is issued again because of it.
					pushErr = fmt.Errorf("pushing %s: %w", short(hash), err)
				} else {
					p.rep.Pushed = hash
					r.notify.pushed()
					crashPoint("after-push")
					r.log.Info("pushed", "commit", short(hash))
					p.forgetPushed(b.keys, b.issuerFiles)
				}
			}
		}
		if last {
			return pushErr
		}
	}
}

// release forgets committed certificates that no cluster receives: past
// the commit only the apply step reads p.issued, and it skips them. A pass
// over certificates consumed from Git alone (by Flux, say) then holds a
// few batches of keys at a time, not all of them, and no record of each
// certificate beyond its result. A CA is kept: a ca issuer may still read
// its keypair to sign leaves in this pass.
func (p *pass) release(keys []string) {
	cfg := &p.repo.Config
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, key := range keys {
		if it := p.issued[key]; it != nil && !it.cert.Spec.IsCA && len(it.cert.ResolvedTargets(cfg)) == 0 {
			delete(p.issued, key)
		}
	}
}

// addIssued adds the encrypted Secret files of the issued certificates keys
// (encs, from encryptIssued) to b.
func (p *pass) addIssued(b *batch, keys []string, encs []encrypted) {
	for i, enc := range encs {
		key := keys[i]
		p.mu.Lock()
		it := p.issued[key]
		p.mu.Unlock()
		if enc.err != nil {
			p.markFailed(key, enc.err)
			continue
		}
		it.blob = enc.blob
		p.noteVerifiedBlob(enc.file, enc.blob)
		b.keys = append(b.keys, key)
		if !enc.changed {
			continue
		}
		b.files[enc.file] = enc.out
		b.observed[enc.file] = true
		action := actionWord(it.reason)
		b.counts[action]++
		serial := it.leaf.serial
		notAfter := it.leaf.notAfter.UTC().Format(time.RFC3339)
		b.lines = append(b.lines, fmt.Sprintf("- %s %s (%s): serial %s, not after %s, issuer %s",
			action, key, it.reason, serial, notAfter, it.cert.Spec.IssuerRef.Name))
		if p.r.notify.enabled() {
			b.events = append(b.events, p.committedEvent(it))
		}
		b.msg.Trailers = append(b.msg.Trailers,
			gitsource.Trailer{Key: "Certificate", Value: key},
			gitsource.Trailer{Key: "Serial", Value: serial},
			gitsource.Trailer{Key: "Not-After", Value: notAfter},
			gitsource.Trailer{Key: "Issuer", Value: it.cert.Spec.IssuerRef.Name},
			gitsource.Trailer{Key: "Reason", Value: string(it.reason)},
		)
	}
}

// addIssuerFiles encrypts the files backends wrote (an ACME account key)
// that no commit of this pass has carried yet, as they are now. A backend
// writes its file before it issues anything, so the file goes with, or
// before, the first certificate issued under that account.
func (p *pass) addIssuerFiles(b *batch) {
	p.mu.Lock()
	writes := maps.Clone(p.writes)
	p.mu.Unlock()
	for _, path := range slices.Sorted(maps.Keys(writes)) {
		plain := writes[path]
		if done, ok := p.writesCommitted[path]; ok && bytes.Equal(done, plain) {
			continue
		}
		old, _ := fs.ReadFile(p.fsys, path)
		enc, changed, err := p.r.o.Crypter.Update(p.fsys, path, old, plain)
		if err != nil {
			p.r.log.Error("encrypting issuer secret", "file", path, "error", err)
			continue // tried again with the next commit
		}
		if p.writesCommitted == nil {
			p.writesCommitted = map[string][]byte{}
		}
		p.writesCommitted[path] = plain
		// Its journal entry goes once this commit is pushed, even when
		// Git already held the same (an entry left by a crash after a push).
		b.issuerFiles = append(b.issuerFiles, path)
		if changed {
			b.files[path] = enc
			b.lines = append(b.lines, "- store "+path)
		}
	}
}

func (p *pass) addRekeyed(b *batch, outDir string, written map[string]bool) {
	rekeyed := p.rekey(outDir, written)
	p.noteRekeyed(rekeyed)
	for path, enc := range rekeyed {
		b.files[path] = enc
	}
	if len(rekeyed) > 0 {
		b.lines = append(b.lines, fmt.Sprintf("- re-encrypt %d file(s) to the recipients .sops.yaml names now", len(rekeyed)))
		b.counts["rekey"] = len(rekeyed)
	}
}

func (p *pass) addRemovals(b *batch, removals []spec.PlanEntry) {
	for _, e := range removals {
		b.remove = append(b.remove, e.File)
		b.counts["remove"]++
		b.lines = append(b.lines, fmt.Sprintf("- remove %s (%s): its spec is gone", e.Name, spec.ReasonDeleted))
		if p.r.notify.enabled() {
			b.events = append(b.events, p.removedEvent(e))
		}
		b.msg.Trailers = append(b.msg.Trailers,
			gitsource.Trailer{Key: "Certificate", Value: e.Name},
			gitsource.Trailer{Key: "Reason", Value: string(spec.ReasonDeleted)})
	}
}

// commitBatch writes batch i of n as one commit, and holds its events until it
// is pushed.
func (p *pass) commitBatch(b *batch, i, n int) (string, bool, error) {
	r := p.r
	cfg := &p.repo.Config
	var parts []string
	for _, a := range []string{"issue", "reissue", "renew", "adopt", "remove", "rekey"} {
		if b.counts[a] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", a, b.counts[a]))
		}
	}
	if len(parts) == 0 {
		parts = append(parts, "update "+cfg.Spec.Output.Path)
	}
	b.msg.Subject = cfg.Spec.Commit.SubjectPrefix + strings.Join(parts, ", ")
	if n > 1 {
		b.msg.Subject += fmt.Sprintf(" (%d/%d)", i+1, n)
	}
	b.msg.Body = strings.Join(b.lines, "\n")
	hash, changed, err := r.o.Source.Commit(p.ctx, gitsource.Change{Files: b.files, Remove: b.remove, Message: b.msg,
		Author: &gitsource.Identity{Name: cfg.Spec.Commit.AuthorName, Email: cfg.Spec.Commit.AuthorEmail}})
	if err != nil || !changed {
		return hash, changed, err
	}
	crashPoint("after-commit")
	// The next pass reads these files' metadata from the cache.
	for f, data := range b.files {
		if !b.observed[f] {
			r.observedCache.Add(f, gitsource.BlobID(data), data)
		}
	}
	r.log.Info("committed", "commit", short(hash), "files", len(b.files), "removed", len(b.remove))
	for i := range b.events {
		b.events[i].Commit = hash
	}
	r.notify.hold(b.events) // sent once pushed, in this pass or a later one
	return hash, true, nil
}

// encrypted is one issued certificate's Secret file after encryption.
type encrypted struct {
	file    string
	out     []byte
	blob    string // Git blob id of out
	changed bool
	err     error // rendering or encryption failed: the file stays as it was
}

// encryptIssued renders and encrypts the Secret file of each issued
// certificate (keys, in order) on Workers goroutines, and sends the results
// on the channel it returns once all are done: SOPS encryption is most of a
// large pass' CPU, and the Crypter is safe for concurrent use. The current
// files are read first, on the calling goroutine, so the caller may commit
// and push while the workers run: they read the repository only through
// p.config (the Crypter's .sops.yaml lookups), cached for the pass. The
// workers also name each new file's blob and hand its clear-text metadata
// to the observed cache, which the next pass plans from.
func (p *pass) encryptIssued(keys []string) <-chan []encrypted {
	cfg := &p.repo.Config
	out := make([]encrypted, len(keys))
	olds := make([][]byte, len(keys))
	its := make([]*issued, len(keys)) // the caller may change p.issued meanwhile
	p.mu.Lock()
	for i, key := range keys {
		its[i] = p.issued[key]
	}
	p.mu.Unlock()
	for i := range keys {
		out[i].file = its[i].cert.SecretPath(cfg)
		olds[i], _ = fs.ReadFile(p.fsys, out[i].file)
	}
	done := make(chan []encrypted, 1)
	go func() {
		next := make(chan int)
		var wg sync.WaitGroup
		for range min(p.r.o.Workers, len(keys)) {
			wg.Go(func() {
				for i := range next {
					out[i] = p.encryptOne(its[i], out[i].file, olds[i])
					olds[i] = nil
				}
			})
		}
		for i := range keys {
			next <- i
		}
		close(next)
		wg.Wait()
		done <- out
	}()
	return done
}

// encryptOne renders and encrypts the Secret file of it; old is the file's
// current content (nil if none).
func (p *pass) encryptOne(it *issued, file string, old []byte) encrypted {
	e := encrypted{file: file}
	iss := p.repo.Issuers[it.cert.Spec.IssuerRef.Name]
	var err error
	e.out, e.changed, err = encryptSecret(p.r.o.Crypter, p.config, file, old, it.secret(iss.Spec.Type()))
	if err != nil {
		// Never overwrite a good file with something we could not encrypt;
		// the certificate is retried with backoff.
		return encrypted{file: file, err: fmt.Errorf("encrypting %s: %w", file, err)}
	}
	e.blob = gitsource.BlobID(e.out)
	if e.changed {
		// Held until the commit: without the encoder's spare capacity.
		e.out = bytes.Clone(e.out)
		// Keyed by blob id: harmless if the commit never happens.
		p.r.observedCache.Add(file, e.blob, e.out)
	}
	return e
}

// rekey re-encrypts every owned file not rewritten in this pass when the
// repository's .sops.yaml files changed since the last check (and at the
// first pass). It is all or nothing; a failure is logged and leaves every
// file as it is.
func (p *pass) rekey(outDir string, written map[string]bool) map[string][]byte {
	rk, ok := p.r.o.Crypter.(Rekeyer)
	if !ok {
		return nil
	}
	h := sha256.New()
	_ = fs.WalkDir(p.fsys, ".", func(f string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && path.Base(f) == ".sops.yaml" {
			b, _ := fs.ReadFile(p.fsys, f)
			fmt.Fprintf(h, "%s\x00%d\x00", f, len(b))
			h.Write(b)
		}
		return nil
	})
	sum := hex.EncodeToString(h.Sum(nil))
	p.r.mu.Lock()
	same := p.r.rulesSum == sum
	p.r.mu.Unlock()
	if same {
		return nil
	}
	files := map[string][]byte{}
	_ = fs.WalkDir(p.fsys, outDir, func(f string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && (isSecretFile(outDir, f) || strings.Contains(f, "/.")) && strings.HasSuffix(f, ".yaml") && !written[f] {
			if b, err := fs.ReadFile(p.fsys, f); err == nil {
				files[f] = b
			}
		}
		return nil
	})
	out, err := rk.Rekey(p.ctx, p.fsys, files)
	if err != nil {
		p.r.log.Error("re-keying refused; files left as they are", "error", err)
		return nil
	}
	p.r.mu.Lock()
	p.r.rulesSum = sum
	p.r.mu.Unlock()
	if len(out) > 0 {
		p.r.log.Info("re-encrypting to the current recipients", "files", len(out))
	}
	return out
}

func actionWord(reason spec.Reason) string {
	switch reason {
	case spec.ReasonDoesNotExist:
		return "issue"
	case spec.ReasonSpecChanged, spec.ReasonIssuerChanged, spec.ReasonKeyMismatch:
		return "reissue"
	case spec.ReasonAdopted:
		return "adopt"
	}
	return "renew"
}

// markFailed records that key, issued in this pass, could not be
// committed; run reports it as failed once issuance is over.
func (p *pass) markFailed(key string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.issued, key)
	if p.lateFailures == nil {
		p.lateFailures = map[string]error{}
	}
	p.lateFailures[key] = err
}

// secretFiles lists the Secret files of the tree after this pass.
func (p *pass) secretFiles(outDir string, written map[string]bool, removed []string) []string {
	set := map[string]bool{}
	_ = fs.WalkDir(p.fsys, outDir, func(f string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && isSecretFile(outDir, f) {
			set[f] = true
		}
		return nil
	})
	for f := range written {
		if isSecretFile(outDir, f) {
			set[f] = true
		}
	}
	for _, f := range removed {
		delete(set, f)
	}
	out := make([]string, 0, len(set))
	for f := range set {
		out = append(out, path.Clean(f))
	}
	slices.Sort(out)
	return out
}

func bytesEqualFile(fsys fs.FS, name string, want []byte) bool {
	got, err := fs.ReadFile(fsys, name)
	return err == nil && string(got) == string(want)
}

// apply sends every valid certificate's Secret to its targets. Secrets
// issued in this pass come from memory; the others are decrypted from the
// commit only if the applier asks (Desired.Load), which it need not when a
// cluster's Secret already names the file's blob id. A file that fails its
// MAC check is never applied.
func (p *pass) apply() {
	r := p.r
	// Sized for a target per certificate, the usual case: 10,000 of them
	// are held through the apply step.
	desired := make([]Desired, 0, len(p.repo.Certificates))
	cfg := &p.repo.Config
	for _, c := range p.repo.Certificates {
		targets := c.ResolvedTargets(cfg)
		if len(targets) == 0 {
			continue
		}
		var data map[string][]byte
		var load func() (map[string][]byte, error)
		var source string
		var annotations spec.Annotations
		if it := p.issued[c.Key()]; it != nil {
			data = map[string][]byte{keyCert: it.chainPEM, keyKey: it.keyPEM}
			if len(it.caPEM) > 0 {
				data[keyCA] = it.caPEM
			}
			iss := p.repo.Issuers[c.Spec.IssuerRef.Name]
			annotations = spec.NewAnnotations(it.annotations(iss.Spec.Type()))
			source = it.blob
		} else if o := p.observed[c.Key()]; o != nil {
			file := o.File
			load = func() (map[string][]byte, error) {
				d, err := p.readSecret(file)
				if err != nil {
					return nil, fmt.Errorf("reconciler: decrypting %s: %w", file, err)
				}
				return d, nil
			}
			if len(targets) > 1 {
				// Shared by the certificate's targets: decrypted at most
				// once. With one target, nothing would reuse the data, and
				// holding it until the apply ends would keep every
				// certificate's keypair in memory at once.
				load = sync.OnceValues(load)
			}
			source, annotations = o.Hash, o.Annotations
		} else {
			continue // not issued yet
		}
		// The applier copies Labels and Annotations before it adds to them,
		// so the template's labels and, without template annotations, the
		// observed annotations are passed as they are rather than copied
		// for each certificate.
		var labels map[string]string
		ann := annotations
		if tpl := c.Spec.SecretTemplate; tpl != nil {
			labels = tpl.Labels
			if len(tpl.Annotations) > 0 {
				m := maps.Clone(tpl.Annotations)
				maps.Copy(m, annotations.Map())
				ann = spec.NewAnnotations(m)
			}
		}
		for _, t := range targets {
			desired = append(desired, Desired{Cert: c.Key(), Target: t, Type: "kubernetes.io/tls", Data: data, Load: load,
				Source: source, Labels: labels, Annotations: ann, Spec: &c.Spec})
		}
	}
	rep := r.o.Applier.Apply(p.ctx, ApplyRequest{Config: cfg, Desired: desired, ReadSecret: p.readSecret})
	p.rep.Apply = &rep
	for _, err := range rep.Errors {
		r.log.Error("apply failed", "error", err)
	}
}
