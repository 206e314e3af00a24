package ctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// workloadTokenIDPrefix starts a workload token's ID (an API token's is plain hex).
const workloadTokenIDPrefix = "wt-"

var tokenCommand = command{
	name:    "token",
	args:    "(create workload --namespace NS --service-account SA | list | revoke ID)",
	summary: "create, list and revoke workload tokens; list and revoke API tokens",
	about: `
"token create workload --namespace default --service-account bookinfo-reviews" creates a
workload token (slcw_…): the credential a sluice-proxy presents on the authenticated xDS
port (:15012) to receive configuration and certificates as
spiffe://<trust-domain>/ns/default/sa/bookinfo-reviews, and as no other identity. It is
printed once, and the server keeps only its hash (needs the admin role). --expires sets its
lifetime (default 720h, at most a year), --name what it is for.
"token list" shows your API tokens (an admin's: everyone's) and, for an admin, the workload
tokens with their identities. "token revoke ID" revokes either kind: a workload token's ID
starts with "wt-". A revoked workload token is refused from the proxy's next connection.`,
	setup: func(c *cli, fs *flagSet) func(context.Context, []string) error {
		var (
			namespace, serviceAccount, name string
			expires                         time.Duration
			out                             = outTable
		)
		fs.add(stringValue{&namespace}, "namespace", "n", "NS", "", "create: the workload's namespace")
		fs.add(stringValue{&serviceAccount}, "service-account", "", "SA", "", "create: the workload's service account")
		fs.add(stringValue{&name}, "name", "", "TEXT", "NS/SA", "create: what the token is for")
		fs.add(durationValue{&expires}, "expires", "", "DURATION", "720h", "create: the token's lifetime")
		fs.add(stringValue{&out}, "output", "o", "FORMAT", outTable, "table, json or yaml")
		return func(ctx context.Context, args []string) error {
			if len(args) == 0 {
				return &UsageError{"token needs create, list or revoke: sluicectl token list"}
			}
			if err := checkOutput("token", out, outTable, outJSON, outYAML); err != nil {
				return err
			}
			sub, rest := args[0], args[1:]
			if sub != "create" && (namespace != "" || serviceAccount != "" || name != "" || expires != 0) {
				return &UsageError{fmt.Sprintf("token %s takes no --namespace, --service-account, --name or --expires: only create does", sub)}
			}
			switch sub {
			case "create":
				if err := wantArgs("token create", "workload --namespace NS --service-account SA", rest, 1, 1); err != nil {
					return err
				}
				if rest[0] != "workload" {
					return &UsageError{fmt.Sprintf("token create %q: only workload tokens are created here (API tokens come from sluicectl login): sluicectl token create workload --namespace NS --service-account SA", rest[0])}
				}
				if namespace == "" || serviceAccount == "" {
					return &UsageError{"token create workload needs --namespace and --service-account: the identity the token is bound to"}
				}
				return c.createWorkloadToken(ctx, namespace, serviceAccount, name, expires, out)
			case "list":
				if err := wantArgs("token list", "", rest, 0, 0); err != nil {
					return err
				}
				return c.listTokens(ctx, out)
			case "revoke":
				if err := wantArgs("token revoke", "ID", rest, 1, 1); err != nil {
					return err
				}
				return c.revokeToken(ctx, rest[0])
			}
			return &UsageError{fmt.Sprintf("token: unknown subcommand %q: use create, list or revoke", sub)}
		}
	},
}

type workloadTokenInfo struct {
	ID             string     `json:"id"`
	Token          string     `json:"token"`
	Name           string     `json:"name"`
	Namespace      string     `json:"namespace"`
	ServiceAccount string     `json:"serviceAccount"`
	CreatedBy      string     `json:"createdBy"`
	ExpiresAt      time.Time  `json:"expiresAt"`
	LastUsedAt     *time.Time `json:"lastUsedAt"`
	Revoked        bool       `json:"revoked"`
}

type apiTokenInfo struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Username   string     `json:"username"`
	Role       string     `json:"role"`
	ExpiresAt  time.Time  `json:"expiresAt"`
	LastUsedAt *time.Time `json:"lastUsedAt"`
	Revoked    bool       `json:"revoked"`
}

