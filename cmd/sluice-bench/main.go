// Command sluice-bench is Sluice's benchmark suite (`make bench`, `make bench-quick`). It
// starts a private PostgreSQL, the real sluice-server and sluice-proxy binaries, nginx and
// HAProxy as references, and a Go upstream, all on loopback, then measures:
//
//   - the data plane: open-loop constant-rate load (fortio's packages, HDR-style histograms)
//     over HTTP/1.1 and gRPC (unary, h2c), direct, through one Sluice sidecar, through two,
//     through nginx and through HAProxy, all interleaved, at several rates and connection
//     counts; the proxies' CPU and memory from /proc; the highest rate sustained and the
//     highest with p99 under 1 ms, each with what bound it; CPU and allocation profiles of
//     the sidecar;
//   - the control plane: N simulated proxies on real ADS streams, the time from a weight
//     change's commit to the last ACK, CPU per push, memory per proxy, resync after a restart;
//   - telemetry intake: the intake benchmark's 1,000 simulated sidecars.
//
// It writes results.json into --out and regenerates the marked section of BENCHMARKS.md. In
// --quick mode every phase is short and N small, and the run fails unless every figure is
// produced and sane; no figure is compared with a target.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	fortiolog "fortio.org/log"

	"github.com/sluicemesh/sluice/internal/pgembed"
)

// config is the command line.
type config struct {
	quick    bool
	out      string
	markdown string
	command  string
	keep     bool
	logLevel string
	bin      string
	render   bool
	// phases is the set of phases to run (all by default); cpProxies overrides the plan's
	// simulated proxy counts. Both serve investigations: a partial run never touches the
	// module's BENCHMARKS.md unless --markdown names it, and is not checked.
	phases    map[string]bool
	cpProxies []int
}

// The phases of a run.
var allPhases = []string{"dataplane", "controlplane", "telemetry"}

// plan is how long and how much each phase runs.
type plan struct {
	quick          bool // quick mode: the gRPC max-rate search is left to full runs
	rates, conns   []int
	reps           int
	warm, duration time.Duration
	maxRateStart   int
	maxRateLimit   int
	maxRateSteps   int
	maxRateGrowth  float64
	maxRateDur     time.Duration
	profileDur     time.Duration
	cpProxies      []int
	cpChanges      int
	intakeInterval int
}

func plans(quick bool) plan {
	if quick {
		// Cells are short: forty of them (two protocols, five arms) must leave room for the
		// other phases in three minutes. The max-rate search doubles up to 40,000 rps, past
		// where the sidecar's core fills up, so that even quick mode's rate per core comes
		// from a busy proxy.
		return plan{quick: true, rates: []int{1000, 5000}, conns: []int{4, 16}, reps: 1, warm: 200 * time.Millisecond, duration: 800 * time.Millisecond,
			maxRateStart: 5000, maxRateLimit: 40000, maxRateSteps: 1, maxRateGrowth: 2, maxRateDur: time.Second, profileDur: 2 * time.Second,
			cpProxies: []int{200}, cpChanges: 3, intakeInterval: 20}
	}
	return plan{rates: []int{1000, 5000}, conns: []int{4, 16}, reps: 3, warm: time.Second, duration: 8 * time.Second,
		maxRateStart: 5000, maxRateLimit: 80000, maxRateSteps: 3, maxRateGrowth: 1.5, maxRateDur: 3 * time.Second, profileDur: 10 * time.Second,
		cpProxies: []int{1000, 5000}, cpChanges: 10, intakeInterval: 60}
}

func main() {
	var cfg config
	flag.BoolVar(&cfg.quick, "quick", false, "short durations and few proxies (under three minutes); fail unless every figure is produced and sane")
	flag.StringVar(&cfg.out, "out", "bench", "directory for results.json and profiles/")
	flag.StringVar(&cfg.markdown, "markdown", "", "the Markdown file whose generated section is rewritten (default BENCHMARKS.md; with --quick, a copy of it in --out)")
	flag.StringVar(&cfg.command, "command", "", "the command recorded in the results (default this program's command line)")
	flag.StringVar(&cfg.bin, "bin", "", "a directory holding sluice-server and sluice-proxy already built (default: build them from this module)")
	flag.BoolVar(&cfg.render, "render", false, "measure nothing: regenerate the Markdown section from --out's results.json")
	flag.BoolVar(&cfg.keep, "keep", false, "keep the working directory (logs, configurations) after the run")
	flag.StringVar(&cfg.logLevel, "log-level", "info", "debug, info, warn or error")
	phases := flag.String("phases", strings.Join(allPhases, ","), "the phases to run, comma-separated; a partial run writes its Markdown into --out unless --markdown is given")
	cpProxies := flag.String("cp-proxies", "", "simulated proxy counts of the control-plane phase, comma-separated (default 1000,5000; with --quick 200)")
	flag.Parse()
	var err error
	if cfg.phases, err = parsePhases(*phases); err != nil {
		fmt.Fprintf(os.Stderr, "sluice-bench: --phases: %v\n", err)
		os.Exit(2)
	}
	if cfg.cpProxies, err = parseCounts(*cpProxies); err != nil {
		fmt.Fprintf(os.Stderr, "sluice-bench: --cp-proxies: %v\n", err)
		os.Exit(2)
	}
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "sluice-bench: unexpected argument %q: it takes only flags (see --help)\n", flag.Arg(0))
		os.Exit(2)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.logLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "sluice-bench: --log-level %q: want debug, info, warn or error\n", cfg.logLevel)
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, log, cfg); err != nil {
		log.Error("benchmark failed", "error", err)
		stop()
		os.Exit(1)
	}
}

