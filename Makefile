# Sluice — build, test, demo and benchmarks. `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
BIN := bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/sluicemesh/sluice/internal/version.Version=$(VERSION)
BINARIES := sluice-server sluice-proxy sluicectl

.PHONY: help build test test-unit test-e2e lint demo bench bench-quick check-prereqs clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

check-prereqs: ## check that Go and the PostgreSQL server binaries are installed
	@scripts/check-prereqs

build: check-prereqs ## build sluice-server, sluice-proxy and sluicectl into bin/
	@mkdir -p $(BIN)
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ $(addprefix ./cmd/,$(BINARIES))

lint: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

test: check-prereqs lint ## run every test (unit, PostgreSQL, end-to-end)
	$(GO) test -race -count=1 -timeout 20m ./...

test-unit: ## run the tests of every package except e2e
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v /e2e)

test-e2e: ## run the end-to-end tests (real processes)
	$(GO) test -count=1 -timeout 15m -v ./e2e/...

demo: build ## run the control plane with example workloads and their sidecars
	$(GO) build -trimpath -o $(BIN)/ ./cmd/sluice-demo ./examples/echo ./examples/bookinfo ./examples/httpbin
	$(BIN)/sluice-demo --bin $(BIN)

bench: ## run the benchmarks (figures and method in BENCHMARKS.md)
	@mkdir -p bench
	$(GO) test -run '^$$' -bench . -benchmem -count 3 ./proxy/... | tee bench/proxy.txt
	$(GO) test -run '^$$' -bench . -benchtime 10000x -count 3 ./e2e/ | tee bench/e2e.txt

bench-quick: ## a short run of every benchmark, to check they work
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 100x ./proxy/... ./e2e/

clean: ## remove build output (not the demo's data in .sluice)
	rm -rf $(BIN)
