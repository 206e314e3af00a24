// Package ctl is sluicectl, the command line for everything the REST API does.
//
// Every command is one or a few calls to sluice-server's /api/v1; its output is a table for
// people, or the server's own JSON with -o json for scripts. Errors say what went wrong and
// what to do, carrying the server's problem detail and its field errors.
package ctl

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/sluicemesh/sluice/internal/version"
)

// UsageError marks a wrong command line: main prints it and exits 2.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

const (
	defaultServer    = "http://127.0.0.1:8080"
	defaultNamespace = "default"
	defaultTimeout   = 30 * time.Second
)

// Run is sluicectl's main. args excludes the program name. It reads the environment through
// getenv only, and the terminal (for login's prompts) through standard input. An interrupt
// cancels the request in flight.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	return newCLI(getenv, os.Stdin, stdout, stderr).run(ctx, args)
}

// cli is one run of sluicectl: its surroundings and its global options.
type cli struct {
	getenv func(string) string
	// stdin is standard input; lines reads it by line once a prompt has.
	stdin          io.Reader
	lines          *bufio.Reader
	stdout, stderr io.Writer
	now            func() time.Time
	hostname       func() (string, error)
	// terminal reports whether standard input is a terminal one can prompt on.
	terminal func() bool
	// readSecret reads a line from the terminal without echoing it.
	readSecret func(ctx context.Context, prompt string) (string, error)
	// transport, when not nil, replaces http.DefaultTransport.
	transport http.RoundTripper

	// The global flags. Empty strings mean "not given".
	serverFlag string
	tokenFlag  string
	timeout    time.Duration

	// The config file, read on first use.
	cfgRead bool
	cfgPath string
	cfg     Config
	cfgErr  error
}

func newCLI(getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) *cli {
	c := &cli{
		getenv: getenv, stdin: stdin, stdout: stdout, stderr: stderr,
		now: time.Now, hostname: os.Hostname, timeout: defaultTimeout,
	}
	c.terminal = c.stdinIsTerminal
	c.readSecret = c.readPasswordNoEcho
	return c
}

// command is one sluicectl command.
type command struct {
	name string
	// args is the synopsis after the name and flags, as in "KIND [NAME]".
	args    string
	summary string
	// about is the longer help, shown by "sluicectl help NAME".
	about string
	// setup registers the command's flags on fs and returns the command's body, which gets
	// the positional arguments.
	setup func(c *cli, fs *flagSet) func(ctx context.Context, args []string) error
}

// commands lists every command in the order help shows them.
var commands []command

func init() {
	// Assigned here rather than in the declaration because the setups refer back to
	// commands (through help).
	commands = []command{
		loginCommand, logoutCommand, whoamiCommand,
		applyCommand, getCommand, deleteCommand,
		historyCommand, diffCommand, rollbackCommand,
		canaryCommand, experimentCommand, proxyStatusCommand, proxyConfigCommand,
		topCommand, tapCommand, statCommand, tokenCommand, secretCommand,
	}
}

