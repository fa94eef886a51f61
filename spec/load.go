package spec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"reflect"
	"slices"
	"strings"
	"unicode/utf8"

	yaml "go.yaml.in/yaml/v3"
)

// Repository layout, relative to the repository root.
const (
	ConfigFile         = "certops.yaml"
	IssuersDir         = "issuers"
	CertificatesDir    = "certificates"
	DefaultOutputDir   = "secrets"
	MaxFileSize        = 1 << 20 // larger spec files are refused unread
	defaultNamespace   = "default"
	maxDocumentsInFile = 1000
)

// LoadOptions tune Load.
type LoadOptions struct {
	// ExternalPolicy is the daemon's own policy, from outside the
	// repository. A certificate must satisfy it and the repository's policy;
	// the repository can narrow it, never widen it.
	ExternalPolicy *Policy
	// Cache, when set, spares decoding files whose content the fs.FS (a
	// ContentHasher) names as unchanged since the last Load with it.
	Cache *LoadCache
}

// Repository is everything valid in a certificate repository at one commit,
// and every problem found in it.
type Repository struct {
	Config       Config
	Issuers      map[string]*Issuer // by metadata.name
	Certificates []*Certificate     // sorted by Key
	Problems     []Problem          // sorted by file, line, column

	positions    map[any]*decoder
	configBroken bool

	// While Load runs: where the cached objects without positions come
	// from (loadedDoc.dec), and what decoderOf decoded again for them.
	fsys      fs.FS
	docs      map[any]docRef
	redecoded map[string][]*decoder // by file, by document
}

// docRef is a document of a file, by its index, and where it starts.
type docRef struct {
	file      string
	index     int
	line, col int
}

// Certificate returns the certificate with the given key (namespace/name).
func (r *Repository) Certificate(key string) *Certificate {
	i, ok := slices.BinarySearchFunc(r.Certificates, key, func(c *Certificate, k string) int {
		return strings.Compare(c.Key(), k)
	})
	if !ok {
		return nil
	}
	return r.Certificates[i]
}

// Key identifies a certificate in the repository: "namespace/name".
//
// Load keeps the key of each certificate it decodes, so that the lookups
// of a pass (several per certificate, and a binary search in
// Repository.Certificate) allocate nothing and the maps and results of a
// pass share one string. It is checked against the fields on every call,
// so a certificate changed after loading, or built by hand, is still
// named right.
func (c *Certificate) Key() string {
	ns, name := c.Namespace(), c.Metadata.Name
	if k := c.key; len(k) == len(ns)+1+len(name) && k[len(ns)] == '/' && k[:len(ns)] == ns && k[len(ns)+1:] == name {
		return k
	}
	return ns + "/" + name
}

// Namespace is the certificate's namespace, "default" when unset.
func (c *Certificate) Namespace() string {
	if c.Metadata.Namespace == "" {
		return defaultNamespace
	}
	return c.Metadata.Namespace
}

