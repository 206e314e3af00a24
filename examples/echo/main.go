// Command echo is the small example application of Sluice's end-to-end tests and first demo.
// It answers HTTP on --http-addr and gRPC (grpc.testing.TestService) on --grpc-addr, and can
// call a peer through its sidecar: over HTTP with HTTP_PROXY, and over gRPC by dialing the
// sidecar's outbound listener (--outbound, default taken from HTTP_PROXY) with the peer's
// name as the authority.
//
// HTTP endpoints:
//
//	GET /            {"service","instance","host","path"} — who answered; with --fail-every N,
//	                 every Nth request to / (counted from the start) answers 500 instead,
//	                 {"service","instance","error"}, a deterministic failure for retry and
//	                 outlier-detection tests
//	GET /slow?ms=N   the same after N milliseconds (for drain tests)
//	GET /call?url=U  calls U through the sidecar; answers {"status","body"} of the peer's reply
//	GET /grpc?target=HOST:PORT&code=N
//	                 calls TestService.UnaryCall on the peer through the sidecar, asking it to
//	                 answer with status code N (default 0); answers {"code","message","serverId"}
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "echo:", err)
		os.Exit(1)
	}
}

type app struct {
	service, instance string
	outbound          string
	client            *http.Client
	log               *slog.Logger
	// failEvery makes every failEvery-th request to / fail; 0 never.
	failEvery uint64
	requests  atomic.Uint64
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("echo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	service := fs.String("service", "echo", "service name reported in answers")
	instance := fs.String("instance", "", "instance name reported in answers (default: the service name)")
	httpAddr := fs.String("http-addr", "127.0.0.1:18080", "HTTP listen address")
	grpcAddr := fs.String("grpc-addr", "", "gRPC listen address (empty: no gRPC)")
	outbound := fs.String("outbound", "", "the sidecar's outbound listener HOST:PORT for gRPC calls (default: from HTTP_PROXY)")
	failEvery := fs.Uint64("fail-every", 0, "answer 500 to every Nth request to / (1: all of them; 0: none)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *instance == "" {
		*instance = *service
	}
	if *outbound == "" {
		if u, err := url.Parse(getenv("HTTP_PROXY")); err == nil {
			*outbound = u.Host
		}
	}
	log := slog.New(slog.NewTextHandler(stderr, nil)).With("instance", *instance)
	a := &app{service: *service, instance: *instance, outbound: *outbound, log: log, failEvery: *failEvery, client: &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, MaxIdleConnsPerHost: 64},
	}}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	g, ctx := errgroup.WithContext(ctx)

	hl, err := net.Listen("tcp", *httpAddr)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: a.routes(), ReadHeaderTimeout: 5 * time.Second}
	g.Go(func() error {
		if err := hs.Serve(hl); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	var gs *grpc.Server
	if *grpcAddr != "" {
		gl, err := net.Listen("tcp", *grpcAddr)
		if err != nil {
			return err
		}
		gs = grpc.NewServer()
		testpb.RegisterTestServiceServer(gs, &testService{instance: *instance})
		g.Go(func() error { return gs.Serve(gl) })
	}
	g.Go(func() error {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
		if gs != nil {
			gs.GracefulStop()
		}
		return nil
	})
	fmt.Fprintf(stdout, "echo %s listening on %s\n", *instance, hl.Addr())
	return g.Wait()
}

func (a *app) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		if n := a.requests.Add(1); a.failEvery > 0 && n%a.failEvery == 0 {
			writeJSON(w, http.StatusInternalServerError, map[string]string{
				"service": a.service, "instance": a.instance, "error": "request " + strconv.FormatUint(n, 10) + " fails (--fail-every)",
			})
			return
		}
		a.hello(w, r)
	})
	mux.HandleFunc("GET /", a.hello)
	mux.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
		case <-r.Context().Done():
			return
		}
		a.hello(w, r)
	})
	mux.HandleFunc("GET /call", a.call)
	mux.HandleFunc("GET /grpc", a.grpcCall)
	return mux
}

func (a *app) hello(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{
		"service": a.service, "instance": a.instance, "host": r.Host, "path": r.URL.Path,
	})
}

func (a *app) call(w http.ResponseWriter, r *http.Request) {
	target := r.URL.Query().Get("url")
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, target, nil)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	resp, err := a.client.Do(req)
	if err != nil {
		writeJSON(w, http.StatusBadGateway, map[string]string{"error": err.Error()})
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	writeJSON(w, http.StatusOK, map[string]any{"status": resp.StatusCode, "body": string(body), "reason": resp.Header.Get("x-sluice-reason")})
}

func (a *app) grpcCall(w http.ResponseWriter, r *http.Request) {
	target := r.URL.Query().Get("target")
	code, _ := strconv.Atoi(r.URL.Query().Get("code"))
	if a.outbound == "" || target == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "need ?target= and a sidecar (--outbound or HTTP_PROXY)"})
		return
	}
	conn, err := grpc.NewClient("passthrough:///"+a.outbound,
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority(target))
	if err != nil {
		writeJSON(w, http.StatusBadGateway, map[string]string{"error": err.Error()})
		return
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	req := &testpb.SimpleRequest{FillServerId: true}
	if code != 0 {
		req.ResponseStatus = &testpb.EchoStatus{Code: int32(code), Message: "asked for code " + strconv.Itoa(code)}
	}
	resp, err := testpb.NewTestServiceClient(conn).UnaryCall(ctx, req)
	st := status.Convert(err)
	writeJSON(w, http.StatusOK, map[string]any{"code": int(st.Code()), "message": st.Message(), "serverId": resp.GetServerId()})
}

// testService answers UnaryCall with its instance name, or with the status the caller asks for.
type testService struct {
	testpb.UnimplementedTestServiceServer
	instance string
}

func (s *testService) UnaryCall(_ context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	if st := req.GetResponseStatus(); st != nil && st.GetCode() != 0 {
		return nil, status.Error(codes.Code(st.GetCode()), st.GetMessage())
	}
	return &testpb.SimpleResponse{ServerId: s.instance, Hostname: s.instance}, nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
