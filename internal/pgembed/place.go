package pgembed

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// defaultRelocateBase is where a cluster goes when its data directory is out of reach of the
// user PostgreSQL runs as (see Options).
const defaultRelocateBase = "/var/lib/sluice"

// locationFile, inside the data directory, records a relocated cluster's directory so that the
// next start finds it again.
const locationFile = "pg-location"

// runAs is the unprivileged account PostgreSQL runs as when sluice runs as root. A nil *runAs
// means "as the current user".
type runAs struct {
	name     string
	uid, gid uint32
}

// credential is what the child processes run with. Groups is empty on purpose: the children
// drop root's supplementary groups and keep only the account's primary group, which is also
// the only group searchable() takes into account.
func (r *runAs) credential() *syscall.Credential {
	if r == nil {
		return nil
	}
	return &syscall.Credential{Uid: r.uid, Gid: r.gid, Groups: []uint32{}}
}

// chown gives path to the account, if there is one.
func (r *runAs) chown(path string) error {
	if r == nil {
		return nil
	}
	if err := os.Lchown(path, int(r.uid), int(r.gid)); err != nil {
		return fmt.Errorf("give %s to user %s: %w", path, r.name, err)
	}
	return nil
}

// lookupRunAs returns nil unless the process runs as root; as root, it returns the "postgres"
// account, or "nobody" if there is none, because initdb and postgres refuse to run as root.
func lookupRunAs() (*runAs, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil || uid == 0 {
			continue
		}
		return &runAs{name: name, uid: uint32(uid), gid: uint32(gid)}, nil
	}
	return nil, errors.New("running as root, but neither user postgres nor nobody exists to run PostgreSQL as: create a postgres user, or run sluice as a normal user")
}

// searchable reports whether a process with the given uid and single gid may traverse every
// directory from dir up to the file system root, and the first directory that it may not.
func searchable(dir string, uid, gid uint32) (bool, string) {
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return false, d
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return false, d
		}
		perm := fi.Mode().Perm()
		var can bool
		switch {
		case st.Uid == uid:
			can = perm&0o100 != 0
		case st.Gid == gid:
			can = perm&0o010 != 0
		default:
			can = perm&0o001 != 0
		}
		if !can {
			return false, d
		}
		if parent := filepath.Dir(d); parent == d {
			return true, ""
		}
	}
}

// clusterDir decides where the cluster of the data directory dataDir (absolute, existing)
// lives: the place recorded in dataDir/pg-location by an earlier start; else dataDir/pg when the
// account PostgreSQL runs as can reach it; else <relocateBase>/<first 16 hex digits of
// sha256(dataDir)>/pg, which it records in dataDir/pg-location. relocated reports the last two
// cases; blocked names the directory that forced relocation.
func clusterDir(dataDir string, as *runAs, relocateBase string) (dir string, relocated bool, blocked string, err error) {
	loc := filepath.Join(dataDir, locationFile)
	b, err := os.ReadFile(loc)
	switch {
	case err == nil:
		dir = strings.TrimSpace(string(b))
		if !filepath.IsAbs(dir) {
			return "", false, "", fmt.Errorf("%s holds %q, not an absolute directory: fix or remove it", loc, dir)
		}
		return dir, true, "", nil
	case !errors.Is(err, fs.ErrNotExist):
		return "", false, "", fmt.Errorf("read %s: %w", loc, err)
	}
	if as == nil {
		return filepath.Join(dataDir, "pg"), false, "", nil
	}
	ok, blocked := searchable(dataDir, as.uid, as.gid)
	if ok {
		return filepath.Join(dataDir, "pg"), false, "", nil
	}

	sum := sha256.Sum256([]byte(dataDir))
	parent := filepath.Join(relocateBase, hex.EncodeToString(sum[:])[:16])
	// Root owns the base and the per-data-dir directory; others may traverse but not list them.
	if err := os.MkdirAll(parent, 0o711); err != nil {
		return "", false, "", fmt.Errorf("create %s for the cluster (user %s cannot reach %s): %w", parent, as.name, blocked, err)
	}
	if ok, d := searchable(parent, as.uid, as.gid); !ok {
		return "", false, "", fmt.Errorf("user %s can reach neither %s nor %s (blocked at %s): make one of them searchable (chmod o+x)", as.name, dataDir, parent, d)
	}
	dir = filepath.Join(parent, "pg")
	if err := writeFileAtomic(loc, []byte(dir+"\n"), 0o644); err != nil {
		return "", false, "", fmt.Errorf("record the cluster location: %w", err)
	}
	return dir, true, blocked, nil
}

// writeFileAtomic writes data to path through a temporary file and a rename, so a crash never
// leaves half a file behind.
func writeFileAtomic(path string, data []byte, perm fs.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, perm); err != nil {
		return err
	}
	if err := os.Chmod(tmp, perm); err != nil { // WriteFile keeps an existing file's mode
		return err
	}
	return os.Rename(tmp, path)
}
