# Faultline: newcomers need two targets, `make demo` and `make test`.
GO           ?= go
BIN          := bin/faultline
TEST_TIMEOUT ?= 12m
# -race triples CPU and memory; run it where it pays (concurrency-heavy, fast packages).
RACE_PKGS    ?= ./runtime/... ./checks/... ./reference-services/config/... ./reference-services/node/... \
                ./reference-services/auth/... ./reference-services/design/... ./reference-services/resilience/... \
                ./reference-services/gateway/... ./console/...
BENCH_RUNS   ?= 5
SOAK_DURATION ?= 10m
MOCKERY      := github.com/vektra/mockery/v2@v2.53.5
PROTOC_GEN_GO      := google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
PROTOC_GEN_GO_GRPC := google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.5.1
API_DIR      := reference-services/api/refv1

.PHONY: all build up demo test test-race fuzz suite suite-docker examples-docker bench bench-suite bench-console mocks generate vet fmt clean examples k8s-build k8s-cluster suite-k8s test-k8s

all: build

build:
	$(GO) build -o $(BIN) ./cmd/faultline

## up: start the reference system as local processes until Ctrl-C
up: build
	./$(BIN) up

## demo: run the dependency-latency showcase against the system; ends with the HTML report's path
demo: build
	./$(BIN) demo

## test: every package once (real processes, real etcd/NATS/SQLite; a real cluster when
## make k8s-build's binaries are cached, else those tests skip with one line): the
## concurrency-heavy ones (RACE_PKGS) under -race, the rest without
test:
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) $(PLAIN_PKGS)
	$(MAKE) test-race

test-race:
	$(GO) test -count=1 -race -timeout $(TEST_TIMEOUT) $(RACE_PKGS)

# Every package not in RACE_PKGS: each test runs once, the racy ones under -race.
PLAIN_PKGS = $(filter-out $(shell $(GO) list $(RACE_PKGS)),$(shell $(GO) list ./...))

## test-k8s: the tests that start a real single-node cluster (root; needs k8s-build)
test-k8s:
	$(GO) test -count=1 -race -p 1 -timeout 30m ./internal/k8scluster/... ./runtime/kubernetes/...

## fuzz: every parser of untrusted input for FUZZTIME each (CI: 60s); new finds land in
## testdata/fuzz/<Target>/ of the package and are committed as the corpus
FUZZTIME     ?= 60s
FUZZ_TARGETS ?= ./scenarios:FuzzParse ./reference-services/design:FuzzParse ./result:FuzzRead \
                ./history:FuzzReader ./reference-services/auth:FuzzVerify ./loadgen:FuzzRateOf
fuzz:
	FUZZTIME=$(FUZZTIME) GO=$(GO) ./scripts/fuzz.sh $(FUZZ_TARGETS)

## examples: every scenario under examples/ against real nginx, Redis and webdis (Debian:
## apt-get install nginx redis-server webdis); each must meet its expectation
examples: build
	./examples/run.sh

## examples-docker: the same examples as containers (each component's image built FROM
## scratch of the host's binaries), the same expectations
examples-docker: build
	FAULTLINE_RUNTIME=docker ./examples/run.sh
	./scripts/docker-leftovers.sh examples-docker

## suite: the built-in catalog, one scenario after the other; exits non-zero when any
## scenario misses its expectation (an expected failure that did not happen included)
suite: build
	./$(BIN) suite scenarios/

## k8s-build: build the test cluster's binaries (kube-apiserver, kube-controller-manager,
## kube-scheduler, kube-proxy, kubelet v1.37.2; containerd v2.4.2; CNI plugins v1.10.0) once
## into $FAULTLINE_K8S_CACHE (default /var/cache/faultline-k8s)/<versions>/; skipped when present.
## ~30 min cold on 2 cores. The recipe is tools/k8s (its own module).
k8s-build:
	GO=$(GO) ./tools/k8s/build.sh

