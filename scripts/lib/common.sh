# Shared by scripts/run, scripts/test and benchmarks/run: installing what the project
# needs and running a private PostgreSQL cluster. Source it; do not run it.

# The system packages the build and the tests need (Debian names).
BILLGRAPH_PACKAGES=(libuv1-dev libpq-dev libhttp-parser-dev postgresql)

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# Installs missing Debian packages (as root, or with sudo when there is one).
install_packages() {
  local missing=()
  for p in "${BILLGRAPH_PACKAGES[@]}" "$@"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

# The test tooling from PyPI (pytest, and graphql-core as the reference implementation).
install_python_tools() {
  python3 -c 'import pytest, graphql' 2>/dev/null && return 0
  python3 -m pip --version >/dev/null 2>&1 || install_packages python3-pip
  say "installing pytest and graphql-core"
  python3 -m pip install -q pytest graphql-core 2>/dev/null \
    || python3 -m pip install -q --break-system-packages pytest graphql-core
}

pg_bin() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$dir" ] || { echo "PostgreSQL server binaries not found" >&2; return 1; }
  echo "$dir"
}

# Runs a command as the cluster's owner: postgres when we are root (initdb refuses root).
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    # From /, which postgres can always enter (the caller's folder may be closed to it).
    (cd / && runuser -u postgres -- "$@")
  else
    "$@"
  fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# pg_start DIR PORT [SERVER-OPTIONS]: creates the cluster in DIR if needed and starts it on 127.0.0.1:PORT.
pg_start() {
  local dir=$1 port=$2 bin
  bin=$(pg_bin)
  mkdir -p "$dir"
  [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$dir"
  chmod 700 "$dir"
  if [ ! -f "$dir/PG_VERSION" ]; then
    say "creating a PostgreSQL cluster in $dir"
    as_owner "$bin/initdb" -D "$dir" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  fi
  as_owner "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200 ${3:-}" start >/dev/null
}

pg_stop() {
  local dir=$1
  [ -f "$dir/postmaster.pid" ] || return 0
  as_owner "$(pg_bin)/pg_ctl" -D "$dir" -m fast -w stop >/dev/null || true
}

# pg_crash DIR: stops the cluster as a crash would (immediate mode: no checkpoint,
# clients cut off), for the tests of what survives one.
pg_crash() {
  as_owner "$(pg_bin)/pg_ctl" -D "$1" -m immediate -w stop >/dev/null || true
}

# pg_createdb PORT NAME: creates the database unless it exists.
pg_createdb() {
  local port=$1 name=$2
  "$(pg_bin)/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$name'" \
    | grep -q 1 || "$(pg_bin)/createdb" -h 127.0.0.1 -p "$port" -U postgres "$name"
}
