package reconciler

import (
	"testing"

	"certops.dev/certops/spec"
)

// TestReleaseDropsKeysNoClusterReceives: once committed, the keys of
// certificates that go to no cluster are dropped; those the apply step
// sends keep theirs.
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
	}
	for name, c := range certs {
		it := keys()
		it.cert = c
		p.issued[name] = it
	}
	p.release([]string{"git-only", "default", "edge"})
	for name, kept := range map[string]bool{"git-only": false, "default": true, "edge": true, "unpushed": true} {
		it := p.issued[name]
		if got := it.keyPEM != nil && it.chainPEM != nil && it.caPEM != nil; got != kept {
			t.Errorf("%s: key material kept %v, want %v", name, got, kept)
		}
		if !kept && (it.keyPEM != nil || it.chainPEM != nil || it.caPEM != nil) {
			t.Errorf("%s: some key material kept", name)
		}
	}

	// With no default cluster, a certificate without targets goes nowhere.
	p.repo.Config.Spec.Clusters = nil
	p.issued["default"] = keys()
	p.issued["default"].cert = certs["default"]
	p.release([]string{"default"})
	if p.issued["default"].keyPEM != nil {
		t.Error("default: kept with no default cluster")
	}
}