func run(ctx context.Context, log *slog.Logger, cfg config) error {
	fortiolog.SetLogLevelQuiet(fortiolog.Error)
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	p := plans(cfg.quick)
	if len(cfg.cpProxies) > 0 {
		p.cpProxies = cfg.cpProxies
	}
	partial := len(cfg.phases) < len(allPhases)
	r := &Results{Date: time.Now().UTC().Format(time.RFC3339), Mode: "full", Command: cfg.command}
	if cfg.quick {
		r.Mode = "quick"
	}
	if r.Command == "" {
		r.Command = "sluice-bench " + strings.Join(os.Args[1:], " ")
	}
	r.Machine = machine()
	out := cfg.out
	if !filepath.IsAbs(out) {
		out = filepath.Join(root, out)
	}
	mdPath := cfg.markdown
	switch {
	case mdPath == "" && (cfg.quick || partial):
		mdPath = filepath.Join(out, "BENCHMARKS.md")
	case mdPath == "":
		mdPath = filepath.Join(root, "BENCHMARKS.md")
	}
	if cfg.render {
		b, err := os.ReadFile(filepath.Join(out, "results.json"))
		if err != nil {
			return fmt.Errorf("--render: %w", err)
		}
		var saved Results
		if err := json.Unmarshal(b, &saved); err != nil {
			return fmt.Errorf("--render: %s: %w", filepath.Join(out, "results.json"), err)
		}
		// The targets are judged and explained anew, so that a change of their wording
		// reaches the Markdown without measuring again.
		saved.Targets = evaluateTargets(&saved)
		return writeMarkdown(root, mdPath, cfg.markdown != "", &saved)
	}
	profDir := filepath.Join(out, "profiles")
	if err := os.MkdirAll(profDir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", profDir, err)
	}

	work, err := os.MkdirTemp("", "sluice-bench-")
	if err != nil {
		return fmt.Errorf("create the working directory: %w", err)
	}
	// The private PostgreSQL drops to an unprivileged user when run as root; it must be able
	// to reach its directory.
	_ = os.Chmod(work, 0o755)
	if cfg.keep {
		log.Info("working directory kept", "dir", work)
	} else {
		defer os.RemoveAll(work)
	}
	cs := &children{dir: work}
	defer cs.stopAll()

	if r.Machine.NProc >= 2 {
		if _, err := exec.LookPath("taskset"); err == nil {
			if out, err := exec.Command("taskset", "-a", "-p", "-c", "1", strconv.Itoa(os.Getpid())).CombinedOutput(); err != nil {
				log.Warn("pinning the load generator to CPU 1 failed; running unpinned", "error", err, "output", string(out))
			} else {
				cs.pin, r.Machine.Pinned = true, true
			}
		}
	}

	binDir := cfg.bin
	if binDir == "" {
		log.Info("building sluice-server and sluice-proxy")
		binDir = filepath.Join(work, "bin")
		build := exec.CommandContext(ctx, "go", "build", "-o", binDir+"/", "./cmd/sluice-server", "./cmd/sluice-proxy")
		build.Dir = root
		if b, err := build.CombinedOutput(); err != nil {
			return fmt.Errorf("go build the binaries: %w\n%s", err, b)
		}
	}

	log.Info("starting PostgreSQL")
	pg, err := pgembed.Start(ctx, pgembed.Options{DataDir: filepath.Join(work, "data"), Logger: log.With("component", "postgres"), Durable: true})
	if err != nil {
		return fmt.Errorf("start PostgreSQL: %w", err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := pg.Stop(sctx); err != nil {
			log.Error("stop PostgreSQL", "error", err)
		}
	}()

	serverBin := filepath.Join(binDir, "sluice-server")
	help, _ := exec.Command(serverBin, "--help").CombinedOutput()
	cp := &controlPlane{cs: cs, bin: serverBin, dbURL: pg.URL("sluice"), dataDir: filepath.Join(work, "server"),
		insecureXDS: strings.Contains(string(help), "-insecure-xds")}
	if cp.httpAddr, err = freeAddr(); err != nil {
		return err
	}
	if cp.xdsAddr, err = freeAddr(); err != nil {
		return err
	}
	if cp.tlsAddr, err = freeAddr(); err != nil {
		return err
	}
	log.Info("starting sluice-server", "http", cp.httpAddr, "xds", cp.xdsAddr, "insecure-xds", cp.insecureXDS)
	if err := cp.start(ctx); err != nil {
		return err
	}

	if cfg.phases["dataplane"] {
		if err := runDataPlane(ctx, log, cs, cp, postgresPids(pg), filepath.Join(binDir, "sluice-proxy"), p, profDir, r); err != nil {
			return fmt.Errorf("data plane: %w", err)
		}
	}
	for _, n := range p.cpProxies {
		if !cfg.phases["controlplane"] {
			break
		}
		run, err := runControlPlane(ctx, log, cp, n, p.cpChanges, profDir)
		if err != nil {
			if cfg.quick || ctx.Err() != nil {
				return fmt.Errorf("control plane with %d proxies: %w", n, err)
			}
			// A full run keeps what it measured and goes on; the error is in the results.
			log.Error("control plane run stopped early", "proxies", n, "error", err)
			run.Error = err.Error()
			if cp.proc.exited() || cp.api == nil {
				if err := cp.start(ctx); err != nil {
					return fmt.Errorf("restart sluice-server after the %d-proxy run: %w", n, err)
				}
			}
		}
		r.ControlPlane.Runs = append(r.ControlPlane.Runs, run)
	}
	cp.proc.stop(30 * time.Second)
	if cfg.phases["telemetry"] {
		if err := runIntake(ctx, log, root, p.intakeInterval, &r.Telemetry); err != nil {
			return fmt.Errorf("telemetry: %w", err)
		}
	}

	r.Targets = evaluateTargets(r)
	r.Machine.LoadAvgEnd = loadAvg()
	if err := writeJSON(out, r); err != nil {
		return err
	}
	if err := writeMarkdown(root, mdPath, cfg.markdown != "", r); err != nil {
		return err
	}
	log.Info("results written", "json", filepath.Join(out, "results.json"), "markdown", mdPath)
	if cfg.quick && partial {
		log.Warn("quick mode: a partial run is not checked", "phases", phaseList(cfg))
	} else if cfg.quick {
		if err := check(r); err != nil {
			return fmt.Errorf("quick mode: figures missing or not sane:\n%w", err)
		}
		log.Info("quick mode: every figure produced and sane")
	}
	return nil
}

// writeMarkdown regenerates the marked section of mdPath from r. The document is mdPath
// itself when it was named on the command line, otherwise the module's BENCHMARKS.md.
func writeMarkdown(root, mdPath string, named bool, r *Results) error {
	src := filepath.Join(root, "BENCHMARKS.md")
	if named {
		src = mdPath
	}
	doc, err := os.ReadFile(src)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("read %s: %w", src, err)
	}
	updated, err := replaceSection(string(doc), markdown(r))
	if err != nil {
		return err
	}
	if err := os.WriteFile(mdPath, []byte(updated), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", mdPath, err)
	}
	return nil
}

