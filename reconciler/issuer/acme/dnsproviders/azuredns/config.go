package azuredns

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Environment variables: lego's names, plus certops' endpoint overrides
// (AZURE_AUTHORITY_HOST is the Azure SDKs' own name for the same thing).
const (
	EnvClientID           = "AZURE_CLIENT_ID"
	EnvClientSecret       = "AZURE_CLIENT_SECRET"
	EnvTenantID           = "AZURE_TENANT_ID"
	EnvSubscriptionID     = "AZURE_SUBSCRIPTION_ID"
	EnvResourceGroup      = "AZURE_RESOURCE_GROUP"
	EnvZoneName           = "AZURE_ZONE_NAME"
	EnvEnvironment        = "AZURE_ENVIRONMENT"
	EnvTTL                = "AZURE_TTL"
	EnvPropagationTimeout = "AZURE_PROPAGATION_TIMEOUT"
	EnvPollingInterval    = "AZURE_POLLING_INTERVAL"
	EnvAuthMethod         = "AZURE_AUTH_METHOD"
	EnvFederatedTokenFile = "AZURE_FEDERATED_TOKEN_FILE"
	EnvAuthorityHost      = "AZURE_AUTHORITY_HOST"
	EnvResourceManager    = "AZURE_RESOURCE_MANAGER_ENDPOINT"
	EnvIMDSEndpoint       = "AZURE_IMDS_ENDPOINT"
)

// Authentication methods (AZURE_AUTH_METHOD), lego's names.
const (
	AuthEnv = "env" // client id + secret
	AuthWLI = "wli" // workload identity: federated token file as client assertion
	AuthMSI = "msi" // managed identity through the instance metadata service
)

// Cloud holds the endpoints of one Azure cloud.
type Cloud struct {
	// AuthorityHost is the Entra ID (AAD) host, e.g. https://login.microsoftonline.com/.
	AuthorityHost string
	// ResourceManager is the ARM endpoint, e.g. https://management.azure.com/.
	ResourceManager string
	// Audience is the ARM token audience; the OAuth2 scope is Audience + "/.default".
	Audience string
}

// Clouds are the values of AZURE_ENVIRONMENT, with the endpoints the Azure
// SDK for Go lists in azcore/cloud.
var Clouds = map[string]Cloud{
	"public":       {"https://login.microsoftonline.com/", "https://management.azure.com/", "https://management.core.windows.net/"},
	"china":        {"https://login.chinacloudapi.cn/", "https://management.chinacloudapi.cn/", "https://management.core.chinacloudapi.cn/"},
	"usgovernment": {"https://login.microsoftonline.us/", "https://management.usgovcloudapi.net/", "https://management.core.usgovcloudapi.net/"},
}

// defaultIMDS is the managed-identity token endpoint of the Azure instance
// metadata service.
const defaultIMDS = "http://169.254.169.254/metadata/identity/oauth2/token"

// Config configures a DNSProvider.
type Config struct {
	SubscriptionID string
	ResourceGroup  string
	// ZoneName is the DNS zone; empty means: find it by SOA lookup.
	ZoneName string

	AuthMethod   string
	TenantID     string
	ClientID     string
	ClientSecret string
	// FederatedTokenFile holds the workload-identity token (wli).
	FederatedTokenFile string

	Cloud Cloud
	// IMDSEndpoint is the managed-identity token endpoint (msi).
	IMDSEndpoint string

	TTL                int
	PropagationTimeout time.Duration
	PollingInterval    time.Duration
	HTTPClient         *http.Client
}

// NewDefaultConfig returns lego's defaults: TTL 60 s, propagation timeout
// 2 min, polling interval 2 s, public cloud.
func NewDefaultConfig() *Config {
	return &Config{
		Cloud:              Clouds["public"],
		IMDSEndpoint:       defaultIMDS,
		TTL:                60,
		PropagationTimeout: 2 * time.Minute,
		PollingInterval:    2 * time.Second,
		HTTPClient:         &http.Client{Timeout: 30 * time.Second},
	}
}

