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
		Volumes     []string          `json:"volumes"`
		Networks    map[string]struct {
			IPv4Address string `json:"ipv4_address"`
		} `json:"networks"`
	} `json:"services"`
	Volumes map[string]any `json:"volumes"`
}

// volumeFor returns the named volume mounted in volumes (short syntax, VOLUME:PATH[:ro])
// at path or above it, and whether the mount is read-only.
func volumeFor(volumes []string, path string) (name string, readOnly, ok bool) {
	for _, v := range volumes {
		parts := strings.Split(v, ":")
		if len(parts) < 2 {
			continue
		}
		if path == parts[1] || strings.HasPrefix(path, strings.TrimSuffix(parts[1], "/")+"/") {
			return parts[0], len(parts) > 2 && parts[2] == "ro", true
		}
	}
	return "", false, false
}

// docker-compose.yml cannot run here (no Docker engine), so this checks that everything it
// names exists and agrees with the binaries: build targets, flags, addresses, dependencies,
// published ports; and that it runs the secure mesh: the server without plaintext xDS and
// with its data directory on a volume, every proxy on the authenticated port with a token
// and the trust bundle that mesh-init writes to a volume they share.
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
	// What mesh-init writes, and where the server listens for the proxies.
	const identityDir = "/var/run/sluice"
	init := cf.Services["mesh-init"]
	if init.Build == nil || init.Environment["IDENTITY_DIR"] != identityDir {
		t.Fatalf("no mesh-init service writing to %s", identityDir)
	}
	identityVolume, _, _ := volumeFor(init.Volumes, identityDir)
	if _, ok := cf.Volumes[identityVolume]; !ok {
		t.Fatalf("mesh-init's %s is not on a declared volume: %v", identityDir, init.Volumes)
	}
	server := cf.Services["sluice-server"].Command
	i := slices.Index(server, "--xds-tls-addr")
	if i < 0 {
		t.Fatalf("sluice-server has no --xds-tls-addr")
	}
	_, xdsTLSPort, _ := net.SplitHostPort(server[i+1])

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
				tokenFile, rootFile := flag("--token-file"), flag("--ca-root-file")
				if tokenFile == "" || rootFile == "" {
					t.Fatalf("a proxy without --token-file and --ca-root-file dials plaintext xDS")
				}
				ns, sa := flag("--namespace"), flag("--service-account")
				if sa == "" {
					t.Errorf("no --service-account: the proxy's identity would be its namespace's default")
				}
				initCmd := cf.Services["mesh-init"].Command
				if !slices.Contains(initCmd, ns+"/"+sa) {
					t.Errorf("mesh-init makes no token for %s/%s: %v", ns, sa, initCmd)
				}
				if want := identityDir + "/" + ns + "." + sa + ".token"; tokenFile != want {
					t.Errorf("--token-file %s, but mesh-init writes %s/%s's token to %s", tokenFile, ns, sa, want)
				}
				if rootFile != identityDir+"/root-cert.pem" {
					t.Errorf("--ca-root-file %s, but mesh-init writes the root to %s/root-cert.pem", rootFile, identityDir)
				}
				for _, f := range []string{tokenFile, rootFile} {
					if vol, ro, ok := volumeFor(s.Volumes, f); !ok || vol != identityVolume || !ro {
						t.Errorf("%s is not on mesh-init's volume %s, mounted read-only (%v)", f, identityVolume, s.Volumes)
					}
				}
				if _, port, _ := net.SplitHostPort(flag("--control-plane")); port != xdsTLSPort {
					t.Errorf("--control-plane %s is not the server's authenticated port %s", flag("--control-plane"), xdsTLSPort)
				}
				deps, _ := s.DependsOn.(map[string]any)
				if c, _ := deps["mesh-init"].(map[string]any); c["condition"] != "service_completed_successfully" {
					t.Errorf("the proxy does not wait for mesh-init to complete: depends_on %v", s.DependsOn)
				}
			case "mesh-init":
				if !strings.Contains(string(df), "examples/demo/compose-identity.sh") {
					t.Errorf("the mesh-init stage does not run examples/demo/compose-identity.sh")
				}
				if out, err := exec.Command("bash", "-n", filepath.Join(root, "examples/demo/compose-identity.sh")).CombinedOutput(); err != nil {
					t.Errorf("compose-identity.sh: %v\n%s", err, out)
				}
				if u, err := url.Parse(s.Environment["SLUICE_SERVER"]); err != nil || u.Hostname() != addrOf("sluice-server") {
					t.Errorf("SLUICE_SERVER %q is not sluice-server (%s)", s.Environment["SLUICE_SERVER"], addrOf("sluice-server"))
				}
			case "sluice-server":
				if slices.Contains(s.Command, "--insecure-xds") {
					t.Errorf("the server serves plaintext xDS (--insecure-xds)")
				}
				if vol, ro, ok := volumeFor(s.Volumes, flag("--data-dir")+"/ca.key"); (!ok || ro || cf.Volumes == nil) && s.Environment["SLUICE_CA_KEY_FILE"] == "" {
					t.Errorf("the data directory %s (ca.key) is not on a writable named volume: %v %v", flag("--data-dir"), s.Volumes, vol)
				} else if _, declared := cf.Volumes[vol]; !declared {
					t.Errorf("volume %q is not declared", vol)
				}
				if hosts := strings.Split(flag("--xds-tls-hosts"), ","); !slices.Contains(hosts, addrOf(name)) {
					t.Errorf("--xds-tls-hosts %v lacks the address the proxies dial, %s", hosts, addrOf(name))
				}
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
