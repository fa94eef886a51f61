package dnsproviders

import (
	"fmt"
	"slices"
	"strings"

	"github.com/go-acme/lego/v5/challenge"
)

// aliases maps cert-manager's solver names to lego's provider names.
var aliases = map[string]string{
	"rfc2136":  "dnsupdate",
	"clouddns": "gcloud",
	"acme-dns": "acmedns",
	"webhook":  "httpreq",
	"azure":    "azuredns",
	"akamai":   "",
}

// New builds the provider called name (case-insensitive; cert-manager's
// names are accepted) from its environment variables.
func New(name string) (challenge.Provider, error) {
	n := strings.ToLower(strings.TrimSpace(name))
	if a, ok := aliases[n]; ok {
		if a == "" {
			return nil, fmt.Errorf("dnsproviders: %q is not built into certops (its SDK cannot be built here); use exec or httpreq", name)
		}
		n = a
	}
	c, ok := constructors[n]
	if !ok {
		return nil, fmt.Errorf("dnsproviders: unknown DNS provider %q; known: %s", name, strings.Join(List(), ", "))
	}
	p, err := c()
	if err != nil {
		return nil, fmt.Errorf("dnsproviders: %s: %w", n, err)
	}
	return p, nil
}

// List returns the provider names, sorted.
func List() []string {
	out := make([]string, 0, len(constructors))
	for n := range constructors {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// Aliases returns cert-manager names accepted for lego providers, sorted,
// as "alias=provider".
func Aliases() []string {
	var out []string
	for a, n := range aliases {
		if n != "" && n != a {
			out = append(out, a+"="+n)
		}
	}
	slices.Sort(out)
	return out
}