## k8s-cluster: run a real single-node cluster (root; needs k8s-build) under K8S_DIR; prints
## the KUBECONFIG line, Ctrl-C tears everything down (processes, iptables KUBE-* chains,
## bridge, cgroups, mounts); K8S_CLEAN=1 tears down one whose owner was killed
K8S_DIR ?= /tmp/faultline-k8s-cluster
k8s-cluster:
	$(GO) build -o bin/k8s-cluster ./internal/k8scluster/cmd/k8s-cluster
	./bin/k8s-cluster -dir $(K8S_DIR) $(if $(K8S_CLEAN),-clean)

## suite-k8s: the same catalog with the same expectations on a real single-node cluster
## started for it under K8S_DIR (root; needs k8s-build), then checks that nothing labelled
## by faultline is left in the cluster, and tears the cluster down
suite-k8s: build
	$(GO) build -o bin/k8s-cluster ./internal/k8scluster/cmd/k8s-cluster
	./bin/k8s-cluster -dir $(K8S_DIR) -- ./$(BIN) suite scenarios/ --runtime kubernetes

## suite-docker: the same catalog with the same expectations on the Docker runtime (each
## run's containers, network and volumes removed at its end: the check after proves it)
suite-docker: build
	./$(BIN) suite scenarios/ --runtime docker
	./scripts/docker-leftovers.sh suite-docker

## bench-suite: wall time of `faultline suite scenarios/` (target: 3 min on 2 cores)
bench-suite: build
	@mkdir -p .faultline; s=$$(date +%s); ./$(BIN) suite scenarios/ >.faultline/bench-suite.log 2>&1; rc=$$?; \
	  e=$$(date +%s); sed -n '/^SCENARIO/,$$p' .faultline/bench-suite.log; \
	  echo "bench: faultline suite scenarios/: $$((e - s)) s wall, exit $$rc"; exit $$rc

## bench-console: with a real browser, how long an event (a fault, a heal, a breaker
## transition) takes to show on the console's page, and the console's idle CPU
bench-console:
	$(GO) test -run '^$$' -bench BenchmarkConsoleLatency -benchtime 10x -timeout 10m ./console/

## bench: startup time of the full default system, local processes and containers with the image
## in place (median and p90, -v: where the median run's time went; containers against the engine's
## floor, as many bare containers started in parallel right after); the catalog's wall time;
## overload at twice capacity; a SOAK_DURATION soak (10m) of the catalog's faults under load (not in CI)
bench: build
	$(GO) test -run '^$$' -bench BenchmarkSystemStartup -benchtime $(BENCH_RUNS)x -timeout 10m ./system/
	./$(BIN) bench startup --runs $(BENCH_RUNS) -v --dir .faultline/bench
	@if docker info >/dev/null 2>&1; then \
	  ./$(BIN) bench startup --runtime docker --runs $(BENCH_RUNS) -v --dir .faultline/bench-docker; \
	else echo "bench: docker startup skipped (no Docker engine)"; fi
	$(MAKE) bench-suite
	@if docker info >/dev/null 2>&1; then ./$(BIN) bench startup --runtime docker --cold --runs $(BENCH_RUNS); \
	  else echo "bench: no docker engine, docker startup not measured"; fi
	FAULTLINE_OVERLOAD=1 $(GO) test -count=1 -run '^TestOverloadShedsAndRecovers$$' -v -timeout 5m ./system/ | grep -E 'overload_test|^(---|ok|FAIL)'
	$(MAKE) bench-console
	./$(BIN) soak --duration $(SOAK_DURATION)

mocks:
	$(GO) run $(MOCKERY)

## generate: gRPC code from ref.proto (needs Debian's protobuf-compiler for protoc)
generate:
	$(GO) install $(PROTOC_GEN_GO)
	$(GO) install $(PROTOC_GEN_GO_GRPC)
	PATH="$$($(GO) env GOPATH)/bin:$$PATH" protoc -I $(API_DIR) \
		--go_out=$(API_DIR) --go_opt=paths=source_relative \
		--go-grpc_out=$(API_DIR) --go-grpc_opt=paths=source_relative \
		$(API_DIR)/ref.proto

vet:
	$(GO) vet ./...

fmt:
	gofmt -s -w $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.git/*')

clean:
	rm -rf bin .faultline coverage.out coverage.html *.coverprofile
