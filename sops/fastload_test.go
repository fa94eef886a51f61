package sops

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	gosops "github.com/getsops/sops/v3"
	"github.com/google/go-cmp/cmp"
)

// sameAsStore checks loadFast against the sops YAML store on in: whatever
// loadFast accepts, the store must read to the same branches. It reports
// whether loadFast took the file.
func sameAsStore(t testing.TB, in []byte) bool {
	t.Helper()
	fast, ok := loadFast(in)
	if !ok {
		return false
	}
	want, err := newStore().LoadPlainFile(in)
	if err != nil {
		t.Fatalf("loadFast read what the store refuses (%v):\n%s", err, in)
	}
	if diff := cmp.Diff(want, fast); diff != "" {
		t.Fatalf("loadFast differs from the store (-store +fast):\n%s\ninput:\n%s", diff, in)
	}
	return true
}

// trickyStrings are values whose YAML form is not a plain string, or only
// just is.
var trickyStrings = []string{
	"plain", "with space", "a,b,c", "*.example.com", "&anchor", "!tag", "it's", `say "hi"`, "",
	"123", "1.5", "0x1F", "true", "True", "yes", "no", "on", "null", "~", "2027-02-25T12:00:00Z",
	"2027-02-25", "3.13.3", "1.2", "x: y", "a #b", "#c", "- dash", "-dash", "tab\there", "line\nbreak",
	"trailing\n", "two\n\nlines\n", "  lead", "trail ", "ünïcode", strings.Repeat("word ", 30) + "end",
	strings.Repeat("x", 300), "ENC[AES256_GCM,data:abc=,iv:def=,tag:ghi=,type:str]",
	"^(data|stringData)$", "{braces}", "[brackets]", "%percent", "@at", "`tick", ".dot", "+plus",
	"key:colon", "|pipe", ">gt", "?q", "back\\slash", "nul\x00", "bell\a", "<<", "=", "-----BEGIN X-----\nabc\n-----END X-----\n",
	"5b0f3c1e2d", "1e5", "1E5", "7e3f", "7E3F", "0x1f", "0b1", "0B1", "0o7", "0O7", "00b", "0a", "12abc", "1d", "9", "1_000", "6E", "1e", "1e+5", "1.5e3x",
}

func TestLoadFastMatchesStoreOnEmittedFiles(t *testing.T) {
	for _, v := range trickyStrings {
		doc := secretTree(v, false)
		if v != "" && !strings.Contains(v, "\n") && !plainScalar(v) { // secretTree has the others as keys
			doc[0] = append(doc[0], gosops.TreeItem{Key: v, Value: "as a key"})
		}
		out, err := emitPlain(doc)
		if err != nil {
			t.Fatalf("%q: %v", v, err)
		}
		sameAsStore(t, out)
	}
}

