// Package version reports the build's version, set at link time by the Makefile
// (-X github.com/sluicemesh/sluice/internal/version.Version=...) or read from the module's
// build information.
package version

import "runtime/debug"

// Version is the release version; empty means a development build.
var Version = ""

// String returns the version, or "dev" with the VCS revision when it is known.
func String() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return "dev-" + s.Value[:12]
			}
		}
	}
	return "dev"
}