// ConfigFromEnv reads the configuration from the environment. Every problem
// is reported at once, each naming its variable.
func ConfigFromEnv() (*Config, error) {
	c := NewDefaultConfig()
	var errs []error
	get := func(name string) string {
		v, err := getOrFile(name)
		if err != nil {
			errs = append(errs, err)
		}
		return v
	}
	c.SubscriptionID = get(EnvSubscriptionID)
	c.ResourceGroup = get(EnvResourceGroup)
	c.ZoneName = get(EnvZoneName)
	c.TenantID = get(EnvTenantID)
	c.ClientID = get(EnvClientID)
	c.ClientSecret = get(EnvClientSecret)
	c.FederatedTokenFile = get(EnvFederatedTokenFile)
	c.AuthMethod = get(EnvAuthMethod)
	if e := get(EnvEnvironment); e != "" {
		cl, ok := Clouds[strings.ToLower(e)]
		if !ok {
			errs = append(errs, fmt.Errorf("%s: unknown environment %q (want public, china or usgovernment)", EnvEnvironment, e))
		}
		c.Cloud = cl
	}
	if v := get(EnvAuthorityHost); v != "" {
		c.Cloud.AuthorityHost = v
	}
	if v := get(EnvResourceManager); v != "" {
		c.Cloud.ResourceManager = v
	}
	if v := get(EnvIMDSEndpoint); v != "" {
		c.IMDSEndpoint = v
	}
	seconds := func(name string, d *time.Duration) {
		if v := get(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				errs = append(errs, fmt.Errorf("%s: %q is not a positive number of seconds", name, v))
				return
			}
			*d = time.Duration(n) * time.Second
		}
	}
	if v := get(EnvTTL); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			errs = append(errs, fmt.Errorf("%s: %q is not a positive number of seconds", EnvTTL, v))
		}
		c.TTL = n
	}
	seconds(EnvPropagationTimeout, &c.PropagationTimeout)
	seconds(EnvPollingInterval, &c.PollingInterval)
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("azuredns: %w", err)
	}
	return c, nil
}

// getOrFile returns the variable name, or the content of the file named by
// name_FILE (trailing newlines trimmed), lego's convention. Unlike lego's
// helper, an unreadable file is an error, not an empty value.
func getOrFile(name string) (string, error) {
	if v := os.Getenv(name); v != "" {
		return v, nil
	}
	path := os.Getenv(name + "_FILE")
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		// The path error names the file, never its content.
		return "", fmt.Errorf("%s_FILE: %w", name, err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// validate fills the default auth method and checks that everything it
// needs is present, reporting every problem at once.
func (c *Config) validate() error {
	var errs []error
	need := func(v, name string) {
		if v == "" {
			errs = append(errs, fmt.Errorf("%s is required", name))
		}
	}
	need(c.SubscriptionID, EnvSubscriptionID)
	need(c.ResourceGroup, EnvResourceGroup)
	if c.AuthMethod == "" {
		switch {
		case c.ClientSecret != "":
			c.AuthMethod = AuthEnv
		case c.FederatedTokenFile != "":
			c.AuthMethod = AuthWLI
		default:
			c.AuthMethod = AuthMSI
		}
	}
	switch c.AuthMethod {
	case AuthEnv:
		need(c.TenantID, EnvTenantID)
		need(c.ClientID, EnvClientID)
		need(c.ClientSecret, EnvClientSecret)
	case AuthWLI:
		need(c.TenantID, EnvTenantID)
		need(c.ClientID, EnvClientID)
		need(c.FederatedTokenFile, EnvFederatedTokenFile)
	case AuthMSI:
		need(c.IMDSEndpoint, EnvIMDSEndpoint)
	default:
		errs = append(errs, fmt.Errorf("%s: unsupported method %q (want env, wli or msi)", EnvAuthMethod, c.AuthMethod))
	}
	for _, u := range []struct{ v, name string }{
		{c.Cloud.AuthorityHost, EnvAuthorityHost},
		{c.Cloud.ResourceManager, EnvResourceManager},
		{c.IMDSEndpoint, EnvIMDSEndpoint},
	} {
		if u.v == "" {
			continue
		}
		if p, err := url.Parse(u.v); err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" {
			errs = append(errs, fmt.Errorf("%s: %q is not an http(s) URL", u.name, u.v))
		}
	}
	if c.TTL <= 0 {
		errs = append(errs, fmt.Errorf("%s must be positive", EnvTTL))
	}
	return errors.Join(errs...)
}
