package ctl

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"time"
)

var loginCommand = command{
	name:    "login",
	summary: "sign in, and keep an API token for the next commands in the config file",
	about: `
Signs in with a username and password (POST /api/v1/login), creates an API token named
"sluicectl@HOSTNAME" (POST /api/v1/tokens), and writes the server, the username and the
token to the config file with mode 0600. The password is never stored, and the sign-in
session is ended once the token exists. A token from an earlier login to the same server
is revoked.

On a terminal, login prompts for what is not given, without echoing the password. Scripts
pipe the password instead:

  printf '%s\n' "$PASSWORD" | sluicectl login --username admin --password-stdin`,
	setup: func(c *cli, fs *flagSet) func(context.Context, []string) error {
		var username string
		var passwordStdin bool
		fs.add(stringValue{&username}, "username", "u", "NAME", "", "who to sign in as (default: prompt on a terminal, else the config file's username)")
		fs.add(boolValue{&passwordStdin}, "password-stdin", "", "", "", "read the password from standard input instead of prompting")
		return func(ctx context.Context, args []string) error {
			if err := wantArgs("login", "", args, 0, 0); err != nil {
				return err
			}
			return c.login(ctx, username, passwordStdin)
		}
	},
}

var logoutCommand = command{
	name:    "logout",
	summary: "revoke the API token login stored, and remove it from the config file",
	about: `
Revokes the config file's token on the server it belongs to (DELETE /api/v1/tokens/ID)
and removes it from the config file. A token the server no longer accepts is removed too.`,
	setup: func(c *cli, fs *flagSet) func(context.Context, []string) error {
		return func(ctx context.Context, args []string) error {
			if err := wantArgs("logout", "", args, 0, 0); err != nil {
				return err
			}
			return c.logout(ctx)
		}
	},
}

var whoamiCommand = command{
	name:    "whoami",
	summary: "show who the credentials belong to, and their role",
	setup: func(c *cli, fs *flagSet) func(context.Context, []string) error {
		out := outTable
		fs.add(stringValue{&out}, "output", "o", "FORMAT", outTable, "table, json or yaml")
		return func(ctx context.Context, args []string) error {
			if err := wantArgs("whoami", "", args, 0, 0); err != nil {
				return err
			}
			if err := checkOutput("whoami", out, outTable, outJSON, outYAML); err != nil {
				return err
			}
			cl, err := c.apiClient()
			if err != nil {
				return err
			}
			var who struct {
				Username   string `json:"username"`
				Role       string `json:"role"`
				AuthMethod string `json:"authMethod"`
			}
			raw, err := cl.getJSON(ctx, "/api/v1/whoami", nil, &who)
			if err != nil {
				return err
			}
			if out != outTable {
				return printAnswer(c.stdout, out, raw)
			}
			how := "an API token"
			if who.AuthMethod == "session" {
				how = "a session"
			}
			_, err = fmt.Fprintf(c.stdout, "%s (role %s) at %s, with %s\n", oneLine(who.Username), oneLine(who.Role), cl.base, how)
			return err
		}
	},
}

// maxPasswordBytes bounds what --password-stdin reads.
const maxPasswordBytes = 64 << 10

