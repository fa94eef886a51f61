package spec

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

func TestSchemasAreCurrent(t *testing.T) {
	for name, want := range Schemas() {
		if !json.Valid(want) {
			t.Fatalf("%s is not valid JSON", name)
		}
		got, err := os.ReadFile(filepath.Join("schema", name))
		if err != nil || string(got) != string(want) {
			t.Errorf("spec/schema/%s is stale or missing: run `make schema`", name)
		}
	}
}
