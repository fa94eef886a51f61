package spec

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// ResolvedTarget is one place a certificate's Secret is applied to.
type ResolvedTarget struct {
	Cluster    string `json:"cluster"`
	Namespace  string `json:"namespace"`
	SecretName string `json:"secretName"`
	TakeOver   bool   `json:"takeOver,omitempty"`
}

func (t ResolvedTarget) String() string {
	return t.Cluster + "/" + t.Namespace + "/" + t.SecretName
}

// ResolvedTargets expands spec.targets (or the default clusters when it is
// empty) into one entry per cluster, namespace and Secret name.
func (c *Certificate) ResolvedTargets(cfg *Config) []ResolvedTarget {
	// Called several times per certificate in a pass: nothing is allocated
	// but the result (no list of default targets, no list of the one
	// namespace), which is nil for a certificate that goes to no cluster.
	var out []ResolvedTarget
	add := func(t Target) {
		name := t.SecretName
		if name == "" {
			name = c.Spec.SecretName
		}
		if len(t.Namespaces) == 0 {
			out = append(out, ResolvedTarget{Cluster: t.Cluster, Namespace: c.Namespace(), SecretName: name, TakeOver: t.TakeOver})
		}
		for _, ns := range t.Namespaces {
			out = append(out, ResolvedTarget{Cluster: t.Cluster, Namespace: ns, SecretName: name, TakeOver: t.TakeOver})
		}
	}
	if c.Spec.Targets == nil { // absent; an explicit empty list means Git only
		for _, cl := range cfg.Spec.Clusters {
			if cl.Default {
				add(Target{Cluster: cl.Name})
			}
		}
	}
	for _, t := range c.Spec.Targets {
		add(t)
	}
	return out
}

// SecretPath is where certops writes the certificate's encrypted Secret:
// <output>/<namespace>/<secretName>.yaml.
func (c *Certificate) SecretPath(cfg *Config) string {
	out := cfg.Spec.Output.Path
	if out == "" {
		out = DefaultOutputDir
	}
	return out + "/" + c.Namespace() + "/" + c.Spec.SecretName + ".yaml"
}

