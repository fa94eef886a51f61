package acme

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	legoacme "github.com/go-acme/lego/v5/acme"
	"github.com/go-acme/lego/v5/acme/api"
	"github.com/go-acme/lego/v5/certificate"
	"github.com/go-acme/lego/v5/challenge"
	"github.com/go-acme/lego/v5/challenge/dns01"
	"github.com/go-acme/lego/v5/challenge/resolver"
	"github.com/go-acme/lego/v5/lego"

	"certops.dev/certops/reconciler/issuer"
)

var (
	_ issuer.Issuer  = (*Issuer)(nil)
	_ issuer.Resumer = (*Issuer)(nil)
)

// AccountStore keeps the PEM-encoded account private key of one issuer on
// one ACME server. The daemon implements it with a SOPS-encrypted file.
type AccountStore interface {
	// Load returns the stored key, or an error wrapping fs.ErrNotExist when
	// there is none yet.
	Load(ctx context.Context) ([]byte, error)
	// Save stores a newly generated key.
	Save(ctx context.Context, keyPEM []byte) error
}

// ExternalAccountBinding binds the ACME account to an account at the CA
// (RFC 8555 section 7.3.4), as ZeroSSL, Google and Sectigo require.
type ExternalAccountBinding struct {
	KeyID string
	// HMACKey is the base64url-encoded MAC key the CA issued.
	HMACKey string
}

