// Package web holds the console: its TypeScript source (src/), built by Vite into dist/, and
// the placeholder page (placeholder/) that a server built without the console serves, which
// says how to build it. `go build` needs neither Node nor a console build: dist/ always holds
// at least its committed .keep file, so the embed pattern below always matches.
package web

import (
	"embed"
	"io/fs"
)

//go:embed all:dist placeholder
var files embed.FS

// Assets returns the console's files, rooted so that "index.html" is the entry page: the
// built console when dist/ holds one (`make build`, or `npm run build` in web/), and the
// placeholder page otherwise.
func Assets() fs.FS {
	if Built() {
		return sub("dist")
	}
	return sub("placeholder")
}

// Built reports whether the console was built into this binary, rather than the placeholder.
func Built() bool {
	_, err := fs.Stat(files, "dist/index.html")
	return err == nil
}

func sub(dir string) fs.FS {
	s, err := fs.Sub(files, dir)
	if err != nil {
		// The directories are embedded at build time; their absence is a build defect.
		panic(err)
	}
	return s
}
