package main

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"certops.dev/certops/reconciler/issuer"
	"certops.dev/certops/sops"
)

// Inspection is what inspect prints; it never holds key material.
type Inspection struct {
	Source       string    `json:"source"`
	Subject      string    `json:"subject"`
	DNSNames     []string  `json:"dnsNames,omitempty"`
	IPAddresses  []string  `json:"ipAddresses,omitempty"`
	URIs         []string  `json:"uris,omitempty"`
	Emails       []string  `json:"emailAddresses,omitempty"`
	Issuer       string    `json:"issuer"`
	Serial       string    `json:"serial"`
	NotBefore    time.Time `json:"notBefore"`
	NotAfter     time.Time `json:"notAfter"`
	TimeLeft     string    `json:"timeLeft"`
	IsCA         bool      `json:"isCA"`
	PublicKey    string    `json:"publicKey"`
	SHA256       string    `json:"sha256Fingerprint"`
	SHA1         string    `json:"sha1Fingerprint"`
	KeyPresent   bool      `json:"keyPresent"`
	KeyMatches   *bool     `json:"keyMatches,omitempty"`
	ChainLength  int       `json:"chainLength"`
	ChainValid   bool      `json:"chainValid"`
	ChainProblem string    `json:"chainProblem,omitempty"`
}

func newInspectCommand() *cobra.Command {
	var output, ageIdentity string
	cmd := &cobra.Command{
		Use:   "inspect FILE|NAME [PATH]",
		Short: "Show a certificate's subject, names, validity, key, fingerprints and chain check",
		Long: `Inspect reads a SOPS-encrypted Secret file of the repository (decrypted with
your age identity, as export does), a plain Secret manifest, or a PEM file, or
the Secret of certificate NAME in the checkout at PATH (default "."), and
prints the leaf's subject, SANs, issuer, serial, validity and time left, key
type and size, SHA-256 and SHA-1 fingerprints, whether tls.key matches the
certificate, and whether the chain verifies against ca.crt or the included
chain (and why not). Key material is never printed.`,
		Example: `  certops inspect secrets/web/web-tls.yaml
  certops inspect web/web --output json
  certops inspect tls.crt`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "text" && output != "json" {
				return fmt.Errorf("--output: %q is not text or json", output)
			}
			file := args[0]
			if fi, err := os.Stat(file); err != nil || fi.IsDir() {
				dir, repo, c, err := certificateArg(args)
				if err != nil {
					return err
				}
				file = filepath.Join(dir, filepath.FromSlash(c.SecretPath(&repo.Config)))
			}
			raw, err := os.ReadFile(file)
			if err != nil {
				return err
			}
			data, err := inspectData(file, raw, ageIdentity)
			if err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
			in, err := inspect(file, data, time.Now())
			if err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
			if output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(in)
			}
			printInspection(cmd, in)
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	cmd.Flags().StringVar(&ageIdentity, "age-identity", "", "age identity file for SOPS files (default: $SOPS_AGE_KEY_FILE or $SOPS_AGE_KEY)")
	return cmd
}

// inspectData returns tls.crt, tls.key and ca.crt from a SOPS Secret, a
// plain Secret or a PEM file.
func inspectData(file string, raw []byte, ageIdentity string) (map[string]string, error) {
	if bytes.Contains(raw, []byte("-----BEGIN ")) && !bytes.Contains(raw, []byte("kind:")) {
		return map[string]string{"tls.crt": string(raw), "tls.key": pemOfType(raw, "PRIVATE KEY")}, nil
	}
	if bytes.Contains(raw, []byte("\nsops:")) {
		var ids sops.Identities
		var err error
		if ageIdentity != "" {
			ids, err = sops.ReadIdentityFile(ageIdentity)
		} else {
			ids, err = sops.IdentitiesFromEnv(os.Getenv)
		}
		if err != nil {
			return nil, fmt.Errorf("no age identity: %w", err)
		}
		codec, err := decrypter(ids)
		if err != nil {
			return nil, err
		}
		if raw, err = codec.Decrypt(filepath.ToSlash(file), raw); err != nil {
			return nil, err
		}
	}
	var m struct {
		Data       map[string][]byte `json:"data"`
		StringData map[string]string `json:"stringData"`
	}
	if err := yaml.Unmarshal(raw, &m); err != nil {
		return nil, errors.New("neither PEM nor a Secret manifest")
	}
	out := map[string]string{}
	for k, v := range m.Data {
		out[k] = string(v)
	}
	for k, v := range m.StringData {
		out[k] = v
	}
	if out["tls.crt"] == "" {
		return nil, errors.New("the Secret holds no tls.crt")
	}
	return out, nil
}

// pemOfType returns the blocks of raw whose type ends in suffix.
func pemOfType(raw []byte, suffix string) string {
	var out []byte
	for {
		var b *pem.Block
		b, raw = pem.Decode(raw)
		if b == nil {
			return string(out)
		}
		if strings.HasSuffix(b.Type, suffix) {
			out = append(out, pem.EncodeToMemory(b)...)
		}
	}
}

