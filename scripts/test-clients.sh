#!/usr/bin/env bash
# make test-clients: installs the clients the examples use, then runs them (tests/clients.rs)
# against a server with the module just built.
#   examples/typescript  npm ci from the committed package-lock.json, tsc --noEmit, tsc
#   examples/python      a venv in target/py-venv with requirements.txt (redis-py)
#   examples/rust        cargo build of the workspace member sweep-example
# Needs Node 20+ with npm and Python 3.11+ (on Debian 12 the venv module is python3-venv, which
# this installs with apt-get when it is missing).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
MODULE=${REDIS_SWEEP_MODULE:-$PWD/target/release/libredis_sweep.so}

command -v node >/dev/null && command -v npm >/dev/null || {
  echo "test-clients: node and npm are needed (Node 20+)" >&2; exit 1; }
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' || {
  echo "test-clients: Node $(node --version) is too old: the pinned clients need Node 20+" >&2; exit 1; }
PY=${PYTHON:-python3}
if ! "$PY" -c 'import ensurepip, venv' >/dev/null 2>&1; then
  sudo=(); [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
fi

echo "test-clients: TypeScript (npm ci, tsc --noEmit)"
(cd examples/typescript && npm ci --no-audit --no-fund --loglevel=error && npx tsc --noEmit && npx tsc)

echo "test-clients: Python venv in target/py-venv"
VENV=target/py-venv
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -r examples/python/requirements.txt

echo "test-clients: Rust example"
cargo build --release -p sweep-example

SWEEP_PYTHON=$PWD/$VENV/bin/python REDIS_SWEEP_MODULE=$MODULE \
  cargo test --release -p redis-sweep --test clients -- --ignored
