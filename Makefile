# piivault: `make run` brings up Vault, Redis and piivault on loopback;
# `make test` runs every test against real Vault and Redis processes.

SHELL        := /bin/bash
VAULT_VERSION := 1.21.0
CACHE_DIR    := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/piivault
CACHED_VAULT := $(CACHE_DIR)/vault-$(VAULT_VERSION)
# A vault on PATH wins; otherwise the cached build of the official module.
VAULT_BIN    := $(or $(shell command -v vault 2>/dev/null),$(CACHED_VAULT))
BIN          := bin/piivault
# The development tool (seed, benchmark): built beside piivault, never shipped.
BENCH_BIN    := bin/piivault-bench
# e.g. make bench BENCH_FLAGS='--due 10000 --stored 0' for a shorter run.
BENCH_FLAGS  ?=
FUZZTIME     ?= 10s

export PIIVAULT_VAULT_BIN := $(VAULT_BIN)
# make run's local mail server with a web inbox (axllent/mailpit), built
# once from its Go module into the cache like Vault.
MAILPIT_VERSION := 1.33.1
MAILPIT_BIN  := $(CACHE_DIR)/mailpit-$(MAILPIT_VERSION)
export PIIVAULT_MAILPIT_BIN := $(MAILPIT_BIN)

.PHONY: all build vault redis chromium mailpit test unit fuzz run bench clean help

all: build

help:
	@echo "make run    - start Vault (dev), Redis and piivault on loopback with demo staff and a demo key"
	@echo "make test   - every test, against real Vault and Redis (builds Vault once if missing)"
	@echo "make bench  - piivault against the bare Vault+Redis pipeline; writes bench/results.json"
	@echo "make build  - bin/piivault, bin/storefront and the development tools bin/piivault-bench and bin/easypost-standin (never shipped)"

build:
	go build -o $(BIN) ./cmd/piivault
	go build -o $(BENCH_BIN) ./cmd/piivault-bench
	go build -o bin/storefront ./examples/storefront
	go build -o bin/easypost-standin ./cmd/easypost-standin

# Vault is built from the official github.com/hashicorp/vault module when no
# vault is on PATH, once, into the user's cache, keyed by version.
vault: $(VAULT_BIN)

$(CACHED_VAULT):
	@echo "==> Building Vault $(VAULT_VERSION) from its official Go module into $(CACHED_VAULT)."
	@echo "==> This happens once per machine and takes 10-15 minutes on 2 cores; later runs reuse it."
	@mkdir -p $(CACHE_DIR)
	cd tools/vault && GOFLAGS=-mod=mod go build -o $(CACHED_VAULT).tmp . && mv $(CACHED_VAULT).tmp $(CACHED_VAULT)
	@$(CACHED_VAULT) version

mailpit: $(MAILPIT_BIN)

$(MAILPIT_BIN):
	@echo "==> Building mailpit $(MAILPIT_VERSION) (make run's local mail server) into $(MAILPIT_BIN); about a minute, once."
	@mkdir -p $(CACHE_DIR)/mailpit-build
	GOBIN=$(CACHE_DIR)/mailpit-build GOFLAGS=-mod=mod go install github.com/axllent/mailpit@v$(MAILPIT_VERSION)
	mv $(CACHE_DIR)/mailpit-build/mailpit $(MAILPIT_BIN)

# Redis is Debian's redis-server, installed when missing.
redis:
	@command -v redis-server >/dev/null || { \
	  echo "==> Installing redis-server (Debian package)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq redis-server >/dev/null; }
	@redis-server --version | head -1

# Chromium is Debian's package, for the console's browser tests.
chromium:
	@command -v chromium >/dev/null || { \
	  echo "==> Installing chromium (Debian package) for the browser tests"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }
	@chromium --version 2>/dev/null | head -1

test: vault redis chromium
	go vet ./...
	go test -race -count=1 -timeout 30m ./...
	$(MAKE) fuzz

unit:
	go test -count=1 -short ./...

fuzz:
	go test -run '^$$' -fuzz FuzzDecodeOrder -fuzztime $(FUZZTIME) ./orders

run: build vault redis mailpit
	@scripts/run.sh

# Go benchmarks of the hot in-process paths, then the built bin/piivault
# against the bare Vault+Redis pipeline (writes bench/results.json and the
# goals table in README.md).
bench: build vault redis
	go test -run '^$$' -bench . -benchmem ./orders ./webhooks ./vault ./monitoring
	$(BENCH_BIN) run --piivault $(BIN) --readme README.md $(BENCH_FLAGS)

clean:
	rm -rf bin .run