// validateRepository runs the checks that need the whole repository and
// returns the certificates that pass them.
func (r *Repository) validateRepository(certs []*Certificate, opts LoadOptions) []*Certificate {
	clusters := map[string]*Cluster{}
	for i := range r.Config.Spec.Clusters {
		clusters[r.Config.Spec.Clusters[i].Name] = &r.Config.Spec.Clusters[i]
	}
	if opts.ExternalPolicy != nil {
		for _, p := range checkPolicy(opts.ExternalPolicy, "policy") {
			p.File = "(daemon policy)"
			r.Problems = append(r.Problems, p)
		}
	}
	slices.SortStableFunc(certs, func(a, b *Certificate) int { return strings.Compare(a.Source.File, b.Source.File) })
	byKey := map[string]*Certificate{}
	bySecret := map[string]*Certificate{}
	byTarget := map[string]*Certificate{}
	var out []*Certificate
	for _, c := range certs {
		if r.configBroken {
			r.problemAt(c, "", "held: %s has problems; no certificate is planned until it is fixed", ConfigFile)
			continue
		}
		before := len(r.Problems)
		if prev, dup := byKey[c.Key()]; dup {
			r.problemAt(c, "metadata.name", "certificate %s is already defined in %s:%d", c.Key(), prev.Source.File, prev.Source.Line)
		}
		sk := c.Namespace() + "/" + c.Spec.SecretName
		if prev, dup := bySecret[sk]; dup && byKey[c.Key()] == nil {
			r.problemAt(c, "spec.secretName", "Secret %s is already written by certificate %s (%s:%d)", sk, prev.Key(), prev.Source.File, prev.Source.Line)
		}
		if _, ok := r.Issuers[c.Spec.IssuerRef.Name]; !ok {
			names := make([]string, 0, len(r.Issuers))
			for n := range r.Issuers {
				names = append(names, n)
			}
			slices.Sort(names)
			r.problemAt(c, "spec.issuerRef.name", "issuer %q not found in %s/ (defined: %s)", c.Spec.IssuerRef.Name, IssuersDir, orNone(names))
		}
		for i, t := range c.ResolvedTargets(&r.Config) {
			f := fmt.Sprintf("spec.targets[%d]", targetIndex(c, t))
			cl, ok := clusters[t.Cluster]
			if !ok {
				r.problemAt(c, f+".cluster", "cluster %q is not defined in %s (spec.clusters)", t.Cluster, ConfigFile)
				continue
			}
			if len(cl.Namespaces) > 0 && !slices.Contains(cl.Namespaces, t.Namespace) {
				r.problemAt(c, f, "cluster %q does not allow namespace %q (allowed: %s)", t.Cluster, t.Namespace, strings.Join(cl.Namespaces, ", "))
			}
			if prev, dup := byTarget[t.String()]; dup && prev != c {
				r.problemAt(c, f, "Secret %s is already the target of certificate %s (%s:%d)", t, prev.Key(), prev.Source.File, prev.Source.Line)
			} else if dup {
				r.problemAt(c, f, "Secret %s is listed twice (target %d)", t, i)
			}
			byTarget[t.String()] = c
		}
		for _, v := range r.Config.Spec.Policy.violations(c, &r.Config, "") {
			r.problemAt(c, v.Field, "%s", v.Message)
		}
		for _, v := range opts.ExternalPolicy.violations(c, &r.Config, "daemon policy") {
			r.problemAt(c, v.Field, "%s", v.Message)
		}
		if _, dup := byKey[c.Key()]; !dup {
			byKey[c.Key()] = c
			bySecret[sk] = c
		}
		if len(r.Problems) == before {
			out = append(out, c)
		}
	}
	return out
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// targetIndex finds which spec.targets entry produced t, for positions.
func targetIndex(c *Certificate, t ResolvedTarget) int {
	for i, st := range c.Spec.Targets {
		if st.Cluster == t.Cluster {
			return i
		}
	}
	return 0
}

// violations lists what c asks for that the policy does not allow. Every
// rule whose paths match c's file applies, and each must allow everything;
// with no matching rule, DefaultAction decides.
func (p *Policy) violations(c *Certificate, cfg *Config, origin string) []Problem {
	if p == nil {
		return nil
	}
	var out []Problem
	add := func(rule *PolicyRule, field, format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		where := origin
		if where == "" && rule == nil {
			where = "policy"
		}
		if rule != nil {
			name := rule.Name
			if name == "" {
				name = strings.Join(rule.Paths, ",")
			}
			if where == "" {
				where = "policy rule " + fmt.Sprintf("%q", name)
			} else {
				where += " rule " + fmt.Sprintf("%q", name)
			}
		}
		out = append(out, Problem{Field: field, Message: "not allowed by " + where + ": " + msg})
	}
	matched := false
	for i := range p.Rules {
		rule := &p.Rules[i]
		if !slices.ContainsFunc(rule.Paths, func(pat string) bool { return matchPath(pat, c.Source.File) }) {
			continue
		}
		matched = true
		s := &c.Spec
		if len(rule.DNSNames) > 0 {
			for j, n := range s.DNSNames {
				if !slices.ContainsFunc(rule.DNSNames, func(pat string) bool { return MatchDNSName(pat, n) }) {
					add(rule, fmt.Sprintf("spec.dnsNames[%d]", j), "%q is outside %s", n, strings.Join(rule.DNSNames, ", "))
				}
			}
			if strings.Contains(s.CommonName, ".") && checkDNSName(s.CommonName) == nil && !slices.ContainsFunc(rule.DNSNames, func(pat string) bool { return MatchDNSName(pat, s.CommonName) }) {
				add(rule, "spec.commonName", "%q is outside %s", s.CommonName, strings.Join(rule.DNSNames, ", "))
			}
		}
		if len(rule.IPRanges) > 0 {
			prefixes, _ := parsePrefixes(rule.IPRanges)
			for j, ip := range s.IPAddresses {
				a, err := netip.ParseAddr(ip)
				if err != nil || !slices.ContainsFunc(prefixes, func(p netip.Prefix) bool { return p.Contains(a.Unmap()) }) {
					add(rule, fmt.Sprintf("spec.ipAddresses[%d]", j), "%s is outside %s", ip, strings.Join(rule.IPRanges, ", "))
				}
			}
		}
		if len(rule.Issuers) > 0 && !slices.Contains(rule.Issuers, s.IssuerRef.Name) {
			add(rule, "spec.issuerRef.name", "issuer %q is not one of %s", s.IssuerRef.Name, strings.Join(rule.Issuers, ", "))
		}
		for _, t := range c.ResolvedTargets(cfg) {
			f := fmt.Sprintf("spec.targets[%d]", targetIndex(c, t))
			if len(rule.Clusters) > 0 && !slices.Contains(rule.Clusters, t.Cluster) {
				add(rule, f+".cluster", "cluster %q is not one of %s", t.Cluster, strings.Join(rule.Clusters, ", "))
			}
			if len(rule.Namespaces) > 0 && !slices.Contains(rule.Namespaces, t.Namespace) {
				add(rule, f, "namespace %q is not one of %s", t.Namespace, strings.Join(rule.Namespaces, ", "))
			}
		}
		if rule.MaxDuration != nil && s.Duration.Duration > rule.MaxDuration.Duration {
			add(rule, "spec.duration", "%s is longer than the maximum %s", s.Duration.Duration, rule.MaxDuration.Duration)
		}
		if len(rule.KeyAlgorithms) > 0 && !slices.Contains(rule.KeyAlgorithms, s.PrivateKey.Algorithm) {
			add(rule, "spec.privateKey.algorithm", "%s is not one of %v", s.PrivateKey.Algorithm, rule.KeyAlgorithms)
		}
		if rule.MinRSASize > 0 && s.PrivateKey.Algorithm == RSA && s.PrivateKey.Size < rule.MinRSASize {
			add(rule, "spec.privateKey.size", "RSA %d is below the minimum %d", s.PrivateKey.Size, rule.MinRSASize)
		}
		if s.IsCA && !rule.AllowCA {
			add(rule, "spec.isCA", "CA certificates are not allowed (set allowCA on the rule)")
		}
	}
	if !matched && p.DefaultAction == PolicyDeny {
		add(nil, "", "no rule covers %s and the default action is Deny", c.Source.File)
	}
	return out
}
