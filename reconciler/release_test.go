package reconciler

import (
	"testing"

	"certops.dev/certops/spec"
)

// TestReleaseDropsKeysNoClusterReceives: once committed, certificates that
// go to no cluster are forgotten, key material and all; those the apply
// step sends, and CAs, which may still sign in this pass, are kept.
func TestReleaseDropsKeysNoClusterReceives(t *testing.T) {
	cert := func(name string, targets []spec.Target) *spec.Certificate {
		c := &spec.Certificate{}
		c.Metadata.Name, c.Metadata.Namespace = name, "prod"
		c.Spec.SecretName, c.Spec.Targets = name+"-tls", targets
		return c
	}
	keys := func() *issued {
		return &issued{chainPEM: []byte("chain"), keyPEM: []byte("key"), caPEM: []byte("ca")}
	}
	p := &pass{repo: &spec.Repository{}, issued: map[string]*issued{}}
	p.repo.Config.Spec.Clusters = []spec.Cluster{{Name: "main", Default: true}, {Name: "edge"}}
	certs := map[string]*spec.Certificate{
		"git-only": cert("git-only", []spec.Target{}),              // an explicit empty list: Git only
		"default":  cert("default", nil),                           // the default cluster
		"edge":     cert("edge", []spec.Target{{Cluster: "edge"}}), // a named cluster
		"unpushed": cert("unpushed", []spec.Target{}),              // not in this batch
		"ca":       cert("ca", []spec.Target{}),                    // Git only, but a CA
	}
	certs["ca"].Spec.IsCA = true
	for name, c := range certs {
		it := keys()
		it.cert = c
		p.issued[name] = it
	}
	p.release([]string{"git-only", "default", "edge", "ca"})
	for name, kept := range map[string]bool{"git-only": false, "default": true, "edge": true, "unpushed": true, "ca": true} {
		it := p.issued[name]
		if got := it != nil; got != kept {
			t.Errorf("%s: kept %v, want %v", name, got, kept)
			continue
		}
		if kept && (it.keyPEM == nil || it.chainPEM == nil || it.caPEM == nil) {
			t.Errorf("%s: kept without its key material", name)
		}
	}

	// With no default cluster, a certificate without targets goes nowhere.
	p.repo.Config.Spec.Clusters = nil
	p.release([]string{"default"})
	if p.issued["default"] != nil {
		t.Error("default: kept with no default cluster")
	}
}
