#!/usr/bin/env bash
# A redis-server that runs under valgrind's memcheck, usable as REDIS_SERVER for the integration
# tests (scripts/test-memory.sh, `make test-memory`):
#
#   REDIS_SERVER=scripts/valgrind-server.sh cargo test --release --test clear
#
# It `exec`s valgrind, and valgrind runs the server inside its own process, so the server's PID
# (INFO's process_id) is the PID the harness spawned and its check passes.
#
# Environment:
#   VALGRIND_REDIS_SERVER  the real server binary (default: redis-server)
#   VALGRIND_LOG_DIR       where the logs go, one valgrind.<pid>.log per server process
#                          (default: ${TMPDIR:-/tmp}/redis-sweep-valgrind)
#   VALGRIND_EXTRA_ARGS    more valgrind options, split on spaces (e.g. --track-origins=yes)
#
# Debian's redis-server calls malloc/free of the shared libjemalloc.so.2, not glibc's: without
# --soname-synonyms valgrind would not see those calls at all, and neither the server's nor the
# module's heap (the module allocates through RedisModule_Alloc, i.e. the server's zmalloc) would
# be checked. With it, valgrind replaces jemalloc's malloc/calloc/realloc/free/
# malloc_usable_size with its own, and every heap block has a red zone and an allocation stack.
# A server with jemalloc linked statically (a source build with the bundled jemalloc) cannot be
# checked that way: scripts/test-memory.sh refuses it.
#
# The server only writes the leak report when it exits normally: the harness's SHUTDOWN NOSAVE
# does that, a SIGKILL does not (test-memory.sh reports a log without its summaries).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
server="${VALGRIND_REDIS_SERVER:-redis-server}"

# The harness runs `$REDIS_SERVER --version` to learn the version: no valgrind needed for that.
case "${1:-}" in
  -v | --version | -h | --help) exec "$server" "$@" ;;
esac

log_dir="${VALGRIND_LOG_DIR:-${TMPDIR:-/tmp}/redis-sweep-valgrind}"
mkdir -p "$log_dir"

args=(
  --tool=memcheck
  --leak-check=full
  # Leak records that make the run fail (and count in "ERROR SUMMARY"): only blocks nothing points
  # to. "Possibly lost" blocks are the server's sds strings and dict entries, reached through
  # interior pointers (an sds points past its header); they are listed in the log, not counted.
  --errors-for-leak-kinds=definite
  --show-leak-kinds=definite,indirect,possible
  --error-exitcode=99
  # Deep enough to reach the module's frames below the server's API and Rust's std.
  --num-callers=40
  --soname-synonyms=somalloc=*jemalloc*
  # A BGSAVE / full-sync child is a fork of the server that exits with _exit(): its leak report
  # would only list the parent's live heap. Module code does not run there.
  --child-silent-after-fork=yes
  --log-file="$log_dir/valgrind.%p.log"
)
if [ -f "$here/valgrind.supp" ]; then
  args+=(--suppressions="$here/valgrind.supp")
fi
if [ -n "${VALGRIND_EXTRA_ARGS:-}" ]; then
  # shellcheck disable=SC2206 # split on spaces on purpose
  args+=(${VALGRIND_EXTRA_ARGS})
fi

exec valgrind "${args[@]}" "$server" "$@"
