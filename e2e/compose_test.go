package e2e

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// composeFile is the part of docker-compose.yml the check reads.
type composeFile struct {
	Services map[string]struct {
		Image string `json:"image"`
		Build *struct {
			Context    string `json:"context"`
			Dockerfile string `json:"dockerfile"`
			Target     string `json:"target"`
		} `json:"build"`
		Command     []string          `json:"command"`
		Environment map[string]string `json:"environment"`
		DependsOn   any               `json:"depends_on"`
		NetworkMode string            `json:"network_mode"`
		Ports       []string          `json:"ports"`
		Networks    map[string]struct {
			IPv4Address string `json:"ipv4_address"`
		} `json:"networks"`
	} `json:"services"`
}

// docker-compose.yml cannot run here (no Docker engine), so this checks that everything it
// names exists and agrees with the binaries: build targets, flags, addresses, dependencies,
// published ports.
func TestComposeFileIsConsistent(t *testing.T) {
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(root, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var cf composeFile
	if err := yaml.Unmarshal(raw, &cf); err != nil {
		t.Fatalf("docker-compose.yml does not parse: %v", err)
	}
	help := map[string]string{}
	for _, b := range []string{"sluice-server", "sluice-proxy", "bookinfo", "httpbin"} {
		out, _ := exec.Command(filepath.Join(binDir, b), "-h").CombinedOutput()
		help[b] = string(out)
	}
	targetBinary := map[string]string{"sluice-server": "sluice-server", "sluice-proxy": "sluice-proxy", "bookinfo": "bookinfo", "httpbin": "httpbin"}

	addrOf := func(name string) string {
		for _, n := range cf.Services[name].Networks {
			return n.IPv4Address
		}
		return ""
	}
	targets := map[string]bool{}
	for name, s := range cf.Services {
		t.Run(name, func(t *testing.T) {
			if s.Build == nil {
				if s.Image == "" {
					t.Fatalf("neither build nor image")
				}
				return
			}
			if s.Build.Context != "." {
				t.Errorf("build context %q, want the repository root", s.Build.Context)
			}
			df, err := os.ReadFile(filepath.Join(root, s.Build.Dockerfile))
			if err != nil {
				t.Fatalf("dockerfile: %v", err)
			}
			if len(targets) == 0 {
				for _, m := range regexp.MustCompile(`(?m)^FROM \S+ AS (\S+)`).FindAllStringSubmatch(string(df), -1) {
					targets[m[1]] = true
				}
			}
			if !targets[s.Build.Target] {
				t.Fatalf("build target %q is not a stage of %s", s.Build.Target, s.Build.Dockerfile)
			}
			if !strings.Contains(string(df), "USER nonroot") {
				t.Errorf("images must run as a non-root user")
			}
			bin := targetBinary[s.Build.Target]
			for _, arg := range s.Command {
				if strings.HasPrefix(arg, "--") && bin != "" && !strings.Contains(help[bin], strings.TrimLeft(arg, "-")) {
					t.Errorf("%s has no flag %s", bin, arg)
				}
			}
			flag := func(name string) string {
				i := slices.Index(s.Command, name)
				if i < 0 || i+1 >= len(s.Command) {
					return ""
				}
				return s.Command[i+1]
			}
			switch s.Build.Target {
			case "sluice-proxy":
				if got, want := flag("--address"), addrOf(name); got != want {
					t.Errorf("--address %s, but the service's address is %s", got, want)
				}
				cpHost, _, err := net.SplitHostPort(flag("--control-plane"))
				if err != nil || cpHost != addrOf("sluice-server") {
					t.Errorf("--control-plane %q does not point at sluice-server (%s)", flag("--control-plane"), addrOf("sluice-server"))
				}
			case "sluice-server":
				u, err := url.Parse(s.Environment["DATABASE_URL"])
				if err != nil || cf.Services[u.Hostname()].Image == "" {
					t.Errorf("DATABASE_URL %q does not name the postgres service", s.Environment["DATABASE_URL"])
				}
				_, port, _ := net.SplitHostPort(flag("--http-addr"))
				if !slices.ContainsFunc(s.Ports, func(p string) bool { return strings.HasSuffix(p, ":"+port) }) {
					t.Errorf("the console port %s is not published: %v", port, s.Ports)
				}
			case "bookinfo", "httpbin":
				sidecar, ok := strings.CutPrefix(s.NetworkMode, "service:")
				if !ok || cf.Services[sidecar].Build == nil {
					t.Fatalf("network_mode %q does not share a sidecar's namespace", s.NetworkMode)
				}
				if want := "http://" + addrOf(sidecar) + ":15001"; s.Environment["HTTP_PROXY"] != want {
					t.Errorf("HTTP_PROXY %q, want the sidecar's outbound listener %s", s.Environment["HTTP_PROXY"], want)
				}
				side := cf.Services[sidecar]
				i := slices.Index(side.Command, "--inbound")
				_, appPort, _ := strings.Cut(side.Command[i+1], "=")
				if !strings.HasSuffix(flag("--addr"), ":"+appPort) {
					t.Errorf("the app listens on %s but its sidecar forwards to port %s", flag("--addr"), appPort)
				}
			}
			var deps []string
			switch d := s.DependsOn.(type) {
			case []any: // depends_on: [a, b]
				for _, v := range d {
					deps = append(deps, fmt.Sprint(v))
				}
			case map[string]any: // depends_on: {a: {condition: ...}}
				for k := range d {
					deps = append(deps, k)
				}
			}
			for _, d := range deps {
				if _, ok := cf.Services[d]; !ok {
					t.Errorf("depends on %q, which is not a service", d)
				}
			}
		})
	}
}
