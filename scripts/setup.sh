#!/usr/bin/env bash
# Installs, with apt-get, whatever the build and the tests need and this machine lacks:
#   redis-server/redis-cli  the integration tests and `make run` spawn a real server
#   libclang-dev, clang     redis-module's bindgen parses redismodule.h at build time
#   pkg-config, cc          build scripts and the linker
#   tmux                    `make test-tty` runs the CLI in a real terminal
# Idempotent: when everything is present it installs nothing and never runs `apt-get update`.
set -euo pipefail

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
# bindgen dlopens libclang.so. Checked by package: a fresh machine may already carry
# libclang-cpp14, whose libclang-cpp.so is not the library bindgen needs.
dpkg -s libclang-dev >/dev/null 2>&1 || missing+=(libclang-dev)
command -v clang >/dev/null 2>&1 || missing+=(clang)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
command -v cc >/dev/null 2>&1 || missing+=(build-essential)
# `make test-tty` runs the CLI in a real terminal.
command -v tmux >/dev/null 2>&1 || missing+=(tmux)

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: nothing to install (redis-server, redis-cli, libclang, clang, pkg-config, cc, tmux present)"
  exit 0
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
# Debian's redis-server package may start a service on port 6379 where systemd runs; it is left
# alone: the tests start their own servers on free ports and check the PID they answer with.
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: installed ${missing[*]}"
