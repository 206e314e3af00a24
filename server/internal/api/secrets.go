package api

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/sluicemesh/sluice/server/internal/store"
)

// SecretStore keeps TLS credentials, their private keys sealed.
type SecretStore interface {
	PutSecret(ctx context.Context, s store.Secret, replace bool) error
	GetSecret(ctx context.Context, namespace, name string) (store.Secret, error)
	ListSecrets(ctx context.Context, namespace string) ([]store.Secret, error)
	DeleteSecret(ctx context.Context, namespace, name string) (store.Secret, error)
}

// Secrets is what the secret routes use: the store, the CA key that seals private keys, and
// a hook telling the xDS server that credentials changed. A nil Store answers them with 503.
type Secrets struct {
	Store SecretStore
	// Key is the CA key (ca.KeySize bytes) that seals the root's private key; it seals the
	// secrets' keys as well.
	Key []byte
	// Changed is called after every successful write; nil means nobody listens.
	Changed func()
}

// maxSecretPEM bounds each PEM field of a secret; decodeJSON bounds the whole body.
const maxSecretPEM = 16 << 10

var (
	secretNameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`)
	namespaceRE  = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
)

// secretView is a TLS secret as the API shows it: never its private key.
type secretView struct {
	Namespace   string    `json:"namespace"`
	Name        string    `json:"name"`
	Subject     string    `json:"subject"`
	SANs        []string  `json:"sans"`
	Issuer      string    `json:"issuer"`
	NotBefore   time.Time `json:"notBefore"`
	NotAfter    time.Time `json:"notAfter"`
	Fingerprint string    `json:"fingerprintSHA256"`
	HasCACert   bool      `json:"hasCACert"`
	CreatedBy   string    `json:"createdBy"`
	CreatedAt   time.Time `json:"createdAt"`
	UpdatedAt   time.Time `json:"updatedAt"`
}

func viewSecret(s store.Secret) secretView {
	v := secretView{Namespace: s.Namespace, Name: s.Name, HasCACert: len(s.CACertPEM) > 0,
		CreatedBy: s.CreatedBy, CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt, SANs: []string{}}
	if b, _ := pem.Decode(s.CertPEM); b != nil {
		if c, err := x509.ParseCertificate(b.Bytes); err == nil {
			v.Subject, v.Issuer = c.Subject.String(), c.Issuer.String()
			v.NotBefore, v.NotAfter = c.NotBefore.UTC(), c.NotAfter.UTC()
			v.SANs = append(v.SANs, c.DNSNames...)
			for _, ip := range c.IPAddresses {
				v.SANs = append(v.SANs, ip.String())
			}
			for _, u := range c.URIs {
				v.SANs = append(v.SANs, u.String())
			}
			sum := sha256.Sum256(c.Raw)
			v.Fingerprint = hex.EncodeToString(sum[:])
		}
	}
	return v
}

// secretAudit is what the audit log keeps of a secret: its view, never the key.
func secretAudit(s store.Secret) map[string]any {
	v := viewSecret(s)
	return map[string]any{"namespace": v.Namespace, "name": v.Name, "subject": v.Subject, "sans": v.SANs,
		"notAfter": v.NotAfter, "fingerprintSHA256": v.Fingerprint, "hasCACert": v.HasCACert}
}

// secretRequest is the body of POST and PUT: PEM text in each field.
type secretRequest struct {
	Name   string `json:"name"`
	Cert   string `json:"cert"`
	Key    string `json:"key"`
	CACert string `json:"caCert"`
}

// validateSecret checks a credential and returns the precise problems, by field.
func validateSecret(req secretRequest, now time.Time) []FieldError {
	var errs []FieldError
	add := func(path, format string, args ...any) {
		errs = append(errs, FieldError{Path: path, Message: fmt.Sprintf(format, args...)})
	}
	if !secretNameRE.MatchString(req.Name) || len(req.Name) > 253 {
		add("name", "%q is not a valid name: use lower-case letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253 characters", req.Name)
	}
	for _, f := range []struct{ path, v string }{{"cert", req.Cert}, {"key", req.Key}, {"caCert", req.CACert}} {
		if len(f.v) > maxSecretPEM {
			add(f.path, "%d bytes, over the limit of %d", len(f.v), maxSecretPEM)
		}
	}
	if len(errs) > 0 {
		return errs
	}
	var leaf *x509.Certificate
	switch {
	case req.Cert == "":
		add("cert", "required: the PEM certificate chain, leaf first")
	default:
		certs, err := parseCertsPEM([]byte(req.Cert))
		if err != nil {
			add("cert", "%v", err)
			break
		}
		leaf = certs[0]
		if now.After(leaf.NotAfter) {
			add("cert", "the certificate expired at %s: issue a new one", leaf.NotAfter.UTC().Format(time.RFC3339))
		} else if now.Before(leaf.NotBefore) {
			add("cert", "the certificate is not valid before %s", leaf.NotBefore.UTC().Format(time.RFC3339))
		}
	}
	switch {
	case req.Key == "":
		add("key", "required: the PEM private key of the certificate")
	case leaf != nil:
		if b, _ := pem.Decode([]byte(req.Key)); b == nil || !isKeyBlock(b.Type) {
			add("key", "not a PEM private key (want a PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY block)")
		} else if _, err := tls.X509KeyPair([]byte(req.Cert), []byte(req.Key)); err != nil {
			add("key", "does not match the certificate's public key, or does not parse: %v", err)
		}
	}
	if req.CACert != "" {
		if _, err := parseCertsPEM([]byte(req.CACert)); err != nil {
			add("caCert", "%v", err)
		}
	}
	return errs
}

func isKeyBlock(t string) bool {
	return t == "PRIVATE KEY" || t == "EC PRIVATE KEY" || t == "RSA PRIVATE KEY"
}

// parseCertsPEM parses every CERTIFICATE block of a PEM text; at least one is required.
func parseCertsPEM(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for i := 0; ; i++ {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %d is a %q, want CERTIFICATE", i, block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("PEM block %d does not parse as a certificate: %v", i, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
	}
	return out, nil
}

func secretsUnavailable(w http.ResponseWriter) {
	writeProblem(w, http.StatusServiceUnavailable, "secrets are not served by this sluice-server", nil, nil)
}

func writeSecretError(w http.ResponseWriter, r *http.Request, log *slog.Logger, ns, name string, err error) {
	switch {
	case errors.Is(err, store.ErrSecretNotFound):
		writeProblem(w, http.StatusNotFound, fmt.Sprintf("secret %s/%s not found", ns, name), nil, nil)
	case errors.Is(err, store.ErrSecretExists):
		writeProblem(w, http.StatusConflict, fmt.Sprintf("secret %s/%s exists: delete it first, or replace it with PUT /api/v1/namespaces/%s/secrets/%s", ns, name, ns, name), nil, nil)
	default:
		writeError(w, r, log, err)
	}
}

// handlePutSecret answers POST /api/v1/namespaces/{namespace}/secrets (create, 201) and
// PUT /api/v1/namespaces/{namespace}/secrets/{name} (replace, 200). The private key is
// sealed under the CA key before it is stored, and never answered or logged.
func handlePutSecret(sec Secrets, al AuditLog, log *slog.Logger, replace bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if sec.Store == nil {
			secretsUnavailable(w)
			return
		}
		ns := chi.URLParam(r, "namespace")
		if !namespaceRE.MatchString(ns) || len(ns) > 63 {
			writeProblem(w, http.StatusBadRequest, fmt.Sprintf("namespace %q is not a DNS label: use lower-case letters, digits and '-', at most 63 characters", ns),
				[]FieldError{{Path: "namespace", Message: "not a DNS label"}}, nil)
			return
		}
		var req secretRequest
		if err := decodeJSON(w, r, &req); err != nil {
			writeError(w, r, log, err)
			return
		}
		if replace {
			if req.Name == "" {
				req.Name = chi.URLParam(r, "name")
			} else if req.Name != chi.URLParam(r, "name") {
				writeProblem(w, http.StatusBadRequest, "the body's name differs from the URL's", []FieldError{{Path: "name", Message: fmt.Sprintf("%q, but the URL names %q: leave it out or make them equal", req.Name, chi.URLParam(r, "name"))}}, nil)
				return
			}
		}
		if errs := validateSecret(req, time.Now()); len(errs) > 0 {
			writeProblem(w, http.StatusBadRequest, "the TLS secret is not valid: fix the fields listed", errs, nil)
			return
		}
		sealed, err := store.SealSecret(sec.Key, []byte(req.Cert), []byte(req.Key))
		if err != nil {
			writeError(w, r, log, fmt.Errorf("create secret %s/%s: %w", ns, req.Name, err))
			return
		}
		s := store.Secret{Namespace: ns, Name: req.Name, CertPEM: []byte(req.Cert), Key: sealed,
			CACertPEM: []byte(req.CACert), CreatedBy: principal(r).Username}
		var before store.Secret
		if replace {
			before, err = sec.Store.GetSecret(r.Context(), ns, req.Name)
			if err == nil {
				err = sec.Store.PutSecret(r.Context(), s, true)
			}
		} else {
			err = sec.Store.PutSecret(r.Context(), s, false)
		}
		if err != nil {
			writeSecretError(w, r, log, ns, req.Name, err)
			return
		}
		stored, err := sec.Store.GetSecret(r.Context(), ns, req.Name)
		if err != nil {
			writeSecretError(w, r, log, ns, req.Name, err)
			return
		}
		entry := store.AuditEntry{Action: "secret.create", Target: "secrets/" + ns + "/" + req.Name,
			Outcome: store.AuditSuccess, After: auditJSON(secretAudit(stored))}
		status := http.StatusCreated
		if replace {
			entry.Action, entry.Before, status = "secret.replace", auditJSON(secretAudit(before)), http.StatusOK
		}
		recordAudit(al, log, r, entry)
		if sec.Changed != nil {
			sec.Changed()
		}
		w.Header().Set("Location", "/api/v1/namespaces/"+ns+"/secrets/"+req.Name)
		writeJSON(w, status, viewSecret(stored))
	}
}

// handleListSecrets answers GET /api/v1/namespaces/{namespace}/secrets: their certificates'
// details, never their keys.
func handleListSecrets(sec Secrets, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if sec.Store == nil {
			secretsUnavailable(w)
			return
		}
		ss, err := sec.Store.ListSecrets(r.Context(), chi.URLParam(r, "namespace"))
		if err != nil {
			writeError(w, r, log, err)
			return
		}
		out := make([]secretView, 0, len(ss))
		for _, s := range ss {
			out = append(out, viewSecret(s))
		}
		writeJSON(w, http.StatusOK, map[string]any{"secrets": out})
	}
}

// handleGetSecret answers GET /api/v1/namespaces/{namespace}/secrets/{name}.
func handleGetSecret(sec Secrets, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if sec.Store == nil {
			secretsUnavailable(w)
			return
		}
		ns, name := chi.URLParam(r, "namespace"), chi.URLParam(r, "name")
		s, err := sec.Store.GetSecret(r.Context(), ns, name)
		if err != nil {
			writeSecretError(w, r, log, ns, name, err)
			return
		}
		writeJSON(w, http.StatusOK, viewSecret(s))
	}
}

// handleDeleteSecret answers DELETE /api/v1/namespaces/{namespace}/secrets/{name} with 204.
func handleDeleteSecret(sec Secrets, al AuditLog, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if sec.Store == nil {
			secretsUnavailable(w)
			return
		}
		ns, name := chi.URLParam(r, "namespace"), chi.URLParam(r, "name")
		s, err := sec.Store.DeleteSecret(r.Context(), ns, name)
		if err != nil {
			writeSecretError(w, r, log, ns, name, err)
			return
		}
		recordAudit(al, log, r, store.AuditEntry{Action: "secret.delete", Target: "secrets/" + ns + "/" + name,
			Outcome: store.AuditSuccess, Before: auditJSON(secretAudit(s))})
		if sec.Changed != nil {
			sec.Changed()
		}
		w.WriteHeader(http.StatusNoContent)
	}
}