// Load reads the repository in fsys: certops.yaml, issuers/ and
// certificates/ (YAML files, several documents each). It never fails as a
// whole; see Repository.Problems.
func Load(fsys fs.FS, opts LoadOptions) *Repository {
	r := &Repository{Issuers: map[string]*Issuer{}, positions: map[any]*decoder{}, fsys: fsys}
	defer func() { r.fsys, r.docs, r.redecoded, r.positions = nil, nil, nil, nil }()
	var certs []*Certificate
	var issuers []*Issuer
	configSeen := false

	var seen map[string]loadedFile
	if opts.Cache != nil {
		seen = map[string]loadedFile{}
	}
	for _, name := range collectFiles(fsys, r) {
		if opts.Cache != nil {
			e := opts.Cache.loadFile(fsys, name, seen)
			r.Problems = append(r.Problems, e.problems...)
			for _, d := range e.docs {
				obj := d.obj
				if _, ok := obj.(*Certificate); !ok {
					obj = copyObject(obj) // one Config and a few issuers
				}
				if d.dec != nil {
					r.positions[obj] = d.dec // read-only once decoded
				} else {
					if r.docs == nil {
						r.docs = map[any]docRef{}
					}
					r.docs[obj] = docRef{name, d.index, d.line, d.col}
				}
				switch o := obj.(type) {
				case *Config:
					if name != ConfigFile || configSeen {
						r.Problems = append(r.Problems, Problem{File: name, Line: d.line, Column: d.col, Field: "kind",
							Message: fmt.Sprintf("a Config belongs only in %s, once", ConfigFile)})
						continue
					}
					configSeen = true
					r.Config = *o
					r.positions[&r.Config] = d.dec
				case *Issuer:
					issuers = append(issuers, o)
				case *Certificate:
					certs = append(certs, o)
				}
			}
			continue
		}
		docs, ok := r.readDocuments(fsys, name)
		if !ok {
			continue
		}
		for _, doc := range docs {
			obj := r.decodeDocument(name, doc)
			switch o := obj.(type) {
			case *Config:
				if name != ConfigFile || configSeen {
					r.problem(name, doc, "kind", "a Config belongs only in %s, once", ConfigFile)
					continue
				}
				configSeen = true
				r.Config = *o
				r.positions[&r.Config] = r.positions[o]
			case *Issuer:
				issuers = append(issuers, o)
			case *Certificate:
				certs = append(certs, o)
			}
		}
	}
	if opts.Cache != nil {
		opts.Cache.keep(seen)
	}
	r.Config.applyDefaults()
	r.validateConfig()
	if len(r.problemsIn(ConfigFile)) > 0 {
		// Never act on a half-understood certops.yaml: its policy and
		// clusters may be what keeps a certificate out.
		r.configBroken = true
	}
	for _, iss := range issuers {
		if prev, dup := r.Issuers[iss.Metadata.Name]; dup {
			r.problemAt(iss, "metadata.name", "issuer %q is already defined in %s:%d", iss.Metadata.Name, prev.Source.File, prev.Source.Line)
			continue
		}
		r.Issuers[iss.Metadata.Name] = iss
	}
	r.Certificates = r.validateRepository(certs, opts)
	slices.SortFunc(r.Certificates, func(a, b *Certificate) int { return strings.Compare(a.Key(), b.Key()) })
	slices.SortStableFunc(r.Problems, func(a, b Problem) int {
		if c := strings.Compare(a.File, b.File); c != 0 {
			return c
		}
		if a.Line != b.Line {
			return a.Line - b.Line
		}
		return a.Column - b.Column
	})
	return r
}

// collectFiles lists the spec files, reporting symlinks that leave the
// repository and unreadable folders.
func collectFiles(fsys fs.FS, r *Repository) []string {
	var files []string
	if _, err := fs.Stat(fsys, ConfigFile); err == nil {
		files = append(files, ConfigFile)
	}
	for _, dir := range []string{IssuersDir, CertificatesDir} {
		err := fs.WalkDir(fsys, dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) && p == dir {
					return nil
				}
				r.Problems = append(r.Problems, Problem{File: p, Message: "cannot read: " + cleanErr(err)})
				return nil
			}
			if strings.HasPrefix(d.Name(), ".") && p != dir {
				if d.IsDir() {
					return fs.SkipDir
				}
				return nil
			}
			if d.Type()&fs.ModeSymlink != 0 {
				target, err := fs.ReadLink(fsys, p)
				if err != nil {
					r.Problems = append(r.Problems, Problem{File: p, Message: "cannot read symlink: " + cleanErr(err)})
					return nil
				}
				resolved := path.Join(path.Dir(p), target)
				if path.IsAbs(target) || resolved == ".." || strings.HasPrefix(resolved, "../") {
					r.Problems = append(r.Problems, Problem{File: p, Message: fmt.Sprintf("symlink points out of the repository (%s)", target)})
					return nil
				}
			}
			if d.IsDir() || !isYAML(p) {
				return nil
			}
			files = append(files, p)
			return nil
		})
		if err != nil {
			r.Problems = append(r.Problems, Problem{File: dir, Message: "cannot list: " + cleanErr(err)})
		}
	}
	return files
}

func isYAML(p string) bool {
	return strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")
}

// cleanErr drops the Go path-error prefix noise.
func cleanErr(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

func (r *Repository) readDocuments(fsys fs.FS, name string) ([]*yaml.Node, bool) {
	fail := func(line int, format string, args ...any) ([]*yaml.Node, bool) {
		r.Problems = append(r.Problems, Problem{File: name, Line: line, Message: fmt.Sprintf(format, args...)})
		return nil, false
	}
	f, err := fsys.Open(name)
	if err != nil {
		return fail(0, "cannot read: %s", cleanErr(err))
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return fail(0, "cannot read: %s", cleanErr(err))
	}
	if len(data) > MaxFileSize {
		return fail(0, "file is larger than %d bytes; spec files must be under 1 MiB", MaxFileSize)
	}
	if !utf8.Valid(data) {
		line := 1 + bytes.Count(data[:firstInvalidUTF8(data)], []byte("\n"))
		return fail(line, "file is not valid UTF-8")
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []*yaml.Node
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			line, msg := yamlErrorLine(err)
			return fail(line, "invalid YAML: %s", msg)
		}
		if len(n.Content) == 0 || isNull(n.Content[0]) {
			continue // an empty document between separators
		}
		if len(docs) == maxDocumentsInFile {
			return fail(n.Line, "more than %d documents in one file", maxDocumentsInFile)
		}
		docs = append(docs, &n)
	}
	if len(docs) == 0 {
		return fail(0, "file holds no document; delete it or add a spec")
	}
	return docs, true
}