func (c *cli) createWorkloadToken(ctx context.Context, namespace, serviceAccount, name string, expires time.Duration, out string) error {
	cl, err := c.apiClient()
	if err != nil {
		return err
	}
	req := map[string]string{"namespace": namespace, "serviceAccount": serviceAccount}
	if name != "" {
		req["name"] = name
	}
	if expires != 0 {
		req["expiresIn"] = expires.String()
	}
	var ans workloadTokenInfo
	raw, err := cl.sendJSON(ctx, http.MethodPost, "/api/v1/workload-tokens", req, &ans)
	if err != nil {
		return err
	}
	if out != outTable {
		return printAnswer(c.stdout, out, raw)
	}
	if _, err := fmt.Fprintln(c.stdout, ans.Token); err != nil {
		return err
	}
	_, err = fmt.Fprintf(c.stderr, "Workload token %s for namespace %s, service account %s, expires %s.\nIt is shown only this once: give it to the proxy (authorization: Bearer <token> on the TLS xDS port).\n",
		ans.ID, ans.Namespace, ans.ServiceAccount, ans.ExpiresAt.Local().Format(time.RFC3339))
	return err
}

func (c *cli) listTokens(ctx context.Context, out string) error {
	cl, err := c.apiClient()
	if err != nil {
		return err
	}
	var apiAns struct {
		Tokens []apiTokenInfo `json:"tokens"`
	}
	if _, err := cl.getJSON(ctx, "/api/v1/tokens", nil, &apiAns); err != nil {
		return err
	}
	var wlAns struct {
		Tokens []workloadTokenInfo `json:"tokens"`
	}
	_, err = cl.getJSON(ctx, "/api/v1/workload-tokens", nil, &wlAns)
	var ae *apiError
	switch {
	case errors.As(err, &ae) && ae.Status == http.StatusForbidden:
		// Only admins see workload tokens; others see their API tokens alone.
	case err != nil:
		return err
	}
	if out != outTable {
		raw, err := json.Marshal(map[string]any{"apiTokens": apiAns.Tokens, "workloadTokens": wlAns.Tokens})
		if err != nil {
			return fmt.Errorf("encode the tokens: %w", err)
		}
		return printAnswer(c.stdout, out, raw)
	}
	if len(apiAns.Tokens)+len(wlAns.Tokens) == 0 {
		_, err := fmt.Fprintln(c.stderr, "No tokens.")
		return err
	}
	rows := make([][]string, 0, len(apiAns.Tokens)+len(wlAns.Tokens))
	state := func(revoked bool, expires time.Time) string {
		switch {
		case revoked:
			return "revoked"
		case !c.now().Before(expires):
			return "expired"
		}
		return "active"
	}
	for _, t := range wlAns.Tokens {
		rows = append(rows, []string{t.ID, "workload", truncate(oneLine(t.Name), 40), "ns/" + t.Namespace + "/sa/" + t.ServiceAccount,
			state(t.Revoked, t.ExpiresAt), c.when(&t.ExpiresAt), c.when(t.LastUsedAt)})
	}
	for _, t := range apiAns.Tokens {
		rows = append(rows, []string{t.ID, "api", truncate(oneLine(t.Name), 40), t.Username + " (" + t.Role + ")",
			state(t.Revoked, t.ExpiresAt), c.when(&t.ExpiresAt), c.when(t.LastUsedAt)})
	}
	return writeTable(c.stdout, []string{"ID", "KIND", "NAME", "IDENTITY", "STATE", "EXPIRES", "LAST USED"}, rows)
}

func (c *cli) revokeToken(ctx context.Context, id string) error {
	cl, err := c.apiClient()
	if err != nil {
		return err
	}
	kind, path := "API token", "/api/v1/tokens/"
	if strings.HasPrefix(id, workloadTokenIDPrefix) {
		kind, path = "workload token", "/api/v1/workload-tokens/"
	}
	if _, err := cl.sendJSON(ctx, http.MethodDelete, path+url.PathEscape(id), nil, nil); err != nil {
		return err
	}
	_, err = fmt.Fprintf(c.stdout, "Revoked %s %s.\n", kind, id)
	return err
}
