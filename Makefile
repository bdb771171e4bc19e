# redis-sweep: `make` lists the targets. Every target that compiles first runs scripts/setup.sh,
# so a fresh Debian machine needs only Rust and `make test` (or `make run`).

PORT ?= 6379
# Another server binary (another Redis or Valkey version) for `run` and `test`.
REDIS_SERVER ?= redis-server
MODULE := $(CURDIR)/target/release/libredis_sweep.so
.DEFAULT_GOAL := help
.PHONY: help setup build run test lint fmt bench servers clean

help: ## list the targets
	@echo "make TARGET   (variables: PORT=$(PORT) REDIS_SERVER=$(REDIS_SERVER))"
	@awk 'BEGIN { FS = ":.*## " } /^[a-z-]+:.*## / { printf "  %-8s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

setup: ## install what is missing with apt-get: redis-server, libclang-dev, clang, pkg-config
	bash scripts/setup.sh

build: setup ## build the module: target/release/libredis_sweep.so
	cargo build --release

run: build ## start redis-server in the foreground with redis.conf.example and the module, on PORT
	$(REDIS_SERVER) redis.conf.example --port $(PORT)

# The root crate's own test harness is skipped (`--test '*'` selects tests/*.rs only): it would link
# the module, whose global allocator aborts outside a server ("the Redis Allocator isn't available").
test: build ## unit tests, then integration tests against the module just built (REDIS_SERVER honoured)
	cargo test --release -p sweep-core
	REDIS_SWEEP_MODULE=$(MODULE) REDIS_SERVER=$(REDIS_SERVER) cargo test --release -p redis-sweep --test '*'

.PHONY: test-memory
test-memory: build ## the sweep-heavy tests with redis-server under valgrind: no errors, no module leaks
	REDIS_SERVER=$(REDIS_SERVER) bash scripts/test-memory.sh

lint: setup ## clippy with warnings as errors, and a rustfmt check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo fmt --all -- --check

fmt: ## format the code
	cargo fmt --all

bench: build ## criterion benches of the matcher, the end-to-end comparison (benches/e2e.rs), the cost per key (benches/cost.rs)
	cargo bench -p sweep-core
	REDIS_SWEEP_MODULE=$(MODULE) REDIS_SERVER=$(REDIS_SERVER) cargo bench -p redis-sweep --bench e2e
	REDIS_SWEEP_MODULE=$(MODULE) REDIS_SERVER=$(REDIS_SERVER) cargo bench -p redis-sweep --bench cost

.PHONY: bench-load
bench-load: build ## redis-benchmark (50 clients, SET/GET) alone and during sweeps of 1M keys (benches/load.rs)
	REDIS_SWEEP_MODULE=$(MODULE) REDIS_SERVER=$(REDIS_SERVER) cargo bench -p redis-sweep --bench load

servers: ## install more Redis/Valkey versions for compatibility runs, if ../shared/servers has the script
	@if [ -f ../shared/servers/install-servers.sh ]; then \
		bash ../shared/servers/install-servers.sh all; \
	else \
		echo "servers: ../shared/servers/install-servers.sh not found; nothing to do"; \
	fi

clean: ## remove build output
	cargo clean
