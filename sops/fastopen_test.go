package sops

import (
	"bytes"
	cryptoaes "crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"testing/fstest"

	"filippo.io/age"
	"filippo.io/age/armor"
	gosops "github.com/getsops/sops/v3"
	"github.com/getsops/sops/v3/aes"
	sopsage "github.com/getsops/sops/v3/age"
	"github.com/getsops/sops/v3/stores"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// sameMetadataAsStore checks fastMetadata against stores.ExtractMetadata
// on what loadFast read from in: whatever fastMetadata takes, the store
// must read to the same tree and metadata. It reports whether it took it.
func sameMetadataAsStore(t testing.TB, in []byte) bool {
	t.Helper()
	branches, ok := loadFast(in)
	if !ok {
		return false
	}
	rest, md, ok := fastMetadata(branches)
	if !ok {
		return false
	}
	again, _ := loadFast(in)
	wantRest, wantMD, err := stores.ExtractMetadata(again, stores.MetadataOpts{Flatten: stores.MetadataFlattenNone})
	if err != nil {
		t.Fatalf("fastMetadata read what the store refuses (%v):\n%s", err, in)
	}
	if diff := cmp.Diff(wantRest, rest); diff != "" {
		t.Fatalf("tree without metadata differs from the store's (-store +fast):\n%s", diff)
	}
	if diff := cmp.Diff(wantMD, md, cmpopts.IgnoreUnexported(sopsage.MasterKey{})); diff != "" {
		t.Fatalf("metadata differs from the store's (-store +fast):\n%s\ninput:\n%s", diff, in)
	}
	return true
}

func newTestCodec(t *testing.T, ids ...*age.X25519Identity) *Codec {
	t.Helper()
	var rs []string
	var idents Identities
	for _, id := range ids {
		rs = append(rs, id.Recipient().String())
		idents = append(idents, id)
	}
	trust, err := NewTrust(rs, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(Options{Trust: trust, Identities: idents})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// encryptedSecret is certopsSecret encrypted by c to recipients.
func encryptedSecret(t *testing.T, c *Codec, recipients ...string) []byte {
	t.Helper()
	repo := fstest.MapFS{".sops.yaml": &fstest.MapFile{Data: []byte(
		"creation_rules:\n  - path_regex: ^secrets/.*\\.yaml$\n    encrypted_regex: ^(data|stringData)$\n    age: " + strings.Join(recipients, ",") + "\n")}}
	enc, err := c.Encrypt(repo, "secrets/web.yaml", []byte(certopsSecret))
	if err != nil {
		t.Fatal(err)
	}
	return enc
}

func TestFastMetadataIsStores(t *testing.T) {
	a, b := mustX25519(t), mustX25519(t)
	c := newTestCodec(t, a, b)
	one := encryptedSecret(t, c, a.Recipient().String())
	two := encryptedSecret(t, c, a.Recipient().String(), b.Recipient().String())
	for name, in := range map[string][]byte{"one recipient": one, "two recipients": two} {
		if !sameMetadataAsStore(t, in) {
			t.Errorf("%s: a file as certops writes it does not take the fast path", name)
		}
	}
	if data, err := c.DecryptData("secrets/web.yaml", two); err != nil || !strings.Contains(string(data["tls.crt"]), "placeholder") {
		t.Errorf("DecryptData = %q, %v", data["tls.crt"], err)
	}

	// Metadata certops does not write goes to the store.
	edits := map[string][2]string{
		"pgp keys":           {"  lastmodified:", "  pgp:\n    - fp: ABCD\n      enc: x\n  lastmodified:"},
		"key groups":         {"  lastmodified:", "  key_groups:\n    - age:\n        - recipient: r\n          enc: e\n  lastmodified:"},
		"shamir":             {"  lastmodified:", "  shamir_threshold: 2\n  lastmodified:"},
		"another selector":   {"  lastmodified:", "  unencrypted_suffix: _unencrypted\n  lastmodified:"},
		"no selector":        {"  encrypted_regex: ^(data|stringData)$\n", ""},
		"local time":         {"  lastmodified: \"", "  lastmodified: \"x"},
		"age entry key":      {"      recipient:", "      extra: x\n      recipient:"},
		"mac only encrypted": {"  lastmodified:", "  mac_only_encrypted: true\n  lastmodified:"},
	}
	for name, e := range edits {
		in := bytes.Replace(one, []byte(e[0]), []byte(e[1]), 1)
		if bytes.Equal(in, one) {
			t.Fatalf("%s: the edit changed nothing", name)
		}
		if sameMetadataAsStore(t, in) {
			t.Errorf("%s: taken by the fast path, want it left to the store", name)
		}
	}
}

// TestValueCipherIsSops: valueCipher decrypts what sops' cipher encrypts
// to the same values, and fails where sops fails.
func TestValueCipherIsSops(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	other := bytes.Repeat([]byte{8}, 32)
	ref := aes.NewCipher()
	vc := newValueCipher()
	values := []any{"", "x", "tls", strings.Repeat("-----BEGIN CERTIFICATE-----\n", 80), "ünï", 42, 1.5, true, gosops.Comment{Value: "c"}}
	for _, v := range values {
		enc, err := ref.Encrypt(v, key, "data:tls.crt:")
		if err != nil {
			t.Fatal(err)
		}
		want, wantErr := ref.Decrypt(enc, key, "data:tls.crt:")
		got, err := vc.Decrypt(enc, key, "data:tls.crt:")
		if err != nil || wantErr != nil || !cmp.Equal(want, got) {
			t.Errorf("%#v: got %#v, %v; sops %#v, %v", v, got, err, want, wantErr)
		}
		if _, err := vc.Decrypt(enc, key, "data:tls.key:"); enc != "" && err == nil {
			t.Errorf("%#v: opened with another path", v)
		}
		if _, err := vc.Decrypt(enc, other, "data:tls.crt:"); enc != "" && err == nil {
			t.Errorf("%#v: opened with another key", v)
		}
		if s, ok := v.(string); ok && s != "" {
			if got, ok := vc.decryptString(enc, key, "data:tls.crt:"); !ok || got != s {
				t.Errorf("%q: the fast path declined or misread it (%q, %v)", s, got, ok)
			}
			// Any one character changed in data, IV or tag: sops' error.
			for _, field := range []string{"data:", "iv:", "tag:"} {
				i := strings.Index(enc, field) + len(field)
				flip := "A"
				if enc[i] == 'A' {
					flip = "B"
				}
				bad := enc[:i] + flip + enc[i+1:]
				_, wantErr := ref.Decrypt(bad, key, "data:tls.crt:")
				if _, err := vc.Decrypt(bad, key, "data:tls.crt:"); err == nil || wantErr == nil {
					t.Errorf("%q with %s changed: %v (sops: %v); want an error", s, field, err, wantErr)
				}
			}
			// Not canonical base64 (a line break, which sops' decoder skips):
			// the same value through sops.
			i := strings.Index(enc, "data:") + len("data:") + 4
			wrapped := enc[:i] + "\n" + enc[i:]
			want, wantErr := ref.Decrypt(wrapped, key, "data:tls.crt:")
			if got, err := vc.Decrypt(wrapped, key, "data:tls.crt:"); !cmp.Equal(want, got) || (err == nil) != (wantErr == nil) {
				t.Errorf("%q wrapped: got %#v, %v; sops %#v, %v", s, got, err, want, wantErr)
			}
		}
	}
	// An empty data field, with the tag of an empty plaintext: sops'
	// expression wants data:(.+) and refuses it, and so must this.
	enc, err := ref.Encrypt("x", key, "a:")
	if err != nil {
		t.Fatal(err)
	}
	iv := enc[strings.Index(enc, ",iv:")+4 : strings.Index(enc, ",tag:")]
	ivBytes, err := base64.StdEncoding.DecodeString(iv)
	if err != nil {
		t.Fatal(err)
	}
	block, err := cryptoaes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	gcm, err := cipher.NewGCMWithNonceSize(block, len(ivBytes))
	if err != nil {
		t.Fatal(err)
	}
	tag := base64.StdEncoding.EncodeToString(gcm.Seal(nil, ivBytes, nil, []byte("a:")))
	empty := "ENC[AES256_GCM,data:,iv:" + iv + ",tag:" + tag + ",type:str]"
	if _, err := ref.Decrypt(empty, key, "a:"); err == nil {
		t.Fatalf("sops reads an empty data field; the test no longer shows anything")
	}
	if got, err := vc.Decrypt(empty, key, "a:"); err == nil {
		t.Errorf("empty data field read as %#v; want sops' error", got)
	}
}

// TestDearmorAgeIsArmor: what dearmorAge reads is what age's armor reader
// reads; what it declines, the armor reader still reads or refuses.
func TestDearmorAgeIsArmor(t *testing.T) {
	x := mustX25519(t)
	for _, n := range []int{0, 1, 32, 47, 48, 49, 200, 4096} {
		armored, bin := ageFile(t, bytes.Repeat([]byte{1}, n), x.Recipient())
		got, ok := dearmorAge(armored)
		if !ok || !bytes.Equal(got, bin) {
			t.Fatalf("%d bytes: dearmorAge ok %v, equal %v", n, ok, bytes.Equal(got, bin))
		}
		end, ok := ageHeaderEnd(bin)
		hdr, err := age.ExtractHeader(bytes.NewReader(bin))
		if !ok || err != nil || end != len(hdr) {
			t.Fatalf("%d bytes: header ends at %d (%v); age says %d (%v)", n, end, ok, len(hdr), err)
		}
		lines := strings.Split(armored, "\n")
		// A carriage return before the body, the lines wrapped again at 64
		// columns: age, decoding line by line, refuses it.
		body := "\r" + strings.Join(lines[1:len(lines)-2], "")
		var rewrapped []string
		for len(body) > 64 {
			rewrapped = append(rewrapped, body[:64])
			body = body[64:]
		}
		cr := strings.Join(append(append([]string{lines[0]}, rewrapped...), body, lines[len(lines)-2], ""), "\n")
		if _, err := readArmor(cr); err == nil {
			t.Fatalf("%d bytes: age reads the armor with a carriage return; the test no longer shows anything", n)
		}
		if _, ok := dearmorAge(cr); ok {
			t.Errorf("%d bytes: dearmorAge read armor with a carriage return, which age refuses", n)
		}
		for name, in := range map[string]string{
			"crlf":         strings.ReplaceAll(armored, "\n", "\r\n"),
			"short line":   strings.Join(append([]string{lines[0], lines[1][:10]}, lines[1:]...), "\n"),
			"no end":       strings.Join(lines[:len(lines)-2], "\n"),
			"leading text": "x" + armored,
		} {
			if got, ok := dearmorAge(in); ok {
				want, err := readArmor(in)
				if err != nil || !bytes.Equal(want, got) {
					t.Errorf("%d bytes, %s: dearmorAge read %d bytes, armor reader %d (%v)", n, name, len(got), len(want), err)
				}
			}
		}
	}
	if _, ok := ageHeaderEnd([]byte("age-encryption.org/v1\n-> X25519 abc\nbody\n")); ok {
		t.Errorf("a header without its MAC line has an end")
	}
}

func readArmor(s string) ([]byte, error) {
	var out bytes.Buffer
	_, err := out.ReadFrom(armor.NewReader(strings.NewReader(s)))
	return out.Bytes(), err
}

// TestDataKeyInFileOrder: the keys of a group are tried in the file's
// order, as sops does, whatever their (unauthenticated) recipient labels
// say. Here the first entry, labelled as someone else's, wraps another
// data key to our identity: sops opens that one, and the file does not
// verify; trying the entry labelled as ours first would have opened it.
func TestDataKeyInFileOrder(t *testing.T) {
	ours, other := mustX25519(t), mustX25519(t)
	c := newTestCodec(t, ours, other)
	wrong := encryptedSecret(t, c, ours.Recipient().String()) // another data key
	right := encryptedSecret(t, c, ours.Recipient().String())
	entry := func(file []byte) string {
		s := string(file)
		start := strings.Index(s, "    - enc: |\n")
		end := strings.Index(s, "  encrypted_regex:")
		if start < 0 || end < start {
			t.Fatalf("no age entry in:\n%s", file)
		}
		return s[start:end]
	}
	if _, err := c.DecryptData("secrets/web.yaml", right); err != nil {
		t.Fatal(err)
	}
	decoy := strings.Replace(entry(wrong), ours.Recipient().String(), other.Recipient().String(), 1)
	crafted := strings.Replace(string(right), "  age:\n", "  age:\n"+decoy, 1)
	if _, err := c.DecryptData("secrets/web.yaml", []byte(crafted)); !errors.Is(err, ErrIntegrity) {
		t.Errorf("the first entry opens another data key: %v; want ErrIntegrity, as sops -d reports", err)
	}
	// An entry we cannot open comes first: the next one is tried.
	theirs := entry(encryptedSecret(t, c, other.Recipient().String()))
	withTheirs := strings.Replace(string(right), "  age:\n", "  age:\n"+theirs, 1)
	if _, err := newTestCodec(t, ours).DecryptData("secrets/web.yaml", []byte(withTheirs)); err != nil {
		t.Errorf("our key listed after one we cannot open: %v", err)
	}
}
