package sops

import (
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"

	gosops "github.com/getsops/sops/v3"
)

// emitCases are scalars whose YAML form depends on the style choice:
// values another type would claim, YAML 1.1 bools and base-60 floats,
// multi-line text, indicators, quotes and non-ASCII.
var emitCases = []string{
	"", "plain", "ENC[AES256_GCM,data:AbC+/=,iv:x,tag:y,type:str]", "123", "-1.5e3", "0x1F", "0o17",
	"true", "False", "null", "~", "yes", "No", "on", "OFF", "y", "N", "1:20", "+12:30:15.5", "1_000",
	"2026-12-06T05:00:00Z", "2026-12-06", "a: b", "- x", "#x", "x #y", "key:", " lead", "trail ", "'q'", `"q"`,
	"[a]", "{a}", "&a", "*a", "!t", "|", ">", "%x", "@x", "`x", "a\nb", "a\nb\n", "\n", " \n x", "tab\there",
	"line\r\nbreak", "ünïcode", "日本", "\u2028sep", "-----BEGIN AGE ENCRYPTED FILE-----\nYWdl\n-----END AGE ENCRYPTED FILE-----\n",
}

func emitTree(keys, values []string) gosops.TreeBranches {
	leaf := gosops.TreeBranch{}
	for i, v := range values {
		leaf = append(leaf, gosops.TreeItem{Key: keys[i%len(keys)], Value: v})
	}
	return gosops.TreeBranches{{
		{Key: "apiVersion", Value: "v1"},
		{Key: "metadata", Value: gosops.TreeBranch{
			{Key: "annotations", Value: leaf},
			{Key: "list", Value: []any{"a", "yes", "1:2", gosops.TreeBranch{{Key: "k", Value: "v"}}}},
		}},
		{Key: "numbers", Value: gosops.TreeBranch{{Key: "int", Value: 3}, {Key: "float", Value: 1.5}, {Key: "bool", Value: true}}},
	}}
}

// TestEmitPlainIsTheStoresOutput: emitPlain writes exactly what the sops
// YAML store writes, for keys and values of every awkward kind.
func TestEmitPlainIsTheStoresOutput(t *testing.T) {
	checkEmit(t, emitTree(emitCases, emitCases))
	checkEmit(t, emitTree([]string{"k"}, emitCases))

	// A real encrypted file, metadata and all, parsed and written again.
	golden, err := os.ReadFile("testdata/web.enc.golden.yaml")
	if err != nil {
		t.Fatal(err)
	}
	branches, err := newStore().LoadPlainFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	checkEmit(t, branches)

	// Comments go to the store.
	checkEmit(t, gosops.TreeBranches{{{Key: gosops.Comment{Value: " c"}, Value: nil}, {Key: "a", Value: "b"}}})
}

func FuzzEmitPlain(f *testing.F) {
	for _, s := range emitCases {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, k, v string) {
		checkEmit(t, emitTree([]string{k + "x"}, []string{v, k}))
	})
}

func checkEmit(t *testing.T, branches gosops.TreeBranches) {
	t.Helper()
	want, wantErr := newStore().EmitPlainFile(branches)
	got, gotErr := emitPlain(branches)
	if (wantErr == nil) != (gotErr == nil) {
		t.Fatalf("errors differ: store %v, emitPlain %v", wantErr, gotErr)
	}
	if string(got) != string(want) {
		t.Fatalf("emitPlain differs from the store:\n--- store\n%s\n--- emitPlain\n%s", want, got)
	}
}

// fastTree is a Secret and its sops metadata with v as a value, a key, a
// sequence item and a value in a sequence's mapping: a tree emitFast takes
// when it can write v.
func fastTree(v string) gosops.TreeBranches { return secretTree(v, true) }

// secretTree is fastTree; without scalars, it has strings only (no
// sequence of strings, int or bool), which loadFast reads.
func secretTree(v string, scalars bool) gosops.TreeBranches {
	item := v // emitFast writes a literal block only as a mapping's value
	if strings.Contains(v, "\n") {
		item = "x"
	}
	doc := gosops.TreeBranch{
		{Key: "apiVersion", Value: "v1"},
		{Key: "metadata", Value: gosops.TreeBranch{
			{Key: "name", Value: "web"},
			{Key: "annotations", Value: gosops.TreeBranch{{Key: "certops.dev/v", Value: v}, {Key: "after", Value: "z"}}},
		}},
		{Key: "stringData", Value: gosops.TreeBranch{{Key: "tls.crt", Value: v}}},
		{Key: "sops", Value: gosops.TreeBranch{
			{Key: "age", Value: []any{
				gosops.TreeBranch{{Key: "enc", Value: v}, {Key: "recipient", Value: "age1x"}},
				gosops.TreeBranch{{Key: "enc", Value: "-----BEGIN X-----\nabc\n-----END X-----\n"}, {Key: "recipient", Value: v}},
			}},
			{Key: "version", Value: "3.13.3"},
		}},
	}
	if scalars {
		sops := doc[3].Value.(gosops.TreeBranch)
		doc[3].Value = append(sops, gosops.TreeItem{Key: "list", Value: []any{"a", item}},
			gosops.TreeItem{Key: "shamir_threshold", Value: 2}, gosops.TreeItem{Key: "mac_only_encrypted", Value: true})
	}
	if plainScalar(v) {
		doc = append(doc, gosops.TreeItem{Key: v, Value: "as a key"})
	}
	return gosops.TreeBranches{doc}
}

