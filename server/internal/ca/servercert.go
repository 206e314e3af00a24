package ca

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// ServerCertTTL is the lifetime of the control plane's own certificate; it is renewed at half
// of it.
const ServerCertTTL = 24 * time.Hour

// ServerCertSource holds the control plane's TLS certificate for its authenticated port and
// renews it at half-life. Its GetCertificate goes into a tls.Config.
type ServerCertSource struct {
	a        *Authority
	dnsNames []string
	ips      []net.IP
	id       spiffeid.ID
	ttl      time.Duration
	log      *slog.Logger
	cur      atomic.Pointer[serverCert]
}

type serverCert struct {
	tls      *tls.Certificate
	issuedAt time.Time
	notAfter time.Time
}

// NewServerCertSource issues the first certificate for dnsNames and ips, with the SPIFFE ID
// spiffe://<td>/ns/sluice-system/sa/sluice-server. ttl zero means ServerCertTTL.
func NewServerCertSource(a *Authority, dnsNames []string, ips []net.IP, ttl time.Duration, log *slog.Logger) (*ServerCertSource, error) {
	id, err := WorkloadID(a.TrustDomain(), "sluice-system", "sluice-server")
	if err != nil {
		return nil, err
	}
	if ttl <= 0 {
		ttl = ServerCertTTL
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &ServerCertSource{a: a, dnsNames: dnsNames, ips: ips, id: id, ttl: ttl, log: log}
	if err := s.renew(); err != nil {
		return nil, err
	}
	return s, nil
}

// ID is the server certificate's SPIFFE ID.
func (s *ServerCertSource) ID() spiffeid.ID { return s.id }

// GetCertificate returns the current certificate; it suits tls.Config.GetCertificate.
func (s *ServerCertSource) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return s.cur.Load().tls, nil
}

func (s *ServerCertSource) renew() error {
	iss, key, err := s.a.ServerCert(s.dnsNames, s.ips, s.id, s.ttl)
	if err != nil {
		return fmt.Errorf("issue the control plane's certificate: %w", err)
	}
	c := &tls.Certificate{PrivateKey: key, Leaf: iss.Cert}
	c.Certificate = append(c.Certificate, iss.Cert.Raw)
	for _, ic := range s.a.chain {
		c.Certificate = append(c.Certificate, ic.Raw)
	}
	s.cur.Store(&serverCert{tls: c, issuedAt: s.a.now(), notAfter: iss.Cert.NotAfter})
	s.log.Info("issued the control plane's TLS certificate", "not_after", iss.Cert.NotAfter.UTC().Format(time.RFC3339), "dns_names", s.dnsNames)
	return nil
}

// Run renews the certificate at half its lifetime until ctx ends. A failed renewal is logged
// and retried a minute later; the current certificate stays in use meanwhile.
func (s *ServerCertSource) Run(ctx context.Context) error {
	for {
		c := s.cur.Load()
		wait := c.notAfter.Sub(c.issuedAt) / 2
		wait -= s.a.now().Sub(c.issuedAt)
		if wait < 0 {
			wait = 0
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		if err := s.renew(); err != nil {
			s.log.Error("renew the control plane's TLS certificate", "error", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Minute):
			}
		}
	}
}