func firstInvalidUTF8(b []byte) int {
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size <= 1 {
			return i
		}
		i += size
	}
	return len(b)
}

// yamlErrorLine pulls "line N" out of a yaml.v3 error.
func yamlErrorLine(err error) (int, string) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	var line int
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if i := strings.Index(rest, ":"); i > 0 {
			if _, err := fmt.Sscanf(rest[:i], "%d", &line); err == nil {
				msg = strings.TrimSpace(rest[i+1:])
			}
		}
	}
	return line, msg
}

func (r *Repository) problem(file string, n *yaml.Node, field, format string, args ...any) {
	p := Problem{File: file, Field: field, Message: fmt.Sprintf(format, args...)}
	if n != nil {
		p.Line, p.Column = n.Line, n.Column
		if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
			p.Line, p.Column = n.Content[0].Line, n.Content[0].Column
		}
	}
	r.Problems = append(r.Problems, p)
}

// problemAt reports a problem on a decoded object's field.
func (r *Repository) problemAt(obj any, field, format string, args ...any) {
	p := Problem{Field: field, Message: fmt.Sprintf(format, args...)}
	if ref, ok := r.docs[obj]; ok && field == "" {
		// About the document as a whole (a broken certops.yaml holds
		// every certificate): no need to decode it again.
		p.File, p.Line, p.Column = ref.file, ref.line, ref.col
		r.Problems = append(r.Problems, p)
		return
	}
	d := r.decoderOf(obj)
	if d != nil {
		p.File = d.file
		at := d.at(field)
		p.Line, p.Column = at.line, at.col
	} else if c, ok := obj.(*Certificate); ok {
		p.File, p.Line = c.Source.File, c.Source.Line
	}
	r.Problems = append(r.Problems, p)
}

// decoderOf returns the positions of obj's fields: recorded when it was
// decoded, or, for a cached certificate that does not keep them, found by
// decoding its file again (once per Load). nil if there are none.
func (r *Repository) decoderOf(obj any) *decoder {
	if d := r.positions[obj]; d != nil {
		return d
	}
	ref, ok := r.docs[obj]
	if !ok || r.fsys == nil {
		return nil
	}
	decs, ok := r.redecoded[ref.file]
	if !ok {
		scratch, _, objs := decodeFile(r.fsys, ref.file)
		decs = make([]*decoder, len(objs))
		for i, o := range objs {
			if o != nil {
				decs[i] = scratch.positions[o]
			}
		}
		if r.redecoded == nil {
			r.redecoded = map[string][]*decoder{}
		}
		r.redecoded[ref.file] = decs
	}
	if ref.index < len(decs) {
		return decs[ref.index]
	}
	return nil
}

// peekTypeMeta reads apiVersion and kind without judging anything else.
func peekTypeMeta(doc *yaml.Node) (apiVersion, kind string, ok bool) {
	root := doc
	if root.Kind == yaml.DocumentNode && len(root.Content) > 0 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		return "", "", false
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if v.Kind != yaml.ScalarNode {
			continue
		}
		switch k.Value {
		case "apiVersion":
			apiVersion = v.Value
		case "kind":
			kind = v.Value
		}
	}
	return apiVersion, kind, true
}

