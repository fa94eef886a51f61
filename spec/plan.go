package spec

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/netip"
	"slices"
	"strings"
	"time"

	yamlv3 "go.yaml.in/yaml/v3"
)

// Annotations certops writes in clear text on every Secret it owns, in Git
// and in clusters. Planning reads them without decrypting anything.
const (
	AnnotationCertificate = "certops.dev/certificate" // namespace/name
	AnnotationSpecFile    = "certops.dev/spec-file"   // path of the spec in the repository
	AnnotationSpecHash    = "certops.dev/spec-hash"   // SpecHash at issuance
	AnnotationIssuer      = "certops.dev/issuer"      // issuer name
	AnnotationIssuerType  = "certops.dev/issuer-type" // acme, ca, selfSigned, vault, exec
	AnnotationSerial      = "certops.dev/serial"      // leaf serial, hex
	AnnotationNotBefore   = "certops.dev/not-before"  // RFC 3339
	AnnotationNotAfter    = "certops.dev/not-after"   // RFC 3339
	AnnotationRenewAt     = "certops.dev/renew-at"    // RFC 3339, jittered or from ARI
	// AnnotationRenew on a Certificate spec forces a re-issue when its value
	// differs from the one recorded on the Secret (`certops renew` sets it),
	// so even a forced renewal is a reviewable commit.
	AnnotationRenew = "certops.dev/renew"

	// cert-manager's annotations, kept so existing tooling works.
	CMCertificateName = "cert-manager.io/certificate-name"
	CMIssuerName      = "cert-manager.io/issuer-name"
	CMIssuerKind      = "cert-manager.io/issuer-kind"
	CMIssuerGroup     = "cert-manager.io/issuer-group"
	CMCommonName      = "cert-manager.io/common-name"
	CMAltNames        = "cert-manager.io/alt-names"
	CMIPSANs          = "cert-manager.io/ip-sans"
	CMURISANs         = "cert-manager.io/uri-sans"
	CMEmailSANs       = "cert-manager.io/email-sans"

	// LabelManagedBy marks what certops owns, in Git and in clusters.
	LabelManagedBy      = "app.kubernetes.io/managed-by"
	LabelManagedByValue = "certops"
	LabelCertificate    = "certops.dev/certificate"
)

// hashVersion is folded into every spec hash. Changing what the hash covers
// re-issues every certificate, so it only ever changes with a new version.
const hashVersion = "certops-spec-hash-v1"

