package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/sluicemesh/sluice/internal/meta"
	"github.com/sluicemesh/sluice/internal/pgtest"
)

// proxyList is GET /api/v1/proxies.
type proxyList struct {
	Proxies []struct {
		NodeID    string            `json:"nodeId"`
		Service   string            `json:"service"`
		Address   string            `json:"address"`
		Connected bool              `json:"connected"`
		Draining  bool              `json:"draining"`
		Acked     map[string]string `json:"acked"`
		Nacks     map[string]string `json:"nacks"`
		Health    struct {
			Ready  bool   `json:"ready"`
			Reason string `json:"reason"`
		} `json:"health"`
	} `json:"proxies"`
}

func (cp *controlPlane) proxies(t testing.TB) proxyList {
	t.Helper()
	var pl proxyList
	if code, err := getJSONWith(cp.api, "http://"+cp.httpAddr+"/api/v1/proxies", &pl); err != nil || code != http.StatusOK {
		t.Fatalf("GET /api/v1/proxies: %d %v", code, err)
	}
	return pl
}

// registered reports whether a proxy at addr is registered, and whether it is connected.
func (cp *controlPlane) registered(t testing.TB, addr string) (found, connected bool) {
	for _, p := range cp.proxies(t).Proxies {
		if p.Address == addr {
			return true, p.Connected
		}
	}
	return false, false
}

// collect calls url through from n times and counts the answering instances; a failed call
// fails the test.
func collect(t testing.TB, from *workload, url string, n int) map[string]int {
	t.Helper()
	seen := map[string]int{}
	for i := 0; i < n; i++ {
		inst, err := callThrough(from, url)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		seen[inst]++
	}
	return seen
}

// waitServes waits until url, called through from, is answered by instance.
func waitServes(t testing.TB, from *workload, url, instance string) {
	t.Helper()
	eventually(t, 30*time.Second, "traffic reaches "+instance, func() error {
		inst, err := callThrough(from, url)
		if err != nil {
			return err
		}
		if inst != instance {
			return fmt.Errorf("answered by %s", inst)
		}
		return nil
	})
}

func instanceName(w *workload, service, version string) string {
	return fmt.Sprintf("%s-%s-%s", service, version, w.addr)
}

// The first request through the mesh: app A → sidecar A → sidecar B → app B, over HTTP/1.1
// (A uses its sidecar as HTTP_PROXY) and over gRPC (h2c), trailers included.
func TestRequestThroughMesh(t *testing.T) {
	cp := startServer(t, pgtest.New(t, pgtest.Template{}))
	b := startWorkload(t, cp, "b", "v1")
	a := startWorkload(t, cp, "a", "v1")

	waitServes(t, a, "http://b:8080/", instanceName(b, "b", "v1"))
	for _, url := range []string{"http://b:8080/x", "http://b.default:8080/", "http://b.default.svc.cluster.local:8080/", "http://b/"} {
		if inst, err := callThrough(a, url); err != nil || inst != instanceName(b, "b", "v1") {
			t.Errorf("GET %s through the mesh: instance %q, %v", url, inst, err)
		}
	}

	// An unknown service is answered by the sidecar itself, with the reason.
	var res callResult
	if _, err := getJSON(context.Background(), "http://"+a.addr+":18080/call?url=http://nosuch:8080/", &res); err != nil {
		t.Fatal(err)
	}
	if res.Status != http.StatusNotFound || !strings.Contains(res.Reason, "no route") {
		t.Errorf("unknown host: got %d reason %q, want 404 with a 'no route' reason", res.Status, res.Reason)
	}

	// gRPC over h2c, both a success and an error status carried in trailers.
	type grpcResult struct {
		Code     int    `json:"code"`
		Message  string `json:"message"`
		ServerID string `json:"serverId"`
	}
	var gr grpcResult
	if _, err := getJSON(context.Background(), "http://"+a.addr+":18080/grpc?target=b:9090", &gr); err != nil {
		t.Fatal(err)
	}
	if gr.Code != 0 || gr.ServerID != instanceName(b, "b", "v1") {
		t.Errorf("gRPC through the mesh: %+v, want code 0 from %s", gr, instanceName(b, "b", "v1"))
	}
	gr = grpcResult{}
	if _, err := getJSON(context.Background(), "http://"+a.addr+":18080/grpc?target=b:9090&code=5", &gr); err != nil {
		t.Fatal(err)
	}
	if gr.Code != 5 || gr.Message != "asked for code 5" {
		t.Errorf("gRPC error through the mesh: %+v, want code 5 (NotFound) with its message", gr)
	}

	// Both proxies are registered and have ACKed every type.
	for _, w := range []*workload{a, b} {
		eventually(t, 10*time.Second, "proxy "+w.addr+" acked", func() error {
			for _, p := range cp.proxies(t).Proxies {
				if p.Address == w.addr {
					for _, typ := range []string{"LDS", "RDS", "CDS", "EDS"} {
						if p.Acked[typ] == "" {
							return fmt.Errorf("%s not acked: %+v", typ, p)
						}
					}
					if len(p.Nacks) > 0 {
						t.Fatalf("proxy %s NACKed: %v", w.addr, p.Nacks)
					}
					return nil
				}
			}
			return fmt.Errorf("proxy %s not listed", w.addr)
		})
	}
}

