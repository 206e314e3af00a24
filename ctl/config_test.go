package ctl

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// mapEnv is a getenv over a map.
func mapEnv(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestConfigPath(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		want    string
		wantErr bool
	}{
		{"SLUICE_CONFIG wins", map[string]string{"SLUICE_CONFIG": "/etc/s.json", "XDG_CONFIG_HOME": "/x", "HOME": "/h"}, "/etc/s.json", false},
		{"XDG_CONFIG_HOME", map[string]string{"XDG_CONFIG_HOME": "/x", "HOME": "/h"}, "/x/sluice/config.json", false},
		{"a relative XDG_CONFIG_HOME is ignored", map[string]string{"XDG_CONFIG_HOME": "x", "HOME": "/h"}, "/h/.config/sluice/config.json", false},
		{"HOME", map[string]string{"HOME": "/h"}, "/h/.config/sluice/config.json", false},
		{"nothing set", nil, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := configPath(mapEnv(tc.env))
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("configPath = %q, %v; want %q (error %v)", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestSaveConfigPermissions(t *testing.T) {
	expires := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	cfg := Config{Server: "http://127.0.0.1:8080", Username: "admin", Token: "slc_secret", TokenID: "abc", TokenName: "sluicectl@host", ExpiresAt: &expires}
	tests := []struct {
		name  string
		setup func(t *testing.T, path string)
	}{
		{"new file in a new directory", func(t *testing.T, path string) {}},
		{"replaces a file others could read", func(t *testing.T, path string) {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(`{"token":"old"}`), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, 0o644); err != nil { // whatever the umask
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "sluice", "config.json")
			tc.setup(t, path)
			if err := saveConfig(path, cfg); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if perm := fi.Mode().Perm(); perm != 0o600 {
				t.Errorf("file mode %04o, want 0600", perm)
			}
			if tc.name == "new file in a new directory" {
				di, err := os.Stat(filepath.Dir(path))
				if err != nil {
					t.Fatal(err)
				}
				// The umask may only take bits away, and 0700 has none for others.
				if perm := di.Mode().Perm(); perm&0o077 != 0 {
					t.Errorf("directory mode %04o, want 0700", perm)
				}
			}
			got, warning, err := loadConfig(path)
			if err != nil || warning != "" {
				t.Fatalf("loadConfig: %v, warning %q", err, warning)
			}
			if got.Token != cfg.Token || got.TokenID != cfg.TokenID || got.Server != cfg.Server || !got.ExpiresAt.Equal(expires) {
				t.Errorf("read back %+v, want %+v", got, cfg)
			}
			entries, _ := os.ReadDir(filepath.Dir(path))
			if len(entries) != 1 {
				t.Errorf("the directory holds %d files, want only config.json (no temporary file left)", len(entries))
			}
		})
	}
}

func TestLoadConfig(t *testing.T) {
	tests := []struct {
		name        string
		content     string // "" for no file
		mode        os.FileMode
		wantToken   string
		wantWarning bool
		wantErr     string
	}{
		{"missing file is the zero config", "", 0, "", false, ""},
		{"private file", `{"server":"http://s","token":"t"}`, 0o600, "t", false, ""},
		{"group-readable file with a token warns and is used", `{"server":"http://s","token":"t"}`, 0o640, "t", true, ""},
		{"world-readable file with a token warns and is used", `{"server":"http://s","token":"t"}`, 0o644, "t", true, ""},
		{"readable file without a token is fine", `{"server":"http://s"}`, 0o644, "", false, ""},
		{"unknown fields are kept for newer versions", `{"token":"t","contexts":[]}`, 0o600, "t", false, ""},
		{"malformed file", `{"token":`, 0o600, "", false, "is not valid JSON"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "config.json")
			if tc.content != "" {
				if err := os.WriteFile(path, []byte(tc.content), tc.mode); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(path, tc.mode); err != nil {
					t.Fatal(err)
				}
			}
			cfg, warning, err := loadConfig(path)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Token != tc.wantToken {
				t.Errorf("token %q, want %q", cfg.Token, tc.wantToken)
			}
			if (warning != "") != tc.wantWarning {
				t.Errorf("warning %q, want one: %v", warning, tc.wantWarning)
			}
			if warning != "" && !strings.Contains(warning, "chmod 600 "+path) {
				t.Errorf("warning %q does not say how to fix it", warning)
			}
		})
	}
}
