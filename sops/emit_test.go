package sops

import (
	"os"
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
