// Command sluice-demo runs the demo mesh (`make demo`).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/sluicemesh/sluice/examples/demo"
)

func main() {
	if err := demo.Run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "sluice-demo:", err)
		os.Exit(1)
	}
}
