package history

import (
	"fmt"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage"
)

// builder writes commits straight into a repository's object store, so a
// benchmark can lay down 10,000 certificates in a second or two.
type builder struct {
	tb    testing.TB
	st    storage.Storer
	files map[string]plumbing.Hash
	head  plumbing.Hash
	now   time.Time
	// cached tree of each folder, dropped when a file under it changes
	cached map[string]plumbing.Hash
}

func newBuilder(tb testing.TB, repo *git.Repository) *builder {
	return &builder{tb: tb, st: repo.Storer, files: map[string]plumbing.Hash{}, now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), cached: map[string]plumbing.Hash{}}
}

func (b *builder) blob(data string) plumbing.Hash {
	o := b.st.NewEncodedObject()
	o.SetType(plumbing.BlobObject)
	w, _ := o.Writer()
	_, _ = w.Write([]byte(data))
	_ = w.Close()
	h, err := b.st.SetEncodedObject(o)
	if err != nil {
		b.tb.Fatal(err)
	}
	return h
}

// tree writes the tree of every file under dir ("" for the root).
func (b *builder) tree(byDir map[string][]string, dir string) plumbing.Hash {
	if h, ok := b.cached[dir]; ok {
		return h
	}
	var entries []object.TreeEntry
	for _, name := range byDir[dir] {
		p := name
		if dir != "" {
			p = dir + "/" + name
		}
		if h, ok := b.files[p]; ok {
			entries = append(entries, object.TreeEntry{Name: name, Mode: filemode.Regular, Hash: h})
		} else {
			entries = append(entries, object.TreeEntry{Name: name, Mode: filemode.Dir, Hash: b.tree(byDir, p)})
		}
	}
	slices.SortFunc(entries, func(x, y object.TreeEntry) int {
		// git sorts folders as if their name ended in "/".
		nx, ny := x.Name, y.Name
		if x.Mode == filemode.Dir {
			nx += "/"
		}
		if y.Mode == filemode.Dir {
			ny += "/"
		}
		return strings.Compare(nx, ny)
	})
	t := &object.Tree{Entries: entries}
	o := b.st.NewEncodedObject()
	if err := t.Encode(o); err != nil {
		b.tb.Fatal(err)
	}
	h, err := b.st.SetEncodedObject(o)
	if err != nil {
		b.tb.Fatal(err)
	}
	b.cached[dir] = h
	return h
}

// commit applies files (content "" removes) and commits on top of head.
func (b *builder) commit(author, msg string, files map[string]string) plumbing.Hash {
	for p, data := range files {
		for d := path.Dir(p); ; d = path.Dir(d) {
			if d == "." {
				delete(b.cached, "")
				break
			}
			delete(b.cached, d)
		}
		if data == "" {
			delete(b.files, p)
		} else {
			b.files[p] = b.blob(data)
		}
	}
	byDir := map[string][]string{}
	seen := map[string]bool{}
	for p := range b.files {
		for d, name := path.Dir(p), path.Base(p); ; d, name = path.Dir(d), path.Base(d) {
			if d == "." {
				d = ""
			}
			key := d + "\x00" + name
			if seen[key] {
				break
			}
			seen[key] = true
			byDir[d] = append(byDir[d], name)
			if d == "" {
				break
			}
		}
	}
	b.now = b.now.Add(time.Minute)
	sig := object.Signature{Name: author, Email: strings.ToLower(author) + "@example.test", When: b.now}
	c := &object.Commit{Author: sig, Committer: sig, Message: msg, TreeHash: b.tree(byDir, "")}
	if !b.head.IsZero() {
		c.ParentHashes = []plumbing.Hash{b.head}
	}
	o := b.st.NewEncodedObject()
	if err := c.Encode(o); err != nil {
		b.tb.Fatal(err)
	}
	h, err := b.st.SetEncodedObject(o)
	if err != nil {
		b.tb.Fatal(err)
	}
	b.head = h
	if err := b.st.SetReference(plumbing.NewHashReference("refs/heads/main", h)); err != nil {
		b.tb.Fatal(err)
	}
	if err := b.st.SetReference(plumbing.NewSymbolicReference(plumbing.HEAD, "refs/heads/main")); err != nil {
		b.tb.Fatal(err)
	}
	return h
}