// Endpoints follow registrations: a new instance gets traffic once registered; one stopped
// gracefully leaves at once after finishing its in-flight requests; one killed leaves after
// the grace period.
func TestEndpointsFollowRegistrations(t *testing.T) {
	cp := startServer(t, pgtest.New(t, pgtest.Template{}), "--registration-grace", "10s")
	b1 := startWorkload(t, cp, "b", "v1")
	a := startWorkload(t, cp, "a", "v1")
	waitServes(t, a, "http://b:8080/", instanceName(b1, "b", "v1"))

	b2 := startWorkload(t, cp, "b", "v2")
	eventually(t, 30*time.Second, "b2 receives traffic", func() error {
		seen := collect(t, a, "http://b:8080/", 20)
		if seen[instanceName(b2, "b", "v2")] == 0 {
			return fmt.Errorf("b2 not seen in %v", seen)
		}
		return nil
	})

	// A slow request is in flight through b2 when its sidecar is told to stop.
	var wg sync.WaitGroup
	slowErr := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		var res callResult
		_, err := getJSON(context.Background(), "http://"+a.addr+":18080/call?url=http://"+b2.addr+":8080/slow?ms=1500", &res)
		if err == nil && res.Status != http.StatusOK {
			err = fmt.Errorf("slow request: %d %s %s", res.Status, res.Body, res.Reason)
		}
		slowErr <- err
	}()
	time.Sleep(300 * time.Millisecond) // let the slow request reach b2's sidecar
	b2.sidecar.stop(syscall.SIGTERM, 20*time.Second)
	wg.Wait()
	if err := <-slowErr; err != nil {
		t.Fatalf("in-flight request during drain: %v", err)
	}
	if b2.sidecar.err != nil {
		t.Errorf("sidecar b2 exit: %v, want 0 after a graceful stop", b2.sidecar.err)
	}
	// Once drained it is gone from the registry and every request reaches b1, none failing.
	// The server removes it when it sees the stream close, which can trail the exit.
	eventually(t, 10*time.Second, "b2 leaves the registry after a graceful stop", func() error {
		if found, _ := cp.registered(t, b2.addr); found {
			return fmt.Errorf("b2 still registered")
		}
		return nil
	})
	if seen := collect(t, a, "http://b:8080/", 30); seen[instanceName(b1, "b", "v1")] != 30 {
		t.Errorf("after b2 drained: %v, want every request on b1", seen)
	}

	// A killed sidecar stays registered (disconnected) for the grace period, then leaves.
	b3 := startWorkload(t, cp, "b", "v3")
	eventually(t, 30*time.Second, "b3 registered", func() error {
		if found, connected := cp.registered(t, b3.addr); !found || !connected {
			return fmt.Errorf("b3 registered=%v connected=%v", found, connected)
		}
		return nil
	})
	b3.sidecar.kill()
	eventually(t, 10*time.Second, "b3 disconnected", func() error {
		if found, connected := cp.registered(t, b3.addr); !found || connected {
			return fmt.Errorf("b3 registered=%v connected=%v, want registered and disconnected", found, connected)
		}
		return nil
	})
	eventually(t, 30*time.Second, "b3 leaves after the grace period", func() error {
		if found, _ := cp.registered(t, b3.addr); found {
			return fmt.Errorf("b3 still registered")
		}
		return nil
	})
	if seen := collect(t, a, "http://b:8080/", 30); seen[instanceName(b1, "b", "v1")] != 30 {
		t.Errorf("after b3 left: %v, want every request on b1", seen)
	}
}

// With the control plane down, sidecars keep serving on their last config; after it comes
// back they resynchronise without a restart.
func TestControlPlaneOutage(t *testing.T) {
	db := pgtest.New(t, pgtest.Template{})
	cp := startServer(t, db)
	b1 := startWorkload(t, cp, "b", "v1")
	a := startWorkload(t, cp, "a", "v1")
	waitServes(t, a, "http://b:8080/", instanceName(b1, "b", "v1"))

	cp.kill()
	if seen := collect(t, a, "http://b:8080/", 20); seen[instanceName(b1, "b", "v1")] != 20 {
		t.Fatalf("with the control plane down: %v", seen)
	}

	restartServer(t, cp, db)
	// A new instance registered with the new server reaches a, which proves a's sidecar
	// reconnected and took new config without being restarted.
	b2 := startWorkload(t, cp, "b", "v2")
	eventually(t, 30*time.Second, "a's sidecar sees b2 after the restart", func() error {
		seen := collect(t, a, "http://b:8080/", 20)
		if seen[instanceName(b2, "b", "v2")] == 0 {
			return fmt.Errorf("b2 not seen in %v", seen)
		}
		return nil
	})
	if a.sidecar.exited() {
		t.Fatalf("a's sidecar exited")
	}
}

