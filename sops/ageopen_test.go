package sops

import (
	"bytes"
	"crypto/rand"
	"io"
	"strings"
	"testing"

	"filippo.io/age"
	"filippo.io/age/armor"
)

// ageFile encrypts plain to the recipients with age, armored as sops
// writes it, and returns the armored and the binary forms.
func ageFile(t *testing.T, plain []byte, rs ...age.Recipient) (string, []byte) {
	t.Helper()
	var bin bytes.Buffer
	w, err := age.Encrypt(&bin, rs...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(plain); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	var arm strings.Builder
	aw := armor.NewWriter(&arm)
	if _, err := aw.Write(bin.Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := aw.Close(); err != nil {
		t.Fatal(err)
	}
	return arm.String(), bin.Bytes()
}

// TestAgeOpenChunkIsAge: the one-chunk payload opened by ageOpenChunk is
// what age decrypts, for every size up to maxDataKeySize, with X25519 and
// hybrid identities; larger payloads are left to age; any change to the
// header or the payload, or the wrong identity, fails.
func TestAgeOpenChunkIsAge(t *testing.T) {
	x, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	pq, err := age.GenerateHybridIdentity()
	if err != nil {
		t.Fatal(err)
	}
	sizes := []int{0, 1, 15, 16, 17, 31, 32, 33, 64, 255, 256, 1000, 1023, 1024, 1025, 4096}
	for _, id := range []age.Identity{x, pq} {
		// Two recipients of the same kind: age refuses to mix them.
		rs := []age.Recipient{x.Recipient(), mustX25519(t).Recipient()}
		if id == age.Identity(pq) {
			other, err := age.GenerateHybridIdentity()
			if err != nil {
				t.Fatal(err)
			}
			rs = []age.Recipient{other.Recipient(), pq.Recipient()}
		}
		for _, n := range sizes {
			plain := make([]byte, n)
			if _, err := rand.Read(plain); err != nil {
				t.Fatal(err)
			}
			armored, bin := ageFile(t, plain, rs...)
			got, ok, err := ageOpenChunk(bin, []age.Identity{id})
			if n > maxDataKeySize {
				if ok {
					t.Errorf("%d bytes: opened here, want it left to age", n)
				}
				continue
			}
			if !ok || err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("%d bytes: ok %v, err %v, equal %v", n, ok, err, bytes.Equal(got, plain))
			}
			ref, err := age.Decrypt(bytes.NewReader(bin), id)
			if err != nil {
				t.Fatal(err)
			}
			want, err := io.ReadAll(ref)
			if err != nil || !bytes.Equal(want, got) {
				t.Fatalf("%d bytes: age reads %d bytes (%v), ageOpenChunk %d", n, len(want), err, len(got))
			}
			if out, err := ageOpen(armored, []age.Identity{id}); err != nil || !bytes.Equal(out, plain) {
				t.Fatalf("%d bytes: ageOpen: %v", n, err)
			}
			if _, ok, err := ageOpenChunk(bin, []age.Identity{age.Identity(mustX25519(t))}); ok && err == nil {
				t.Errorf("%d bytes: opened with an identity it was not encrypted to", n)
			}
			for _, at := range []int{0, 40, len(bin) - 40, len(bin) - 1} {
				bad := bytes.Clone(bin)
				bad[at] ^= 1
				if out, ok, err := ageOpenChunk(bad, []age.Identity{id}); ok && err == nil {
					t.Errorf("%d bytes: a changed byte at %d of %d still opened (%d bytes out)", n, at, len(bin), len(out))
				}
			}
			if _, ok, err := ageOpenChunk(bin[:len(bin)-1], []age.Identity{id}); ok && err == nil {
				t.Errorf("%d bytes: a truncated file still opened", n)
			}
		}
	}
}

func mustX25519(t *testing.T) *age.X25519Identity {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}