func parseCerts(s string) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	rest := []byte(s)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return out, nil
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
}

func inspect(source string, data map[string]string, now time.Time) (*Inspection, error) {
	chain, err := parseCerts(data["tls.crt"])
	if err != nil {
		return nil, fmt.Errorf("tls.crt: %w", err)
	}
	if len(chain) == 0 {
		return nil, errors.New("tls.crt holds no certificate")
	}
	leaf := chain[0]
	s256, s1 := sha256.Sum256(leaf.Raw), sha1.Sum(leaf.Raw)
	in := &Inspection{Source: source, Subject: leaf.Subject.String(), DNSNames: leaf.DNSNames, Emails: leaf.EmailAddresses,
		Issuer: leaf.Issuer.String(), Serial: hex.EncodeToString(leaf.SerialNumber.Bytes()), NotBefore: leaf.NotBefore.UTC(),
		NotAfter: leaf.NotAfter.UTC(), IsCA: leaf.IsCA, PublicKey: keyDescription(leaf.PublicKey),
		SHA256: colonHex(s256[:]), SHA1: colonHex(s1[:]), ChainLength: len(chain)}
	for _, ip := range leaf.IPAddresses {
		in.IPAddresses = append(in.IPAddresses, ip.String())
	}
	for _, u := range leaf.URIs {
		in.URIs = append(in.URIs, u.String())
	}
	if left := leaf.NotAfter.Sub(now); left > 0 {
		in.TimeLeft = left.Round(time.Minute).String()
	} else {
		in.TimeLeft = "expired " + (-left).Round(time.Minute).String() + " ago"
	}
	if kb, _ := pem.Decode([]byte(data["tls.key"])); kb != nil {
		in.KeyPresent = true
		ok := false
		if key, err := issuer.ParsePrivateKeyPEM([]byte(data["tls.key"])); err == nil {
			if eq, isEq := key.Public().(interface{ Equal(crypto.PublicKey) bool }); isEq {
				ok = eq.Equal(leaf.PublicKey)
			}
		}
		in.KeyMatches = &ok
	}
	// The chain: intermediates from tls.crt, roots from ca.crt, else the
	// last certificate of tls.crt when it is self-signed.
	inter, roots := x509.NewCertPool(), x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	cas, err := parseCerts(data["ca.crt"])
	if err != nil {
		in.ChainProblem = "ca.crt: " + err.Error()
		return in, nil
	}
	for _, c := range cas {
		roots.AddCert(c)
	}
	if len(cas) == 0 {
		last := chain[len(chain)-1]
		if bytes.Equal(last.RawIssuer, last.RawSubject) {
			roots.AddCert(last)
		} else {
			in.ChainProblem = "no ca.crt and no self-signed root in tls.crt to verify against"
			return in, nil
		}
	}
	_, err = leaf.Verify(x509.VerifyOptions{Intermediates: inter, Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err != nil {
		in.ChainProblem = err.Error()
	} else {
		in.ChainValid = true
	}
	return in, nil
}

func keyDescription(pub any) string {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d", k.N.BitLen())
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case ed25519.PublicKey:
		return "Ed25519"
	}
	return fmt.Sprintf("%T", pub)
}

func colonHex(b []byte) string {
	parts := make([]string, len(b))
	for i, x := range b {
		parts[i] = fmt.Sprintf("%02X", x)
	}
	return strings.Join(parts, ":")
}

func printInspection(cmd *cobra.Command, in *Inspection) {
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "Source:       %s\nSubject:      %s\n", in.Source, in.Subject)
	for _, l := range [][2]string{{"DNS names", strings.Join(in.DNSNames, ", ")}, {"IP addresses", strings.Join(in.IPAddresses, ", ")},
		{"URIs", strings.Join(in.URIs, ", ")}, {"Emails", strings.Join(in.Emails, ", ")}} {
		if l[1] != "" {
			fmt.Fprintf(w, "%-13s %s\n", l[0]+":", l[1])
		}
	}
	fmt.Fprintf(w, "Issuer:       %s\nSerial:       %s\nNot before:   %s\nNot after:    %s (%s)\nCA:           %v\nPublic key:   %s\nSHA-256:      %s\nSHA-1:        %s\n",
		in.Issuer, in.Serial, in.NotBefore.Format(time.RFC3339), in.NotAfter.Format(time.RFC3339), in.TimeLeft, in.IsCA, in.PublicKey, in.SHA256, in.SHA1)
	switch {
	case !in.KeyPresent:
		fmt.Fprintln(w, "Private key:  not present")
	case *in.KeyMatches:
		fmt.Fprintln(w, "Private key:  present, matches the certificate")
	default:
		fmt.Fprintln(w, "Private key:  present, DOES NOT match the certificate")
	}
	if in.ChainValid {
		fmt.Fprintf(w, "Chain:        verified (%d certificate(s) in tls.crt)\n", in.ChainLength)
	} else {
		fmt.Fprintf(w, "Chain:        NOT verified: %s\n", in.ChainProblem)
	}
}
