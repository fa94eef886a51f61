package vault

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"certops.dev/certops/reconciler/issuer"
)

var _ issuer.Issuer = (*Issuer)(nil)

// Config configures the vault issuer.
type Config struct {
	// Address is Vault's base URL, e.g. https://vault.example.com:8200.
	Address string
	// Namespace is the Vault Enterprise namespace (X-Vault-Namespace); optional.
	Namespace string
	// Path is the PKI sign path "<mount>/sign/<role>", as in cert-manager's
	// vault.path (e.g. "pki/sign/web").
	Path string
	// CABundle is the PEM bundle trusted for Vault's TLS certificate; empty
	// means the system pool.
	CABundle []byte
	// Exactly one authentication method.
	Token      string
	AppRole    *AppRole
	Kubernetes *Kubernetes
	// HTTPClient replaces the default client (CABundle is then ignored).
	HTTPClient *http.Client
	// OnRequest is told about every HTTP request to Vault.
	OnRequest issuer.RequestObserver
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// AppRole is AppRole authentication.
type AppRole struct {
	Mount    string // default "approle"
	RoleID   string
	SecretID string
}

// Kubernetes is Kubernetes service-account authentication.
type Kubernetes struct {
	Mount string // default "kubernetes"
	Role  string
	// TokenFile holds the service-account token; empty means TokenPath.
	// It is read again at every login, because kubelet rotates projected
	// tokens.
	TokenFile string
	// JWT returns the service-account token; when set it replaces TokenFile.
	JWT func(ctx context.Context) (string, error)
}

// TokenPath is where Kubernetes mounts a pod's service-account token.
const TokenPath = "/var/run/secrets/kubernetes.io/serviceaccount/token"

// NewDefaultConfig returns defaults without an address or credentials.
func NewDefaultConfig() *Config { return &Config{Now: time.Now} }

// Issuer signs through one Vault PKI role.
type Issuer struct {
	cfg    Config
	base   *url.URL
	client *http.Client

	mu       sync.Mutex
	token    string
	tokenExp time.Time // zero: does not expire (static token)
}

// New validates cfg eagerly.
func New(cfg *Config) (*Issuer, error) {
	if cfg == nil {
		return nil, errors.New("vault: nil config")
	}
	c := *cfg
	var errs []error
	base, err := url.Parse(strings.TrimRight(c.Address, "/"))
	if err != nil || (base.Scheme != "https" && base.Scheme != "http") || base.Host == "" {
		errs = append(errs, fmt.Errorf("vault: address %q is not an http(s) URL", c.Address))
	}
	parts := strings.Split(strings.Trim(c.Path, "/"), "/")
	if len(parts) < 3 || parts[len(parts)-2] != "sign" || parts[len(parts)-1] == "" {
		errs = append(errs, fmt.Errorf("vault: path %q is not <mount>/sign/<role>", c.Path))
	}
	n := 0
	if c.Token != "" {
		n++
	}
	if c.AppRole != nil {
		n++
		if c.AppRole.RoleID == "" || c.AppRole.SecretID == "" {
			errs = append(errs, errors.New("vault: appRole needs roleID and secretID"))
		}
	}
	if c.Kubernetes != nil {
		n++
		if c.Kubernetes.Role == "" {
			errs = append(errs, errors.New("vault: kubernetes auth needs a role"))
		}
	}
	if n != 1 {
		errs = append(errs, fmt.Errorf("vault: want exactly one of token, appRole, kubernetes; got %d", n))
	}
	pool := (*x509.CertPool)(nil)
	if len(c.CABundle) > 0 {
		pool = x509.NewCertPool()
		if !pool.AppendCertsFromPEM(c.CABundle) {
			errs = append(errs, errors.New("vault: caBundle holds no PEM certificate"))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	i := &Issuer{cfg: c, base: base, token: c.Token}
	if c.HTTPClient != nil {
		hc := *c.HTTPClient
		hc.Transport = issuer.ObserveTransport(hc.Transport, c.OnRequest)
		i.client = &hc
	} else {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		i.client = &http.Client{Timeout: time.Minute, Transport: issuer.ObserveTransport(t, c.OnRequest)}
	}
	return i, nil
}

type signResponse struct {
	Data struct {
		Certificate string   `json:"certificate"`
		IssuingCA   string   `json:"issuing_ca"`
		CAChain     []string `json:"ca_chain"`
	} `json:"data"`
}

// Sign sends req's CSR to the role. The CSR's SANs are used (the role's
// use_csr_sans, default true; it is a role setting, Vault ignores it on a
// sign request), otherNames included when the role's allowed_other_sans
// permit them; the CSR's common name, if any, is sent as common_name.
// other_sans is never sent: with use_csr_sans Vault would write each
// otherName twice.
func (i *Issuer) Sign(ctx context.Context, req *issuer.Request) (*issuer.Result, error) {
	if err := issuer.ContextErr(ctx, "vault: sign "+req.Name); err != nil {
		return nil, err
	}
	body := map[string]any{
		"csr":    string(req.CSRPEM()),
		"format": "pem",
		"ttl":    strconv.FormatInt(int64(req.Duration/time.Second), 10) + "s",
	}
	if cn := req.CSR.Subject.CommonName; cn != "" {
		body["common_name"] = cn
	} else {
		body["exclude_cn_from_sans"] = true
	}
	var out signResponse
	if err := i.call(ctx, "/v1/"+strings.Trim(i.cfg.Path, "/"), body, &out); err != nil {
		return nil, fmt.Errorf("vault: sign %s: %w", req.Name, err)
	}
	chainPEM := out.Data.Certificate + "\n"
	for _, c := range out.Data.CAChain {
		chainPEM += c + "\n"
	}
	res, err := issuer.NewResult([]byte(chainPEM), nil)
	if err != nil {
		return nil, issuer.Transient(fmt.Errorf("vault: sign %s: response: %w", req.Name, err))
	}
	if len(res.Chain) == 1 && out.Data.IssuingCA != "" {
		// Older Vaults omit ca_chain for a root issuer.
		if ca, err := issuer.ParseCertificatesPEM([]byte(out.Data.IssuingCA)); err == nil {
			res.Chain = append(res.Chain, ca...)
			res.ChainPEM = issuer.EncodeCertificatesPEM(res.Chain)
		}
	}
	if !issuer.SamePublicKey(res.Leaf().PublicKey, req.CSR.PublicKey) {
		return nil, issuer.Permanent(fmt.Errorf("vault: sign %s: Vault returned a certificate for another key", req.Name))
	}
	if top := res.Chain[len(res.Chain)-1]; len(res.Chain) > 1 && bytes.Equal(top.RawIssuer, top.RawSubject) {
		res.CAPEM = issuer.EncodeCertificatesPEM([]*x509.Certificate{top})
	}
	return res, nil
}

// call POSTs body to path with a valid token, logging in again once on 403.
func (i *Issuer) call(ctx context.Context, path string, body, out any) error {
	for attempt := 0; ; attempt++ {
		tok, err := i.validToken(ctx)
		if err != nil {
			return err
		}
		err = i.do(ctx, path, tok, body, out)
		var ve *apiError
		if attempt == 0 && errors.As(err, &ve) && ve.status == http.StatusForbidden && (i.cfg.AppRole != nil || i.cfg.Kubernetes != nil) {
			i.mu.Lock()
			if i.token == tok {
				i.token = ""
			}
			i.mu.Unlock()
			continue
		}
		return err
	}
}

// validToken returns the cached token or logs in. The lock is held during
// login so that concurrent Signs share one login.
func (i *Issuer) validToken(ctx context.Context) (string, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.token != "" && (i.tokenExp.IsZero() || i.cfg.Now().Before(i.tokenExp)) {
		return i.token, nil
	}
	var (
		path string
		body map[string]any
	)
	switch {
	case i.cfg.AppRole != nil:
		path = "/v1/auth/" + mountOr(i.cfg.AppRole.Mount, "approle") + "/login"
		body = map[string]any{"role_id": i.cfg.AppRole.RoleID, "secret_id": i.cfg.AppRole.SecretID}
	case i.cfg.Kubernetes != nil:
		jwt, err := i.kubernetesJWT(ctx)
		if err != nil {
			return "", err
		}
		path = "/v1/auth/" + mountOr(i.cfg.Kubernetes.Mount, "kubernetes") + "/login"
		body = map[string]any{"role": i.cfg.Kubernetes.Role, "jwt": jwt}
	default:
		return "", issuer.Permanent(errors.New("vault: token is empty"))
	}
	var out struct {
		Auth struct {
			ClientToken   string `json:"client_token"`
			LeaseDuration int64  `json:"lease_duration"`
		} `json:"auth"`
	}
	if err := i.do(ctx, path, "", body, &out); err != nil {
		return "", fmt.Errorf("vault: login: %w", err)
	}
	if out.Auth.ClientToken == "" {
		return "", issuer.Transient(errors.New("vault: login returned no token"))
	}
	i.token = out.Auth.ClientToken
	i.tokenExp = time.Time{}
	if out.Auth.LeaseDuration > 0 {
		// Log in again when 80% of the lease has passed, before Vault
		// revokes the token mid-request.
		i.tokenExp = i.cfg.Now().Add(time.Duration(out.Auth.LeaseDuration) * time.Second * 8 / 10)
	}
	return i.token, nil
}

func (i *Issuer) kubernetesJWT(ctx context.Context) (string, error) {
	if f := i.cfg.Kubernetes.JWT; f != nil {
		return f(ctx)
	}
	path := i.cfg.Kubernetes.TokenFile
	if path == "" {
		path = TokenPath
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", issuer.Permanent(fmt.Errorf("vault: kubernetes auth: read service-account token: %w", err))
	}
	return strings.TrimSpace(string(b)), nil
}

func mountOr(m, def string) string {
	if m = strings.Trim(m, "/"); m != "" {
		return m
	}
	return def
}

// apiError is a non-2xx answer from Vault. Its message holds Vault's
// "errors" list, which names the refused field, never a secret.
type apiError struct {
	status int
	msgs   []string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("status %d: %s", e.status, strings.Join(e.msgs, "; "))
}

func (i *Issuer) do(ctx context.Context, path, token string, body, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return issuer.Permanent(err)
	}
	u := *i.base
	u.Path += path
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(b))
	if err != nil {
		return issuer.Permanent(err)
	}
	r.Header.Set("Content-Type", "application/json")
	if token != "" {
		r.Header.Set("X-Vault-Token", token)
	}
	if i.cfg.Namespace != "" {
		r.Header.Set("X-Vault-Namespace", i.cfg.Namespace)
	}
	resp, err := i.client.Do(r)
	if err != nil {
		return issuer.Transient(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return issuer.Transient(err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Errors []string `json:"errors"`
		}
		_ = json.Unmarshal(data, &e)
		ae := &apiError{status: resp.StatusCode, msgs: e.Errors}
		switch {
		case resp.StatusCode == http.StatusTooManyRequests:
			return issuer.RetryAfter(i.cfg.Now().Add(retryAfter(resp.Header.Get("Retry-After"))), ae)
		case resp.StatusCode >= 500 || resp.StatusCode == http.StatusRequestTimeout:
			// 503 includes a sealed or standby Vault.
			return issuer.Transient(ae)
		default:
			return issuer.Permanent(ae)
		}
	}
	if err := json.Unmarshal(data, out); err != nil {
		return issuer.Transient(fmt.Errorf("decode response: %w", err))
	}
	return nil
}

// retryAfter parses a Retry-After in seconds. Without one it waits a
// minute: Vault's rate-limit quotas count per interval (1s by default), so a
// minute is comfortably past any default window without stalling issuance.
func retryAfter(v string) time.Duration {
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	return time.Minute
}