// decodeDocument decodes one document strictly into its kind and validates
// it on its own. It returns nil when the document has any problem.
func (r *Repository) decodeDocument(file string, doc *yaml.Node) any {
	apiVersion, kind, ok := peekTypeMeta(doc)
	if !ok {
		r.problem(file, doc, "", "expected a mapping with apiVersion and kind")
		return nil
	}
	var obj any
	var cm bool
	switch {
	case apiVersion == APIVersion && kind == KindConfig:
		obj = &Config{}
	case (apiVersion == APIVersion || apiVersion == CertManagerAPIVersion) && kind == KindCertificate:
		obj, cm = &Certificate{}, apiVersion == CertManagerAPIVersion
	case apiVersion == APIVersion && kind == KindIssuer,
		apiVersion == CertManagerAPIVersion && (kind == KindIssuer || kind == KindClusterIssuer):
		obj, cm = &Issuer{}, apiVersion == CertManagerAPIVersion
	case apiVersion == "":
		r.problem(file, doc, "apiVersion", "missing apiVersion (expected %s or %s)", APIVersion, CertManagerAPIVersion)
		return nil
	case kind == "":
		r.problem(file, doc, "kind", "missing kind")
		return nil
	default:
		r.problem(file, doc, "kind", "unknown kind %s in %s (expected Certificate, Issuer or Config in %s; Certificate, Issuer or ClusterIssuer in %s)", kind, apiVersion, APIVersion, CertManagerAPIVersion)
		return nil
	}
	d := newDecoder(file)
	if cm {
		d.unsupported = certManagerUnsupported
	}
	d.decode(doc, reflect.ValueOf(obj).Elem(), "")
	line := d.at("").line
	switch o := obj.(type) {
	case *Config:
		o.Source = Source{File: file, Line: line}
	case *Issuer:
		o.Source = Source{File: file, Line: line}
		if o.Spec.Type() == "acme" && o.Spec.ACME.PrivateKeySecretRef != nil && o.Spec.ACME.PrivateKeySecretRef.Key == "" {
			o.Spec.ACME.PrivateKeySecretRef.Key = "tls.key"
		}
	case *Certificate:
		o.Source = Source{File: file, Line: line}
		o.key = o.Key()
	}
	r.positions[obj] = d
	if len(d.problems) > 0 {
		r.Problems = append(r.Problems, d.problems...)
		return nil
	}
	before := len(r.Problems)
	switch o := obj.(type) {
	case *Issuer:
		r.validateIssuer(o)
	case *Certificate:
		o.applyDefaults()
		r.validateCertificate(o)
	}
	if len(r.Problems) > before {
		return nil
	}
	return obj
}

// certManagerUnsupported names cert-manager fields certops refuses, with why.
var certManagerUnsupported = map[string]string{
	"spec.encodeUsagesInRequest":            "usages are always encoded in the CSR",
	"spec.signatureAlgorithm":               "the signature algorithm follows the key",
	"spec.keyAlgorithm":                     "use spec.privateKey.algorithm",
	"spec.keySize":                          "use spec.privateKey.size",
	"spec.keyEncoding":                      "use spec.privateKey.encoding",
	"spec.vault.auth.tokenSecretRef":        "use auth.token.file or auth.token.env on the daemon's host",
	"spec.vault.auth.appRole.secretRef":     "use auth.appRole.secretIdFile on the daemon's host",
	"spec.vault.auth.kubernetes.secretRef":  "use auth.kubernetes.tokenFile",
	"spec.vault.clientCertSecretRef":        "client certificates for Vault are not supported",
	"spec.vault.caBundleSecretRef":          "use spec.vault.caBundle",
	"spec.venafi":                           "the Venafi issuer is not available",
	"spec.acme.solvers.dns01.webhook":       "webhook solvers are cert-manager extensions; use dns01.provider",
	"spec.acme.solvers.dns01.akamai":        "use dns01.provider: edgedns",
	"spec.acme.solvers.dns01.cnameStrategy": "CNAME following is not supported",
}

// KindPolicy is the kind of the daemon's policy file, kept outside the
// repository.
const KindPolicy = "Policy"

// LoadPolicy reads a policy file (apiVersion certops.dev/v1alpha1, kind
// Policy, spec: the same shape as certops.yaml's spec.policy) strictly.
func LoadPolicy(file string, data []byte) (*Policy, []Problem) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		line, msg := yamlErrorLine(err)
		return nil, []Problem{{File: file, Line: line, Message: "invalid YAML: " + msg}}
	}
	if len(doc.Content) == 0 {
		return nil, []Problem{{File: file, Message: "file holds no document"}}
	}
	var p struct {
		TypeMeta `json:",inline"`
		Metadata ObjectMeta `json:"metadata,omitempty"`
		Spec     Policy     `json:"spec"`
	}
	d := newDecoder(file)
	d.decode(&doc, reflect.ValueOf(&p).Elem(), "")
	if p.APIVersion != APIVersion || p.Kind != KindPolicy {
		d.addf(doc.Content[0], "kind", "expected apiVersion %s and kind %s", APIVersion, KindPolicy)
	}
	for _, prob := range checkPolicy(&p.Spec, "spec") {
		at := d.at(prob.Field)
		prob.File, prob.Line, prob.Column = file, at.line, at.col
		d.problems = append(d.problems, prob)
	}
	if len(d.problems) > 0 {
		return nil, d.problems
	}
	return &p.Spec, nil
}
