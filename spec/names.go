package spec

import (
	"fmt"
	"net/netip"
	"path"
	"strings"

	"golang.org/x/net/idna"
)

// idnaProfile converts U-labels to A-labels the way browsers and CAs
// compare names (UTS #46, transitional processing off).
var idnaProfile = idna.New(idna.MapForLookup(), idna.Transitional(false), idna.BidiRule(), idna.StrictDomainName(false))

// ASCIIName returns a DNS name in its A-label (punycode) form, the form it
// is issued, compared and matched in.
func ASCIIName(name string) (string, error) {
	wild := strings.HasPrefix(name, "*.")
	rest := name
	if wild {
		rest = name[2:]
	}
	ascii, err := idnaProfile.ToASCII(rest)
	if err != nil {
		return "", fmt.Errorf("not a valid internationalized name: %w", err)
	}
	if wild {
		return "*." + ascii, nil
	}
	return ascii, nil
}

// checkDNSName validates a DNS SAN or a policy pattern: lower case, labels
// of 1–63 letters, digits and hyphens, at most 253 bytes, and a wildcard only
// as the whole leftmost label.
func checkDNSName(name string) error {
	if name == "" {
		return fmt.Errorf("empty DNS name")
	}
	if strings.HasSuffix(name, ".") {
		return fmt.Errorf("%q: remove the trailing dot", name)
	}
	ascii := name
	for _, r := range name {
		if r >= 0x80 {
			var err error
			if ascii, err = ASCIIName(name); err != nil {
				return fmt.Errorf("%q: %w", name, err)
			}
			break
		}
	}
	if len(ascii) > 253 {
		return fmt.Errorf("%q is %d bytes long; a DNS name is at most 253", truncate(name, 40), len(ascii))
	}
	labels := strings.Split(ascii, ".")
	for i, l := range labels {
		switch {
		case l == "*" && i == 0:
			if len(labels) < 3 {
				return fmt.Errorf("%q: a wildcard needs at least two labels after it", name)
			}
			continue
		case strings.Contains(l, "*"):
			return fmt.Errorf("%q: a wildcard may only be the whole leftmost label (\"*.example.com\")", name)
		case l == "":
			return fmt.Errorf("%q has an empty label", name)
		case len(l) > 63:
			return fmt.Errorf("%q: label %q is %d characters long; a label is at most 63", name, truncate(l, 20), len(l))
		case l[0] == '-' || l[len(l)-1] == '-':
			return fmt.Errorf("%q: label %q starts or ends with a hyphen", name, l)
		}
		for _, r := range l {
			switch {
			case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_':
			case r >= 'A' && r <= 'Z':
				return fmt.Errorf("%q must be lower case", name)
			default:
				return fmt.Errorf("%q: label %q has the character %q", name, l, r)
			}
		}
	}
	return nil
}

// MatchDNSName reports whether name is allowed by pattern. A pattern is a
// name, matched exactly, or "*.<suffix>", which admits "*.<suffix>" itself
// and names with exactly one more label than suffix: "*.a.example.com"
// admits "x.a.example.com" but never "x.y.a.example.com" nor
// "a.example.com". Both sides are compared in A-label form.
func MatchDNSName(pattern, name string) bool {
	p, err1 := ASCIIName(pattern)
	n, err2 := ASCIIName(name)
	if err1 != nil || err2 != nil {
		return false
	}
	if p == n {
		return true
	}
	suffix, ok := strings.CutPrefix(p, "*.")
	if !ok {
		return false
	}
	label, rest, ok := strings.Cut(n, ".")
	return ok && rest == suffix && label != "" && label != "*"
}

// checkDNS1123Label validates a namespace or cluster name.
func checkDNS1123Label(s string) error {
	if s == "" {
		return fmt.Errorf("must not be empty")
	}
	if len(s) > 63 {
		return fmt.Errorf("%q is longer than 63 characters", truncate(s, 40))
	}
	for i, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' && i > 0 && i < len(s)-1
		if !ok {
			return fmt.Errorf("%q is not a DNS-1123 label (lower-case letters, digits and '-', starting and ending with a letter or digit)", s)
		}
	}
	return nil
}

// checkDNS1123Subdomain validates an object name (Secret, certificate).
func checkDNS1123Subdomain(s string) error {
	if s == "" {
		return fmt.Errorf("must not be empty")
	}
	if len(s) > 253 {
		return fmt.Errorf("%q is longer than 253 characters", truncate(s, 40))
	}
	for _, part := range strings.Split(s, ".") {
		if err := checkDNS1123Label(part); err != nil {
			return fmt.Errorf("%q is not a DNS-1123 subdomain (lower-case letters, digits, '-' and '.')", s)
		}
	}
	return nil
}

// matchPath matches a slash-separated path against a pattern where "**"
// stands for any number of folders and other segments follow path.Match.
func matchPath(pattern, name string) bool {
	return matchSegments(strings.Split(pattern, "/"), strings.Split(name, "/"))
}

func matchSegments(pat, name []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			for i := 0; i <= len(name); i++ {
				if matchSegments(pat[1:], name[i:]) {
					return true
				}
			}
			return false
		}
		if len(name) == 0 {
			return false
		}
		if ok, err := path.Match(pat[0], name[0]); err != nil || !ok {
			return false
		}
		pat, name = pat[1:], name[1:]
	}
	return len(name) == 0
}

func parsePrefixes(ranges []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(ranges))
	for _, r := range ranges {
		p, err := netip.ParsePrefix(r)
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR range such as 10.0.0.0/8", r)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}
