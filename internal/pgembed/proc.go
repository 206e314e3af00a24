package pgembed

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// pidFile is what PostgreSQL's postmaster.pid says about the server that wrote it.
type pidFile struct {
	pid  int // line 1
	port int // line 4
}

// readPidFile reads a postmaster.pid. Lines it cannot parse are left zero: a file cut short
// by a crash is still a stale file to deal with.
func readPidFile(path string) (pidFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return pidFile{}, err
	}
	defer f.Close()
	var p pidFile
	s := bufio.NewScanner(f)
	for n := 1; s.Scan() && n <= 4; n++ {
		v, _ := strconv.Atoi(strings.TrimSpace(s.Text()))
		switch n {
		case 1:
			p.pid = v
		case 4:
			p.port = v
		}
	}
	return p, s.Err()
}

// processesIn returns the live processes whose working directory is dir. The postmaster and
// every backend chdir into their data directory, so this finds whatever still runs on a cluster
// — including backends orphaned by a killed postmaster, which PostgreSQL's own pid-file check
// would miss — without trusting a pid that may since have been reused. ok is false when /proc
// cannot answer (not Linux), and the caller must not conclude anything.
func processesIn(dir string) (pids []int, ok bool) {
	if _, err := os.Readlink("/proc/self/cwd"); err != nil {
		return nil, false
	}
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, false
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		// Fails for zombies and, without root, for other users' processes; neither can be
		// running on a cluster this process owns.
		cwd, err := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
		if err == nil && cwd == dir {
			pids = append(pids, pid)
		}
	}
	return pids, true
}
