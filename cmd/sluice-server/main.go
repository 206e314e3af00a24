// Command sluice-server is Sluice's control plane.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/sluicemesh/sluice/server"
)

func main() {
	err := server.Run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	code := server.ExitCode(err)
	if code != 0 {
		fmt.Fprintln(os.Stderr, "sluice-server:", err)
	}
	os.Exit(code)
}