func (c *cli) login(ctx context.Context, username string, passwordStdin bool) error {
	server, err := c.serverURL()
	if err != nil {
		return err
	}
	cfg, err := c.config()
	if err != nil {
		return err
	}
	if username == "" {
		switch {
		case !passwordStdin && c.terminal():
			prompt := "Username: "
			if cfg.Username != "" {
				prompt = fmt.Sprintf("Username [%s]: ", cfg.Username)
			}
			fmt.Fprint(c.stderr, prompt)
			if username, err = c.readLine(ctx); err != nil {
				return err
			}
			if username == "" {
				username = cfg.Username
			}
		case cfg.Username != "" && sameServer(cfg.Server, server):
			username = cfg.Username
		case passwordStdin:
			return &UsageError{"login: --password-stdin needs --username, since standard input holds the password"}
		default:
			return &UsageError{"login: standard input is not a terminal, so sluicectl cannot prompt: pass --username and pipe the password with --password-stdin"}
		}
		if username == "" {
			return &UsageError{"login: a username is required: pass --username"}
		}
	}
	var password string
	if passwordStdin {
		b, err := io.ReadAll(io.LimitReader(c.lineReader(), maxPasswordBytes+1))
		if err != nil {
			return fmt.Errorf("read the password from standard input: %w", err)
		}
		if len(b) > maxPasswordBytes {
			return &UsageError{"login: standard input is too long to be a password: pipe the password alone"}
		}
		password = strings.TrimRight(string(b), "\r\n")
	} else {
		if !c.terminal() {
			return &UsageError{"login: standard input is not a terminal, so sluicectl cannot prompt for the password: pipe it with --password-stdin"}
		}
		if password, err = c.readSecret(ctx, "Password: "); err != nil {
			return err
		}
	}
	if password == "" {
		return &UsageError{"login: the password is empty: type it at the prompt, or pipe it with --password-stdin"}
	}

	cl := c.newClient(server)
	cl.hc.Jar, _ = cookiejar.New(nil) // cannot fail without options
	var in struct {
		Username  string `json:"username"`
		Role      string `json:"role"`
		CSRFToken string `json:"csrfToken"`
	}
	body, err := json.Marshal(map[string]string{"username": username, "password": password})
	if err != nil {
		return fmt.Errorf("encode the sign-in request: %w", err)
	}
	raw, err := cl.do(ctx, request{method: http.MethodPost, path: "/api/v1/login", body: body, contentType: "application/json", signingIn: true})
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, &in); err != nil || in.CSRFToken == "" {
		return fmt.Errorf("the sign-in answer from %s is not sluice-server's: check --server", server)
	}
	cl.csrf = in.CSRFToken

	var tok struct {
		ID        string    `json:"id"`
		Token     string    `json:"token"`
		Name      string    `json:"name"`
		ExpiresAt time.Time `json:"expiresAt"`
	}
	if _, err := cl.sendJSON(ctx, http.MethodPost, "/api/v1/tokens", map[string]string{"name": c.tokenName()}, &tok); err != nil {
		return fmt.Errorf("signed in, but creating an API token failed: %w", err)
	}
	if tok.Token == "" || tok.ID == "" {
		return fmt.Errorf("signed in, but %s answered no API token: is it a sluice-server of this version?", server)
	}
	// A new login replaces the token of the last one; revoke that, so logins do not leave
	// live tokens behind.
	if cfg.TokenID != "" && cfg.TokenID != tok.ID && sameServer(cfg.Server, server) {
		if _, err := cl.do(ctx, request{method: http.MethodDelete, path: "/api/v1/tokens/" + url.PathEscape(cfg.TokenID)}); err != nil && !isStatus(err, http.StatusNotFound) {
			fmt.Fprintf(c.stderr, "sluicectl: warning: could not revoke the previous API token %s (%v): revoke it in the console\n", cfg.TokenID, oneLine(err.Error()))
		}
	}
	// The session was only needed to create the token. Ending it is a courtesy: it expires
	// on its own, so a failure here is not worth reporting.
	_, _ = cl.do(ctx, request{method: http.MethodPost, path: "/api/v1/logout"})

	next := Config{Server: server, Username: in.Username, Token: tok.Token, TokenID: tok.ID, TokenName: tok.Name}
	if !tok.ExpiresAt.IsZero() {
		next.ExpiresAt = &tok.ExpiresAt
	}
	if err := saveConfig(c.cfgPath, next); err != nil {
		// Do not leave a live token that nobody holds.
		cl.csrf, cl.token = "", tok.Token
		_, _ = cl.do(context.WithoutCancel(ctx), request{method: http.MethodDelete, path: "/api/v1/tokens/" + url.PathEscape(tok.ID)})
		return fmt.Errorf("signed in, but %w; the new token was revoked: fix the path or set SLUICE_CONFIG, and run sluicectl login again", err)
	}
	c.cfg = next
	expires := ""
	if next.ExpiresAt != nil {
		expires = ", valid until " + next.ExpiresAt.Local().Format("2006-01-02 15:04 MST")
	}
	_, err = fmt.Fprintf(c.stdout, "Signed in to %s as %s (role %s). API token %q saved in %s%s.\n",
		server, oneLine(in.Username), oneLine(in.Role), tok.Name, c.cfgPath, expires)
	return err
}

// tokenName names login's token after the machine, so that a list of tokens says where each
// is used.
func (c *cli) tokenName() string {
	host, err := c.hostname()
	if err != nil || oneLine(host) == "" {
		host = "unknown-host"
	}
	return truncate("sluicectl@"+oneLine(host), 100)
}

