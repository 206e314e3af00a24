// Command httpbin serves go-httpbin as the httpbin workload of Istio's
// tasks, with a test aid that counts requests per Host header:
//
//	httpbin --addr 127.0.0.1:18000 --version v1
//
// Run "httpbin -h" for the flags and environment variables.
package main

import (
	"context"
	"fmt"
	"os"
)

func main() {
	if err := run(context.Background(), os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "httpbin: %v\n", err)
		os.Exit(1)
	}
}
