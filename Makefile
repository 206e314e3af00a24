# Sluice — build, test, demo and benchmarks. `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
BIN := bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/sluicemesh/sluice/internal/version.Version=$(VERSION)
BINARIES := sluice-server sluice-proxy sluicectl
NPM ?= npm

# The web console (web/) is built by Vite into web/dist, which sluice-server embeds. Its
# build is redone only when its sources or packages change.
CONSOLE := web/dist/index.html
CONSOLE_SOURCES := $(shell find web/src web/public web/scripts -type f 2>/dev/null) \
	web/index.html web/package.json web/vite.config.ts web/tsconfig.json
CONSOLE_PACKAGES := web/node_modules/.package-lock.json
NODE_HINT := install Node.js 20.19 or newer with npm (https://nodejs.org/, or your system's packages)

.PHONY: help build test test-unit test-web test-e2e lint demo bench bench-quick check-prereqs clean console require-node

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

check-prereqs: ## check that Go and the PostgreSQL server binaries are installed
	@scripts/check-prereqs

build: check-prereqs console ## build sluice-server (with the console), sluice-proxy and sluicectl into bin/
	@mkdir -p $(BIN)
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ $(addprefix ./cmd/,$(BINARIES))

lint: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

console: ## build the web console into web/dist, when npm is installed
	@if command -v $(NPM) >/dev/null 2>&1 && command -v node >/dev/null 2>&1; then \
	  $(MAKE) --no-print-directory $(CONSOLE); \
	else \
	  echo "console: npm not found, so sluice-server gets a page saying how to build the console instead: $(NODE_HINT), then run make build again"; \
	fi

require-node:
	@command -v node >/dev/null 2>&1 && command -v $(NPM) >/dev/null 2>&1 || \
	  { echo "missing: node and npm — the console's tests need them: $(NODE_HINT) (bash .ci/run installs what the tests need)" >&2; exit 1; }

$(CONSOLE_PACKAGES): web/package-lock.json
	cd web && $(NPM) ci --no-audit --no-fund

$(CONSOLE): $(CONSOLE_PACKAGES) $(CONSOLE_SOURCES)
	cd web && $(NPM) run build

# The console is built before go test builds the server binary that the e2e tests start, so
# that the binary embeds it (TestConsole fails if the server serves the placeholder).
test: check-prereqs lint require-node $(CONSOLE) test-web ## run every test (console unit, Go unit, PostgreSQL, end-to-end and browser)
	$(GO) test -race -count=1 -timeout 20m ./...

test-web: require-node $(CONSOLE_PACKAGES) ## run the console's unit tests (Vitest)
	cd web && $(NPM) test

test-unit: ## run the tests of every package except e2e
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v /e2e)

test-e2e: require-node $(CONSOLE) ## run the end-to-end tests (real processes, and the console in Chromium)
	$(GO) test -count=1 -timeout 15m -v ./e2e/...

demo: build ## run the control plane with example workloads and their sidecars
	$(GO) build -trimpath -o $(BIN)/ ./cmd/sluice-demo ./examples/echo ./examples/bookinfo ./examples/httpbin
	$(BIN)/sluice-demo --bin $(BIN)

bench: ## the full benchmark suite, about 40 minutes on 2 cores: data plane (HTTP/1.1 and gRPC) against nginx and HAProxy, control plane at 1,000 and 5,000 proxies, telemetry (20–30 min, bench/results.json and BENCHMARKS.md), then the Go benchmarks (bench/*.txt)
	@mkdir -p bench
	$(GO) run ./cmd/sluice-bench --out bench --command 'make bench'
	$(GO) test -run '^$$' -bench . -benchmem -count 3 ./proxy/... | tee bench/proxy.txt
	$(GO) test -run '^$$' -bench BenchmarkRequest -benchtime 10000x -count 3 ./e2e/ | tee bench/e2e.txt
	$(GO) test -run '^$$' -bench BenchmarkPropagation -benchtime 40x ./e2e/ | tee -a bench/e2e.txt

bench-quick: ## the same suite in under three minutes, into a temporary directory; fails unless every figure is produced and sane
	@out=$$(mktemp -d "$${TMPDIR:-/tmp}/sluice-bench-quick-XXXXXX") && \
	  $(GO) run ./cmd/sluice-bench --quick --out "$$out" --command 'make bench-quick' && \
	  echo "bench-quick: results in $$out/results.json and $$out/BENCHMARKS.md"

clean: ## remove build output (not the demo's data in .sluice, nor web/node_modules)
	rm -rf $(BIN)
	find web/dist -mindepth 1 ! -name .keep -exec rm -rf {} +
