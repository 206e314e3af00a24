// Command sluicectl is Sluice's command line.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/sluicemesh/sluice/ctl"
)

func main() {
	err := ctl.Run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	if err == nil {
		return
	}
	fmt.Fprintln(os.Stderr, "sluicectl:", err)
	var u *ctl.UsageError
	if errors.As(err, &u) {
		os.Exit(2)
	}
	os.Exit(1)
}
