package proxy

import (
	"fmt"
	"io"
	"math"
	"strings"
	"testing"
	"time"
)

func TestParseOptions(t *testing.T) {
	base := "--control-plane 127.0.0.1:15010 --address 127.0.0.6 --service reviews"
	tests := []struct {
		name    string
		args    string
		env     map[string]string
		wantErr string // the start of the error; empty for none
		check   func(*options) string
	}{
		{name: "the DESIGN example",
			args: "--control-plane 127.0.0.1:15010 --namespace default --service reviews --labels version=v2,app=reviews --address 127.0.0.6 --inbound 9080=19080 --inbound 9081=19081 --service-account bookinfo-reviews",
			check: func(o *options) string {
				if o.name != "reviews-v2-127.0.0.6" || o.mode != "sidecar" || len(o.inbound) != 2 || o.inbound[1].AppPort != 19081 ||
					o.labels["app"] != "reviews" || o.drainTimeout != 5*time.Second || o.serviceAccount != "bookinfo-reviews" {
					return "got " + sprint(o)
				}
				return ""
			}},
		{name: "default version in the name", args: base, check: func(o *options) string {
			if o.name != "reviews-v1-127.0.0.6" || o.namespace != "default" {
				return "name " + o.name
			}
			return ""
		}},
		{name: "environment fills what flags do not set",
			args: "--service ratings",
			env: map[string]string{"SLUICE_CONTROL_PLANE": "127.0.0.1:15010", "SLUICE_ADDRESS": "127.0.0.9",
				"SLUICE_SERVICE": "ignored", "SLUICE_INBOUND": "9080=19080, 9081=19081", "SLUICE_DRAIN_TIMEOUT": "1s"},
			check: func(o *options) string {
				if o.service != "ratings" || o.address.String() != "127.0.0.9" || len(o.inbound) != 2 || o.drainTimeout != time.Second {
					return sprint(o)
				}
				return ""
			}},
		{name: "gateway defaults", args: "--control-plane 127.0.0.1:15010 --address 127.0.0.10 --mode gateway --labels istio=ingressgateway",
			check: func(o *options) string {
				if o.service != "istio-ingressgateway" || o.name != "istio-ingressgateway-v1-127.0.0.10" {
					return sprint(o)
				}
				return ""
			}},
		{name: "no control plane", args: "--address 127.0.0.6 --service r", wantErr: "--control-plane is required"},
		{name: "bad control plane", args: "--control-plane localhost --address 127.0.0.6 --service r", wantErr: `--control-plane "localhost" is not HOST:PORT`},
		{name: "no address", args: "--control-plane 127.0.0.1:15010 --service r", wantErr: "--address is required"},
		{name: "bad address", args: "--control-plane 127.0.0.1:15010 --address 127.0.0.x --service r",
			wantErr: `--address "127.0.0.x" is not an IP address (use the workload's own loopback address, such as 127.0.0.6)`},
		{name: "wildcard address", args: "--control-plane 127.0.0.1:15010 --address 0.0.0.0 --service r", wantErr: "--address 0.0.0.0 would listen on every interface"},
		{name: "no service", args: "--control-plane 127.0.0.1:15010 --address 127.0.0.6", wantErr: "--service is required in sidecar mode"},
		{name: "bad labels", args: base + " --labels version", wantErr: `--labels "version": label "version": want key=value`},
		{name: "bad inbound", args: base + " --inbound 9080", wantErr: `--inbound "9080": inbound port "9080": want PORT=APPPORT`},
		{name: "inbound on a reserved port", args: base + " --inbound 15000=8080", wantErr: `--inbound "15000=8080": port 15000 is already the admin port`},
		{name: "inbound twice", args: base + " --inbound 9080=19080 --inbound 9080=19081", wantErr: `--inbound "9080=19081": port 9080 is already used by --inbound 9080=19080`},
		{name: "gateway with inbound", args: base + " --mode gateway --inbound 8080=18080", wantErr: "--inbound is not used in gateway mode"},
		{name: "bad mode", args: base + " --mode ambient", wantErr: `--mode "ambient" is not sidecar or gateway`},
		{name: "bad drain timeout", args: base + " --drain-timeout soon", wantErr: `--drain-timeout "soon" is not a duration`},
		{name: "bad log level", args: base + " --log-level loud", wantErr: `--log-level "loud" is not debug, info, warn or error`},
		{name: "telemetry defaults", args: base, check: func(o *options) string {
			if !o.telemetry || o.prometheusPort != 15090 {
				return sprint(o)
			}
			return ""
		}},
		{name: "prometheus port moved", args: base + " --prometheus-port 9091 --inbound 15090=19090", check: func(o *options) string {
			if o.prometheusPort != 9091 || len(o.inbound) != 1 {
				return sprint(o)
			}
			return ""
		}},
		{name: "telemetry off frees the prometheus port", args: base + " --telemetry false --inbound 15090=19090", check: func(o *options) string {
			if o.telemetry || o.prometheusPort != 0 {
				return sprint(o)
			}
			return ""
		}},
		{name: "inbound on the prometheus port", args: base + " --inbound 15090=19090", wantErr: `--inbound "15090=19090": port 15090 is already the Prometheus port`},
		{name: "bad prometheus port", args: base + " --prometheus-port http", wantErr: `--prometheus-port "http" is not a port number`},
		{name: "prometheus port on the admin port", args: base + " --prometheus-port 15000", wantErr: "--prometheus-port 15000 is already the admin port"},
		{name: "bad telemetry", args: base + " --telemetry maybe", wantErr: `--telemetry "maybe" is not true or false`},
		{name: "health probes the first app port by TCP", args: base + " --inbound 9080=19080 --inbound 9090=19090", check: func(o *options) string {
			if o.health.port != 19080 || o.health.path != "" || o.health.interval != 500*time.Millisecond {
				return fmt.Sprintf("%+v", o.health)
			}
			return ""
		}},
		{name: "health by HTTP on a given port", args: base + " --inbound 9080=19080 --health-path /healthz --health-port 19091 --health-interval 2s", check: func(o *options) string {
			if o.health.port != 19091 || o.health.path != "/healthz" || o.health.interval != 2*time.Second {
				return fmt.Sprintf("%+v", o.health)
			}
			return ""
		}},
		{name: "health off", args: base + " --inbound 9080=19080 --health-interval 0", check: func(o *options) string {
			if o.health.port != 0 {
				return fmt.Sprintf("%+v", o.health)
			}
			return ""
		}},
		{name: "no inbound, no probe", args: base, check: func(o *options) string {
			if o.health.port != 0 {
				return fmt.Sprintf("%+v", o.health)
			}
			return ""
		}},
		{name: "bad health interval", args: base + " --health-interval often", wantErr: `--health-interval "often" is not a duration`},
		{name: "relative health path", args: base + " --health-path healthz", wantErr: `--health-path "healthz" must start with /`},
		{name: "bad health port", args: base + " --inbound 9080=19080 --health-port 0", wantErr: `--health-port "0" is not a port number`},
		{name: "collector defaults", args: base, check: func(o *options) string {
			if o.gc != (gcOptions{setPercent: true, percent: defaultGCPercent, setLimit: true, limit: defaultMemoryLimit}) {
				return fmt.Sprintf("%+v", o.gc)
			}
			return ""
		}},
		{name: "collector set by flags", args: base + " --gc-percent 150 --memory-limit 1GiB", check: func(o *options) string {
			if o.gc != (gcOptions{setPercent: true, percent: 150, setLimit: true, limit: 1 << 30}) {
				return fmt.Sprintf("%+v", o.gc)
			}
			return ""
		}},
		{name: "collector off until a limit", args: base + " --gc-percent off --memory-limit 64MiB", check: func(o *options) string {
			if o.gc.percent != -1 || o.gc.limit != 64<<20 {
				return fmt.Sprintf("%+v", o.gc)
			}
			return ""
		}},
		{name: "no memory limit", args: base + " --memory-limit off", check: func(o *options) string {
			if !o.gc.setLimit || o.gc.limit != math.MaxInt64 {
				return fmt.Sprintf("%+v", o.gc)
			}
			return ""
		}},
		{name: "GOGC and GOMEMLIMIT win over the defaults", args: base, env: map[string]string{"GOGC": "50", "GOMEMLIMIT": "1GiB"},
			check: func(o *options) string {
				if o.gc.setPercent || o.gc.setLimit {
					return fmt.Sprintf("%+v", o.gc)
				}
				return ""
			}},
		{name: "flags win over GOGC", args: base + " --gc-percent 300", env: map[string]string{"GOGC": "50", "SLUICE_MEMORY_LIMIT": "32MiB"},
			check: func(o *options) string {
				if !o.gc.setPercent || o.gc.percent != 300 || !o.gc.setLimit || o.gc.limit != 32<<20 {
					return fmt.Sprintf("%+v", o.gc)
				}
				return ""
			}},
		{name: "bad gc percent", args: base + " --gc-percent 0", wantErr: `--gc-percent "0" is not a positive whole number or off`},
		{name: "bad memory limit", args: base + " --memory-limit 20MB", wantErr: `--memory-limit "20MB": not a size in bytes`},
		{name: "collector never runs", args: base + " --gc-percent off --memory-limit off", wantErr: "--gc-percent off needs a --memory-limit"},
		{name: "unknown flag", args: base + " --port 1", wantErr: "unknown flag --port"},
		{name: "stray argument", args: base + " extra", wantErr: `unexpected argument "extra"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv := func(k string) string { return tt.env[k] }
			o, err := parseOptions(strings.Fields(tt.args), getenv, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one starting %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("error is more than one line: %q", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if msg := tt.check(o); msg != "" {
				t.Error(msg)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	var out strings.Builder
	if _, err := parseOptions([]string{"--help"}, func(string) string { return "" }, &out); err != errHelp {
		t.Fatalf("--help: %v", err)
	}
	for _, want := range []string{"--control-plane", "--inbound", "SLUICE_<FLAG>", "(default 5s)", "--memory-limit", "(default off)", "(default 100)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("usage lacks %q:\n%s", want, out.String())
		}
	}
}

func TestNodeID(t *testing.T) {
	o, err := parseOptions(strings.Fields("--control-plane 127.0.0.1:1 --address 127.0.0.10 --mode gateway --namespace istio-system"),
		func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	n := buildNode(o)
	if want := "router~127.0.0.10~istio-ingressgateway-v1-127.0.0.10.istio-system~istio-system.svc.cluster.local"; n.GetId() != want {
		t.Errorf("node id %q, want %q", n.GetId(), want)
	}
	if n.GetMetadata().GetFields()["MODE"].GetStringValue() != "gateway" || n.GetCluster() != "istio-ingressgateway" {
		t.Errorf("node %v", n)
	}
}

func sprint(o *options) string {
	return fmt.Sprintf("%+v", *o)
}
