// Package ctl is sluicectl, the command line for everything the REST API does.
package ctl

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/sluicemesh/sluice/internal/version"
)

// UsageError marks a wrong command line: main prints it and exits 2.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

const usage = `Usage: sluicectl <command> [flags]

Commands:
  version    print the version of sluicectl
`

// Run is sluicectl's main. args excludes the program name.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return &UsageError{"a command is required"}
	}
	switch args[0] {
	case "version", "--version":
		fmt.Fprintln(stdout, "sluicectl", version.String())
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	return &UsageError{fmt.Sprintf("unknown command %q (commands: %s)", args[0], strings.Join([]string{"version"}, ", "))}
}
