package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/sluicemesh/sluice/server/internal/ca"
)

// GetRoot returns the certificate authority's generated root with its sealed key;
// ca.ErrNoRoot if none is stored yet.
func (s *Store) GetRoot(ctx context.Context) (ca.StoredRoot, error) {
	var (
		r       ca.StoredRoot
		version int16
	)
	err := s.pool.QueryRow(ctx, `SELECT cert_der, key_version, key_nonce, key_ciphertext FROM ca_root WHERE id = 1`).
		Scan(&r.CertDER, &version, &r.Key.Nonce, &r.Key.Ciphertext)
	if errors.Is(err, pgx.ErrNoRows) {
		return ca.StoredRoot{}, ca.ErrNoRoot
	}
	if err != nil {
		return ca.StoredRoot{}, fmt.Errorf("read the CA root: %w", err)
	}
	r.Key.Version = int(version)
	return r, nil
}

// InsertRoot stores r unless a root is stored already, and reports whether it did.
func (s *Store) InsertRoot(ctx context.Context, r ca.StoredRoot) (bool, error) {
	tag, err := s.pool.Exec(ctx, `
		INSERT INTO ca_root (id, cert_der, key_version, key_nonce, key_ciphertext)
		VALUES (1, $1, $2, $3, $4) ON CONFLICT (id) DO NOTHING`,
		r.CertDER, int16(r.Key.Version), r.Key.Nonce, r.Key.Ciphertext)
	if err != nil {
		return false, fmt.Errorf("store the CA root: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}