// The server restarted on the same data directory (its private PostgreSQL) keeps its
// migrations and its registrations: a proxy that cannot reconnect yet stays in the mesh.
func TestRestartKeepsState(t *testing.T) {
	// A directory PostgreSQL's unprivileged user can reach when the tests run as root.
	parent, err := os.MkdirTemp("", "sluice-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(parent) })
	if err := os.Chmod(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(parent, "data")
	cp := startServer(t, "", "--data-dir", dataDir, "--registration-grace", "60s")
	b := startWorkload(t, cp, "b", "v1")
	a := startWorkload(t, cp, "a", "v1")
	waitServes(t, a, "http://b:8080/", instanceName(b, "b", "v1"))

	// Freeze b's sidecar so it cannot reconnect, and restart the server.
	if err := b.sidecar.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer b.sidecar.cmd.Process.Signal(syscall.SIGCONT)
	cp.stop(syscall.SIGTERM, 30*time.Second)
	if cp.err != nil {
		t.Fatalf("server exit after SIGTERM: %v", cp.err)
	}
	out, err := exec.Command(binDir+"/sluice-server", "migrate", "version", "--data-dir", dataDir).Output()
	if err != nil || !strings.HasPrefix(string(out), "schema version ") || strings.Contains(string(out), "version 0") || strings.Contains(string(out), "dirty") {
		t.Fatalf("migrate version after a restart: %v\n%s", err, out)
	}
	restartServer(t, cp, "", "--data-dir", dataDir, "--registration-grace", "60s")
	if found, connected := cp.registered(t, b.addr); !found || connected {
		t.Fatalf("after restart, frozen b: registered=%v connected=%v; want registered, disconnected", found, connected)
	}
	// a reconnects and still routes to b, whose endpoint the new server kept.
	if err := b.sidecar.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "b reconnected", func() error {
		if _, connected := cp.registered(t, b.addr); !connected {
			return fmt.Errorf("b not connected yet")
		}
		return nil
	})
	waitServes(t, a, "http://b:8080/", instanceName(b, "b", "v1"))
}

// A server stopped with SIGTERM records each proxy's disconnection before it closes its
// database: every workload row has its disconnected_at, and the log holds no failure. Many
// proxies (raw ADS streams) make the shutdown race the closing of the store.
func TestShutdownRecordsDisconnections(t *testing.T) {
	const proxies = 300
	db := pgtest.New(t, pgtest.Template{})
	cp := startServer(t, db)
	conn, err := grpc.NewClient(cp.xdsAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	str := structpb.NewStringValue
	for i := range proxies {
		addr := fmt.Sprintf("10.9.%d.%d", i/250, 1+i%250)
		name := "shut-v1-" + addr
		node := &corev3.Node{Id: "sidecar~" + addr + "~" + name + ".default~default.svc." + meta.DefaultDomain, Cluster: "shut",
			Metadata: &structpb.Struct{Fields: map[string]*structpb.Value{
				meta.KeyNamespace: str("default"), meta.KeyService: str("shut"), meta.KeyAddress: str(addr),
				meta.KeyInboundPorts: str("8080=18080"), meta.KeyServiceAccount: str("shut"), meta.KeyWorkloadName: str(name),
				meta.KeyMode:   str(meta.ModeSidecar),
				meta.KeyLabels: structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{"app": str("shut"), "version": str("v1")}}),
			}}}
		st, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: "type.googleapis.com/envoy.config.cluster.v3.Cluster"}); err != nil {
			t.Fatal(err)
		}
		go func() {
			for {
				if _, err := st.Recv(); err != nil {
					return
				}
			}
		}()
	}
	eventually(t, 60*time.Second, "every stream registered", func() error {
		n := 0
		for _, p := range cp.proxies(t).Proxies {
			if p.Connected {
				n++
			}
		}
		if n < proxies {
			return fmt.Errorf("%d of %d connected", n, proxies)
		}
		return nil
	})
	cp.stop(syscall.SIGTERM, 30*time.Second)
	if cp.err != nil {
		t.Fatalf("server exit after SIGTERM: %v", cp.err)
	}
	if log := cp.out.text(); strings.Contains(log, "disconnect proxy") || strings.Contains(log, "closed pool") {
		t.Errorf("the server's shutdown logged a failed disconnection:\n%s", log)
	}
	pg, err := pgx.Connect(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close(context.Background())
	var rows, marked int
	if err := pg.QueryRow(context.Background(), `SELECT count(*), count(disconnected_at) FROM workloads`).Scan(&rows, &marked); err != nil {
		t.Fatal(err)
	}
	if rows != proxies || marked != proxies {
		t.Errorf("%d workload rows, %d with disconnected_at; want %d and %d", rows, marked, proxies, proxies)
	}
}
