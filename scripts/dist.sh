#!/usr/bin/env bash
# make dist: dist/redis-sweep-VERSION-linux-x86_64.tar.gz with the module (debug info stripped),
# redis.conf.example (loading the .so beside it), README.md, LICENSE, CHANGELOG.md and SHA256SUMS
# of those files. Prints the oldest glibc the .so needs, read from its versioned symbols.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SO=${REDIS_SWEEP_MODULE:-target/release/libredis_sweep.so}
VERSION=$(sed -n -E '/^\[package\]/,/^\[/ s/^version = "([^"]+)"/\1/p' Cargo.toml | head -n 1)
NAME=redis-sweep-$VERSION-linux-x86_64
STAGE=target/dist/$NAME
rm -rf "$STAGE"; mkdir -p "$STAGE" dist

objcopy --strip-debug "$SO" "$STAGE/libredis_sweep.so"
# The example loads the module from the directory it is started in: the package's own.
sed 's#^loadmodule ./target/release/libredis_sweep.so$#loadmodule ./libredis_sweep.so#' \
  redis.conf.example > "$STAGE/redis.conf.example"
grep -q '^loadmodule ./libredis_sweep.so$' "$STAGE/redis.conf.example" ||
  { echo "dist: redis.conf.example has no loadmodule line to point at the package" >&2; exit 1; }
cp README.md LICENSE CHANGELOG.md "$STAGE/"
(cd "$STAGE" && sha256sum libredis_sweep.so redis.conf.example README.md LICENSE CHANGELOG.md > SHA256SUMS)

# Reproducible: names sorted, one owner, the time of the last commit.
mtime=$(git log -1 --format=%ct 2>/dev/null || date +%s)
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$mtime" \
  -C target/dist -cf - "$NAME" | gzip -n -9 > "dist/$NAME.tar.gz"
(cd dist && sha256sum "$NAME.tar.gz" > "$NAME.tar.gz.sha256")

floor=$(objdump -T "$STAGE/libredis_sweep.so" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n 1)
echo "dist: dist/$NAME.tar.gz ($(du -h "dist/$NAME.tar.gz" | cut -f1)); the module needs glibc $floor or later"
