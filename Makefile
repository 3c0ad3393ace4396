# kata-monitor: `make demo` runs it on a simulated node, `make test` runs every test.
GO          ?= go
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT      ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS     := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
BIN         := bin/kata-monitor
# The image the DaemonSet names; make image IMAGE=registry.example.com/kata-monitor:v1
IMAGE       ?= ghcr.io/kata-containers/kata-monitor:latest
# Fuzz targets run briefly in CI (FUZZTIME each, after the seed corpora ran in go test); longer: make fuzz FUZZTIME=5m
FUZZTIME    ?= 5s
# Long soaks are off in CI: make soak SOAK=1
SOAK        ?=

.PHONY: all build image test fuzz deps built-receivers receivers demo bench soak vet clean

all: build

## build: a static binary in bin/
build:
	@CGO_ENABLED=0 bash scripts/gobuild.sh $(BIN) -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/kata-monitor

## image: the container image (FROM scratch: static binary, CA bundle, user 65532, no shell) built with buildah, no Docker engine
image: build
	@bash scripts/image.sh $(BIN) $(IMAGE) $(VERSION) $(COMMIT)

## deps: install the real receivers (and chromium for the browser test) from Debian when missing, and build the others
deps:
	@bash scripts/install-deps.sh --browser
	@$(MAKE) --no-print-directory built-receivers

## built-receivers: Prometheus 3, VictoriaMetrics 1.151, Mimir and Thanos, built once from the Go module proxy into ~/.cache/kata-monitor/receivers (about 23 min on 2 cores the first time, nothing after)
built-receivers:
	@for r in victoriametrics prometheus3 mimir thanos; do bash scripts/build-receiver.sh $$r >/dev/null || exit 1; done

receivers:
	@bash scripts/install-deps.sh

vet:
	$(GO) vet ./...

## test: every test (unit, end-to-end with real receivers, browser), with the race detector, then short fuzz runs
test: deps vet
	$(GO) test -race -timeout 20m ./...
	@$(MAKE) --no-print-directory fuzz

## fuzz: run each fuzz target for FUZZTIME
fuzz:
	@bash scripts/fuzz.sh $(FUZZTIME)

## demo: kata-monitor on a simulated node pushing into VictoriaMetrics (DEMO_SECONDS=N to stop by itself)
demo: receivers build
	@bash scripts/gobuild.sh "the demo (simulated node, fake CRI, VictoriaMetrics launcher)" -o bin/demo ./test/demo
	bin/demo

## bench: the benchmark harness (BENCH_SANDBOXES=10,50,200,500)
bench: receivers build
	$(GO) run ./test/bench

## soak: the long fault tests
soak: deps
	KATA_MONITOR_SOAK=1 $(GO) test -race -timeout 60m ./test/...

clean:
	rm -rf bin
