// Package web holds the console. Until the console's build lands in dist/, the server serves
// the placeholder page in placeholder/, which says what Sluice is and where its API lives.
package web

import (
	"embed"
	"io/fs"
)

//go:embed placeholder
var placeholder embed.FS

// Assets returns the console's files, rooted so that "index.html" is the entry page.
func Assets() fs.FS {
	sub, err := fs.Sub(placeholder, "placeholder")
	if err != nil {
		// The directory is embedded at build time; its absence is a build defect.
		panic(err)
	}
	return sub
}
