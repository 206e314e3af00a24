package e2e

import (
	"bytes"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// runBinary runs a binary to completion and returns its exit code and standard error.
func runBinary(t *testing.T, binary string, env []string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, binary), args...)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, stderr.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), stderr.String()
	}
	t.Fatalf("run %s: %v", binary, err)
	return 0, ""
}

// Bad input ends the process with a non-zero status and one line naming the problem and the
// fix: no panic trace, nothing left running.
func TestBadInputExitsWithOneLine(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dataDir := filepath.Join(t.TempDir(), "data")

	tests := []struct {
		name     string
		binary   string
		env      []string
		args     []string
		wantCode int
		want     string
	}{
		{"server: unreachable database", "sluice-server", []string{"DATABASE_URL=postgres://u:secret@127.0.0.1:1/db"},
			[]string{"--http-addr", "127.0.0.1:0", "--xds-addr", "127.0.0.1:0", "--xds-tls-addr", "127.0.0.1:0"}, 1, "unreachable (connection refused)"},
		{"server: malformed database URL", "sluice-server", []string{"DATABASE_URL=post gres:/%%"},
			[]string{"--http-addr", "127.0.0.1:0", "--xds-addr", "127.0.0.1:0", "--xds-tls-addr", "127.0.0.1:0"}, 2, "DATABASE_URL is not a valid PostgreSQL URL"},
		{"server: port in use", "sluice-server", nil,
			[]string{"--data-dir", dataDir, "--http-addr", "127.0.0.1:0", "--insecure-xds", "--xds-tls-addr", "127.0.0.1:0", "--xds-addr", busy.Addr().String()}, 1, "is already in use"},
		{"server: unknown flag", "sluice-server", nil, []string{"--bogus"}, 2, "flag provided but not defined: -bogus"},
		{"server: bad duration", "sluice-server", nil, []string{"--registration-grace", "soon"}, 2, "--registration-grace"},
		{"proxy: no address", "sluice-proxy", nil,
			[]string{"--control-plane", "127.0.0.1:15010", "--service", "a"}, 1, "--address"},
		{"proxy: malformed address", "sluice-proxy", nil,
			[]string{"--control-plane", "127.0.0.1:15010", "--service", "a", "--address", "127.0.0.x"}, 1, "--address"},
		{"proxy: malformed inbound port", "sluice-proxy", nil,
			[]string{"--control-plane", "127.0.0.1:15010", "--service", "a", "--address", "127.0.0.9", "--inbound", "9080"}, 1, "PORT=APPPORT"},
		{"proxy: malformed labels", "sluice-proxy", nil,
			[]string{"--control-plane", "127.0.0.1:15010", "--service", "a", "--address", "127.0.0.9", "--labels", "version"}, 1, "key=value"},
		{"proxy: no control plane", "sluice-proxy", nil,
			[]string{"--service", "a", "--address", "127.0.0.9"}, 1, "--control-plane"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stderr := runBinary(t, tc.binary, tc.env, tc.args...)
			if code != tc.wantCode {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, tc.wantCode, stderr)
			}
			lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
			if len(lines) != 1 || !strings.Contains(lines[0], tc.want) {
				t.Errorf("stderr %q: want one line containing %q", stderr, tc.want)
			}
			if strings.Contains(stderr, "secret") || strings.Contains(stderr, "goroutine") {
				t.Errorf("stderr leaks a secret or a panic trace: %q", stderr)
			}
		})
	}
	// The port clash was found before the private PostgreSQL started: nothing of it exists.
	if _, err := os.Stat(filepath.Join(dataDir, "pg")); err == nil {
		t.Errorf("a PostgreSQL cluster was created in %s although the server could not start", dataDir)
	}
}
