// Package examples embeds the sample certificate repositories, so that
// `certops init` scaffolds from the same quick-start the tests validate.
package examples

import (
	"embed"
	"io/fs"
)

//go:embed all:quickstart
var quickstart embed.FS

// Quickstart is examples/quickstart: a self-signed root, a CA issuer from
// it and leaf certificates for two clusters.
func Quickstart() fs.FS {
	sub, err := fs.Sub(quickstart, "quickstart")
	if err != nil {
		panic("examples: " + err.Error()) // the folder is embedded at build time
	}
	return sub
}