// TestEmitFastIsTheStoresOutput: whatever emitFast writes, the store
// writes the same; and it writes certops' files, or the shortcut could
// silently stop applying.
func TestEmitFastIsTheStoresOutput(t *testing.T) {
	values := append(append([]string{}, emitCases...), trickyStrings...)
	values = append(values, "2026-13-45T10:00:00Z", "0123", "09", "99999999999999999999999", strings.Repeat("9", 309), "1"+strings.Repeat("0", 308), "0"+strings.Repeat("9", 400), "---x", "...x",
		"a:", "a: ", "a#b", "a #b", "it's", strings.Repeat("k", 129), "two\nlines", "two\nlines\n", "x\n\n", "x \ny", "x\n y\n")
	fast := 0
	for _, v := range values {
		tree := fastTree(v)
		if _, ok := emitFast(tree); ok {
			fast++
		}
		checkEmit(t, tree)
	}
	// The store writes this as null (its Node.Encode fails); emitPlain
	// writes the literal block, and emitFast leaves it to emitPlain.
	if _, ok := emitFast(fastTree("\tx\ny")); ok {
		t.Errorf("emitFast took a tab")
	}
	if fast < len(values)/3 {
		t.Errorf("emitFast took %d of %d trees", fast, len(values))
	}
	for _, v := range []string{"plain", "", "*.example.com", "*.a.example.com,a.example.com", "2026-12-06T05:00:00Z", "123", "-----BEGIN AGE ENCRYPTED FILE-----\nYWdl\n-----END AGE ENCRYPTED FILE-----\n", "ENC[AES256_GCM,data:AbC+/=,iv:x,tag:y,type:str]", "5b0f3c1e2d"} {
		if _, ok := emitFast(fastTree(v)); !ok {
			t.Errorf("emitFast declined a tree with %q", v)
		}
	}

	branches := mustLoad(t, []byte(certopsSecret))
	out, ok := emitFast(branches)
	if !ok {
		t.Fatalf("emitFast declined a Secret as certops writes it")
	}
	if string(out) != certopsSecret {
		t.Errorf("emitFast differs from the file it read:\n%s", out)
	}
}

func FuzzEmitFast(f *testing.F) {
	for _, s := range emitCases {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, k, v string) {
		tree := fastTree(v)
		tree[0] = append(tree[0], gosops.TreeItem{Key: k, Value: v}, gosops.TreeItem{Key: "k", Value: []any{k, gosops.TreeBranch{{Key: k, Value: k}}}})
		checkEmit(t, tree)
	})
}

// TestEmitFastOnRandomStrings compares emitFast with the store on strings
// drawn from the characters YAML treats specially; CERTOPS_EMIT_N sets how
// many (default 3,000).
func TestEmitFastOnRandomStrings(t *testing.T) {
	n := 3000
	if s := os.Getenv("CERTOPS_EMIT_N"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	// Half the strings come from characters that are special only in
	// some places, so that emitFast takes a good share of the trees.
	alphabets := []string{"aZe09-.:#*&!|>'\"%@`~+<=?,[]{}_/^$() \n\tTzxyYnNoO", "aZe09-.:*, _/TZ\n"}
	rng := rand.New(rand.NewPCG(1, 2))
	word := func() string {
		alphabet := alphabets[rng.IntN(len(alphabets))]
		b := make([]byte, rng.IntN(24))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		return string(b)
	}
	fast := 0
	for range n {
		v := word()
		tree := fastTree(v)
		tree[0] = append(tree[0], gosops.TreeItem{Key: "k", Value: []any{word(), gosops.TreeBranch{{Key: "x", Value: word()}}}})
		out, ok := emitFast(tree)
		if !ok {
			continue
		}
		fast++
		want, err := newStore().EmitPlainFile(tree)
		if err != nil {
			t.Fatalf("%q: the store fails where emitFast wrote:\n%s", v, out)
		}
		if string(out) != string(want) {
			t.Fatalf("%q: emitFast differs from the store:\n--- store\n%s\n--- emitFast\n%s", v, want, out)
		}
	}
	if fast == 0 {
		t.Errorf("emitFast took none of %d trees", n)
	}
	t.Logf("emitFast took %d of %d trees", fast, n)
}
