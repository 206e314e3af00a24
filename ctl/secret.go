package ctl

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// maxSecretFile bounds each PEM file read for a secret; the server refuses more anyway.
const maxSecretFile = 16 << 10

var secretCommand = command{
	name:    "secret",
	args:    "(create tls NAME --cert FILE --key FILE [--ca-cert FILE] | replace tls NAME … | list | get NAME | delete NAME)",
	summary: "manage the TLS credentials gateways serve (Gateway tls.credentialName)",
	about: `
"secret create tls httpbin-credential --cert httpbin.crt --key httpbin.key" stores a TLS
credential in the namespace of -n (default "default"): a PEM certificate chain, leaf first,
and its PEM private key; --ca-cert adds the CA certificates a MUTUAL Gateway server verifies
client certificates with. A Gateway server names it as tls.credentialName, and the gateway
proxies of that namespace serve it. The server seals the key with the CA key and never shows
it again (needs the admin role). "secret replace tls NAME …" rotates it in place: gateways
serve the new certificate from their next handshakes, without a restart.
"secret list" and "secret get NAME" show the certificates' subjects, names, issuers,
validity and fingerprints (needs the operator role); "secret delete NAME" deletes one.`,
	setup: func(c *cli, fs *flagSet) func(context.Context, []string) error {
		var (
			namespace              = defaultNamespace
			certFile, keyFile, caF string
			out                    = outTable
		)
		fs.add(stringValue{&namespace}, "namespace", "n", "NS", defaultNamespace, "the secret's namespace")
		fs.add(stringValue{&certFile}, "cert", "", "FILE", "", "create, replace: PEM certificate chain, leaf first")
		fs.add(stringValue{&keyFile}, "key", "", "FILE", "", "create, replace: PEM private key of the certificate")
		fs.add(stringValue{&caF}, "ca-cert", "", "FILE", "", "create, replace: PEM CA certificates verifying clients (MUTUAL)")
		fs.add(stringValue{&out}, "output", "o", "FORMAT", outTable, "table, json or yaml")
		return func(ctx context.Context, args []string) error {
			if len(args) == 0 {
				return &UsageError{"secret needs create, replace, list, get or delete: sluicectl secret list"}
			}
			if err := checkOutput("secret", out, outTable, outJSON, outYAML); err != nil {
				return err
			}
			sub, rest := args[0], args[1:]
			if sub != "create" && sub != "replace" && (certFile != "" || keyFile != "" || caF != "") {
				return &UsageError{fmt.Sprintf("secret %s takes no --cert, --key or --ca-cert: only create and replace do", sub)}
			}
			switch sub {
			case "create", "replace":
				if err := wantArgs("secret "+sub, "tls NAME --cert FILE --key FILE", rest, 2, 2); err != nil {
					return err
				}
				if rest[0] != "tls" {
					return &UsageError{fmt.Sprintf("secret %s %q: only tls secrets exist: sluicectl secret %s tls NAME --cert FILE --key FILE", sub, rest[0], sub)}
				}
				if certFile == "" || keyFile == "" {
					return &UsageError{fmt.Sprintf("secret %s tls needs --cert and --key: the PEM certificate chain and its private key", sub)}
				}
				return c.putSecret(ctx, namespace, rest[1], certFile, keyFile, caF, sub == "replace", out)
			case "list":
				if err := wantArgs("secret list", "", rest, 0, 0); err != nil {
					return err
				}
				return c.listSecrets(ctx, namespace, out)
			case "get":
				if err := wantArgs("secret get", "NAME", rest, 1, 1); err != nil {
					return err
				}
				return c.getSecret(ctx, namespace, rest[0], out)
			case "delete":
				if err := wantArgs("secret delete", "NAME", rest, 1, 1); err != nil {
					return err
				}
				cl, err := c.apiClient()
				if err != nil {
					return err
				}
				if _, err := cl.sendJSON(ctx, http.MethodDelete, secretPath(namespace, rest[0]), nil, nil); err != nil {
					return err
				}
				_, err = fmt.Fprintf(c.stdout, "Deleted secret %s/%s.\n", namespace, rest[0])
				return err
			}
			return &UsageError{fmt.Sprintf("secret: unknown subcommand %q: use create, replace, list, get or delete", sub)}
		}
	},
}

