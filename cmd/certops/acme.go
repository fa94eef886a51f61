package main

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strings"
	"sync"

	"github.com/go-acme/lego/v5/challenge"
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/yaml"

	"certops.dev/certops/reconciler"
	"certops.dev/certops/reconciler/issuer"
	"certops.dev/certops/reconciler/issuer/acme"
	"certops.dev/certops/reconciler/issuer/acme/dnsproviders"
	"certops.dev/certops/spec"
)

// http01 is the process' HTTP-01 challenge listener, shared by every ACME
// issuer; run mounts it at /.well-known/acme-challenge/.
var http01 = acme.NewHTTP01Handler()

// caRequests counts every HTTP request sent to a CA, for the metric
// certops_ca_requests_total.
var caRequests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "certops_ca_requests_total",
	Help: "HTTP requests sent to certificate authorities, by issuer, method and status."},
	[]string{"issuer_name", "method", "status"})

// envMu serialises provider construction: lego's DNS providers read their
// settings from the environment, which the spec's settings extend.
var envMu sync.Mutex

func newACME(_ context.Context, iss *spec.Issuer, env reconciler.IssuerEnv) (issuer.Issuer, error) {
	a := iss.Spec.ACME
	cfg := acme.NewDefaultConfig()
	cfg.DirectoryURL = a.Server
	cfg.Email = a.Email
	// Creating the issuer in the repository is the account holder's
	// agreement, as with cert-manager's ACME issuer.
	cfg.TermsOfServiceAgreed = true
	cfg.Profile = a.Profile
	cfg.PreferredChain = a.PreferredChain
	cfg.Logger = env.Logger
	name := iss.Metadata.Name
	cfg.OnRequest = func(method string, status int) {
		caRequests.WithLabelValues(name, method, fmt.Sprint(status)).Inc()
	}
	if a.CABundle != "" {
		pem, err := base64.StdEncoding.DecodeString(a.CABundle)
		if err != nil {
			return nil, issuer.Permanent(fmt.Errorf("spec.acme.caBundle is not base64: %w", err))
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, issuer.Permanent(errors.New("spec.acme.caBundle holds no certificate"))
		}
		cfg.RootCAs = pool
	}
	if eab := a.ExternalAccountBinding; eab != nil {
		key, err := readCredential(eab.KeyFile, eab.KeyEnv)
		if err != nil {
			return nil, issuer.Permanent(fmt.Errorf("external account binding key: %w", err))
		}
		cfg.EAB = &acme.ExternalAccountBinding{KeyID: eab.KeyID, HMACKey: key}
	}
	for _, s := range a.Solvers {
		switch {
		case s.DNS01 != nil && cfg.DNS01 == nil:
			p, err := dnsProvider(s.DNS01)
			if err != nil {
				return nil, issuer.Permanent(err)
			}
			cfg.DNS01 = p
			cfg.DNS01Resolvers = s.DNS01.Nameservers
			cfg.DNS01SkipPropagationCheck = s.DNS01.DisablePropagationCheck
		case s.HTTP01 != nil && cfg.HTTP01 == nil:
			cfg.HTTP01 = http01
		}
	}
	secretName := name + "-acme-account"
	if a.PrivateKeySecretRef != nil && a.PrivateKeySecretRef.Name != "" {
		secretName = a.PrivateKeySecretRef.Name
	}
	host := "server"
	if u, err := url.Parse(a.Server); err == nil && u.Hostname() != "" {
		host = u.Hostname()
	}
	cfg.AccountStore = &accountStore{env: env, path: spec.DefaultOutputDir + "/.acme/" + name + "-" + host + ".yaml", name: secretName}
	return acme.New(cfg)
}

// dnsProvider builds the lego provider a dns01 block names, with the block's
// non-secret settings as the provider's environment variables.
func dnsProvider(d *spec.DNS01Solver) (challenge.Provider, error) {
	name := d.ProviderName()
	settings := map[string]string{}
	for k, v := range d.Settings {
		settings[k] = v
	}
	if r := d.RFC2136; r != nil {
		settings["NAMESERVER"] = r.Nameserver
		if r.TSIGKeyName != "" {
			settings["TSIG_KEY"] = r.TSIGKeyName
		}
		if r.TSIGAlgorithm != "" {
			settings["TSIG_ALGORITHM"] = strings.ToLower(r.TSIGAlgorithm) + "."
		}
	}
	prefix := strings.ToUpper(strings.ReplaceAll(name, "-", "_")) + "_"
	envMu.Lock()
	defer envMu.Unlock()
	for k, v := range settings {
		key := prefix + strings.TrimPrefix(strings.ToUpper(k), prefix)
		if _, set := os.LookupEnv(key); !set { // the daemon's environment wins
			os.Setenv(key, v)
			defer os.Unsetenv(key)
		}
	}
	return dnsproviders.New(name)
}

func readCredential(file, env string) (string, error) {
	switch {
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", err
		}
		return strings.TrimSpace(string(b)), nil
	case env != "" && os.Getenv(env) != "":
		return os.Getenv(env), nil
	}
	return "", errors.New("set keyFile or keyEnv to where the daemon can read it")
}

// accountStore keeps an ACME account key as a SOPS-encrypted Secret in the
// repository, committed with the pass that registered it.
type accountStore struct {
	env  reconciler.IssuerEnv
	path string
	name string
}

func (s *accountStore) Load(context.Context) ([]byte, error) {
	data, err := s.env.ReadSecret(s.path)
	if err != nil {
		return nil, err
	}
	if len(data["tls.key"]) == 0 {
		return nil, fmt.Errorf("%s holds no tls.key: %w", s.path, fs.ErrNotExist)
	}
	return data["tls.key"], nil
}

func (s *accountStore) Save(_ context.Context, keyPEM []byte) error {
	m := map[string]any{
		"apiVersion": "v1", "kind": "Secret",
		"metadata": map[string]any{"name": s.name, "namespace": "certops-system",
			"labels": map[string]string{spec.LabelManagedBy: spec.LabelManagedByValue}},
		"type":       "Opaque",
		"stringData": map[string]string{"tls.key": string(keyPEM)},
	}
	b, err := yaml.Marshal(m)
	if err != nil {
		return err
	}
	return s.env.WriteSecret(s.path, b)
}
