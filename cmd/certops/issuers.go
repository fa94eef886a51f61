package main

import (
	"context"
	"maps"
	"slices"

	"certops.dev/certops/reconciler"
	"certops.dev/certops/reconciler/issuer"
	"certops.dev/certops/reconciler/issuer/ca"
	issuerexec "certops.dev/certops/reconciler/issuer/exec"
	"certops.dev/certops/reconciler/issuer/selfsigned"
	"certops.dev/certops/spec"
)

// issuerFactories wires the concrete backends: one line per issuer type.
// Each maps its spec block onto the backend's Config.
func issuerFactories() map[string]reconciler.IssuerFactory {
	return map[string]reconciler.IssuerFactory{
		"selfSigned": newSelfSigned,
		"ca":         newCA,
		"exec":       newExec,
		"acme":       newACME,
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

func newExec(_ context.Context, iss *spec.Issuer, _ reconciler.IssuerEnv) (issuer.Issuer, error) {
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
