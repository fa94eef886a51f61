# certops — make targets a newcomer can guess.
SHELL := /usr/bin/env bash
GO ?= go
export CERTOPS_TOOLS_BIN ?= $(HOME)/.cache/certops/tools/bin
FUZZTIME ?= 30s
BENCH_N ?= 1000,10000

.PHONY: all build test unit e2e lint fuzz bench demo tools deps schema clean

all: build

## build: the certops binary into bin/
build:
	$(GO) build -trimpath -o bin/certops ./cmd/certops

## deps: Debian packages the tests use (git, bind9, openssl, age, gnupg, chromium)
deps:
	bash scripts/install-deps.sh

## tools: build the real test peers (Pebble, sops, kube-apiserver, etcd, ...)
tools:
	bash e2e/tools/build.sh

## test: every test, unit and e2e, with the race detector (what CI runs);
## files tests keep (the status page's screenshot) land in test-artifacts/
test: tools
	$(GO) vet ./...
	mkdir -p $(CURDIR)/test-artifacts
	$(GO) test -race -count=1 -timeout 40m -artifacts -outputdir $(CURDIR)/test-artifacts ./...

## unit: the fast tests only (no peers)
unit:
	$(GO) test -short -count=1 ./...

## e2e: the end-to-end suite against real peers
e2e: tools
	$(GO) test -race -count=1 -timeout 40m ./e2e/...

## lint: gofmt, go vet, golangci-lint
lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(GO) run github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v2.15.0 run ./...

## fuzz: run every fuzz target for FUZZTIME each
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "► $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

## bench: Go benchmarks of the hot paths (compare runs with benchstat)
bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 1 ./...
	$(GO) run ./e2e/scale -n $(BENCH_N) -json bench.json

## schema: regenerate the JSON Schemas of the spec kinds
schema:
	$(GO) run ./spec/internal/schemagen -out spec/schema

## demo: one pass of the daemon on examples/quickstart with embedded defaults
demo: build
	bash examples/demo.sh

clean:
	rm -rf bin test-artifacts
