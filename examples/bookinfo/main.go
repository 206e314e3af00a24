// Command bookinfo runs one service of Istio's Bookinfo sample:
//
//	bookinfo productpage|details|reviews|ratings [flags]
//
// Run "bookinfo -h" for the flags and environment variables.
package main

import (
	"context"
	"fmt"
	"os"
)

func main() {
	if err := run(context.Background(), os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "bookinfo: %v\n", err)
		os.Exit(1)
	}
}
