#!/usr/bin/env bash
# make test-matrix: installs every server of scripts/install-servers.sh (or those in SERVERS),
# runs the whole integration suite (tests/*.rs) against each, and prints one table:
# server, version, tests passed / failed / skipped, time. A server older than Redis 7.0 runs only
# the test of tests/compat.rs that checks the module refuses to load there (SPEC §7).
#
#   SERVERS="redis-7.0.15 valkey-9.1.2" make test-matrix     some servers only
#
# Logs go to target/matrix/ID.log, the table to target/matrix/table.md as well.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
MODULE=${REDIS_SWEEP_MODULE:-$PWD/target/release/libredis_sweep.so}
OUT=target/matrix
mkdir -p "$OUT"

# shellcheck disable=SC2086
list=$(bash scripts/install-servers.sh ${SERVERS:-all}) || { echo "test-matrix: installing the servers failed" >&2; exit 1; }

# Build the test binaries once, before any clock starts.
cargo test --release -p redis-sweep --test '*' --no-run >/dev/null 2>&1 ||
  cargo test --release -p redis-sweep --test '*' --no-run || exit 1

old=$(echo "$list" | awk '$1 ~ /^redis-6\./ { print $2; exit }')
rows=()
total_failed=0
while read -r id path; do
  [ -n "$id" ] || continue
  version=$("$path" --version | sed -n -E 's/.* v=([0-9.]+).*/\1/p')
  name=${id%%-*}
  if [ "${version%%.*}" -lt 7 ]; then
    tests=(--test compat refuses_to_load)
    note="refuses to load (needs 7.0)"
  else
    tests=(--test '*')
    note=""
  fi
  echo "test-matrix: $id ($version) ..." >&2
  start=$(date +%s)
  REDIS_SERVER=$path REDIS_SERVER_6=${old:-} REDIS_SWEEP_MODULE=$MODULE \
    cargo test --release -p redis-sweep "${tests[@]}" --no-fail-fast > "$OUT/$id.log" 2>&1
  seconds=$(( $(date +%s) - start ))
  read -r passed failed skipped < <(awk '/^test result:/ {
      for (i = 1; i <= NF; i++) {
        if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) s += $i
      } } END { print p + 0, f + 0, s + 0 }' "$OUT/$id.log")
  if ! grep -q '^test result:' "$OUT/$id.log"; then failed="build/run error"; fi
  [ "$failed" = 0 ] || total_failed=$((total_failed + 1))
  rows+=("| $name | $version | $passed | $failed | $skipped | $seconds s | $note |")
done <<< "$list"

{
  echo "| server | version | passed | failed | skipped | time | note |"
  echo "|---|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
} | tee "$OUT/table.md"
echo "skipped: tests marked #[ignore] (make test-clients and make test-dist run them). Logs: $OUT/ID.log"
[ "$total_failed" = 0 ]