// SpecHash is a hash over exactly the fields that change what gets issued:
// names, subject, lifetime, usages, CA-ness, key algorithm, size and
// encoding, name constraints. Comments, formatting, field order, the order
// of names, targets, secretTemplate, keystores, renewBefore and
// rotationPolicy do not change it, so a cosmetic edit never re-issues. The
// issuer is compared on its own (IssuerChanged).
func (c *Certificate) SpecHash() string {
	s := &c.Spec
	type key struct {
		Algorithm string `json:"algorithm"`
		Size      int    `json:"size"`
		Encoding  string `json:"encoding"`
	}
	in := struct {
		V               string            `json:"v"`
		CommonName      string            `json:"commonName"`
		LiteralSubject  string            `json:"literalSubject"`
		Subject         *X509Subject      `json:"subject"`
		DNSNames        []string          `json:"dnsNames"`
		IPAddresses     []string          `json:"ipAddresses"`
		URIs            []string          `json:"uris"`
		EmailAddresses  []string          `json:"emailAddresses"`
		OtherNames      []OtherName       `json:"otherNames,omitempty"`
		DurationSeconds int64             `json:"durationSeconds"`
		IsCA            bool              `json:"isCA"`
		Usages          []string          `json:"usages"`
		Key             key               `json:"key"`
		NameConstraints *NameConstraints  `json:"nameConstraints"`
		Extra           map[string]string `json:"extra,omitempty"`
	}{
		V:               hashVersion,
		CommonName:      s.CommonName,
		LiteralSubject:  s.LiteralSubject,
		Subject:         s.Subject,
		DNSNames:        sortedSet(s.DNSNames, asciiOrSelf),
		IPAddresses:     sortedSet(s.IPAddresses, canonicalIP),
		URIs:            sortedSet(s.URIs, nil),
		EmailAddresses:  sortedSet(s.EmailAddresses, nil),
		OtherNames:      s.OtherNames,
		DurationSeconds: int64(s.Duration.Seconds()),
		IsCA:            s.IsCA,
		Key:             key{string(s.PrivateKey.Algorithm), s.PrivateKey.Size, string(s.PrivateKey.Encoding)},
		NameConstraints: s.NameConstraints,
	}
	for _, u := range s.Usages {
		in.Usages = append(in.Usages, string(u))
	}
	in.Usages = sortedSet(in.Usages, nil)
	b, err := json.Marshal(in)
	if err != nil {
		panic("spec: hashing a certificate: " + err.Error()) // plain data always marshals
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func asciiOrSelf(n string) string {
	if a, err := ASCIIName(n); err == nil {
		return a
	}
	return n
}

func canonicalIP(s string) string {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().String()
	}
	return s
}

func sortedSet(in []string, norm func(string) string) []string {
	if len(in) == 0 {
		return nil
	}
	out := make([]string, 0, len(in))
	for _, s := range in {
		if norm != nil {
			s = norm(s)
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Observed is what a Secret file's clear-text metadata says about the
// certificate it holds.
type Observed struct {
	File string
	// Hash names the file's content (its Git blob id) when the file system
	// is a ContentHasher, else "". ReadObserved leaves it empty.
	Hash        string
	Name        string // the Secret's metadata.name
	Namespace   string
	Annotations Annotations
	NotBefore   time.Time
	NotAfter    time.Time
	RenewAt     time.Time
}

// Certificate is the key (namespace/name) of the certificate that wrote it.
func (o *Observed) Certificate() string { return o.Annotations.Get(AnnotationCertificate) }

// ReadObserved parses a Secret manifest (encrypted or not) far enough to read
// its clear-text metadata. It decrypts nothing.
func ReadObserved(file string, data []byte) (*Observed, error) {
	// Decoded with yaml.v3 directly (not through JSON): planning reads
	// every Secret file of the repository on every pass.
	var m struct {
		Kind     string `yaml:"kind"`
		Metadata struct {
			Name        string            `yaml:"name"`
			Namespace   string            `yaml:"namespace"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"metadata"`
	}
	if len(data) > 4*MaxFileSize {
		return nil, fmt.Errorf("spec: %s: Secret file too large", file)
	}
	// certops writes apiVersion, kind and metadata first: reading only up
	// to the encrypted payload makes planning 10,000 files cheap. A file laid
	// out otherwise is read whole.
	if head := secretHead(data); head != nil {
		if err := yamlv3.Unmarshal(head, &m); err != nil || m.Kind == "" || m.Metadata.Name == "" {
			m.Kind, m.Metadata.Name = "", ""
		}
	}
	if m.Kind == "" {
		if err := yamlv3.Unmarshal(data, &m); err != nil {
			return nil, fmt.Errorf("spec: %s: reading Secret metadata: %w", file, err)
		}
	}
	if m.Kind != "Secret" {
		return nil, fmt.Errorf("spec: %s: expected kind Secret, got %q", file, m.Kind)
	}
	o := &Observed{File: file, Name: m.Metadata.Name, Namespace: m.Metadata.Namespace,
		Annotations: NewAnnotations(m.Metadata.Annotations)}
	var err error
	parse := func(key string) time.Time {
		v, ok := o.Annotations.Lookup(key)
		if !ok || err != nil {
			return time.Time{}
		}
		t, perr := time.Parse(time.RFC3339, v)
		if perr != nil {
			err = fmt.Errorf("spec: %s: annotation %s: %q is not an RFC 3339 time", file, key, v)
		}
		return t
	}
	o.NotBefore, o.NotAfter, o.RenewAt = parse(AnnotationNotBefore), parse(AnnotationNotAfter), parse(AnnotationRenewAt)
	if err != nil {
		return nil, err
	}
	return o, nil
}

// secretHead returns data up to its first top-level data, stringData or
// sops key, or nil when there is none.
func secretHead(data []byte) []byte {
	for off := 0; off < len(data); {
		line := data[off:]
		if i := bytes.IndexByte(line, '\n'); i >= 0 {
			line = line[:i+1]
		}
		for _, k := range [][]byte{[]byte("data:"), []byte("stringData:"), []byte("sops:")} {
			if bytes.HasPrefix(line, k) {
				return data[:off]
			}
		}
		off += len(line)
	}
	return nil
}

// ReadObservedDir reads every Secret file under dir in fsys, keyed by the
// certificate that wrote it. Files certops did not write (no
// certops.dev/certificate annotation) and kustomization.yaml are ignored;
// files it cannot read are returned as problems.
func ReadObservedDir(fsys fs.FS, dir string) (map[string]*Observed, []Problem) {
	var c ObservedCache
	return c.ReadDir(fsys, dir)
}

// Action is what a pass does with a certificate.
type Action string

// Actions.
const (
	ActionIssue   Action = "issue"   // nothing issued yet
	ActionReissue Action = "reissue" // the request changed
	ActionRenew   Action = "renew"   // same request, time is up
	ActionNone    Action = "none"
	ActionRemove  Action = "remove" // the spec is gone: remove the Secret file
	// ActionAdopt records a committed keypair certops did not issue but
	// that matches the spec: the file is rewritten with certops'
	// annotations, nothing is ordered. Only a pass decides it (it needs to
	// decrypt); Plan never does.
	ActionAdopt Action = "adopt"
)

// Reason says why, in cert-manager's trigger vocabulary.
type Reason string

// Reasons.
const (
	ReasonDoesNotExist      Reason = "DoesNotExist"
	ReasonIssuerChanged     Reason = "IssuerChanged"
	ReasonSpecChanged       Reason = "SpecChanged"
	ReasonManuallyTriggered Reason = "ManuallyTriggered"
	ReasonExpired           Reason = "Expired"
	ReasonRenewing          Reason = "Renewing"
	ReasonUpToDate          Reason = "UpToDate"
	ReasonDeleted           Reason = "Deleted"
	// ReasonKeyMismatch: the Secret's tls.key does not belong to the leaf
	// of its tls.crt (cert-manager's InvalidKeyPair trigger). Only a pass
	// finds it: it needs to decrypt.
	ReasonKeyMismatch Reason = "KeyMismatch"
	// ReasonAdopted: a keypair committed by someone else matched the spec
	// and was adopted without issuing (ActionAdopt).
	ReasonAdopted Reason = "Adopted"
)

// Decision is the plan for one certificate.
type Decision struct {
	Action  Action    `json:"action"`
	Reason  Reason    `json:"reason"`
	Message string    `json:"message,omitempty"`
	RenewAt time.Time `json:"renewAt,omitzero"`
}

// Decide runs cert-manager's ordered chain of trigger checks on what the
// Secret's metadata says: missing, issuer changed, spec changed, renewal
// requested, expired, renewal due. It is pure.
func Decide(c *Certificate, o *Observed, now time.Time) Decision {
	if o == nil || o.NotAfter.IsZero() {
		return Decision{Action: ActionIssue, Reason: ReasonDoesNotExist, Message: "no certificate has been issued yet"}
	}
	renewAt := RenewalTime(c, o.NotBefore, o.NotAfter)
	if !o.RenewAt.IsZero() && o.RenewAt.Before(renewAt) {
		renewAt = o.RenewAt // an ARI window or jitter chose an earlier time
	}
	d := Decision{RenewAt: renewAt}
	switch {
	case o.Annotations.Get(AnnotationIssuer) != c.Spec.IssuerRef.Name:
		d.Action, d.Reason = ActionReissue, ReasonIssuerChanged
		d.Message = fmt.Sprintf("issuer changed from %q to %q", o.Annotations.Get(AnnotationIssuer), c.Spec.IssuerRef.Name)
	case o.Annotations.Get(AnnotationSpecHash) != c.SpecHash():
		d.Action, d.Reason, d.Message = ActionReissue, ReasonSpecChanged, "the request changed since the last issuance"
	case c.Metadata.Annotations[AnnotationRenew] != "" && c.Metadata.Annotations[AnnotationRenew] != o.Annotations.Get(AnnotationRenew):
		d.Action, d.Reason, d.Message = ActionRenew, ReasonManuallyTriggered, "renewal requested with "+AnnotationRenew
	case !now.Before(o.NotAfter):
		d.Action, d.Reason, d.Message = ActionRenew, ReasonExpired, "expired at "+o.NotAfter.UTC().Format(time.RFC3339)
	case !now.Before(renewAt):
		d.Action, d.Reason, d.Message = ActionRenew, ReasonRenewing, "renewal time "+renewAt.UTC().Format(time.RFC3339)+" reached"
	default:
		d.Action, d.Reason = ActionNone, ReasonUpToDate
	}
	return d
}

// RenewalTime is when a certificate valid from notBefore to notAfter is due:
// notAfter minus RenewBeforeFor(lifetime), moved to the next renewal window
// opening when windows are set (but never past notAfter).
func RenewalTime(c *Certificate, notBefore, notAfter time.Time) time.Time {
	t := notAfter.Add(-c.Spec.RenewBeforeFor(notAfter.Sub(notBefore)))
	if len(c.Spec.RenewalWindows) == 0 {
		return t
	}
	if next, ok := NextWindow(c.Spec.RenewalWindows, t); ok && next.Before(notAfter) {
		return next
	}
	return t
}

// NextWindow returns the first instant at or after t inside one of the
// windows.
func NextWindow(windows []RenewalWindow, t time.Time) (time.Time, bool) {
	var best time.Time
	for _, w := range windows {
		p, err := parseWindow(w)
		if err != nil {
			continue
		}
		lt := t.In(p.loc)
		for day := 0; day <= 7; day++ {
			d := time.Date(lt.Year(), lt.Month(), lt.Day()+day, 0, 0, 0, 0, p.loc)
			if !slices.Contains(p.days, d.Weekday()) {
				continue
			}
			start, end := d.Add(time.Duration(p.start)*time.Minute), d.Add(time.Duration(p.end)*time.Minute)
			var cand time.Time
			switch {
			case !t.Before(start) && t.Before(end):
				cand = t
			case t.Before(start):
				cand = start
			default:
				continue
			}
			if best.IsZero() || cand.Before(best) {
				best = cand
			}
			break
		}
	}
	return best, !best.IsZero()
}

// PlanEntry is one row of a plan.
type PlanEntry struct {
	Name      string           `json:"name"` // namespace/name
	File      string           `json:"file"`
	Issuer    string           `json:"issuer"`
	Decision  Decision         `json:"decision"`
	NotBefore time.Time        `json:"notBefore,omitzero"`
	NotAfter  time.Time        `json:"notAfter,omitzero"`
	Targets   []ResolvedTarget `json:"targets"`
}

// Plan decides every valid certificate of repo against the Secret files in
// fsys, and lists the Secret files whose certificate is gone. A Secret whose
// spec file is still present but invalid is held, never removed.
func Plan(fsys fs.FS, repo *Repository, now time.Time) ([]PlanEntry, []Problem) {
	observed, problems := ReadObservedDir(fsys, repo.Config.Spec.Output.Path)
	return PlanObserved(repo, observed, now), problems
}

// PlanObserved is Plan on Secret metadata already read (ReadObservedDir or
// an ObservedCache). It does not modify observed.
func PlanObserved(repo *Repository, observed map[string]*Observed, now time.Time) []PlanEntry {
	broken := map[string]bool{}
	for _, p := range repo.Problems {
		broken[p.File] = true
	}
	var removals []PlanEntry
	for key, o := range observed {
		if repo.Certificate(key) != nil || broken[o.Annotations.Get(AnnotationSpecFile)] {
			continue
		}
		removals = append(removals, PlanEntry{Name: key, File: o.File, Issuer: o.Annotations.Get(AnnotationIssuer),
			Decision: Decision{Action: ActionRemove, Reason: ReasonDeleted, Message: "its certificate spec is gone"},
			NotAfter: o.NotAfter})
	}
	// Sized once: an entry per certificate is held for the whole pass.
	out := make([]PlanEntry, 0, len(repo.Certificates)+len(removals))
	for _, c := range repo.Certificates {
		key := c.Key()
		o := observed[key]
		e := PlanEntry{Name: key, File: c.Source.File, Issuer: c.Spec.IssuerRef.Name,
			Decision: Decide(c, o, now), Targets: c.ResolvedTargets(&repo.Config)}
		if o != nil {
			e.NotBefore, e.NotAfter = o.NotBefore, o.NotAfter
		}
		out = append(out, e)
	}
	out = append(out, removals...)
	slices.SortFunc(out, func(a, b PlanEntry) int { return strings.Compare(a.Name, b.Name) })
	return out
}
