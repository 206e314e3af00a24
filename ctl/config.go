package ctl

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Config is what "sluicectl login" keeps between runs: where the server is, who signed in,
// and the API token it was given. It never holds a password. The zero Config means not
// signed in.
type Config struct {
	// Server is the URL the token belongs to. The token is sent to this server only.
	Server string `json:"server,omitempty"`
	// Username is who signed in; login offers it as the default next time.
	Username string `json:"username,omitempty"`
	// Token is the API token sent as "Authorization: Bearer".
	Token string `json:"token,omitempty"`
	// TokenID and TokenName identify the token, so that logout can revoke it.
	TokenID   string `json:"tokenId,omitempty"`
	TokenName string `json:"tokenName,omitempty"`
	// ExpiresAt is when the server stops accepting the token; nil when unknown.
	ExpiresAt *time.Time `json:"expiresAt,omitempty"`
}

// Permissions of the config file and of the directory sluicectl creates for it: the file
// holds a bearer token, which is as good as a password until it expires.
const (
	configFileMode = 0o600
	configDirMode  = 0o700
	// maxConfigBytes bounds the read of a config file: a real one is a few hundred bytes.
	maxConfigBytes = 1 << 20
)

// configPath finds the config file: $SLUICE_CONFIG, else $XDG_CONFIG_HOME/sluice/config.json,
// else ~/.config/sluice/config.json.
func configPath(getenv func(string) string) (string, error) {
	if p := getenv("SLUICE_CONFIG"); p != "" {
		return p, nil
	}
	// The XDG spec says to ignore a relative XDG_CONFIG_HOME.
	if x := getenv("XDG_CONFIG_HOME"); filepath.IsAbs(x) {
		return filepath.Join(x, "sluice", "config.json"), nil
	}
	if h := getenv("HOME"); h != "" {
		return filepath.Join(h, ".config", "sluice", "config.json"), nil
	}
	return "", errors.New("cannot place the config file: neither SLUICE_CONFIG, XDG_CONFIG_HOME nor HOME is set; set SLUICE_CONFIG to a file path")
}

// loadConfig reads the config file at path; a missing file is the zero Config. warning is
// set when the file holds a token and others may read it.
//
// A group- or world-readable file is used anyway, with the warning, rather than refused:
// refusing would not take back a token others could already read, and it would break the
// common case of a config mounted from a Kubernetes Secret or a CI variable, whose files are
// 0644 by default yet readable by nobody else in their container. sluicectl itself only ever
// writes the file 0600, and fixes the mode whenever it rewrites it.
func loadConfig(path string) (cfg Config, warning string, err error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Config{}, "", nil
	}
	if err != nil {
		return Config{}, "", fmt.Errorf("read the config file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Config{}, "", fmt.Errorf("read the config file: %w", err)
	}
	if fi.IsDir() {
		return Config{}, "", fmt.Errorf("the config file %s is a directory: set SLUICE_CONFIG to a file path", path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxConfigBytes+1))
	if err != nil {
		return Config{}, "", fmt.Errorf("read the config file: %w", err)
	}
	if len(b) > maxConfigBytes {
		return Config{}, "", fmt.Errorf("the config file %s is over %d bytes, so it is not sluicectl's: set SLUICE_CONFIG to another path, or delete it and run sluicectl login", path, maxConfigBytes)
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return Config{}, "", fmt.Errorf("the config file %s is not valid JSON (%v): fix it, or delete it and run sluicectl login", path, err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 && cfg.Token != "" {
		warning = fmt.Sprintf("warning: the config file %s holds an API token and others can read it (mode %04o): run chmod 600 %s", path, perm, path)
	}
	return cfg, warning, nil
}

// saveConfig writes cfg to path with mode 0600, creating its directory with mode 0700. It
// writes a temporary file and renames it into place, so a crash never leaves half a file,
// and the file never exists with a looser mode even for a moment.
func saveConfig(path string, cfg Config) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, configDirMode); err != nil {
		return fmt.Errorf("create the config directory: %w", err)
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return fmt.Errorf("encode the config: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".config-*.json")
	if err != nil {
		return fmt.Errorf("write the config file: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing left to remove
	// CreateTemp already uses 0600; say so explicitly rather than rely on it.
	if err := tmp.Chmod(configFileMode); err != nil {
		tmp.Close()
		return fmt.Errorf("write the config file: %w", err)
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("write the config file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write the config file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write the config file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write the config file: %w", err)
	}
	return nil
}
