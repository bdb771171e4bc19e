#!/usr/bin/env bash
# The memory check (`make test-memory`): a sweep-heavy part of the integration suite runs against
# servers that run under valgrind's memcheck (scripts/valgrind-server.sh), then every valgrind
# log is read. It fails when
#   - a test fails,
#   - a log reports errors ("ERROR SUMMARY: N errors", N > 0: invalid reads/writes, uses of
#     uninitialised values, bad frees, and definitely-lost leak records),
#   - a "definitely lost" or "indirectly lost" leak record has the module in its stack (see
#     module_re below: unloaded, unnamed frames count as the module's),
#   - a log has no summary (the server did not exit normally, so nothing was checked).
# and prints how many server processes were checked, the errors and the bytes lost.
#
# Environment:
#   REDIS_SERVER         the real server binary (default redis-server), run under valgrind
#   MEMORY_TESTS         the test files (tests/NAME.rs) to run, space-separated
#                        (default: memory_check clear options jobs acl interruptions)
#   MEMORY_TEST_THREADS  tests run at once (default 2)
#   VALGRIND_LOG_DIR     where the logs go (default: a new ${TMPDIR:-/tmp}/redis-sweep-valgrind.*)
#   CARGO_TARGET_DIR     honoured, as cargo does
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
started=$(date +%s)

# --- valgrind ---
if ! command -v valgrind >/dev/null 2>&1; then
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
  export DEBIAN_FRONTEND=noninteractive
  # `apt-get update` only when the package lists do not know valgrind yet.
  if ! apt-cache show valgrind >/dev/null 2>&1; then
    "${sudo[@]}" apt-get update -qq
  fi
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends valgrind >/dev/null
  echo "test-memory: installed valgrind"
fi

# --- the server: valgrind must see its allocator ---
real_server="${REDIS_SERVER:-redis-server}"
if [ "$(basename "$real_server")" = valgrind-server.sh ]; then
  echo "test-memory: REDIS_SERVER must be the real server; this script wraps it itself" >&2
  exit 2
fi
server_path="$(command -v "$real_server" || true)"
if [ -z "$server_path" ]; then
  echo "test-memory: $real_server not found (run scripts/setup.sh)" >&2
  exit 2
fi
version="$("$server_path" --version)"
# A server with jemalloc linked in statically (a source build with the bundled jemalloc) calls
# je_malloc inside its own binary, which valgrind cannot replace: neither the server's nor the
# module's heap would be checked. Debian's links the shared libjemalloc, which it can replace.
if [[ "$version" == *malloc=jemalloc* ]] && ! ldd "$server_path" | grep -q 'libjemalloc\.so'; then
  echo "test-memory: $server_path has jemalloc built in ($version);" \
    "valgrind cannot see its heap. Use a server built with MALLOC=libc, or Debian's." >&2
  exit 2
fi

