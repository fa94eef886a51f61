package dnsproviders_test

import (
	"slices"
	"strings"
	"testing"

	"certops.dev/certops/reconciler/issuer/acme/dnsproviders"
)

func TestListHasCertManagerInTreeProvidersAndEscapeHatches(t *testing.T) {
	names := dnsproviders.List()
	for _, want := range []string{"route53", "gcloud", "cloudflare", "digitalocean", "acmedns", "dnsupdate", "exec", "httpreq"} {
		if !slices.Contains(names, want) {
			t.Errorf("List() lacks %q: %v", want, names)
		}
	}
	if !slices.IsSorted(names) {
		t.Errorf("List() is not sorted: %v", names)
	}
}

func TestNew(t *testing.T) {
	t.Setenv("DNSUPDATE_NAMESERVER", "127.0.0.1:53")
	t.Setenv("EXEC_PATH", "/bin/true")
	for _, name := range []string{"dnsupdate", "rfc2136", "RFC2136", "exec"} {
		if p, err := dnsproviders.New(name); err != nil || p == nil {
			t.Errorf("New(%q): got %v, %v; want a provider", name, p, err)
		}
	}
	tests := []struct{ name, want string }{
		{"nope", "unknown DNS provider"},
		{"azure", "not built into certops"},
		{"httpreq", "httpreq"}, // missing HTTPREQ_ENDPOINT: lego's own error, wrapped
	}
	for _, tt := range tests {
		if _, err := dnsproviders.New(tt.name); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%q): got %v, want an error containing %q", tt.name, err, tt.want)
		}
	}
}