type secretInfo struct {
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
	UpdatedAt   time.Time `json:"updatedAt"`
}

func secretPath(namespace, name string) string {
	p := "/api/v1/namespaces/" + url.PathEscape(namespace) + "/secrets"
	if name != "" {
		p += "/" + url.PathEscape(name)
	}
	return p
}

// readPEMFile reads a file given by flag, bounded.
func readPEMFile(flag, path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", &UsageError{fmt.Sprintf("--%s %s: %v", flag, path, err)}
	}
	if fi.Size() > maxSecretFile {
		return "", &UsageError{fmt.Sprintf("--%s %s: %d bytes, over the limit of %d: give the PEM file alone", flag, path, fi.Size(), maxSecretFile)}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", &UsageError{fmt.Sprintf("--%s %s: %v", flag, path, err)}
	}
	return string(b), nil
}

func (c *cli) putSecret(ctx context.Context, namespace, name, certFile, keyFile, caFile string, replace bool, out string) error {
	req := map[string]string{"name": name}
	for _, f := range []struct{ flag, path, field string }{{"cert", certFile, "cert"}, {"key", keyFile, "key"}, {"ca-cert", caFile, "caCert"}} {
		if f.path == "" {
			continue
		}
		v, err := readPEMFile(f.flag, f.path)
		if err != nil {
			return err
		}
		req[f.field] = v
	}
	cl, err := c.apiClient()
	if err != nil {
		return err
	}
	method, path, verb := http.MethodPost, secretPath(namespace, ""), "Created"
	if replace {
		method, path, verb = http.MethodPut, secretPath(namespace, name), "Replaced"
	}
	var ans secretInfo
	raw, err := cl.sendJSON(ctx, method, path, req, &ans)
	if err != nil {
		return err
	}
	if out != outTable {
		return printAnswer(c.stdout, out, raw)
	}
	_, err = fmt.Fprintf(c.stdout, "%s secret %s/%s: %s, valid until %s, sha256 %s.\n", verb, ans.Namespace, ans.Name,
		ans.Subject, ans.NotAfter.Local().Format(time.RFC3339), ans.Fingerprint)
	return err
}

func (c *cli) listSecrets(ctx context.Context, namespace, out string) error {
	cl, err := c.apiClient()
	if err != nil {
		return err
	}
	var ans struct {
		Secrets []secretInfo `json:"secrets"`
	}
	raw, err := cl.getJSON(ctx, secretPath(namespace, ""), nil, &ans)
	if err != nil {
		return err
	}
	if out != outTable {
		return printAnswer(c.stdout, out, raw)
	}
	if len(ans.Secrets) == 0 {
		_, err := fmt.Fprintf(c.stderr, "No secrets in namespace %s.\n", namespace)
		return err
	}
	rows := make([][]string, 0, len(ans.Secrets))
	for _, s := range ans.Secrets {
		ca := "no"
		if s.HasCACert {
			ca = "yes"
		}
		rows = append(rows, []string{s.Name, truncate(strings.Join(s.SANs, ","), 40), c.when(&s.NotAfter), ca, s.Fingerprint[:min(16, len(s.Fingerprint))]})
	}
	return writeTable(c.stdout, []string{"NAME", "SANS", "NOT AFTER", "CA CERT", "SHA256"}, rows)
}

func (c *cli) getSecret(ctx context.Context, namespace, name, out string) error {
	cl, err := c.apiClient()
	if err != nil {
		return err
	}
	var s secretInfo
	raw, err := cl.getJSON(ctx, secretPath(namespace, name), nil, &s)
	if err != nil {
		return err
	}
	if out != outTable {
		return printAnswer(c.stdout, out, raw)
	}
	_, err = fmt.Fprintf(c.stdout, "Name:        %s/%s\nSubject:     %s\nSANs:        %s\nIssuer:      %s\nNot before:  %s\nNot after:   %s\nSHA-256:     %s\nCA cert:     %v\nUpdated:     %s by %s\n",
		s.Namespace, s.Name, s.Subject, strings.Join(s.SANs, ", "), s.Issuer, s.NotBefore.Local().Format(time.RFC3339),
		s.NotAfter.Local().Format(time.RFC3339), s.Fingerprint, s.HasCACert, s.UpdatedAt.Local().Format(time.RFC3339), s.CreatedBy)
	return err
}
