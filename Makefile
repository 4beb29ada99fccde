# aiwatt — the two commands a newcomer needs are `make run` and `make test`.

GO        ?= go
BIN       := bin/aiwatt
PKG       := github.com/inferensys/aiwatt
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION  ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
BRANCH    ?= $(shell git rev-parse --abbrev-ref HEAD 2>/dev/null || echo unknown)
LDFLAGS   := -X github.com/prometheus/common/version.Version=$(VERSION) \
             -X github.com/prometheus/common/version.Revision=$(REVISION) \
             -X github.com/prometheus/common/version.Branch=$(BRANCH) \
             -X github.com/prometheus/common/version.BuildUser=aiwatt \
             -X github.com/prometheus/common/version.BuildDate=$(shell date -u +%Y%m%d-%H:%M:%S)
LISTEN    ?= :28290
RUN_ARGS  ?=

.PHONY: all build build-cloud run demo test deps mod-check no-outside-paths fmt-check vet unit fuzz golden-check helm-test bench update-golden clean image e2e e2e-deps fleet-deps fleet-test

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/aiwatt

## build-cloud: the separate aiwatt-cloud binary (cloud SDKs stay out of the agent).
build-cloud:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/aiwatt-cloud ./cmd/aiwatt-cloud

## run: build and start the agent on this machine's hardware (RAPL where readable, else the CPU model).
run: build
	@echo "aiwatt agent: metrics at http://localhost$(LISTEN)/metrics (Ctrl-C to stop)"
	$(BIN) agent --web.listen-address=$(LISTEN) --agent.live $(RUN_ARGS)

## test: install what the tests need, then gofmt, vet, race tests and promtool checks.
test: deps fleet-deps mod-check fmt-check vet unit fuzz golden-check helm-test e2e

deps:
	@command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 && command -v amtool >/dev/null 2>&1 && command -v prometheus-alertmanager >/dev/null 2>&1 && command -v pdftotext >/dev/null 2>&1 || { \
	  echo "installing Debian's prometheus, prometheus-alertmanager and poppler-utils (promtool, amtool, pdftotext) for the tests"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq prometheus prometheus-alertmanager poppler-utils >/dev/null; }

## fleet-deps: what the fleet end-to-end test (internal/fleet) needs beside Prometheus: Debian's
## victoria-metrics, and Thanos built from its Go module into .cache/thanos/ (once per version).
fleet-deps:
	@command -v victoria-metrics >/dev/null 2>&1 || { \
	  echo "installing Debian's victoria-metrics for the fleet test"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq victoria-metrics >/dev/null; }
	@GO=$(GO) ./scripts/thanos.sh >/dev/null

## fleet-test: only the fleet end-to-end test (two clusters, Thanos, VictoriaMetrics).
fleet-test: fleet-deps
	$(GO) test -race -count=1 -v ./internal/fleet/

## mod-check: go.mod and go.sum of both modules are tidy (go mod tidy would change nothing).
mod-check: no-outside-paths
	$(GO) mod tidy -diff
	cd helm/test && $(GO) mod tidy -diff
	cd deploy/e2e && $(GO) mod tidy -diff
	cd deploy/e2e/servers && $(GO) mod tidy -diff

## no-outside-paths: no test, script or target reads the fixture set beside the repository.
no-outside-paths:
	@if git grep -nE '\.\./shared|"shared", "fixtures"' -- ':!README.md' ':!docs' ':!Makefile' ':!*/testdata/PROVENANCE.md'; then \
	  echo "the files above read outside the repository; copy what they need into testdata/"; exit 1; fi

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

unit:
	$(GO) test -race -count=1 ./...

## fuzz: short, bounded fuzzing runs of the inference-server parser (seeded with the real captures) and the pod-resources decoder.
FUZZTIME ?= 10s
fuzz:
	$(GO) test ./scrape -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME)
	$(GO) test ./workload -run '^$$' -fuzz '^FuzzDecodeListResponse$$' -fuzztime $(FUZZTIME)

## golden-check: promtool lints the golden /metrics exposition.
golden-check:
	promtool check metrics < cmd/aiwatt/testdata/golden/metrics.prom

## helm-test: render the chart with Helm's own libraries and decode every manifest strictly (a separate
## module, so Helm and Kubernetes API types never reach the agent binary).
helm-test:
	cd helm/test && $(GO) vet -mod=mod ./... && $(GO) test -mod=mod -race -count=1 ./...

## update-golden: regenerate golden files after an intended change.
update-golden:
	$(GO) test ./cmd/aiwatt/ -run 'Golden|EndToEnd' -update

## demo: agent + Prometheus with the rules + a demo inference load on 127.0.0.1; prints URLs and queries.
demo: build
	./scripts/demo.sh

## bench: Go benchmarks of the hot paths plus the side-by-side run against node_exporter.
bench: build
	./scripts/bench.sh

## image: the container image of the binary `make build` made (the Dockerfile's default target,
## as node_exporter's image is built); `docker build --target full .` builds everything inside docker.
CONTAINER_ENGINE ?= $(shell command -v podman 2>/dev/null || command -v docker 2>/dev/null)
IMAGE            ?= aiwatt:$(VERSION)
IMAGE_CREATED    ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
IMAGE_FLAGS      ?=
image: build
	$(CONTAINER_ENGINE) build $(IMAGE_FLAGS) --build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) \
	  --build-arg CREATED=$(IMAGE_CREATED) -t $(IMAGE) .

## e2e-deps: podman, debootstrap, runc, the Debian base image and the test module's Go modules (once).
e2e-deps:
	./deploy/e2e/setup.sh

## e2e: build and run the image as the chart runs it, and install the chart on a real kube-apiserver
## and etcd built from their Go modules (deploy/e2e, its own module; binaries cached in .cache/e2e).
E2E_TIMEOUT ?= 60m
e2e: build e2e-deps
	cd deploy/e2e && $(GO) vet ./... && $(GO) test -race -count=1 -timeout $(E2E_TIMEOUT) ./...

clean:
	rm -rf bin .bench

## chart-sync: copy the rules and dashboards into the Helm chart (helm/test fails when they drift).
.PHONY: chart-sync
chart-sync:
	rm -f helm/aiwatt/files/rules/*.yml helm/aiwatt/files/dashboards/*.json
	mkdir -p helm/aiwatt/files/rules helm/aiwatt/files/dashboards
	cp alerts/rules/*.yml helm/aiwatt/files/rules/
	cp dashboards/json/*.json helm/aiwatt/files/dashboards/
