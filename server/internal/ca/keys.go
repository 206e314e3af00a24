package ca

import (
	"bytes"
	"context"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// KeySize is the length of the key that seals the generated root's private key (AES-256).
const KeySize = 32

// KeyFileHint tells an operator how to make a key file.
const KeyFileHint = "make one with: head -c 32 /dev/urandom > ca.key && chmod 600 ca.key"

// ParseKey reads the contents of a CA key file: 32 raw bytes, or 64 hexadecimal characters,
// or the standard base64 of 32 bytes (surrounding white space is ignored for the last two).
func ParseKey(content []byte) ([]byte, error) {
	if len(content) == KeySize {
		// Random bytes are all hexadecimal digits with a chance of about 1 in 10^34: this is
		// 16 bytes written in hex, too short a key.
		if _, err := hex.DecodeString(string(content)); err == nil {
			return nil, fmt.Errorf("the CA key is 32 hex characters, which is only 16 bytes: give 32 raw bytes or 64 hex characters; %s", KeyFileHint)
		}
		return bytes.Clone(content), nil
	}
	text := bytes.TrimSpace(content)
	if len(text) == 2*KeySize {
		if k, err := hex.DecodeString(string(text)); err == nil {
			return k, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding} {
		if k, err := enc.DecodeString(string(text)); err == nil && len(k) == KeySize {
			return k, nil
		}
	}
	return nil, fmt.Errorf("the CA key must be 32 raw bytes, 64 hex characters or the base64 of 32 bytes, and this is %d bytes of something else: %s", len(content), KeyFileHint)
}

// sealVersion1 is AES-256-GCM with a 12-byte random nonce, and the SHA-256 of the root
// certificate as additional data, so that a sealed key opens only beside its own certificate.
const sealVersion1 = 1

// SealedKey is a private key sealed under the CA key.
type SealedKey struct {
	// Version names the sealing scheme; only 1 exists.
	Version    int
	Nonce      []byte
	Ciphertext []byte
}

// ErrWrongKey means a sealed key does not open with the key given: it was sealed under
// another key, or the stored data were altered.
var ErrWrongKey = errors.New("the CA key does not open the stored root's private key")

// Seal seals the PKCS #8 form of priv under key, bound to the certificate certDER.
func Seal(key []byte, priv crypto.Signer, certDER []byte) (SealedKey, error) {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return SealedKey{}, fmt.Errorf("seal CA key: %w", err)
	}
	aead, err := newAEAD(key)
	if err != nil {
		return SealedKey{}, err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return SealedKey{}, fmt.Errorf("seal CA key: %w", err)
	}
	ad := sha256.Sum256(certDER)
	return SealedKey{Version: sealVersion1, Nonce: nonce, Ciphertext: aead.Seal(nil, nonce, der, ad[:])}, nil
}

// Open opens a key sealed by Seal; ErrWrongKey if key or certDER is not the one it was sealed
// with.
func Open(key []byte, s SealedKey, certDER []byte) (crypto.Signer, error) {
	if s.Version != sealVersion1 {
		return nil, fmt.Errorf("open CA key: sealing version %d is unknown to this sluice-server: upgrade it", s.Version)
	}
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	if len(s.Nonce) != aead.NonceSize() {
		return nil, fmt.Errorf("open CA key: the stored nonce has %d bytes, want %d", len(s.Nonce), aead.NonceSize())
	}
	ad := sha256.Sum256(certDER)
	der, err := aead.Open(nil, s.Nonce, s.Ciphertext, ad[:])
	if err != nil {
		return nil, ErrWrongKey
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("open CA key: %w", err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("open CA key: a %T cannot sign", k)
	}
	return signer, nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("the CA key has %d bytes, want %d: %s", len(key), KeySize, KeyFileHint)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("CA key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("CA key: %w", err)
	}
	return aead, nil
}

// StoredRoot is a generated root as the RootStore keeps it.
type StoredRoot struct {
	CertDER []byte
	Key     SealedKey
}

// ErrNoRoot is what RootStore.GetRoot answers before the first root is stored.
var ErrNoRoot = errors.New("no CA root is stored")

// RootStore keeps the generated root. The PostgreSQL adapter implements it.
type RootStore interface {
	// GetRoot returns the stored root, or ErrNoRoot.
	GetRoot(ctx context.Context) (StoredRoot, error)
	// InsertRoot stores r unless a root is stored already, and reports whether it did; so
	// replicas starting together keep one root between them.
	InsertRoot(ctx context.Context, r StoredRoot) (bool, error)
}

// LoadOrCreateRoot returns an Authority signing with the stored root, generating and storing
// one first when there is none (created is then true). A stored root that key does not open
// is an error wrapping ErrWrongKey: a new root is never made in its place, since every
// certificate in the mesh chains to the old one.
func LoadOrCreateRoot(ctx context.Context, st RootStore, key []byte, td spiffeid.TrustDomain, now func() time.Time) (a *Authority, created bool, err error) {
	if now == nil {
		now = time.Now
	}
	r, err := st.GetRoot(ctx)
	if errors.Is(err, ErrNoRoot) {
		if created, err = createRoot(ctx, st, key, td, now()); err != nil {
			return nil, false, err
		}
		// Another replica may have stored its root first: use whichever is stored.
		r, err = st.GetRoot(ctx)
	}
	if err != nil {
		return nil, false, fmt.Errorf("load the CA root: %w", err)
	}
	cert, err := x509.ParseCertificate(r.CertDER)
	if err != nil {
		return nil, false, fmt.Errorf("load the CA root: the stored certificate does not parse: %w", err)
	}
	signer, err := Open(key, r.Key, r.CertDER)
	if err != nil {
		return nil, false, fmt.Errorf("load the CA root: %w", err)
	}
	a, err = New(Options{TrustDomain: td, Cert: cert, Key: signer, Now: now})
	if err != nil {
		return nil, false, err
	}
	return a, created, nil
}

// ParseCertsPEM returns every CERTIFICATE block of data, in order. what names the data in
// errors, such as the flag it came from.
func ParseCertsPEM(what string, data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: certificate %d does not parse: %w", what, len(out)+1, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s holds no PEM \"CERTIFICATE\" block", what)
	}
	return out, nil
}

// ParseKeyPEM returns the private key in data: PKCS #8, SEC 1 (EC) or PKCS #1 (RSA) PEM.
func ParseKeyPEM(what string, data []byte) (crypto.Signer, error) {
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return nil, fmt.Errorf("%s holds no PEM private key (\"PRIVATE KEY\", \"EC PRIVATE KEY\" or \"RSA PRIVATE KEY\")", what)
		}
		var (
			k   any
			err error
		)
		switch b.Type {
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(b.Bytes)
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: the %s does not parse: %w", what, b.Type, err)
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("%s: a %T cannot sign", what, k)
		}
		return s, nil
	}
}

// createRoot generates a root and stores it unless one is stored already.
func createRoot(ctx context.Context, st RootStore, key []byte, td spiffeid.TrustDomain, now time.Time) (bool, error) {
	cert, priv, err := GenerateRoot(td, now)
	if err != nil {
		return false, err
	}
	sealed, err := Seal(key, priv, cert.Raw)
	if err != nil {
		return false, err
	}
	created, err := st.InsertRoot(ctx, StoredRoot{CertDER: cert.Raw, Key: sealed})
	if err != nil {
		return false, fmt.Errorf("store the new CA root: %w", err)
	}
	return created, nil
}
