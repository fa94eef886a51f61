package sops

import (
	"crypto/rand"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	gosops "github.com/getsops/sops/v3"
	"github.com/getsops/sops/v3/aes"
)

// walkTrees are documents of certops' layout, with "data" and "stringData"
// at the top and deeper (sops encrypts any value with such an element in
// its path), lists, nulls and non-string scalars.
func walkTrees() []gosops.TreeBranch {
	return []gosops.TreeBranch{
		{
			{Key: "apiVersion", Value: "v1"},
			{Key: "kind", Value: "Secret"},
			{Key: "metadata", Value: gosops.TreeBranch{
				{Key: "name", Value: "web"},
				{Key: "annotations", Value: gosops.TreeBranch{{Key: "a", Value: "1"}, {Key: "data", Value: "hidden"}, {Key: "n", Value: nil}}},
				{Key: "labels", Value: gosops.TreeBranch{{Key: "stringData", Value: gosops.TreeBranch{{Key: "x", Value: "y"}}}}},
			}},
			{Key: "type", Value: "kubernetes.io/tls"},
			{Key: "stringData", Value: gosops.TreeBranch{{Key: "tls.crt", Value: "-----BEGIN CERTIFICATE-----\nMII\n"}, {Key: "tls.key", Value: "k"}}},
		},
		{
			{Key: "data", Value: gosops.TreeBranch{{Key: "a", Value: "YQ=="}, {Key: "list", Value: []any{"x", 3, true, 1.5, nil, gosops.TreeBranch{{Key: "k", Value: "v"}}}}}},
			{Key: "other", Value: []any{"p", 7, false, time.Date(2026, 12, 6, 5, 0, 0, 0, time.UTC), []byte("raw")}},
			{Key: "empty", Value: gosops.TreeBranch{}},
			{Key: "immutable", Value: true},
		},
	}
}

// TestWalkIsSopsWalk: encryptValues and decryptValues encrypt the same
// values as sops' Tree.Encrypt and Tree.Decrypt with SecretEncryptedRegex,
// with the same additional data, and compute the same MAC.
func TestWalkIsSopsWalk(t *testing.T) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	cipher := aes.NewCipher()
	md := gosops.Metadata{EncryptedRegex: SecretEncryptedRegex}
	for i := range walkTrees() {
		ours := gosops.Tree{Branches: gosops.TreeBranches{walkTrees()[i]}, Metadata: md}
		theirs := gosops.Tree{Branches: gosops.TreeBranches{walkTrees()[i]}, Metadata: md}
		if !ownLayout(&ours) {
			t.Fatalf("tree %d: not taken for certops' layout", i)
		}
		macOurs, err := encryptValues(&ours, key, cipher)
		if err != nil {
			t.Fatal(err)
		}
		macTheirs, err := theirs.Encrypt(key, cipher)
		if err != nil {
			t.Fatal(err)
		}
		if macOurs != macTheirs {
			t.Fatalf("tree %d: MAC %s, sops %s", i, macOurs, macTheirs)
		}
		if got, want := encryptedPaths(ours.Branches[0], ""), encryptedPaths(theirs.Branches[0], ""); !reflect.DeepEqual(got, want) {
			t.Fatalf("tree %d: encrypted %v, sops %v", i, got, want)
		}
		if want := []string{"metadata:annotations:data:", "data:a:"}[i]; !slices.Contains(encryptedPaths(ours.Branches[0], ""), want) {
			t.Fatalf("tree %d: %s not encrypted", i, want)
		}

		// Each decrypts what the other encrypted (the IVs differ, so they
		// are compared decrypted), to the same values and MAC.
		for _, enc := range []gosops.Tree{ours, theirs} {
			a := gosops.Tree{Branches: gosops.TreeBranches{copyBranch(enc.Branches[0])}, Metadata: md}
			b := gosops.Tree{Branches: gosops.TreeBranches{copyBranch(enc.Branches[0])}, Metadata: md}
			macA, err := decryptValues(&a, key, cipher)
			if err != nil {
				t.Fatal(err)
			}
			macB, err := b.Decrypt(key, cipher)
			if err != nil {
				t.Fatal(err)
			}
			if macA != macTheirs || macB != macTheirs {
				t.Fatalf("tree %d: decrypted MACs %s and %s, want %s", i, macA, macB, macTheirs)
			}
			if !reflect.DeepEqual(a.Branches, b.Branches) {
				t.Fatalf("tree %d: decrypted\n%v\nsops\n%v", i, a.Branches, b.Branches)
			}
		}
	}

	// A value moved to another path does not decrypt: the path is the
	// additional data.
	tree := gosops.Tree{Branches: gosops.TreeBranches{walkTrees()[0]}, Metadata: md}
	if _, err := encryptValues(&tree, key, cipher); err != nil {
		t.Fatal(err)
	}
	sd := tree.Branches[0][4].Value.(gosops.TreeBranch)
	sd[0].Value, sd[1].Value = sd[1].Value, sd[0].Value
	if _, err := decryptValues(&tree, key, cipher); err == nil {
		t.Fatal("swapped values decrypted")
	}
}

// Files outside certops' layout go to sops itself.
func TestWalkLeavesOtherLayoutsToSops(t *testing.T) {
	for _, tree := range []gosops.Tree{
		{Metadata: gosops.Metadata{EncryptedRegex: "^data$"}},
		{Metadata: gosops.Metadata{EncryptedRegex: SecretEncryptedRegex, MACOnlyEncrypted: true}},
		{Metadata: gosops.Metadata{UnencryptedSuffix: "_unencrypted"}},
		{Metadata: gosops.Metadata{EncryptedRegex: SecretEncryptedRegex}, Branches: gosops.TreeBranches{{{Key: gosops.Comment{Value: "c"}}}}},
	} {
		if ownLayout(&tree) {
			t.Errorf("%+v taken for certops' layout", tree.Metadata)
		}
	}
}

func encryptedPaths(b gosops.TreeBranch, prefix string) []string {
	var out []string
	var walk func(v any, p string)
	walk = func(v any, p string) {
		switch v := v.(type) {
		case gosops.TreeBranch:
			for _, it := range v {
				walk(it.Value, p+it.Key.(string)+":")
			}
		case []any:
			for _, x := range v {
				walk(x, p)
			}
		case string:
			if strings.HasPrefix(v, "ENC[AES256_GCM,") {
				out = append(out, p)
			}
		}
	}
	walk(b, prefix)
	return out
}

func copyBranch(b gosops.TreeBranch) gosops.TreeBranch {
	out := make(gosops.TreeBranch, len(b))
	for i, it := range b {
		out[i] = gosops.TreeItem{Key: it.Key, Value: copyValue(it.Value)}
	}
	return out
}

func copyValue(v any) any {
	switch v := v.(type) {
	case gosops.TreeBranch:
		return copyBranch(v)
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = copyValue(x)
		}
		return out
	}
	return v
}
