package sops

import (
	"errors"
	"testing"

	"filippo.io/age"
)

// A file that verifies but holds something other than a v1 Secret (which
// any recipient could write) never comes out of Decrypt.
func TestDecryptRefusesVerifiedNonSecret(t *testing.T) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	r := Recipient{Kind: KindAge, ID: id.Recipient().String()}
	trust, err := NewTrust([]string{r.ID}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(Options{Trust: trust, Identities: Identities{id}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, doc string }{
		{"cluster role binding", "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: x\n"},
		{"secret with an extra field", "apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\nspec:\n  a: b\n"},
		{"two documents", "apiVersion: v1\nkind: Secret\n---\napiVersion: v1\nkind: Secret\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			branches, err := newStore().LoadPlainFile([]byte(tt.doc))
			if err != nil {
				t.Fatal(err)
			}
			enc, err := c.encryptBranches(Rule{Groups: [][]Recipient{{r}}}, branches)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Decrypt("secrets/x.yaml", enc); !errors.Is(err, ErrMalformed) {
				t.Errorf("got %v, want ErrMalformed", err)
			}
		})
	}
}
