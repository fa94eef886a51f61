package sops_test

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"filippo.io/age"
	"filippo.io/age/armor"
	"github.com/ProtonMail/go-crypto/openpgp"
	pgparmor "github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"go.yaml.in/yaml/v3"

	"certops.dev/certops/sops"
)

// pgpKey is a throwaway OpenPGP key made for one test.
type pgpKey struct {
	entity *openpgp.Entity
	public []byte // armored public key
	fp     string
}

func newPGPKey(t testing.TB) pgpKey {
	t.Helper()
	// RSA 2048: what every gpg release imports.
	e, err := openpgp.NewEntity("certops test", "test only", "test@example.test",
		&packet.Config{Algorithm: packet.PubKeyAlgoRSA, RSABits: 2048})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	w, err := pgparmor.Encode(&b, openpgp.PublicKeyType, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Serialize(w); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	k, err := sops.ParsePGPPublicKey(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return pgpKey{entity: e, public: b.Bytes(), fp: k.Recipient.ID}
}

// sopsKeys reads the encrypted data keys of a file's sops block.
type sopsKeys struct {
	Sops struct {
		Age []struct {
			Recipient string `yaml:"recipient"`
			Enc       string `yaml:"enc"`
		} `yaml:"age"`
		PGP []struct {
			FP  string `yaml:"fp"`
			Enc string `yaml:"enc"`
		} `yaml:"pgp"`
	} `yaml:"sops"`
}

func TestPGPRecipient(t *testing.T) {
	a := newAgeKey(t)
	p := newPGPKey(t)
	pk, err := sops.ParsePGPPublicKey(p.public)
	if err != nil {
		t.Fatal(err)
	}
	trust, err := sops.NewTrust([]string{a.recipient}, []sops.PGPKey{pk})
	if err != nil {
		t.Fatal(err)
	}
	c, err := sops.New(sops.Options{Trust: trust, Identities: sops.Identities{a.id}})
	if err != nil {
		t.Fatal(err)
	}
	rules := "creation_rules:\n  - age: " + a.recipient + "\n    pgp: " + strings.ToLower(p.fp) + "\n"
	enc, err := c.Encrypt(repoWith(map[string]string{".sops.yaml": rules}), "secrets/a.yaml", tlsSecret(t, "a"))
	if err != nil {
		t.Fatal(err)
	}
	var meta sopsKeys
	if err := yaml.Unmarshal(enc, &meta); err != nil {
		t.Fatal(err)
	}
	if len(meta.Sops.PGP) != 1 || meta.Sops.PGP[0].FP != p.fp || len(meta.Sops.Age) != 1 {
		t.Fatalf("sops keys: got %+v, want one age and one pgp (%s)", meta.Sops, p.fp)
	}

	// The PGP private key opens the same data key the age identity opens.
	blk, err := pgparmor.Decode(strings.NewReader(meta.Sops.PGP[0].Enc))
	if err != nil {
		t.Fatal(err)
	}
	md, err := openpgp.ReadMessage(blk.Body, openpgp.EntityList{p.entity}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	viaPGP, err := io.ReadAll(md.UnverifiedBody)
	if err != nil {
		t.Fatal(err)
	}
	r, err := age.Decrypt(armor.NewReader(strings.NewReader(meta.Sops.Age[0].Enc)), a.id)
	if err != nil {
		t.Fatal(err)
	}
	viaAge, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if len(viaPGP) != 32 || !bytes.Equal(viaPGP, viaAge) {
		t.Errorf("pgp data key (%d bytes) differs from the age data key (%d bytes)", len(viaPGP), len(viaAge))
	}

	// A fingerprint without a trusted public key is refused.
	other := newPGPKey(t)
	rules = "creation_rules:\n  - pgp: " + other.fp + "\n"
	if _, err := c.Encrypt(repoWith(map[string]string{".sops.yaml": rules}), "secrets/a.yaml", tlsSecret(t, "a")); err == nil ||
		!strings.Contains(err.Error(), other.fp) {
		t.Errorf("untrusted pgp key: got %v, want an error naming %s", err, other.fp)
	}

	if _, err := sops.ParsePGPPublicKey([]byte("not a key")); err == nil {
		t.Error("ParsePGPPublicKey accepted garbage")
	}
}