func TestLoadFastMatchesStoreOnHandWrittenFiles(t *testing.T) {
	golden, err := os.ReadFile(filepath.Join("testdata", "web.enc.golden.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	sameAsStore(t, golden)
	for _, in := range fastLoadSeeds {
		sameAsStore(t, []byte(in))
	}
}

// certopsSecret is a Secret as certops writes it, before encryption.
const certopsSecret = `apiVersion: v1
kind: Secret
metadata:
  name: web
  namespace: prod
  labels:
    app.kubernetes.io/managed-by: certops
  annotations:
    cert-manager.io/alt-names: '*.web.example.com,web.example.com'
    cert-manager.io/common-name: ""
    cert-manager.io/subject-organizations: Example Org, Inc.
    certops.dev/not-after: "2027-02-25T12:00:00Z"
    certops.dev/serial: 5b0f3c1e2d
type: kubernetes.io/tls
stringData:
  tls.crt: |
    -----BEGIN CERTIFICATE-----
    placeholder
    -----END CERTIFICATE-----
  tls.key: not a key
`

// The layout certops writes takes the fast paths, loadFast and emitFast:
// without this the shortcuts could silently stop applying.

func mustLoad(t *testing.T, in []byte) gosops.TreeBranches {
	t.Helper()
	b, err := newStore().LoadPlainFile(in)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLoadFastTakesCertopsFiles(t *testing.T) {
	id := mustX25519(t)
	c := newTestCodec(t, id)
	plain := []byte(certopsSecret)
	enc := encryptedSecret(t, c, id.Recipient().String())
	if _, ok := emitFast(mustLoad(t, enc)); !ok {
		t.Errorf("emitFast declined an encrypted Secret as certops writes it")
	}
	if _, ok := emitFast(mustLoad(t, plain)); !ok {
		t.Errorf("emitFast declined a Secret as certops writes it")
	}
	if !sameAsStore(t, enc) {
		t.Errorf("an encrypted Secret as certops writes it does not take the fast path:\n%s", enc)
	}
	data, err := c.DecryptData("secrets/web.yaml", enc)
	if err != nil || !strings.Contains(string(data["tls.crt"]), "placeholder") {
		t.Errorf("DecryptData = %q, %v", data["tls.crt"], err)
	}
}

func FuzzLoadFast(f *testing.F) {
	for _, s := range fastLoadSeeds {
		f.Add([]byte(s))
	}
	if golden, err := os.ReadFile(filepath.Join("testdata", "web.enc.golden.yaml")); err == nil {
		f.Add(golden)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		sameAsStore(t, in)
		sameMetadataAsStore(t, in)
	})
}

// fastLoadSeeds are YAML shapes at and past the edge of what loadFast
// reads.
var fastLoadSeeds = []string{
	"a: b\n",
	"a: 5b0f3c1e2d\n", "a: 0b101\n", "a: 0x1f\n", "a: 1e10\n", "a: 7E3F\n", "a: 0o17\n", "5b: 0a\n",
	"a: b",
	"a: b # comment\n",
	"# head\na: b\n",
	"a: {b: c}\n",
	"a: [b, c]\n",
	"a: &x b\nc: *x\n",
	"a: !!str 1\n",
	"a: b\na: c\n",
	"a:\n  b: c\n  b: d\n",
	"a:\nb: c\n",
	"a: |+\n  x\n\nb: c\n",
	"a: |2\n   x\n",
	"a: |\n  x\n\n  y\n",
	"a: |\n  x\n\nb: c\n",
	"a: |-\n  x\n  y\nb: c\n",
	"a: >\n  x\n  y\n",
	"a:\n- b: c\n- d: e\n",
	"a:\n  - b: c\n    d: e\n  - f: g\n",
	"a:\n  - b\n  - c\n",
	"a:\n  - - b\n",
	"a:\n  -   b: c\n      d: e\n",
	"---\na: b\n",
	"a: b\n---\nc: d\n",
	"a: b\r\n",
	"a:\tb\n",
	"  a: b\n",
	"a:b\n",
	"a: b \n",
	"a:  b\n",
	"'a': b\n",
	"\"a\": b\n",
	"a: 'it''s'\n",
	"a: 'it's'\n",
	"a: \"x\\\"y\"\n",
	"a: \"x\\u00e9\"\n",
	"a: \"x\\/y\"\n",
	strings.Repeat("k", 1024) + ": v\n",
	strings.Repeat("k", 1025) + ": v\n",
	"a: \"unterminated\n",
	"a: \"wrapped\n  line\"\n",
	"a: plain\n  continued\n",
	"a: 1\n",
	"a: 3.13.3\n",
	"a: 3.13\n",
	"1: a\n",
	"true: a\n",
	"a: b\n\nc: d\n",
	"a:\n  b:\n    c: d\n  e: f\ng: h\n",
	"sops:\n  age:\n    - enc: |\n        -----BEGIN AGE ENCRYPTED FILE-----\n        abc\n        -----END AGE ENCRYPTED FILE-----\n      recipient: age1x\n  version: 3.13.3\n",
	"a: x: y\n",
	"a: -\n",
	"- a\n",
	"a\n",
	"",
	"\n",
	"a: \xef\xbb\xbf\n",
}