// postgresPids lists the cluster's processes: the postmaster (the first line of its
// postmaster.pid) and its children; none when the file cannot be read.
func postgresPids(pg *pgembed.Cluster) func() []int {
	return func() []int {
		b, err := os.ReadFile(filepath.Join(pg.Dir(), "data", "postmaster.pid"))
		if err != nil {
			return nil
		}
		line, _, _ := strings.Cut(string(b), "\n")
		pid, err := strconv.Atoi(strings.TrimSpace(line))
		if err != nil {
			return nil
		}
		return withChildren(pid)
	}
}

// moduleRoot is the directory of the module's go.mod.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("run sluice-bench inside the Sluice module (go env GOMOD is empty)")
	}
	return filepath.Dir(gomod), nil
}

// freeAddr is a free 127.0.0.1 address.
func freeAddr() (string, error) {
	port, err := freePort("127.0.0.1")
	if err != nil {
		return "", err
	}
	return "127.0.0.1:" + port, nil
}

// machine describes this machine.
func machine() Machine {
	m := Machine{NProc: runtime.NumCPU(), GoVersion: runtime.Version(), CPUModel: "unknown", LoadAvgStart: loadAvg()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		m.CPUModel = parseCPUModel(string(b))
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if out, err := exec.Command("go", "env", "GOVERSION").Output(); err == nil {
		m.GoVersion = strings.TrimSpace(string(out))
	}
	return m
}

func loadAvg() [3]float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return [3]float64{}
	}
	l, _ := parseLoadAvg(string(b))
	return l
}

// parsePhases reads --phases.
func parsePhases(v string) (map[string]bool, error) {
	out := map[string]bool{}
	for _, p := range strings.Split(v, ",") {
		p = strings.TrimSpace(p)
		if !slices.Contains(allPhases, p) {
			return nil, fmt.Errorf("%q is not a phase: want some of %s", p, strings.Join(allPhases, ", "))
		}
		out[p] = true
	}
	return out, nil
}

// parseCounts reads a comma-separated list of positive counts; empty is none.
func parseCounts(v string) ([]int, error) {
	if strings.TrimSpace(v) == "" {
		return nil, nil
	}
	var out []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%q is not a positive count", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// phaseList names the phases of cfg, in their order.
func phaseList(cfg config) string {
	var names []string
	for _, p := range allPhases {
		if cfg.phases[p] {
			names = append(names, p)
		}
	}
	return strings.Join(names, ",")
}
