#!/usr/bin/env bash
# make test-dist: unpacks the package make dist built and runs tests/dist.rs with the packaged .so
# (not the build tree's) in Redis 7.0 (Debian 12's redis-server, or DIST_REDIS) and in the newest
# Valkey (installed by scripts/install-servers.sh, or DIST_VALKEY), and checks that Redis 6.2
# refuses it with its log line (tests/compat.rs).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VERSION=$(sed -n -E '/^\[package\]/,/^\[/ s/^version = "([^"]+)"/\1/p' Cargo.toml | head -n 1)
NAME=redis-sweep-$VERSION-linux-x86_64
rm -rf target/dist-check; mkdir -p target/dist-check
tar -xzf "dist/$NAME.tar.gz" -C target/dist-check
(cd dist && sha256sum --check --quiet "$NAME.tar.gz.sha256")

redis=${DIST_REDIS:-$(command -v redis-server)}
"$redis" --version | grep -q ' v=7\.0\.' || redis=$(bash scripts/install-servers.sh redis-7.0.15 | awk '{ print $2 }')
valkey=${DIST_VALKEY:-$(bash scripts/install-servers.sh valkey-9.1.2 | awk '{ print $2 }')}
for server in "$redis" "$valkey"; do
  echo "test-dist: the packaged module in $("$server" --version | cut -d' ' -f1-3)"
  REDIS_SERVER=$server REDIS_SWEEP_MODULE=$PWD/target/dist-check/$NAME/libredis_sweep.so \
    cargo test --release -p redis-sweep --test dist -- --ignored
done
old=$(bash scripts/install-servers.sh redis-6.2.14 | awk '{ print $2 }')
echo "test-dist: the packaged module refused by $("$old" --version | cut -d' ' -f1-3)"
REDIS_SERVER_6=$old REDIS_SWEEP_MODULE=$PWD/target/dist-check/$NAME/libredis_sweep.so \
  cargo test --release -p redis-sweep --test compat refuses_to_load