func commandByName(name string) (command, bool) {
	for _, c := range commands {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

func commandNames() []string {
	names := make([]string, 0, len(commands)+2)
	for _, c := range commands {
		names = append(names, c.name)
	}
	return append(names, "version", "help")
}

// globalFlags registers the flags every command takes. They write to c, and registering them
// again (on the command's set after the top-level set) keeps what was already parsed.
func (c *cli) globalFlags(fs *flagSet) {
	fs.addGlobal(stringValue{&c.serverFlag}, "server", "URL", "$SLUICE_SERVER, else the config file's, else "+defaultServer, "sluice-server's address")
	fs.addGlobal(stringValue{&c.tokenFlag}, "token", "TOKEN", "$SLUICE_TOKEN, else the config file's", "API token to send")
	fs.addGlobal(durationValue{&c.timeout}, "timeout", "DURATION", defaultTimeout.String(), "how long to wait for each answer from the server")
}

func (c *cli) run(ctx context.Context, args []string) error {
	if len(args) > 0 && args[0] == "--version" {
		args[0] = "version"
	}
	// The global flags may also come before the command's name; the standard parser stops at
	// the first argument that is not a flag, which is the name.
	top := newFlagSet("sluicectl")
	c.globalFlags(top)
	if err := top.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			c.usage(c.stdout)
			return nil
		}
		return &UsageError{fmt.Sprintf("%v; run \"sluicectl help\"", err)}
	}
	args = top.fs.Args()
	if len(args) == 0 {
		c.usage(c.stderr)
		return &UsageError{"a command is required: see the list above"}
	}
	name, args := args[0], args[1:]
	switch name {
	case "version":
		fmt.Fprintln(c.stdout, "sluicectl", version.String())
		return nil
	case "help":
		return c.help(args)
	}
	cmd, ok := commandByName(name)
	if !ok {
		return &UsageError{fmt.Sprintf("unknown command %q: use one of %s", name, strings.Join(commandNames(), ", "))}
	}
	fs := newFlagSet(cmd.name)
	body := cmd.setup(c, fs)
	c.globalFlags(fs)
	pos, err := fs.parse(args)
	if errors.Is(err, flag.ErrHelp) {
		c.commandHelp(c.stdout, cmd)
		return nil
	}
	if err != nil {
		return err
	}
	return body(ctx, pos)
}

// help answers "sluicectl help [COMMAND]".
func (c *cli) help(args []string) error {
	if len(args) == 0 {
		c.usage(c.stdout)
		return nil
	}
	cmd, ok := commandByName(args[0])
	if !ok {
		return &UsageError{fmt.Sprintf("no help for %q: it is not a command; use one of %s", args[0], strings.Join(commandNames(), ", "))}
	}
	c.commandHelp(c.stdout, cmd)
	return nil
}

// usage writes sluicectl's help: every command, the global flags, and where the server and
// the credentials come from.
func (c *cli) usage(w io.Writer) {
	fmt.Fprint(w, "sluicectl is the command line for sluice-server's REST API.\n\nUsage: sluicectl [global flags] COMMAND [flags] [args]\n\nCommands:\n")
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	for _, cmd := range commands {
		fmt.Fprintf(tw, "  %s\t%s\n", strings.TrimSpace(cmd.name+" "+cmd.args), cmd.summary)
	}
	fmt.Fprintf(tw, "  version\tprint sluicectl's version\n")
	fmt.Fprintf(tw, "  help [COMMAND]\tshow this help, or a command's flags and details\n")
	tw.Flush()
	fs := newFlagSet("sluicectl")
	c.globalFlags(fs)
	fs.describe(w)
	fmt.Fprint(w, usageFooter)
}

// usageFooter explains the environment, the config file, kinds and exit codes.
var usageFooter = `
Every command also takes the global flags, before or after its name. -o json prints the
server's own JSON answer; -o yaml prints it as YAML.

Server and credentials:
  The server is --server, else $SLUICE_SERVER, else the one in the config file, else
  ` + defaultServer + `. The API token is --token, else $SLUICE_TOKEN, else the config
  file's, which is only ever sent to the server it was issued by.

Config file:
  $SLUICE_CONFIG, else $XDG_CONFIG_HOME/sluice/config.json, else
  ~/.config/sluice/config.json. "sluicectl login" writes it with mode 0600 (its directory
  0700): the server URL, the username and the API token, never the password. A config
  file others can read is still used, with a warning to chmod 600 it.

Kinds (plural, singular or short):
` + wrapList(strings.Split(kindList(), ", "), "  ", 90) + `

Exit status: 0 on success, 2 for a wrong command line, 1 for any other error.
`

// commandHelp writes one command's help.
func (c *cli) commandHelp(w io.Writer, cmd command) {
	fmt.Fprintf(w, "Usage: sluicectl %s [flags]", cmd.name)
	if cmd.args != "" {
		fmt.Fprintf(w, " %s", cmd.args)
	}
	fmt.Fprintf(w, "\n\n%s.\n", upperFirst(cmd.summary))
	if cmd.about != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(cmd.about))
	}
	fs := newFlagSet(cmd.name)
	cmd.setup(c, fs)
	c.globalFlags(fs)
	fs.describe(w)
}