func specFile(i int) string   { return fmt.Sprintf("certificates/team-%02d/cert-%05d.yaml", i%20, i) }
func secretFile(i int) string { return fmt.Sprintf("secrets/ns-%02d/cert-%05d.yaml", i%20, i) }
func certName(i int) string   { return fmt.Sprintf("ns-%02d/cert-%05d", i%20, i) }

func specDoc(i, rev int) string {
	return fmt.Sprintf("apiVersion: certops.dev/v1alpha1\nkind: Certificate\nmetadata:\n  name: cert-%05d\n  namespace: ns-%02d\nspec:\n  dnsNames: [c%d-r%d.example.com]\n  issuerRef: {name: ca}\n", i, i%20, i, rev)
}

// secretDoc is a Secret file as certops writes it: clear-text head, then
// an encrypted body (here filler of a realistic size).
func secretDoc(i int, serial string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata:
    name: cert-%05d
    namespace: ns-%02d
    annotations:
        certops.dev/certificate: %s
        certops.dev/spec-file: %s
        certops.dev/serial: %s
        certops.dev/not-before: "2026-01-01T00:00:00Z"
        certops.dev/not-after: "2026-04-01T00:00:00Z"
    labels:
        app.kubernetes.io/managed-by: certops
type: kubernetes.io/tls
data:
    tls.crt: ENC[AES256_GCM,data:%s,type:str]
sops:
    version: 3.13.3
`, i, i%20, certName(i), specFile(i), serial, strings.Repeat("x", 3000))
}

// passMsg is a certops commit message with one trailer block per event.
func passMsg(subject string, events []genEvent) string {
	var b strings.Builder
	b.WriteString("certops: " + subject + "\n\n- details\n\n")
	for _, e := range events {
		fmt.Fprintf(&b, "Certificate: %s\n", certName(e.i))
		if e.reason != "Deleted" {
			fmt.Fprintf(&b, "Serial: %s\nNot-After: 2026-04-01T00:00:00Z\nIssuer: ca\n", e.serial)
		}
		fmt.Fprintf(&b, "Reason: %s\n", e.reason)
	}
	return b.String()
}

type genEvent struct {
	i              int
	reason, serial string
}

// generate lays down n certificates and about rounds*2 more commits:
// human edits of a few specs, each followed by certops' re-issue, and
// renewal batches; the last round deletes a few specs. It returns the
// number of events written.
func generate(tb testing.TB, repo *git.Repository, n, rounds int) int {
	b := newBuilder(tb, repo)
	specs := map[string]string{}
	for i := range n {
		specs[specFile(i)] = specDoc(i, 0)
	}
	b.commit("Alice", "Add certificates", specs)
	secrets := map[string]string{}
	var evs []genEvent
	serial := 0
	for i := range n {
		serial++
		s := fmt.Sprintf("%x", serial)
		secrets[secretFile(i)] = secretDoc(i, s)
		evs = append(evs, genEvent{i, "DoesNotExist", s})
	}
	b.commit("certops", passMsg(fmt.Sprintf("issue %d", n), evs), secrets)
	total := len(evs)
	authors := []string{"Alice", "Bob", "Carol"}
	for r := range rounds {
		edit := map[string]string{}
		var evs []genEvent
		for k := range 3 {
			i := (r*7 + k*1009) % n
			edit[specFile(i)] = specDoc(i, r+1)
			serial++
			s := fmt.Sprintf("%x", serial)
			evs = append(evs, genEvent{i, "SpecChanged", s})
		}
		b.commit(authors[r%3], fmt.Sprintf("Edit three certificates (round %d)", r), edit)
		out := map[string]string{}
		for _, e := range evs {
			out[secretFile(e.i)] = secretDoc(e.i, e.serial)
		}
		// Every tenth round also renews a batch, as time passes.
		if r%10 == 9 {
			for k := range 50 {
				i := (r*131 + k*197) % n
				serial++
				s := fmt.Sprintf("%x", serial)
				out[secretFile(i)] = secretDoc(i, s)
				evs = append(evs, genEvent{i, "Renewing", s})
			}
		}
		b.commit("certops", passMsg("reissue", evs), out)
		total += len(evs)
	}
	del, rm := map[string]string{}, map[string]string{}
	var devs []genEvent
	for k := range 5 {
		i := n - 1 - k
		del[specFile(i)] = ""
		rm[secretFile(i)] = ""
		devs = append(devs, genEvent{i: i, reason: "Deleted"})
	}
	b.commit("Bob", "Retire five certificates", del)
	b.commit("certops", passMsg("remove 5", devs), rm)
	return total + len(devs)
}