func (c *cli) logout(ctx context.Context) error {
	cfg, err := c.config()
	if err != nil {
		return err
	}
	if cfg.Token == "" {
		_, err := fmt.Fprintf(c.stdout, "Not signed in: %s holds no token.\n", c.cfgPath)
		return err
	}
	// The token belongs to the config file's server, whatever --server says.
	server, err := normalizeServer(cfg.Server)
	if err != nil {
		return fmt.Errorf("the config file %s names no valid server (%v): delete it", c.cfgPath, err)
	}
	note := "revoked API token " + quoteName(cfg.TokenName, cfg.TokenID)
	if cfg.TokenID == "" {
		note = "the token's id is unknown, so it was not revoked: revoke it in the console"
	} else {
		cl := c.newClient(server)
		cl.token, cl.tokenSource = cfg.Token, c.cfgPath
		_, err := cl.do(ctx, request{method: http.MethodDelete, path: "/api/v1/tokens/" + url.PathEscape(cfg.TokenID)})
		var ae *apiError
		switch {
		case errors.As(err, &ae) && (ae.Status == http.StatusUnauthorized || ae.Status == http.StatusNotFound):
			note = "the server no longer accepted the token"
		case err != nil:
			return fmt.Errorf("%w; the token is still in %s: run sluicectl logout again", err, c.cfgPath)
		}
	}
	cfg.Token, cfg.TokenID, cfg.TokenName, cfg.ExpiresAt = "", "", "", nil
	if err := saveConfig(c.cfgPath, cfg); err != nil {
		return err
	}
	c.cfg = cfg
	_, err = fmt.Fprintf(c.stdout, "Signed out of %s: %s, and removed it from %s.\n", server, note, c.cfgPath)
	return err
}

func quoteName(name, id string) string {
	if name == "" {
		return id
	}
	return fmt.Sprintf("%q (%s)", name, id)
}

// isStatus reports whether err is an error answer with that status.
func isStatus(err error, status int) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.Status == status
}

// stdinIsTerminal reports whether standard input is a terminal, so that prompting makes
// sense.
func (c *cli) stdinIsTerminal() bool {
	f, ok := c.stdin.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	// /dev/null is a character device too, and nobody types there.
	null, err := os.Stat(os.DevNull)
	return err != nil || !os.SameFile(fi, null)
}

// lineReader reads standard input line by line; prompts share it, so that a line typed
// ahead is not lost between them.
func (c *cli) lineReader() *bufio.Reader {
	if c.lines == nil {
		c.lines = bufio.NewReader(c.stdin)
	}
	return c.lines
}

// readLine reads one line from standard input, without its line ending. An interrupt ends
// the wait: the read itself cannot be cancelled, so its goroutine is left to end with the
// process, which exits right after.
func (c *cli) readLine(ctx context.Context) (string, error) {
	type result struct {
		line string
		err  error
	}
	br := c.lineReader()
	ch := make(chan result, 1)
	go func() {
		s, err := br.ReadString('\n')
		ch <- result{s, err}
	}()
	select {
	case r := <-ch:
		switch {
		case errors.Is(r.err, io.EOF) && r.line == "":
			return "", errors.New("standard input ended before a line was typed: type it, or pass it with a flag")
		case r.err != nil && !errors.Is(r.err, io.EOF):
			return "", fmt.Errorf("read from the terminal: %w", r.err)
		}
		return strings.TrimRight(r.line, "\r\n"), nil
	case <-ctx.Done():
		return "", errors.New("interrupted")
	}
}

// readPasswordNoEcho prompts on standard error and reads a line from the terminal with echo
// off. Without golang.org/x/term, echo is switched through stty(1), and restored afterwards,
// also after an interrupt.
func (c *cli) readPasswordNoEcho(ctx context.Context, prompt string) (string, error) {
	f, ok := c.stdin.(*os.File)
	if !ok {
		return "", errors.New("standard input is not a terminal, so sluicectl cannot prompt for the password: pipe it with --password-stdin")
	}
	saved, err := stty(f, "-g")
	if err != nil {
		return "", fmt.Errorf("cannot turn off echo to read the password (stty: %v): pipe the password with --password-stdin", err)
	}
	if _, err := stty(f, "-echo"); err != nil {
		return "", fmt.Errorf("cannot turn off echo to read the password (stty: %v): pipe the password with --password-stdin", err)
	}
	defer func() {
		if _, err := stty(f, saved); err != nil {
			_, _ = stty(f, "echo")
		}
	}()
	fmt.Fprint(c.stderr, prompt)
	line, err := c.readLine(ctx)
	fmt.Fprintln(c.stderr) // the user's Enter was not echoed
	return line, err
}

// stty runs stty(1) on the terminal f and returns its output.
func stty(f *os.File, args ...string) (string, error) {
	cmd := exec.Command("stty", args...)
	cmd.Stdin = f
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && len(ee.Stderr) > 0 {
			return "", errors.New(oneLine(string(ee.Stderr)))
		}
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}
