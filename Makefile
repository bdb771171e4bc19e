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

build: setup ## build the module (target/release/libredis_sweep.so) and the CLI (target/release/redis-sweep)
	cargo build --release
	cargo build --release -p redis-sweep-cli

run: build ## start redis-server in the foreground with redis.conf.example and the module, on PORT
	$(REDIS_SERVER) redis.conf.example --port $(PORT)

# The root crate's own test harness is skipped (`--test '*'` selects tests/*.rs only): it would link
# the module, whose global allocator aborts outside a server ("the Redis Allocator isn't available").
test: build ## unit tests, then integration tests against the module just built (REDIS_SERVER honoured)
	cargo test --release -p sweep-core
	REDIS_SWEEP_MODULE=$(MODULE) REDIS_SERVER=$(REDIS_SERVER) cargo test --release -p redis-sweep --test '*'
	REDIS_SWEEP_MODULE=$(MODULE) REDIS_SERVER=$(REDIS_SERVER) cargo test --release -p redis-sweep-cli

.PHONY: test-tty
test-tty: build ## the CLI in a real terminal (tmux): the bar moves on 2,000,000 keys, Ctrl-C cancels, `*` asks
	REDIS_SWEEP_MODULE=$(MODULE) REDIS_SERVER=$(REDIS_SERVER) cargo test --release -p redis-sweep-cli --test tty -- --ignored

.PHONY: test-memory
test-memory: build ## the sweep-heavy tests with redis-server under valgrind: no errors, no module leaks
	REDIS_SERVER=$(REDIS_SERVER) bash scripts/test-memory.sh

lint: setup ## clippy with warnings as errors, and a rustfmt check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo fmt --all -- --check

fmt: ## format the code
	cargo fmt --all

bench: build ## criterion benches of the matcher, the end-to-end comparison (benches/e2e.rs), the cluster table (benches/cluster.rs), the cost per key (benches/cost.rs)
	cargo bench -p sweep-core
	REDIS_SWEEP_MODULE=$(MODULE) REDIS_SERVER=$(REDIS_SERVER) cargo bench -p redis-sweep --bench e2e
	REDIS_SWEEP_MODULE=$(MODULE) REDIS_SERVER=$(REDIS_SERVER) cargo bench -p redis-sweep --bench cluster
	REDIS_SWEEP_MODULE=$(MODULE) REDIS_SERVER=$(REDIS_SERVER) cargo bench -p redis-sweep --bench cost

.PHONY: bench-load
bench-load: build ## redis-benchmark (50 clients, SET/GET) alone and during sweeps of 1M keys (benches/load.rs)
	REDIS_SWEEP_MODULE=$(MODULE) REDIS_SERVER=$(REDIS_SERVER) cargo bench -p redis-sweep --bench load

.PHONY: test-clients
test-clients: build ## the client examples of examples/ (ioredis, node-redis, redis-py, redis-rs) against the module
	REDIS_SWEEP_MODULE=$(MODULE) REDIS_SERVER=$(REDIS_SERVER) bash scripts/test-clients.sh

.PHONY: test-matrix
test-matrix: build ## install Redis 6.2-8.6, Valkey 8.0-9.1, Redict (scripts/install-servers.sh); the suite on each; a table
	REDIS_SWEEP_MODULE=$(MODULE) bash scripts/test-matrix.sh

servers: ## install the Redis, Valkey and Redict builds of the matrix (scripts/install-servers.sh), print their paths
	bash scripts/install-servers.sh all

.PHONY: dist test-dist
dist: build ## dist/redis-sweep-VERSION-linux-x86_64.tar.gz: the module, redis.conf.example, README, LICENSE, SHA256SUMS
	REDIS_SWEEP_MODULE=$(MODULE) bash scripts/dist.sh

test-dist: dist ## the packaged module (not the build tree's) in Redis 7.0 and the newest Valkey; 6.2 refuses it
	bash scripts/test-dist.sh

clean: ## remove build output
	cargo clean
