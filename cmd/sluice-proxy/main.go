// Command sluice-proxy is the Sluice sidecar and ingress gateway. See package proxy.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/sluicemesh/sluice/proxy"
)

func main() {
	if err := proxy.Run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "sluice-proxy: %v\n", err)
		os.Exit(1)
	}
}
