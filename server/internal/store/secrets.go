package store

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicemesh/sluice/server/internal/ca"
)

// Secret is a TLS credential a gateway serves with, as stored: the private key sealed under
// the CA key (ca.Seal, bound to the leaf certificate), never in the clear.
type Secret struct {
	Namespace, Name string
	// CertPEM is the certificate chain, leaf first.
	CertPEM []byte
	// Key is the sealed private key.
	Key ca.SealedKey
	// CACertPEM holds the roots client certificates are verified against (MUTUAL); empty
	// when the credential has none.
	CACertPEM []byte
	CreatedBy string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// ErrSecretNotFound reports a secret that does not exist.
var ErrSecretNotFound = errors.New("secret not found")

// ErrSecretExists reports a secret created under a name that is taken.
var ErrSecretExists = errors.New("secret exists")

// SealSecret seals keyPEM (a PEM private key matching the leaf of certPEM) under the CA key.
func SealSecret(key []byte, certPEM, keyPEM []byte) (ca.SealedKey, error) {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return ca.SealedKey{}, fmt.Errorf("seal secret key: %w", err)
	}
	signer, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return ca.SealedKey{}, fmt.Errorf("seal secret key: a %T cannot sign", pair.PrivateKey)
	}
	return ca.Seal(key, signer, pair.Certificate[0])
}

// OpenKey opens the secret's private key with the CA key and returns it as PKCS #8 PEM;
// ca.ErrWrongKey if key is not the one it was sealed under.
func (s Secret) OpenKey(key []byte) ([]byte, error) {
	block, _ := pem.Decode(s.CertPEM)
	if block == nil {
		return nil, fmt.Errorf("open secret %s/%s: the stored certificate is not PEM", s.Namespace, s.Name)
	}
	signer, err := ca.Open(key, s.Key, block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("open secret %s/%s: %w", s.Namespace, s.Name, err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(signer)
	if err != nil {
		return nil, fmt.Errorf("open secret %s/%s: %w", s.Namespace, s.Name, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

const secretColumns = `namespace, name, cert_pem, key_version, key_nonce, key_ciphertext, ca_cert_pem,
	created_by, created_at, updated_at`

func scanSecret(row pgx.Row) (Secret, error) {
	var (
		s              Secret
		version        int16
		certPEM, caPEM string
	)
	err := row.Scan(&s.Namespace, &s.Name, &certPEM, &version, &s.Key.Nonce, &s.Key.Ciphertext, &caPEM,
		&s.CreatedBy, &s.CreatedAt, &s.UpdatedAt)
	s.Key.Version = int(version)
	s.CertPEM = []byte(certPEM)
	if caPEM != "" {
		s.CACertPEM = []byte(caPEM)
	}
	return s, err
}

// PutSecret stores s. With replace false it creates the secret, or fails with
// ErrSecretExists; with replace true it replaces the stored one, or fails with
// ErrSecretNotFound.
func (s *Store) PutSecret(ctx context.Context, sec Secret, replace bool) error {
	if replace {
		tag, err := s.pool.Exec(ctx, `
			UPDATE secrets SET cert_pem = $3, key_version = $4, key_nonce = $5, key_ciphertext = $6,
				ca_cert_pem = $7, updated_at = now()
			WHERE namespace = $1 AND name = $2`,
			sec.Namespace, sec.Name, string(sec.CertPEM), int16(sec.Key.Version), sec.Key.Nonce, sec.Key.Ciphertext, string(sec.CACertPEM))
		if err != nil {
			return fmt.Errorf("replace secret %s/%s: %w", sec.Namespace, sec.Name, err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("replace secret %s/%s: %w", sec.Namespace, sec.Name, ErrSecretNotFound)
		}
		return nil
	}
	tag, err := s.pool.Exec(ctx, `
		INSERT INTO secrets (namespace, name, cert_pem, key_version, key_nonce, key_ciphertext, ca_cert_pem, created_by)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (namespace, name) DO NOTHING`,
		sec.Namespace, sec.Name, string(sec.CertPEM), int16(sec.Key.Version), sec.Key.Nonce, sec.Key.Ciphertext, string(sec.CACertPEM), sec.CreatedBy)
	if err != nil {
		return fmt.Errorf("create secret %s/%s: %w", sec.Namespace, sec.Name, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("create secret %s/%s: %w", sec.Namespace, sec.Name, ErrSecretExists)
	}
	return nil
}

// GetSecret returns one secret; ErrSecretNotFound if there is none.
func (s *Store) GetSecret(ctx context.Context, namespace, name string) (Secret, error) {
	sec, err := scanSecret(s.pool.QueryRow(ctx, `SELECT `+secretColumns+` FROM secrets WHERE namespace = $1 AND name = $2`, namespace, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return Secret{}, fmt.Errorf("get secret %s/%s: %w", namespace, name, ErrSecretNotFound)
	}
	if err != nil {
		return Secret{}, fmt.Errorf("get secret %s/%s: %w", namespace, name, err)
	}
	return sec, nil
}

// ListSecrets returns the secrets of a namespace, or of every namespace when it is empty,
// sorted by namespace and name.
func (s *Store) ListSecrets(ctx context.Context, namespace string) ([]Secret, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+secretColumns+` FROM secrets
		WHERE $1 = '' OR namespace = $1 ORDER BY namespace, name`, namespace)
	if err != nil {
		return nil, fmt.Errorf("list secrets: %w", err)
	}
	defer rows.Close()
	var out []Secret
	for rows.Next() {
		sec, err := scanSecret(rows)
		if err != nil {
			return nil, fmt.Errorf("list secrets: %w", err)
		}
		out = append(out, sec)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list secrets: %w", err)
	}
	return out, nil
}

// DeleteSecret deletes a secret and returns what it held; ErrSecretNotFound if there is none.
func (s *Store) DeleteSecret(ctx context.Context, namespace, name string) (Secret, error) {
	sec, err := scanSecret(s.pool.QueryRow(ctx, `DELETE FROM secrets WHERE namespace = $1 AND name = $2 RETURNING `+secretColumns, namespace, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return Secret{}, fmt.Errorf("delete secret %s/%s: %w", namespace, name, ErrSecretNotFound)
	}
	if err != nil {
		return Secret{}, fmt.Errorf("delete secret %s/%s: %w", namespace, name, err)
	}
	return sec, nil
}
