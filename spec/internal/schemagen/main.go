// Command schemagen writes the JSON Schemas of the spec kinds (make schema).
package main

import (
	"flag"
	"log"
	"os"
	"path/filepath"

	"certops.dev/certops/spec"
)

func main() {
	out := flag.String("out", "spec/schema", "folder to write the schemas to")
	flag.Parse()
	if err := os.MkdirAll(*out, 0o755); err != nil {
		log.Fatal(err)
	}
	for name, data := range spec.Schemas() {
		if err := os.WriteFile(filepath.Join(*out, name), data, 0o644); err != nil {
			log.Fatal(err)
		}
	}
}