// wrapList writes a comma-separated list as indented lines of at most width characters,
// breaking only between items.
func wrapList(items []string, indent string, width int) string {
	var b strings.Builder
	line := indent
	for i, it := range items {
		if i < len(items)-1 {
			it += ","
		}
		if line != indent && len(line)+1+len(it) > width {
			b.WriteString(line + "\n")
			line = indent
		}
		if line != indent {
			line += " "
		}
		line += it
	}
	b.WriteString(line)
	return b.String()
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// config returns the config file, reading it on first use. A warning about its mode is
// printed once.
func (c *cli) config() (Config, error) {
	if c.cfgRead {
		return c.cfg, c.cfgErr
	}
	c.cfgRead = true
	c.cfgPath, c.cfgErr = configPath(c.getenv)
	if c.cfgErr != nil {
		return Config{}, c.cfgErr
	}
	var warning string
	c.cfg, warning, c.cfgErr = loadConfig(c.cfgPath)
	if warning != "" {
		fmt.Fprintln(c.stderr, "sluicectl:", warning)
	}
	return c.cfg, c.cfgErr
}

// serverURL is the server to talk to: --server, else $SLUICE_SERVER, else the config
// file's, else the default.
func (c *cli) serverURL() (string, error) {
	s := c.serverFlag
	if s == "" {
		s = c.getenv("SLUICE_SERVER")
	}
	if s == "" {
		if cfg, err := c.config(); err == nil {
			s = cfg.Server
		}
	}
	if s == "" {
		s = defaultServer
	}
	return normalizeServer(s)
}

// newClient returns a client for server, without credentials.
func (c *cli) newClient(server string) *client {
	hc := &http.Client{Timeout: c.timeout, Transport: c.transport}
	return &client{base: server, hc: hc, timeout: c.timeout}
}

// apiClient returns a client for the server with the credentials to use there: --token,
// else $SLUICE_TOKEN, else the config file's token when the config file names this server.
func (c *cli) apiClient() (*client, error) {
	server, err := c.serverURL()
	if err != nil {
		return nil, err
	}
	cl := c.newClient(server)
	switch {
	case c.tokenFlag != "":
		cl.token, cl.tokenSource = c.tokenFlag, "--token"
	case c.getenv("SLUICE_TOKEN") != "":
		cl.token, cl.tokenSource = c.getenv("SLUICE_TOKEN"), "SLUICE_TOKEN"
	default:
		cfg, err := c.config()
		if err != nil {
			return nil, err
		}
		// A token goes only to the server that issued it: --server pointing elsewhere must
		// not hand it to another host.
		switch {
		case cfg.Token != "" && sameServer(cfg.Server, server):
			cl.token, cl.tokenSource = cfg.Token, c.cfgPath
		case cfg.Token != "":
			cl.noToken = fmt.Sprintf("the token in %s is for %s, and is only sent there", c.cfgPath, cfg.Server)
		}
	}
	return cl, nil
}

// sameServer reports whether two server URLs name the same server.
func sameServer(a, b string) bool {
	na, errA := normalizeServer(a)
	nb, errB := normalizeServer(b)
	return errA == nil && errB == nil && strings.EqualFold(na, nb)
}

// wantArgs checks the count of positional arguments of the command name, whose synopsis is
// synopsis.
func wantArgs(name, synopsis string, args []string, min, max int) error {
	if len(args) >= min && len(args) <= max {
		return nil
	}
	usage := strings.TrimSpace("sluicectl " + name + " " + synopsis)
	switch {
	case len(args) > max && max == 0:
		return &UsageError{fmt.Sprintf("%s takes no arguments, and got %q: usage: %s", name, strings.Join(args, " "), usage)}
	case len(args) > max:
		return &UsageError{fmt.Sprintf("%s: too many arguments (%q): usage: %s", name, strings.Join(args, " "), usage)}
	}
	return &UsageError{fmt.Sprintf("%s: missing arguments: usage: %s", name, usage)}
}

// sortedKeys returns a map's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
