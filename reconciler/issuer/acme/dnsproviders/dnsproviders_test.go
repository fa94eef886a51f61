package dnsproviders_test

import (
	"os"
	"slices"
	"strings"
	"testing"

	"certops.dev/certops/reconciler/issuer/acme/dnsproviders"
	"certops.dev/certops/reconciler/issuer/acme/dnsproviders/azuredns"
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
		{"akamai", "not built into certops"},
		{"azure", "AZURE_SUBSCRIPTION_ID is required"}, // built, but unconfigured
		{"httpreq", "httpreq"},                         // missing HTTPREQ_ENDPOINT: lego's own error, wrapped
	}
	for _, tt := range tests {
		if _, err := dnsproviders.New(tt.name); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%q): got %v, want an error containing %q", tt.name, err, tt.want)
		}
	}
}

// cert-manager's "azure" and "azuredns" both build certops' own Azure DNS
// provider from lego's environment variables.
func TestNewAzureFromEnv(t *testing.T) {
	for _, k := range os.Environ() {
		if name, _, _ := strings.Cut(k, "="); strings.HasPrefix(name, "AZURE_") {
			t.Setenv(name, "")
		}
	}
	t.Setenv("AZURE_SUBSCRIPTION_ID", "sub")
	t.Setenv("AZURE_RESOURCE_GROUP", "rg")
	t.Setenv("AZURE_TENANT_ID", "tenant")
	t.Setenv("AZURE_CLIENT_ID", "client")
	t.Setenv("AZURE_CLIENT_SECRET", "secret")
	t.Setenv("AZURE_ENVIRONMENT", "china")
	t.Setenv("AZURE_PROPAGATION_TIMEOUT", "90")
	for _, name := range []string{"azure", "azuredns", "AzureDNS"} {
		p, err := dnsproviders.New(name)
		if err != nil {
			t.Fatalf("New(%q): %v", name, err)
		}
		az, ok := p.(*azuredns.DNSProvider)
		if !ok {
			t.Fatalf("New(%q): got %T, want *azuredns.DNSProvider", name, p)
		}
		if to, _ := az.Timeout(); to.Seconds() != 90 {
			t.Errorf("New(%q): propagation timeout %v, want 90s from AZURE_PROPAGATION_TIMEOUT", name, to)
		}
	}
	if !slices.Contains(dnsproviders.List(), "azuredns") || !slices.Contains(dnsproviders.Aliases(), "azure=azuredns") {
		t.Errorf("List/Aliases lack azuredns: %v %v", dnsproviders.List(), dnsproviders.Aliases())
	}
}
