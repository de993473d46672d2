# capcheck. `make` alone lists the targets.
GO  ?= go
BIN ?= capcheck

.DEFAULT_GOAL := help
.PHONY: help build test test-race test-normalize-diff lint bench bench-enqueue bench-worker bench-cluster bench-callbacks bench-memory docs report-screenshot clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-20s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build ./capcheck from ./cmd/capcheck
	$(GO) build -ldflags "-X main.buildVersion=$$(git describe --always --dirty 2>/dev/null)" -o $(BIN) ./cmd/capcheck

test: ## the test command (README, CI): gofmt, go vet, go test -race
	./scripts/test.sh

test-race: ## the tests with the race detector 3 times in random order, to shake out flakes
	$(GO) test -race -count=3 -shuffle=on ./...

test-normalize-diff: ## compare the fast number parser with libphonenumber on 10,000,000 generated inputs (DIFF_N=... for another count)
	$(GO) test -v -count=1 -timeout 2h -run '^TestDifferential$$' ./phonenorm/fast/ -args -diff.n=$(or $(DIFF_N),10000000)

lint: ## fail when gofmt, go vet or go mod tidy leave a diff
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt -l (run gofmt -w .):"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) mod tidy -diff

bench: ## run every benchmark of the module
	$(GO) test -run='^$$' -bench=. -benchmem ./...

bench-enqueue: ## measure a 1,000,000-row enqueue: rows/s, peak RSS, Redis bytes per number (ROWS=10000000 for 10M)
	./scripts/bench-enqueue.sh

bench-worker: ## measure worker fleets against mock-api: 200/s x 50 and 1000/s x 10, 3 and 20 replicas, a replica killed mid-run (ROUNDS=10 for ten rounds; docs/benchmarks.md)
	./scripts/bench-worker.sh suite $(or $(ROUNDS),1)

bench-cluster: ## a 1,000,000-number job on a 3-master Redis Cluster: bytes per master; 20 replicas on the cluster against one Redis (docs/benchmarks.md)
	CAPCHECK_BENCH_CLUSTER=1 $(GO) test -count=1 -run TestBenchCluster -v -timeout 30m ./e2e/

bench-memory: ## three nights of a 1,000,000-number list with the capability memory: requests and makespan night 2 vs 1, changes.csv vs flips, Redis bytes per remembered number at 1M and at 10M (FILL), enqueue rows/s with and without it (docs/benchmarks.md)
	./scripts/bench-memory.sh

bench-callbacks: ## measure capcheck callbacks: callbacks/s, p50/p99 at 10,000/s, peak RSS, Redis bytes per awaited number (docs/benchmarks.md)
	./scripts/bench-callbacks.sh

report-screenshot: ## remake docs/report-demo.png: the demo job's report.html in headless Chromium
	./scripts/report-screenshot.sh

docs: ## regenerate the configuration table in README.md from configs
	$(GO) test ./configs -run TestREADMETable -update

clean: ## remove the built binary
	rm -f $(BIN)
