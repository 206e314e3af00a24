package pgembed

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// ErrBinariesNotFound is returned by FindBinaries, and by Start when Options.BinDir is empty,
// when no directory holds all of initdb, pg_ctl and postgres.
var ErrBinariesNotFound = errors.New("PostgreSQL server binaries (initdb, pg_ctl) not found: " +
	"install them with `apt-get install postgresql` or put them on PATH, or set DATABASE_URL")

// debianRoot is where Debian and Ubuntu install each major version's server binaries, as
// <debianRoot>/<version>/bin.
const debianRoot = "/usr/lib/postgresql"

// binaries are the programs Start runs. They must sit in one directory: initdb and pg_ctl look
// for postgres next to their own (symlink-resolved) location.
var binaries = []string{"initdb", "pg_ctl", "postgres"}

// FindBinaries returns the directory that holds initdb, pg_ctl and postgres. It looks on $PATH
// first, then in /usr/lib/postgresql/<version>/bin, newest version first. An initdb on $PATH
// that is a symlink counts through its target's directory, so a /usr/local/bin/initdb pointing
// into /usr/lib/postgresql/15/bin finds that directory. If none is found, the error is
// ErrBinariesNotFound.
func FindBinaries() (dir string, err error) {
	return findBinaries(os.Getenv("PATH"), debianRoot)
}

// findBinaries is FindBinaries with $PATH and the versioned search root passed in, for tests.
func findBinaries(pathList, root string) (string, error) {
	var candidates []string
	for _, d := range filepath.SplitList(pathList) {
		if d == "" {
			// An empty PATH element means the working directory; a server must not pick up
			// binaries from wherever it happens to be started.
			continue
		}
		initdb := filepath.Join(d, "initdb")
		if !isExecutable(initdb) {
			continue
		}
		candidates = append(candidates, d)
		// Debian's /usr/bin wrappers and hand-made symlinks point into the real bin dir, where
		// postgres lives too.
		if real, err := filepath.EvalSymlinks(initdb); err == nil {
			candidates = append(candidates, filepath.Dir(real))
		}
	}
	candidates = append(candidates, versionDirs(root)...)
	for _, d := range candidates {
		if hasAll(d) {
			abs, err := filepath.Abs(d)
			if err != nil {
				continue
			}
			return abs, nil
		}
	}
	return "", ErrBinariesNotFound
}

// versionDirs returns <root>/<version>/bin for each version directory under root, newest first.
func versionDirs(root string) []string {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil
	}
	type version struct {
		parts []int
		dir   string
	}
	var vs []version
	for _, e := range entries {
		parts, ok := parseVersion(e.Name())
		if !ok {
			continue
		}
		vs = append(vs, version{parts, filepath.Join(root, e.Name(), "bin")})
	}
	slices.SortFunc(vs, func(a, b version) int { return slices.Compare(b.parts, a.parts) })
	dirs := make([]string, len(vs))
	for i, v := range vs {
		dirs[i] = v.dir
	}
	return dirs
}

// parseVersion parses a directory name such as "15" or "9.6" into its numbers.
func parseVersion(name string) ([]int, bool) {
	var parts []int
	for _, f := range strings.Split(name, ".") {
		n, err := strconv.Atoi(f)
		if err != nil || n < 0 {
			return nil, false
		}
		parts = append(parts, n)
	}
	return parts, true
}

func hasAll(dir string) bool {
	for _, b := range binaries {
		if !isExecutable(filepath.Join(dir, b)) {
			return false
		}
	}
	return true
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}
