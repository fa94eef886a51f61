package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"maps"
	"slices"
	"strings"

	"certops.dev/certops/reconciler"
	"certops.dev/certops/reconciler/issuer"
	"certops.dev/certops/reconciler/issuer/ca"
	issuerexec "certops.dev/certops/reconciler/issuer/exec"
	"certops.dev/certops/reconciler/issuer/selfsigned"
	"certops.dev/certops/reconciler/issuer/vault"
	"certops.dev/certops/spec"
)

// issuerFactories wires the concrete backends: one line per issuer type.
// Each maps its spec block onto the backend's Config. allowExec lists the
// commands exec issuers may run on this host (--allow-exec).
func issuerFactories(allowExec []string) map[string]reconciler.IssuerFactory {
	return map[string]reconciler.IssuerFactory{
		"selfSigned": newSelfSigned,
		"ca":         newCA,
		"exec": func(ctx context.Context, iss *spec.Issuer, env reconciler.IssuerEnv) (issuer.Issuer, error) {
			return newExec(ctx, iss, env, allowExec)
		},
		"acme":  newACME,
		"vault": newVault,
	}
}

func newSelfSigned(_ context.Context, iss *spec.Issuer, _ reconciler.IssuerEnv) (issuer.Issuer, error) {
	cfg := selfsigned.NewDefaultConfig()
	cfg.CRLDistributionPoints = iss.Spec.SelfSigned.CRLDistributionPoints
	return selfsigned.New(cfg)
}

func newCA(_ context.Context, iss *spec.Issuer, env reconciler.IssuerEnv) (issuer.Issuer, error) {
	cfg := ca.NewDefaultConfig()
	cfg.Certificate = env.CA.Chain[0]
	cfg.Chain = env.CA.Chain[1:]
	cfg.Key = env.CA.Key
	cfg.CRLDistributionPoints = iss.Spec.CA.CRLDistributionPoints
	cfg.OCSPServers = iss.Spec.CA.OCSPServers
	cfg.IssuingCertificateURLs = iss.Spec.CA.IssuingCertificateURLs
	return ca.New(cfg)
}

// newExec builds an exec issuer whose command the daemon's operator allowed.
// The repository alone cannot grant that: anyone who can commit an Issuer
// would otherwise run programs on the daemon's host.
func newExec(_ context.Context, iss *spec.Issuer, _ reconciler.IssuerEnv, allowExec []string) (issuer.Issuer, error) {
	if len(iss.Spec.Exec.Command) == 0 || !slices.Contains(allowExec, iss.Spec.Exec.Command[0]) {
		cmd := ""
		if len(iss.Spec.Exec.Command) > 0 {
			cmd = iss.Spec.Exec.Command[0]
		}
		return nil, issuer.Permanent(fmt.Errorf("%s:%d: spec.exec.command: %q is not allowed on this daemon: its operator allows a command with --allow-exec",
			iss.Source.File, iss.Source.Line, cmd))
	}
	cfg := issuerexec.NewDefaultConfig()
	cfg.Command = iss.Spec.Exec.Command
	if iss.Spec.Exec.Timeout != nil {
		cfg.Timeout = iss.Spec.Exec.Timeout.Duration
	}
	for _, k := range slices.Sorted(maps.Keys(iss.Spec.Exec.Env)) {
		cfg.Env = append(cfg.Env, k+"="+iss.Spec.Exec.Env[k])
	}
	return issuerexec.New(cfg)
}

func newVault(_ context.Context, iss *spec.Issuer, _ reconciler.IssuerEnv) (issuer.Issuer, error) {
	v := iss.Spec.Vault
	cfg := vault.NewDefaultConfig()
	cfg.Address, cfg.Path, cfg.Namespace = v.Server, v.Path, v.Namespace
	if v.CABundle != "" {
		pem, err := base64.StdEncoding.DecodeString(v.CABundle)
		if err != nil {
			return nil, issuer.Permanent(fmt.Errorf("spec.vault.caBundle is not base64: %w", err))
		}
		cfg.CABundle = pem
	}
	name := iss.Metadata.Name
	cfg.OnRequest = func(method string, status int) {
		caRequests.WithLabelValues(name, method, fmt.Sprint(status)).Inc()
	}
	switch a := v.Auth; {
	case a.Token != nil:
		tok, err := readCredential(a.Token.File, a.Token.Env)
		if err != nil {
			return nil, issuer.Permanent(fmt.Errorf("vault token: %w", err))
		}
		cfg.Token = tok
	case a.AppRole != nil:
		secret, err := readCredential(a.AppRole.SecretIDFile, a.AppRole.SecretIDEnv)
		if err != nil {
			return nil, issuer.Permanent(fmt.Errorf("vault AppRole secret ID: %w", err))
		}
		cfg.AppRole = &vault.AppRole{Mount: a.AppRole.Path, RoleID: a.AppRole.RoleID, SecretID: secret}
	case a.Kubernetes != nil:
		// An empty TokenFile is the pod's own token (vault.TokenPath), read
		// again at every login.
		cfg.Kubernetes = &vault.Kubernetes{Mount: strings.TrimPrefix(strings.TrimPrefix(a.Kubernetes.MountPath, "/v1/auth/"), "/"),
			Role: a.Kubernetes.Role, TokenFile: a.Kubernetes.TokenFile}
	}
	return vault.New(cfg)
}
