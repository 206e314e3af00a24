package proxy

import (
	"encoding/pem"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicemesh/sluice/proxy/internal/identity/identitytest"
)

func TestSecurityOptions(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ca := identitytest.NewCA(t, "mesh root")
	token := write("token", "  slcw_0123456789abcdef\n")
	root := write("root.pem", string(ca.RootPEM()))
	leaf := ca.ServerTLS(t)
	notCA := write("leaf.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Certificate[0]})))
	base := "--control-plane 127.0.0.1:15012 --address 127.0.0.6 --service reviews --service-account reviews"

	tests := []struct {
		name    string
		args    string
		env     map[string]string
		wantErr string // the start of the error; empty for none
		check   func(*options) string
	}{
		{name: "plaintext without a token", args: base, check: func(o *options) string {
			if o.security.token != "" || o.security.credentials().Secure() || o.security.id.String() != "spiffe://cluster.local/ns/default/sa/reviews" {
				return "got a token, or not the identity: " + o.security.id.String()
			}
			return ""
		}},
		{name: "plaintext without a service account has no identity", args: "--control-plane 127.0.0.1:15010 --address 127.0.0.6 --service reviews", check: func(o *options) string {
			if !o.security.id.IsZero() {
				return o.security.id.String()
			}
			return ""
		}},
		{name: "token and root", args: base + " --token-file " + token + " --ca-root-file " + root, check: func(o *options) string {
			s := o.security
			if s.token != "slcw_0123456789abcdef" || len(s.roots) != 1 || !s.credentials().Secure() ||
				s.id.String() != "spiffe://cluster.local/ns/default/sa/reviews" {
				return "token, roots or id wrong: " + s.id.String()
			}
			return ""
		}},
		{name: "from the environment, with a trust domain", args: base + " --namespace shop",
			env: map[string]string{"SLUICE_TOKEN_FILE": token, "SLUICE_CA_ROOT_FILE": root, "SLUICE_TRUST_DOMAIN": "mesh.example"},
			check: func(o *options) string {
				if o.security.id.String() != "spiffe://mesh.example/ns/shop/sa/reviews" {
					return o.security.id.String()
				}
				return ""
			}},
		{name: "missing token file", args: base + " --token-file " + filepath.Join(dir, "nope") + " --ca-root-file " + root,
			wantErr: "--token-file: open " + filepath.Join(dir, "nope") + ": no such file or directory (create one with sluicectl token create workload"},
		{name: "empty token file", args: base + " --token-file " + write("empty", "\n\n") + " --ca-root-file " + root,
			wantErr: "--token-file " + filepath.Join(dir, "empty") + " is empty"},
		{name: "an API token", args: base + " --token-file " + write("api", "slc_abcdef") + " --ca-root-file " + root,
			wantErr: "--token-file " + filepath.Join(dir, "api") + ` does not hold a workload token (they start with "slcw_"`},
		{name: "two tokens", args: base + " --token-file " + write("two", "slcw_a\nslcw_b") + " --ca-root-file " + root,
			wantErr: "--token-file " + filepath.Join(dir, "two") + " holds more than one token"},
		{name: "a directory", args: base + " --token-file " + dir + " --ca-root-file " + root,
			wantErr: "--token-file: " + dir + " is not a regular file"},
		{name: "token without root", args: base + " --token-file " + token, wantErr: "--ca-root-file is required with --token-file"},
		{name: "root without token", args: base + " --ca-root-file " + root, wantErr: "--ca-root-file is given without --token-file"},
		{name: "unreadable root", args: base + " --token-file " + token + " --ca-root-file " + filepath.Join(dir, "nope.pem"),
			wantErr: "--ca-root-file: open " + filepath.Join(dir, "nope.pem") + ": no such file or directory"},
		{name: "root file without certificates", args: base + " --token-file " + token + " --ca-root-file " + write("text.pem", "hello"),
			wantErr: "--ca-root-file " + filepath.Join(dir, "text.pem") + " holds no PEM certificate"},
		{name: "root file with a key", args: base + " --token-file " + token + " --ca-root-file " + write("key.pem", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
			wantErr: "--ca-root-file " + filepath.Join(dir, "key.pem") + `: PEM block 0 is a "PRIVATE KEY", want CERTIFICATE`},
		{name: "root file with a leaf", args: base + " --token-file " + token + " --ca-root-file " + notCA,
			wantErr: "--ca-root-file " + notCA + ": certificate 0 (CN=identitytest server) is not a CA certificate"},
		{name: "no service account", args: "--control-plane 127.0.0.1:15012 --address 127.0.0.6 --service reviews --token-file " + token + " --ca-root-file " + root,
			wantErr: "--service-account is required with --token-file"},
		{name: "service account not a path segment", args: base + "x/y --token-file " + token + " --ca-root-file " + root,
			wantErr: `--namespace "default" and --service-account "reviewsx/y" do not make a SPIFFE ID`},
		{name: "bad trust domain", args: base + " --trust-domain Cluster.Local", wantErr: `--trust-domain "Cluster.Local" is not a SPIFFE trust domain`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseOptions(strings.Fields(tt.args), func(k string) string { return tt.env[k] }, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one starting %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("error is more than one line: %q", err)
				}
				if strings.Contains(err.Error(), "abcdef") || strings.Contains(err.Error(), "slcw_b") {
					t.Errorf("error quotes the file's content: %q", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if msg := tt.check(o); msg != "" {
				t.Error(msg)
			}
		})
	}
}