# --- the module ---
cargo build --release
target_dir="${CARGO_TARGET_DIR:-$root/target}"
case "$target_dir" in /*) ;; *) target_dir="$root/$target_dir" ;; esac
module="$target_dir/release/libredis_sweep.so"
[ -f "$module" ] || { echo "test-memory: $module was not built" >&2; exit 2; }

# --- the tests, each server under valgrind ---
log_dir="${VALGRIND_LOG_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/redis-sweep-valgrind.XXXXXX")}"
mkdir -p "$log_dir"
rm -f "$log_dir"/valgrind.*.log
tests=(${MEMORY_TESTS:-memory_check clear options jobs acl interruptions})
test_args=()
for t in "${tests[@]}"; do test_args+=(--test "$t"); done

echo "test-memory: $version"
echo "test-memory: tests ${tests[*]}; valgrind logs in $log_dir"
test_status=0
VALGRIND_LOG_DIR="$log_dir" \
  VALGRIND_REDIS_SERVER="$server_path" \
  REDIS_SERVER="$root/scripts/valgrind-server.sh" \
  REDIS_SWEEP_MODULE="$module" \
  SWEEP_VALGRIND=1 \
  cargo test --release -p redis-sweep --no-fail-fast "${test_args[@]}" -- \
  --test-threads="${MEMORY_TEST_THREADS:-2}" || test_status=$?

# --- the logs ---
shopt -s nullglob
logs=("$log_dir"/valgrind.*.log)
shopt -u nullglob
if [ ${#logs[@]} -eq 0 ]; then
  echo "test-memory: FAILED: no valgrind log in $log_dir (did any server start?)" >&2
  exit 1
fi

# One line per log: file complete errors def_bytes ind_bytes poss_bytes mod_def mod_ind
# mod_errors; the offending records go to $log_dir/problems.txt.
# A record is the module's when its stack names the module, or passes through the server's
# module loader, unloader or command dispatcher, or through the module API (RM_*): allocations made
# on the module's behalf. Also when a frame has no name and no file (`by 0x...: ???`): that is a
# library valgrind could not name because it was unloaded before the report (MODULE UNLOAD), and
# the module is the only library the tests unload. A stripped server binary names its file
# (`??? (in /usr/bin/redis-server)`), so it does not count here.
module_re='libredis_sweep|redis_sweep|sweep_core|moduleLoad|moduleUnload|RedisModuleCommandDispatcher|RM_[A-Za-z]+|: \\?\\?\\?(\n|$)'
problems="$log_dir/problems.txt"
: >"$problems"
summary="$(
  for log in "${logs[@]}"; do
    awk -v file="$log" -v re="$module_re" -v problems="$problems" '
      function num(s) { gsub(/,/, "", s); return s + 0 }
      # Strip the "==PID== " prefix.
      { line = $0; sub(/^==[0-9]+== ?/, "", line) }
      # A record ends at the first blank line.
      inrec && line == "" {
        if (rec ~ re) {
          if (kind == "definite") mdef += rbytes
          else if (kind == "indirect") mind += rbytes
          else if (kind == "error") merr++
        }
        if (kind == "error" || ((kind == "definite" || kind == "indirect") && rec ~ re))
          printf "--- %s\n%s\n", file, rec >> problems
        inrec = 0; kind = ""
      }
      inrec { rec = rec "\n" line; next }
      line ~ /are definitely lost in loss record/ {
        inrec = 1; kind = "definite"; rec = line
        # "X bytes in ..." or "X (D direct, I indirect) bytes in ...": D is what is lost here.
        split(line, w, " ")
        rbytes = (w[2] ~ /^\(/) ? num(substr(w[2], 2)) : num(w[1])
        next
      }
      line ~ /are indirectly lost in loss record/ {
        inrec = 1; kind = "indirect"; rec = line; split(line, w, " "); rbytes = num(w[1]); next
      }
      line ~ /are possibly lost in loss record|are still reachable in loss record/ {
        inrec = 1; kind = "other"; rec = line; next
      }
      line ~ /^(Invalid |Conditional jump|Use of uninitialised|Syscall param|Mismatched free|Source and destination overlap|Argument .* of function|.*fishy|Jump to the invalid|Process terminating)/ {
        inrec = 1; kind = "error"; rec = line; next
      }
      line ~ /^ERROR SUMMARY:/ { complete = 1; split(line, w, " "); errors = num(w[3]) }
      line ~ /^ *definitely lost:/ { split(line, w, " "); def = num(w[3]) }
      line ~ /^ *indirectly lost:/ { split(line, w, " "); ind = num(w[3]) }
      line ~ /^ *possibly lost:/ { split(line, w, " "); poss = num(w[3]) }
      END {
        printf "%s %d %d %d %d %d %d %d %d\n", file, complete, errors, def, ind, poss, mdef, mind, merr
      }
    ' "$log"
  done
)"

read -r processes incomplete errors def ind poss mdef mind merr <<<"$(
  awk '{ n++; if (!$2) inc++; e += $3; d += $4; i += $5; p += $6; md += $7; mi += $8; me += $9 }
       END { printf "%d %d %d %d %d %d %d %d %d\n", n, inc, e, d, i, p, md, mi, me }' <<<"$summary"
)"

elapsed=$(($(date +%s) - started))
echo
echo "test-memory: summary ($((elapsed / 60))m$((elapsed % 60))s)"
echo "  server processes checked:  $processes (without a valgrind summary: $incomplete)"
echo "  valgrind errors:           $errors (in stacks with the module: $merr)"
echo "  definitely lost:           $def bytes (attributed to the module: $mdef)"
echo "  indirectly lost:           $ind bytes (attributed to the module: $mind)"
echo "  possibly lost:             $poss bytes (server sds/dict interior pointers; not counted)"
echo "  logs:                      $log_dir"

failed=0
if [ "$test_status" -ne 0 ]; then
  echo "test-memory: FAILED: the tests failed (cargo test exited $test_status)" >&2
  failed=1
fi
if [ "$incomplete" -ne 0 ]; then
  echo "test-memory: FAILED: $incomplete server(s) exited without a valgrind summary:" >&2
  awk '!$2 { print "  " $1 }' <<<"$summary" >&2
  failed=1
fi
if [ "$errors" -ne 0 ] || [ "$mdef" -ne 0 ] || [ "$mind" -ne 0 ]; then
  echo "test-memory: FAILED: valgrind errors or module leaks; the records:" >&2
  awk '$3 || $7 || $8 { print "  " $1 ": " $3 " errors, module lost " $7 "+" $8 " bytes" }' \
    <<<"$summary" >&2
  head -n 200 "$problems" >&2
  failed=1
fi
if [ "$failed" -eq 0 ]; then
  echo "test-memory: OK"
fi
exit "$failed"