// Config configures the ACME issuer.
type Config struct {
	// DirectoryURL is the ACME directory (e.g. Let's Encrypt's production
	// or staging directory).
	DirectoryURL string
	// Email is the account contact; optional.
	Email string
	// TermsOfServiceAgreed must be true for CAs that have terms.
	TermsOfServiceAgreed bool
	// EAB, when set, registers with external account binding.
	EAB *ExternalAccountBinding
	// AccountStore holds the account key. Required.
	AccountStore AccountStore
	// Profile names the ACME profile of every order (draft-ietf-acme-profiles);
	// empty lets the CA choose.
	Profile string
	// PreferredChain selects an alternate chain by its top issuer's common name.
	PreferredChain string
	// HTTP01 and DNS01 are the challenge solvers; at least one is required.
	HTTP01 challenge.Provider
	DNS01  challenge.Provider
	// DNS01Resolvers, when set, are the nameservers lego uses for zone
	// lookups and propagation checks (process-global, see package doc).
	DNS01Resolvers []string
	// DNS01SkipPropagationCheck skips waiting for the TXT record to be
	// visible on the zone's authoritative servers (for private DNS the
	// machine cannot query, and in tests).
	DNS01SkipPropagationCheck bool
	// RootCAs trusts the ACME server's TLS certificate; nil means the system pool.
	RootCAs *x509.CertPool
	// HTTPClient replaces the default client (RootCAs is then ignored).
	HTTPClient *http.Client
	// OnRequest is told about every HTTP request to the CA.
	OnRequest issuer.RequestObserver
	// Logger receives this issuer's log lines; nil discards them.
	Logger *slog.Logger
	// UserAgent is added to lego's User-Agent.
	UserAgent string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// NewDefaultConfig returns defaults: Let's Encrypt production, no terms
// agreed (the spec must say so), no solver.
func NewDefaultConfig() *Config {
	return &Config{DirectoryURL: lego.DirectoryURLLetsEncrypt, Now: time.Now}
}

// Issuer obtains certificates from one ACME account.
type Issuer struct {
	cfg Config
	log *slog.Logger

	mu     sync.Mutex
	client *lego.Client
	// core and prober serve Resume: lego's client keeps its own core
	// private, and orders are fetched by URL only through one.
	core   *api.Core
	prober *resolver.Prober
}

// New validates cfg eagerly; the account is loaded or registered on the
// first Sign.
func New(cfg *Config) (*Issuer, error) {
	if cfg == nil {
		return nil, errors.New("acme: nil config")
	}
	c := *cfg
	var errs []error
	if u, err := url.Parse(c.DirectoryURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		errs = append(errs, fmt.Errorf("acme: directory URL %q is not an http(s) URL", c.DirectoryURL))
	}
	if c.AccountStore == nil {
		errs = append(errs, errors.New("acme: no account store"))
	}
	if c.HTTP01 == nil && c.DNS01 == nil {
		errs = append(errs, errors.New("acme: no challenge solver: configure http01 or dns01"))
	}
	if c.EAB != nil && (c.EAB.KeyID == "" || c.EAB.HMACKey == "") {
		errs = append(errs, errors.New("acme: external account binding needs keyID and hmacKey"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	l := c.Logger
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return &Issuer{cfg: c, log: l}, nil
}

type user struct {
	email string
	key   crypto.Signer
	reg   *legoacme.ExtendedAccount
}

func (u *user) GetEmail() string                           { return u.email }
func (u *user) GetRegistration() *legoacme.ExtendedAccount { return u.reg }
func (u *user) GetPrivateKey() crypto.Signer               { return u.key }

// lazyClient loads or creates the account key, registers, and caches the
// client. A failure is not cached: the next Sign tries again.
func (i *Issuer) lazyClient(ctx context.Context) (*lego.Client, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.client != nil {
		return i.client, nil
	}
	key, err := i.accountKey(ctx)
	if err != nil {
		return nil, err
	}
	u := &user{email: i.cfg.Email, key: key}
	lc := lego.NewConfig(u)
	lc.CADirURL = i.cfg.DirectoryURL
	lc.UserAgent = i.cfg.UserAgent
	lc.HTTPClient = i.httpClient()
	// The reconciler applies its own deadline through ctx; lego's own
	// per-order timeout only has to outlast challenge polling.
	lc.Certificate.Timeout = 2 * time.Minute
	client, err := lego.NewClient(lc)
	if err != nil {
		return nil, classify(fmt.Errorf("acme: directory %s: %w", i.cfg.DirectoryURL, err))
	}
	if err := i.setSolvers(client.Challenge); err != nil {
		return nil, err
	}
	var reg *legoacme.ExtendedAccount
	if i.cfg.EAB != nil {
		reg, err = client.Registration.RegisterWithExternalAccountBinding(ctx, registrationEAB(i.cfg))
	} else {
		reg, err = client.Registration.Register(ctx, registrationOpts(i.cfg))
	}
	if err != nil {
		return nil, classify(fmt.Errorf("acme: register account: %w", err))
	}
	u.reg = reg
	core, err := api.New(lc.HTTPClient, lc.UserAgent, i.cfg.DirectoryURL, reg.Location, key)
	if err != nil {
		return nil, classify(fmt.Errorf("acme: directory %s: %w", i.cfg.DirectoryURL, err))
	}
	solvers := resolver.NewSolversManager(core)
	if err := i.setSolvers(solvers); err != nil {
		return nil, err
	}
	i.log.Info("acme account ready", "server", i.cfg.DirectoryURL)
	i.client, i.core, i.prober = client, core, resolver.NewProber(solvers)
	return client, nil
}

// setSolvers installs the configured challenge solvers on m.
func (i *Issuer) setSolvers(m *resolver.SolverManager) error {
	if i.cfg.HTTP01 != nil {
		if err := m.SetHTTP01Provider(i.cfg.HTTP01); err != nil {
			return issuer.Permanent(fmt.Errorf("acme: http-01: %w", err))
		}
	}
	if i.cfg.DNS01 != nil {
		if len(i.cfg.DNS01Resolvers) > 0 {
			dns01.SetDefaultClient(dns01.NewClient(&dns01.Options{RecursiveNameservers: i.cfg.DNS01Resolvers, Timeout: 10 * time.Second}))
		}
		opts := []dns01.ChallengeOption{}
		if i.cfg.DNS01SkipPropagationCheck {
			opts = append(opts, dns01.PropagationWait(0, true))
		}
		if err := m.SetDNS01Provider(i.cfg.DNS01, opts...); err != nil {
			return issuer.Permanent(fmt.Errorf("acme: dns-01: %w", err))
		}
	}
	return nil
}

func (i *Issuer) accountKey(ctx context.Context) (crypto.Signer, error) {
	p, err := i.cfg.AccountStore.Load(ctx)
	switch {
	case err == nil:
		k, err := issuer.ParsePrivateKeyPEM(p)
		if err != nil {
			return nil, issuer.Permanent(fmt.Errorf("acme: stored account key: %w", err))
		}
		return k, nil
	case errors.Is(err, fs.ErrNotExist):
	default:
		return nil, fmt.Errorf("acme: load account key: %w", err)
	}
	// P-256: what lego, certbot and cert-manager use for new accounts; every
	// ACME CA accepts ES256.
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("acme: generate account key: %w", err)
	}
	p, err = issuer.EncodePrivateKey(k, issuer.PKCS8)
	if err != nil {
		return nil, err
	}
	if err := i.cfg.AccountStore.Save(ctx, p); err != nil {
		return nil, fmt.Errorf("acme: save account key: %w", err)
	}
	i.log.Info("acme account key generated", "server", i.cfg.DirectoryURL)
	return k, nil
}

func (i *Issuer) httpClient() *http.Client {
	if i.cfg.HTTPClient != nil {
		c := *i.cfg.HTTPClient
		c.Transport = orderTransport{issuer.ObserveTransport(c.Transport, i.cfg.OnRequest)}
		return &c
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{RootCAs: i.cfg.RootCAs, MinVersion: tls.VersionTLS12}
	return &http.Client{Timeout: 2 * time.Minute, Transport: orderTransport{issuer.ObserveTransport(t, i.cfg.OnRequest)}}
}

// Sign obtains a certificate for req's CSR. req.Duration is not sent: the
// profile decides the lifetime (Let's Encrypt ignores notAfter).
func (i *Issuer) Sign(ctx context.Context, req *issuer.Request) (*issuer.Result, error) {
	if err := issuer.ContextErr(ctx, "acme: sign "+req.Name); err != nil {
		return nil, err
	}
	// RFC 8555 identifiers are DNS names (and RFC 8738 IP addresses): an
	// otherName cannot be validated, so refuse before registering or
	// ordering anything.
	if o, err := req.OtherNames(); err != nil {
		return nil, issuer.Permanent(fmt.Errorf("acme: %s: %w", req.Name, err))
	} else if len(o) > 0 {
		return nil, issuer.Permanent(fmt.Errorf("acme: %s: ACME cannot carry otherName SANs (spec.otherNames); use another issuer", req.Name))
	}
	client, err := i.lazyClient(ctx)
	if err != nil {
		return nil, err
	}
	// Registration is done: from here on, the only POST the CA answers
	// with 201 Created is the new order (RFC 8555 section 7.4).
	ctx = i.watchOrders(ctx, req.OnOrder)
	or := certificate.ObtainForCSRRequest{
		CSR: req.CSR, Bundle: true, Profile: i.cfg.Profile, PreferredChain: i.cfg.PreferredChain,
	}
	if req.Replaces != nil {
		id, err := api.MakeARICertID(req.Replaces)
		if err != nil {
			i.log.Warn("acme: no ARI identifier for the replaced certificate", "cert", req.Name, "reason", err.Error())
		} else {
			or.ReplacesCertID = id
		}
	}
	res, err := client.Certificate.ObtainForCSR(ctx, or)
	var already *legoacme.AlreadyReplacedError
	if or.ReplacesCertID != "" && errors.As(err, &already) {
		// The previous certificate was already replaced by an order whose
		// result certops never stored (a crash between issuance and
		// commit); order again without `replaces`.
		i.log.Warn("acme: certificate already replaced; ordering without replaces", "cert", req.Name)
		or.ReplacesCertID = ""
		res, err = client.Certificate.ObtainForCSR(ctx, or)
	}
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return nil, issuer.Transient(fmt.Errorf("acme: %s: %w (%w)", req.Name, cerr, err))
		}
		return nil, classify(fmt.Errorf("acme: %s: %w", req.Name, err))
	}
	return i.result(ctx, client, req, res.Certificate)
}

// result checks the chain the CA sent and adds the ARI renewal hint.
func (i *Issuer) result(ctx context.Context, client *lego.Client, req *issuer.Request, chainPEM []byte) (*issuer.Result, error) {
	out, err := issuer.NewResult(chainPEM, nil)
	if err != nil {
		return nil, issuer.Transient(fmt.Errorf("acme: %s: certificate from the CA: %w", req.Name, err))
	}
	if !issuer.SamePublicKey(out.Leaf().PublicKey, req.CSR.PublicKey) {
		return nil, issuer.Permanent(fmt.Errorf("acme: %s: the CA returned a certificate for another key", req.Name))
	}
	out.RenewalHint = i.renewalHint(ctx, client, req.Name, out.Leaf())
	return out, nil
}

// renewalHint asks for the ARI window. A CA without ARI, or an ARI error,
// only costs the hint, never the certificate.
func (i *Issuer) renewalHint(ctx context.Context, client *lego.Client, name string, leaf *x509.Certificate) *issuer.Window {
	ri, err := client.Certificate.GetRenewalInfo(ctx, leaf)
	if err != nil {
		if !errors.Is(err, api.ErrNoARI) {
			i.log.Warn("acme: renewal info unavailable", "cert", name, "reason", err.Error())
		}
		return nil
	}
	return &issuer.Window{Start: ri.SuggestedWindow.Start, End: ri.SuggestedWindow.End, ExplanationURL: ri.ExplanationURL}
}

// RenewalWindow asks the CA for its current suggested renewal window of
// cert (RFC 9773), for the reconciler's periodic re-check. It returns nil
// without error when the CA has no ARI.
func (i *Issuer) RenewalWindow(ctx context.Context, cert *x509.Certificate) (*issuer.Window, error) {
	client, err := i.lazyClient(ctx)
	if err != nil {
		return nil, err
	}
	ri, err := client.Certificate.GetRenewalInfo(ctx, cert)
	if errors.Is(err, api.ErrNoARI) {
		return nil, nil
	}
	if err != nil {
		return nil, classify(fmt.Errorf("acme: renewal info: %w", err))
	}
	return &issuer.Window{Start: ri.SuggestedWindow.Start, End: ri.SuggestedWindow.End, ExplanationURL: ri.ExplanationURL}, nil
}
