package spec

import (
	"fmt"
	"net/mail"
	"net/netip"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Defaults and limits, from cert-manager's Certificate API and webhook.
const (
	DefaultDuration   = 90 * 24 * time.Hour // cert-manager's default
	MinDuration       = time.Hour           // cert-manager webhook minimum
	MinRenewBefore    = 5 * time.Minute     // cert-manager webhook minimum
	maxCommonNameSize = 64                  // RFC 5280 ub-common-name
)

// DefaultUsages are cert-manager's default key usages.
var DefaultUsages = []KeyUsage{"digital signature", "key encipherment"}

func (c *Config) applyDefaults() {
	if c.APIVersion == "" {
		c.APIVersion, c.Kind = APIVersion, KindConfig
	}
	if c.Spec.Output.Path == "" {
		c.Spec.Output.Path = DefaultOutputDir
	}
	if c.Spec.Commit.AuthorName == "" {
		c.Spec.Commit.AuthorName = "certops"
	}
	if c.Spec.Commit.AuthorEmail == "" {
		c.Spec.Commit.AuthorEmail = "certops@localhost"
	}
	if c.Spec.Commit.SubjectPrefix == "" {
		c.Spec.Commit.SubjectPrefix = "certops: "
	}
}

func (c *Certificate) applyDefaults() {
	s := &c.Spec
	if s.SecretName == "" {
		s.SecretName = c.Metadata.Name
	}
	if s.Duration == nil {
		s.Duration = &Duration{DefaultDuration}
	}
	if s.PrivateKey == nil {
		s.PrivateKey = &PrivateKey{}
	}
	pk := s.PrivateKey
	if pk.Algorithm == "" {
		pk.Algorithm = RSA
	}
	if pk.Size == 0 {
		switch pk.Algorithm {
		case RSA:
			pk.Size = 2048
		case ECDSA:
			pk.Size = 256
		}
	}
	if pk.Encoding == "" {
		pk.Encoding = PKCS1
	}
	if pk.RotationPolicy == "" {
		pk.RotationPolicy = RotationAlways
	}
	if len(s.Usages) == 0 {
		s.Usages = slices.Clone(DefaultUsages)
	}
	if s.IssuerRef.Kind == "" {
		s.IssuerRef.Kind = KindIssuer
	}
}

func (r *Repository) validateConfig() {
	c := &r.Config
	seen := map[string]bool{}
	for i, cl := range c.Spec.Clusters {
		f := fmt.Sprintf("spec.clusters[%d]", i)
		if err := checkDNS1123Label(cl.Name); err != nil {
			r.problemAt(c, f+".name", "%v", err)
		}
		if seen[cl.Name] {
			r.problemAt(c, f+".name", "cluster %q is listed twice", cl.Name)
		}
		seen[cl.Name] = true
		switch {
		case cl.InCluster && cl.Kubeconfig != nil:
			r.problemAt(c, f, "set either inCluster or kubeconfig, not both")
		case !cl.InCluster && cl.Kubeconfig == nil:
			r.problemAt(c, f, "set inCluster: true or a kubeconfig (path or encryptedFile)")
		case cl.Kubeconfig != nil && (cl.Kubeconfig.Path == "") == (cl.Kubeconfig.EncryptedFile == ""):
			r.problemAt(c, f+".kubeconfig", "set exactly one of path and encryptedFile")
		}
		for j, ns := range cl.Namespaces {
			if err := checkDNS1123Label(ns); err != nil {
				r.problemAt(c, fmt.Sprintf("%s.namespaces[%d]", f, j), "%v", err)
			}
		}
		if cl.QPS < 0 || cl.Burst < 0 {
			r.problemAt(c, f, "qps and burst must not be negative")
		}
	}
	if strings.Contains(c.Spec.Output.Path, "..") || strings.HasPrefix(c.Spec.Output.Path, "/") {
		r.problemAt(c, "spec.output.path", "must be a relative path inside the repository")
	}
	if c.Spec.Policy != nil {
		for _, p := range checkPolicy(c.Spec.Policy, "spec.policy") {
			r.problemAt(c, p.Field, "%s", p.Message)
		}
	}
}

func (r *Repository) problemsIn(file string) []Problem {
	var out []Problem
	for _, p := range r.Problems {
		if p.File == file {
			out = append(out, p)
		}
	}
	return out
}

// Policy default actions.
const (
	PolicyAllow = "Allow"
	PolicyDeny  = "Deny"
)

// checkPolicy validates a policy's own shape.
func checkPolicy(p *Policy, base string) []Problem {
	var out []Problem
	add := func(field, format string, args ...any) {
		out = append(out, Problem{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	if p.DefaultAction != "" && p.DefaultAction != PolicyAllow && p.DefaultAction != PolicyDeny {
		add(base+".defaultAction", "expected Allow or Deny, got %q", p.DefaultAction)
	}
	for i, rule := range p.Rules {
		f := fmt.Sprintf("%s.rules[%d]", base, i)
		if len(rule.Paths) == 0 {
			add(f+".paths", "a rule needs at least one path pattern, e.g. certificates/team-a/**")
		}
		for j, pat := range rule.Paths {
			if _, err := pathMatchErr(pat); err != nil {
				add(fmt.Sprintf("%s.paths[%d]", f, j), "%v", err)
			}
		}
		for j, n := range rule.DNSNames {
			if err := checkDNSName(n); err != nil {
				add(fmt.Sprintf("%s.dnsNames[%d]", f, j), "%v", err)
			}
		}
		if _, err := parsePrefixes(rule.IPRanges); err != nil {
			add(f+".ipRanges", "%v", err)
		}
		for j, a := range rule.KeyAlgorithms {
			if a != RSA && a != ECDSA && a != Ed25519 {
				add(fmt.Sprintf("%s.keyAlgorithms[%d]", f, j), "expected RSA, ECDSA or Ed25519, got %q", a)
			}
		}
	}
	return out
}

func pathMatchErr(pattern string) (bool, error) {
	for _, seg := range strings.Split(pattern, "/") {
		if seg == "**" {
			continue
		}
		if _, err := path.Match(seg, ""); err != nil {
			return false, fmt.Errorf("bad path pattern %q: %w", pattern, err)
		}
	}
	return true, nil
}

func (r *Repository) validateIssuer(iss *Issuer) {
	if err := checkDNS1123Subdomain(iss.Metadata.Name); err != nil {
		r.problemAt(iss, "metadata.name", "%v", err)
	}
	s := iss.Spec
	n := 0
	for _, set := range []bool{s.ACME != nil, s.CA != nil, s.SelfSigned != nil, s.Vault != nil, s.Exec != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		r.problemAt(iss, "spec", "set exactly one of acme, ca, selfSigned, vault, exec (found %d)", n)
		return
	}
	if s.MaxConcurrent < 0 {
		r.problemAt(iss, "spec.maxConcurrent", "must not be negative")
	}
	switch {
	case s.ACME != nil:
		a := s.ACME
		if u, err := url.Parse(a.Server); err != nil || u.Scheme != "https" || u.Host == "" {
			r.problemAt(iss, "spec.acme.server", "expected the https URL of an ACME directory, got %q", a.Server)
		}
		if a.Email != "" {
			if _, err := mail.ParseAddress(a.Email); err != nil {
				r.problemAt(iss, "spec.acme.email", "%q is not an email address", a.Email)
			}
		}
		if len(a.Solvers) == 0 {
			r.problemAt(iss, "spec.acme", "needs at least one solver (http01 or dns01)")
		}
		for i, sol := range a.Solvers {
			f := fmt.Sprintf("spec.acme.solvers[%d]", i)
			if (sol.HTTP01 == nil) == (sol.DNS01 == nil) {
				r.problemAt(iss, f, "set exactly one of http01 and dns01")
				continue
			}
			if sol.DNS01 != nil {
				if len(sol.DNS01.providers()) != 1 {
					r.problemAt(iss, f+".dns01", "set exactly one DNS provider (provider: <name>, or one of cert-manager's rfc2136, route53, cloudflare, cloudDNS, azureDNS, digitalocean, acmeDNS)")
				}
			}
		}
		if eab := a.ExternalAccountBinding; eab != nil {
			if eab.KeyID == "" {
				r.problemAt(iss, "spec.acme.externalAccountBinding.keyID", "required")
			}
			if eab.KeyFile == "" && eab.KeyEnv == "" && eab.KeySecretRef == nil {
				r.problemAt(iss, "spec.acme.externalAccountBinding", "set keyFile or keyEnv: where the daemon reads the HMAC key")
			}
		}
	case s.CA != nil:
		if (s.CA.SecretName == "") == (s.CA.File == "") {
			r.problemAt(iss, "spec.ca", "set exactly one of secretName (a Secret certops writes) and file (a SOPS-encrypted Secret in the repository)")
		}
		if strings.Contains(s.CA.File, "..") || strings.HasPrefix(s.CA.File, "/") {
			r.problemAt(iss, "spec.ca.file", "must be a relative path inside the repository")
		}
		for _, list := range [][]string{s.CA.CRLDistributionPoints, s.CA.OCSPServers, s.CA.IssuingCertificateURLs} {
			for _, u := range list {
				if pu, err := url.Parse(u); err != nil || pu.Scheme == "" {
					r.problemAt(iss, "spec.ca", "%q is not an absolute URL", u)
				}
			}
		}
	case s.Vault != nil:
		v := s.Vault
		if u, err := url.Parse(v.Server); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			r.problemAt(iss, "spec.vault.server", "expected Vault's URL, got %q", v.Server)
		}
		if v.Path == "" {
			r.problemAt(iss, "spec.vault.path", "required, e.g. pki/sign/my-role")
		}
		n := 0
		for _, set := range []bool{v.Auth.Token != nil, v.Auth.AppRole != nil, v.Auth.Kubernetes != nil} {
			if set {
				n++
			}
		}
		if n != 1 {
			r.problemAt(iss, "spec.vault.auth", "set exactly one of token, appRole, kubernetes")
		}
		if k := v.Auth.Kubernetes; k != nil && k.Role == "" {
			r.problemAt(iss, "spec.vault.auth.kubernetes.role", "required: the Vault role bound to the service account")
		}
	case s.Exec != nil:
		if len(s.Exec.Command) == 0 || s.Exec.Command[0] == "" {
			r.problemAt(iss, "spec.exec.command", "required: the program and its arguments")
		}
	}
}

// providers lists the DNS providers a dns01 block names.
func (d *DNS01Solver) providers() []string {
	var out []string
	if d.Provider != "" {
		out = append(out, d.Provider)
	}
	for name, set := range map[string]bool{
		"dnsupdate": d.RFC2136 != nil, "route53": d.Route53 != nil, "cloudflare": d.Cloudflare != nil,
		"gcloud": d.CloudDNS != nil, "azuredns": d.AzureDNS != nil, "digitalocean": d.DigitalOcean != nil,
		"acme-dns": d.ACMEDNS != nil,
	} {
		if set {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// ProviderName is the lego DNS provider this block uses.
func (d *DNS01Solver) ProviderName() string {
	if p := d.providers(); len(p) == 1 {
		return p[0]
	}
	return ""
}

var weekdays = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
	"sunday": time.Sunday, "monday": time.Monday, "tuesday": time.Tuesday, "wednesday": time.Wednesday,
	"thursday": time.Thursday, "friday": time.Friday, "saturday": time.Saturday,
}

func (r *Repository) validateCertificate(c *Certificate) {
	s := &c.Spec
	if err := checkDNS1123Subdomain(c.Metadata.Name); err != nil {
		r.problemAt(c, "metadata.name", "%v", err)
	}
	if c.Metadata.Namespace != "" {
		if err := checkDNS1123Label(c.Metadata.Namespace); err != nil {
			r.problemAt(c, "metadata.namespace", "%v", err)
		}
	}
	if err := checkDNS1123Subdomain(s.SecretName); err != nil {
		r.problemAt(c, "spec.secretName", "%v", err)
	}
	if s.CommonName == "" && s.LiteralSubject == "" && len(s.DNSNames) == 0 && len(s.IPAddresses) == 0 &&
		len(s.URIs) == 0 && len(s.EmailAddresses) == 0 && len(s.OtherNames) == 0 {
		r.problemAt(c, "spec", "at least one of commonName, literalSubject, dnsNames, uris, emailAddresses, ipAddresses or otherNames must be set")
	}
	for i, o := range s.OtherNames {
		if !isOID(o.OID) {
			r.problemAt(c, fmt.Sprintf("spec.otherNames[%d].oid", i), "%q is not a dotted OID such as 1.3.6.1.4.1.311.20.2.3", o.OID)
		}
		if o.UTF8Value == "" {
			r.problemAt(c, fmt.Sprintf("spec.otherNames[%d].utf8Value", i), "required")
		}
	}
	if s.LiteralSubject != "" {
		if s.CommonName != "" || s.Subject != nil {
			r.problemAt(c, "spec.literalSubject", "when literalSubject is set, commonName and subject must not be")
		}
		if err := checkLiteralSubject(s.LiteralSubject); err != nil {
			r.problemAt(c, "spec.literalSubject", "%v", err)
		}
	}
	if len(s.CommonName) > maxCommonNameSize {
		r.problemAt(c, "spec.commonName", "is %d bytes long; at most %d", len(s.CommonName), maxCommonNameSize)
	}
	for i, n := range s.DNSNames {
		if err := checkDNSName(n); err != nil {
			r.problemAt(c, fmt.Sprintf("spec.dnsNames[%d]", i), "%v", err)
		}
	}
	for i, ip := range s.IPAddresses {
		if _, err := netip.ParseAddr(ip); err != nil {
			r.problemAt(c, fmt.Sprintf("spec.ipAddresses[%d]", i), "%q is not an IP address", ip)
		}
	}
	for i, u := range s.URIs {
		if pu, err := url.Parse(u); err != nil || pu.Scheme == "" {
			r.problemAt(c, fmt.Sprintf("spec.uris[%d]", i), "%q is not an absolute URI", u)
		}
	}
	for i, e := range s.EmailAddresses {
		if a, err := mail.ParseAddress(e); err != nil || a.Address != e {
			r.problemAt(c, fmt.Sprintf("spec.emailAddresses[%d]", i), "%q is not a bare email address", e)
		}
	}
	d := s.Duration.Duration
	if d < MinDuration {
		r.problemAt(c, "spec.duration", "%s is below the minimum of 1h", d)
	}
	if s.RenewBefore != nil {
		if s.RenewBefore.Duration < MinRenewBefore {
			r.problemAt(c, "spec.renewBefore", "%s is below the minimum of 5m", s.RenewBefore.Duration)
		}
		if s.RenewBefore.Duration >= d {
			r.problemAt(c, "spec.renewBefore", "%s must be less than the duration (%s)", s.RenewBefore.Duration, d)
		}
		if s.RenewBeforePercentage != nil {
			r.problemAt(c, "spec.renewBeforePercentage", "set renewBefore or renewBeforePercentage, not both")
		}
	}
	if p := s.RenewBeforePercentage; p != nil && (*p <= 0 || *p >= 100) {
		r.problemAt(c, "spec.renewBeforePercentage", "%d is out of range: must be between 0 and 100, exclusive", *p)
	}
	r.validatePrivateKey(c)
	seen := map[KeyUsage]bool{}
	for i, u := range s.Usages {
		f := fmt.Sprintf("spec.usages[%d]", i)
		switch {
		case !slices.Contains(KeyUsages, u):
			r.problemAt(c, f, "unknown usage %q (expected one of cert-manager's: %s)", u, joinUsages())
		case seen[u]:
			r.problemAt(c, f, "usage %q is listed twice", u)
		}
		seen[u] = true
	}
	ref := s.IssuerRef
	if ref.Name == "" {
		r.problemAt(c, "spec.issuerRef.name", "required: the name of an issuer in %s/", IssuersDir)
	}
	if ref.Kind != KindIssuer && ref.Kind != KindClusterIssuer {
		r.problemAt(c, "spec.issuerRef.kind", "expected Issuer or ClusterIssuer, got %q", ref.Kind)
	}
	if ref.Group != "" && ref.Group != Group && ref.Group != "cert-manager.io" {
		r.problemAt(c, "spec.issuerRef.group", "expected %s or cert-manager.io, got %q", Group, ref.Group)
	}
	if nc := s.NameConstraints; nc != nil {
		if !s.IsCA {
			r.problemAt(c, "spec.nameConstraints", "only a CA certificate (isCA: true) can carry name constraints")
		}
		for _, item := range []struct {
			f string
			v *NameConstraintItem
		}{{"spec.nameConstraints.permitted", nc.Permitted}, {"spec.nameConstraints.excluded", nc.Excluded}} {
			if item.v == nil {
				continue
			}
			if _, err := parsePrefixes(item.v.IPRanges); err != nil {
				r.problemAt(c, item.f+".ipRanges", "%v", err)
			}
		}
	}
	for i, t := range s.Targets {
		f := fmt.Sprintf("spec.targets[%d]", i)
		if err := checkDNS1123Label(t.Cluster); err != nil {
			r.problemAt(c, f+".cluster", "%v", err)
		}
		for j, ns := range t.Namespaces {
			if err := checkDNS1123Label(ns); err != nil {
				r.problemAt(c, fmt.Sprintf("%s.namespaces[%d]", f, j), "%v", err)
			}
		}
		if t.SecretName != "" {
			if err := checkDNS1123Subdomain(t.SecretName); err != nil {
				r.problemAt(c, f+".secretName", "%v", err)
			}
		}
	}
	if ks := s.Keystores; ks != nil {
		for name, k := range map[string]*Keystore{"jks": ks.JKS, "pkcs12": ks.PKCS12} {
			if k != nil && k.Create && k.PasswordSecretRef.Name == "" {
				r.problemAt(c, "spec.keystores."+name+".passwordSecretRef.name", "required when create is true")
			}
		}
	}
	for i, o := range s.AdditionalOutputFormats {
		if o.Type != "CombinedPEM" && o.Type != "DER" {
			r.problemAt(c, fmt.Sprintf("spec.additionalOutputFormats[%d].type", i), "expected CombinedPEM or DER, got %q", o.Type)
		}
	}
	r.validateWindows(c)
}

func joinUsages() string {
	s := make([]string, len(KeyUsages))
	for i, u := range KeyUsages {
		s[i] = string(u)
	}
	return strings.Join(s, ", ")
}

func (r *Repository) validatePrivateKey(c *Certificate) {
	pk := c.Spec.PrivateKey
	switch pk.Algorithm {
	case RSA:
		if pk.Size < 2048 || pk.Size > 8192 {
			r.problemAt(c, "spec.privateKey.size", "RSA key size %d is out of range: 2048 to 8192", pk.Size)
		}
	case ECDSA:
		if pk.Size != 256 && pk.Size != 384 && pk.Size != 521 {
			r.problemAt(c, "spec.privateKey.size", "ECDSA key size %d is not supported: 256, 384 or 521", pk.Size)
		}
	case Ed25519:
		if pk.Size != 0 {
			r.problemAt(c, "spec.privateKey.size", "Ed25519 keys have no size; remove it")
		}
	default:
		r.problemAt(c, "spec.privateKey.algorithm", "expected RSA, ECDSA or Ed25519, got %q", pk.Algorithm)
	}
	if pk.Encoding != PKCS1 && pk.Encoding != PKCS8 {
		r.problemAt(c, "spec.privateKey.encoding", "expected PKCS1 or PKCS8, got %q", pk.Encoding)
	}
	if pk.RotationPolicy != RotationAlways && pk.RotationPolicy != RotationNever {
		r.problemAt(c, "spec.privateKey.rotationPolicy", "expected Always or Never, got %q", pk.RotationPolicy)
	}
}

// checkLiteralSubject checks the shape of an RFC 4514 distinguished name:
// comma-separated attribute=value pairs with known attribute types or OIDs.
func checkLiteralSubject(s string) error {
	known := map[string]bool{"CN": true, "O": true, "OU": true, "L": true, "ST": true, "C": true,
		"STREET": true, "POSTALCODE": true, "SERIALNUMBER": true, "DC": true, "UID": true}
	for _, rdn := range splitUnescaped(s, ',') {
		for _, atv := range splitUnescaped(rdn, '+') {
			typ, val, ok := strings.Cut(atv, "=")
			typ = strings.TrimSpace(typ)
			if !ok || typ == "" || strings.TrimSpace(val) == "" {
				return fmt.Errorf("%q is not an RFC 4514 attribute=value pair", strings.TrimSpace(atv))
			}
			if !known[strings.ToUpper(typ)] && !isOID(typ) {
				return fmt.Errorf("unknown attribute type %q (use CN, O, OU, L, ST, C, STREET, POSTALCODE, SERIALNUMBER, DC, UID or a dotted OID)", typ)
			}
		}
	}
	return nil
}

func splitUnescaped(s string, sep byte) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case sep:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

func isOID(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) < 2 {
		return false
	}
	arcs := make([]int, len(parts))
	for i, part := range parts {
		n, err := strconv.Atoi(part)
		if err != nil || n < 0 || strings.Trim(part, "0123456789") != "" || (len(part) > 1 && part[0] == '0') {
			return false
		}
		arcs[i] = n
	}
	// X.660 (and encoding/asn1): the first arc is 0, 1 or 2; under 0 and 1
	// the second is at most 39.
	return arcs[0] <= 2 && (arcs[0] == 2 || arcs[1] <= 39)
}

// parsedWindow is a renewal window resolved to minutes of a week.
type parsedWindow struct {
	days       []time.Weekday
	start, end int // minutes after midnight
	loc        *time.Location
}

func parseWindow(w RenewalWindow) (parsedWindow, error) {
	var p parsedWindow
	if len(w.Days) == 0 {
		return p, fmt.Errorf("days: list at least one day (Mon … Sun)")
	}
	for _, d := range w.Days {
		wd, ok := weekdays[strings.ToLower(d)]
		if !ok {
			return p, fmt.Errorf("days: %q is not a day of the week (Mon … Sun)", d)
		}
		p.days = append(p.days, wd)
	}
	var err error
	if p.start, err = parseClock(w.Start); err != nil {
		return p, fmt.Errorf("start: %w", err)
	}
	if p.end, err = parseClock(w.End); err != nil {
		return p, fmt.Errorf("end: %w", err)
	}
	if p.end <= p.start {
		return p, fmt.Errorf("end %s is not after start %s: the window is empty", w.End, w.Start)
	}
	p.loc = time.UTC
	if w.TimeZone != "" {
		if p.loc, err = time.LoadLocation(w.TimeZone); err != nil {
			return p, fmt.Errorf("timeZone: unknown time zone %q", w.TimeZone)
		}
	}
	return p, nil
}

func parseClock(s string) (int, error) {
	var h, m int
	if n, err := fmt.Sscanf(s, "%d:%d", &h, &m); err != nil || n != 2 || len(s) != 5 || h < 0 || m < 0 || m > 59 || h > 24 || (h == 24 && m != 0) {
		return 0, fmt.Errorf("expected HH:MM (00:00 to 24:00), got %q", s)
	}
	return h*60 + m, nil
}

func (r *Repository) validateWindows(c *Certificate) {
	if len(c.Spec.RenewalWindows) == 0 {
		return
	}
	var ws []parsedWindow
	for i, w := range c.Spec.RenewalWindows {
		p, err := parseWindow(w)
		if err != nil {
			r.problemAt(c, fmt.Sprintf("spec.renewalWindows[%d]", i), "%v", err)
			continue
		}
		ws = append(ws, p)
	}
	if len(ws) != len(c.Spec.RenewalWindows) {
		return
	}
	// A renewal that becomes due just after a window closes waits for the
	// next one; if that wait can exceed the time left before expiry, the
	// windows can never be met.
	gap := maxWindowGap(ws)
	rb := c.Spec.RenewBeforeFor(c.Spec.Duration.Duration)
	if gap >= rb {
		r.problemAt(c, "spec.renewalWindows", "windows can leave %s between openings, longer than the %s renewal lead time: the certificate could expire before a window opens", gap, rb)
	}
}

// maxWindowGap is the longest stretch of a week with no window open (zones
// compared at their standard offsets).
func maxWindowGap(ws []parsedWindow) time.Duration {
	const week = 7 * 24 * 60
	var open [week]bool
	for _, w := range ws {
		_, off := time.Date(2026, 1, 5, 12, 0, 0, 0, w.loc).Zone()
		shift := -off / 60
		for _, d := range w.days {
			for m := w.start; m < w.end; m++ {
				open[((int(d)*24*60+m+shift)%week+week)%week] = true
			}
		}
	}
	longest, run := 0, 0
	for i := 0; i < 2*week; i++ { // twice round, for a gap across the week's end
		if open[i%week] {
			run = 0
			continue
		}
		run++
		longest = max(longest, run)
	}
	if longest > week {
		longest = week
	}
	return time.Duration(longest) * time.Minute
}

// RenewBeforeFor is how long before expiry a certificate with the given
// actual lifetime is renewed: renewBefore, or renewBeforePercentage of the
// lifetime, or one third of it (cert-manager renews at 2/3 of the lifetime
// by default). A renewBefore not shorter than the lifetime falls back to the
// default, as cert-manager does.
func (s *CertificateSpec) RenewBeforeFor(lifetime time.Duration) time.Duration {
	switch {
	case s.RenewBefore != nil && s.RenewBefore.Duration < lifetime:
		return s.RenewBefore.Duration
	case s.RenewBeforePercentage != nil:
		return lifetime * time.Duration(*s.RenewBeforePercentage) / 100
	}
	return lifetime / 3
}
