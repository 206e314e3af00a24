package server

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/sluicemesh/sluice/server/internal/ca"
	"github.com/sluicemesh/sluice/server/internal/store"
	"github.com/sluicemesh/sluice/server/internal/xds"
)

// secretKey reads the CA key file, the one that seals the generated root's private key: it
// seals the gateways' TLS secrets too. With a supplied signing CA (--ca-cert-file) the key
// file is still read, or created at <data-dir>/ca.key, for the secrets alone.
func secretKey(cfg *Config, log *slog.Logger) ([]byte, error) {
	keyPath := cfg.Security.CAKeyFile
	if keyPath == "" {
		keyPath = filepath.Join(cfg.DataDir, "ca.key")
		created, err := ensureKeyFile(keyPath)
		if err != nil {
			return nil, err
		}
		if created {
			log.Warn("GENERATED THE CA KEY FILE: it seals the gateways' TLS secrets in the database; BACK IT UP (or pass your own with --ca-key-file)", "ca_key_file", keyPath)
		}
	}
	raw, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("read the CA key file %s (--ca-key-file): %w; %s", keyPath, err, ca.KeyFileHint)
	}
	key, err := ca.ParseKey(raw)
	if err != nil {
		return nil, fmt.Errorf("CA key file %s (--ca-key-file): %w", keyPath, err)
	}
	return key, nil
}

// gatewaySecretLoader hands the stored TLS secrets, opened, to the xDS server: at start, and
// after every change made through the API.
type gatewaySecretLoader struct {
	st  *store.Store
	key []byte
	xds *xds.Server
	log *slog.Logger
	mu  sync.Mutex // one load at a time, so an older list never replaces a newer one
	// last is what the xDS server was last given: an unchanged reload pushes nothing.
	last map[string]xds.GatewaySecret
}

// secretReloadInterval is how often secrets written through another server replica are
// picked up; writes through this one are picked up at once.
const secretReloadInterval = 30 * time.Second

// load reads every secret and opens its key. A secret that does not open (sealed under
// another key, or altered) is left out and logged: gateways report it as not found.
func (l *gatewaySecretLoader) load(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	ss, err := l.st.ListSecrets(ctx, "")
	if err != nil {
		return fmt.Errorf("load gateway secrets: %w", err)
	}
	out := make(map[string]xds.GatewaySecret, len(ss))
	for _, s := range ss {
		keyPEM, err := s.OpenKey(l.key)
		if err != nil {
			l.log.Error("secret skipped: its private key does not open with the CA key file's key", "secret", s.Namespace+"/"+s.Name, "error", err)
			continue
		}
		out[s.Namespace+"/"+s.Name] = xds.GatewaySecret{CertPEM: s.CertPEM, KeyPEM: keyPEM, CACertPEM: s.CACertPEM}
	}
	if l.last != nil && maps.EqualFunc(l.last, out, equalSecret) {
		return nil
	}
	l.last = out
	l.xds.SetSecrets(out)
	return nil
}

func equalSecret(a, b xds.GatewaySecret) bool {
	return bytes.Equal(a.CertPEM, b.CertPEM) && bytes.Equal(a.KeyPEM, b.KeyPEM) && bytes.Equal(a.CACertPEM, b.CACertPEM)
}

// run reloads the secrets every secretReloadInterval until ctx ends.
func (l *gatewaySecretLoader) run(ctx context.Context) error {
	t := time.NewTicker(secretReloadInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := l.load(ctx); err != nil && ctx.Err() == nil {
				l.log.Error("reload gateway secrets", "error", err)
			}
		}
	}
}

// changed reloads the secrets after a write through the API.
func (l *gatewaySecretLoader) changed() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := l.load(ctx); err != nil {
		l.log.Error("reload gateway secrets", "error", err)
	}
}
