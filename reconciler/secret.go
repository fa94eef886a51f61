package reconciler

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"slices"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"certops.dev/certops/reconciler/issuer"
	"certops.dev/certops/sops"
	"certops.dev/certops/spec"
)

// Keys of a kubernetes.io/tls Secret.
const (
	keyCert = "tls.crt"
	keyKey  = "tls.key"
	keyCA   = "ca.crt"
)

// secretManifest is a v1 Secret manifest as parseSecret reads it.
type secretManifest struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   secretMeta        `json:"metadata"`
	Type       string            `json:"type"`
	StringData map[string]string `json:"stringData,omitempty"`
	Data       map[string]string `json:"data,omitempty"` // base64, as Kubernetes writes it
}

type secretMeta struct {
	Name        string            `json:"name"`
	Namespace   string            `json:"namespace"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// issued is one certificate obtained in a pass, in memory only.
type issued struct {
	cert     *spec.Certificate
	reason   spec.Reason
	chainPEM []byte
	keyPEM   []byte
	caPEM    []byte
	leaf     *leafFacts
	renewAt  time.Time
	renewTok string // the spec's certops.dev/renew value honoured
	blob     string // Git blob id of its encrypted file, once committed
}

// annotations are the clear-text facts planning needs, plus
// cert-manager's, so existing tooling keeps working.
func (i *issued) annotations(issuerType string) map[string]string {
	c, leaf := i.cert, i.leaf
	a := map[string]string{
		spec.AnnotationCertificate: c.Key(),
		spec.AnnotationSpecFile:    c.Source.File,
		spec.AnnotationSpecHash:    c.SpecHash(),
		spec.AnnotationIssuer:      c.Spec.IssuerRef.Name,
		spec.AnnotationIssuerType:  issuerType,
		spec.AnnotationSerial:      leaf.serial,
		spec.AnnotationNotBefore:   leaf.notBefore.UTC().Format(time.RFC3339),
		spec.AnnotationNotAfter:    leaf.notAfter.UTC().Format(time.RFC3339),
		spec.AnnotationRenewAt:     i.renewAt.UTC().Format(time.RFC3339),
		spec.CMCertificateName:     c.Metadata.Name,
		spec.CMIssuerName:          c.Spec.IssuerRef.Name,
		spec.CMIssuerKind:          c.Spec.IssuerRef.Kind,
		spec.CMIssuerGroup:         cmp(c.Spec.IssuerRef.Group, "cert-manager.io"),
		spec.CMCommonName:          leaf.commonName,
		spec.CMAltNames:            strings.Join(leaf.dnsNames, ","),
		spec.CMEmailSANs:           strings.Join(leaf.emails, ","),
		spec.CMIPSANs:              strings.Join(leaf.ips, ","),
		spec.CMURISANs:             strings.Join(leaf.uris, ","),
	}
	if i.renewTok != "" {
		a[spec.AnnotationRenew] = i.renewTok
	}
	return a
}

func cmp(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// secret is the plaintext Secret for Git. It holds the private key: it
// only ever goes to the SOPS encrypter, never to disk or a log.
func (i *issued) secret(issuerType string) *sops.Secret {
	s := &sops.Secret{
		Name:      i.cert.Spec.SecretName,
		Namespace: i.cert.Namespace(),
		Labels: map[string]string{
			spec.LabelManagedBy:   spec.LabelManagedByValue,
			spec.LabelCertificate: i.cert.Metadata.Name,
		},
		Annotations: i.annotations(issuerType),
		Type:        "kubernetes.io/tls",
		StringData: map[string]string{
			keyCert: string(i.chainPEM),
			keyKey:  string(i.keyPEM),
		},
	}
	if len(i.caPEM) > 0 {
		s.StringData[keyCA] = string(i.caPEM)
	}
	return s
}

// encryptSecret encrypts s for file through the Crypter: as fields when it
// can take them (SecretUpdater), else as a YAML manifest.
func encryptSecret(c Crypter, repo fs.FS, file string, old []byte, s *sops.Secret) ([]byte, bool, error) {
	if su, ok := c.(SecretUpdater); ok {
		return su.UpdateSecret(repo, file, old, s)
	}
	plain, err := s.Manifest()
	if err != nil {
		return nil, false, fmt.Errorf("rendering Secret: %w", err)
	}
	return c.Update(repo, file, old, plain)
}

// secretData is a decrypted Secret manifest's metadata and data.
type secretData struct {
	Meta secretMeta
	Type string
	Data map[string][]byte
}

// parseSecret reads a decrypted Secret manifest, merging data (base64) and
// stringData as the API server does.
func parseSecret(file string, plain []byte) (*secretData, error) {
	var m secretManifest
	if err := yaml.Unmarshal(plain, &m); err != nil {
		return nil, fmt.Errorf("reconciler: %s: decrypted Secret does not parse: %w", file, err)
	}
	if m.Kind != "Secret" {
		return nil, fmt.Errorf("reconciler: %s: expected kind Secret, got %q", file, m.Kind)
	}
	out := &secretData{Meta: m.Metadata, Type: m.Type, Data: map[string][]byte{}}
	for k, v := range m.Data {
		b, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			return nil, fmt.Errorf("reconciler: %s: data.%s is not base64", file, k)
		}
		out.Data[k] = b
	}
	for k, v := range m.StringData {
		out.Data[k] = []byte(v)
	}
	return out, nil
}

// keypair returns the certificate chain and key a Secret holds.
func (s *secretData) keypair(file string) ([]*x509.Certificate, []byte, error) {
	chain, err := issuer.ParseCertificatesPEM(s.Data[keyCert])
	if err != nil || len(chain) == 0 {
		return nil, nil, fmt.Errorf("reconciler: %s: tls.crt holds no certificate", file)
	}
	if len(s.Data[keyKey]) == 0 {
		return nil, nil, fmt.Errorf("reconciler: %s: tls.key is empty", file)
	}
	return chain, s.Data[keyKey], nil
}

// kustomization lists the Secret files under the output folder, so Flux's
// kustomize-controller (with sops decryption) or KSOPS can consume it.
func kustomization(outputDir string, files []string) []byte {
	var b bytes.Buffer
	b.WriteString("# Written by certops: the SOPS-encrypted Secrets of this repository.\n")
	b.WriteString("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n")
	rel := make([]string, 0, len(files))
	for _, f := range files {
		if r, ok := strings.CutPrefix(f, outputDir+"/"); ok {
			rel = append(rel, r)
		}
	}
	slices.Sort(rel)
	for _, r := range rel {
		fmt.Fprintf(&b, "  - %s\n", r)
	}
	if len(rel) == 0 {
		b.Reset()
		b.WriteString("# Written by certops: no Secrets yet.\napiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: []\n")
	}
	return b.Bytes()
}

func sortedKeys[M ~map[string]V, V any](m M) []string {
	return slices.Sorted(maps.Keys(m))
}

// isSecretFile reports whether p is a certificate Secret file of the
// output folder (not the kustomization, nor a dot-folder such as .acme/
// holding issuer state).
func isSecretFile(outputDir, p string) bool {
	return strings.HasPrefix(p, outputDir+"/") && !strings.Contains(p, "/.") && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) &&
		path.Base(p) != "kustomization.yaml"
}
