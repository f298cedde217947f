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

# The test tooling from PyPI, pinned: pytest; graphql-core 3.2 (the corpus test is written
# against 3.2's rules); pytest-timeout (every test has a time limit, Tests/integration/pytest.ini);
# pytest-randomly (the suite runs in a random order, whose seed pytest prints: rerun one with
# `-p randomly --randomly-seed=N`, or keep the file order with `-p no:randomly`); gql with
# requests (an ordinary Python GraphQL client: its batches and schema checks, test_clients.py);
# Selenium (drives Debian's chromium through chromium-driver: test_graphiql.py).
BILLGRAPH_PYTHON_TOOLS=(pytest==9.0.3 graphql-core==3.2.8 pytest-timeout==2.4.0 pytest-randomly==4.0.1 "gql[requests]==4.0.0"
                        selenium==4.40.0)

# Installs them into .build-python/ of this checkout, not into the system's Python (which other
# checkouts and projects on the machine share, and whose versions are not ours to pin), and
# puts that folder first on PYTHONPATH.
install_python_tools() {
  local dir="$PWD/.build-python"
  if [ "$(cat "$dir/.pinned" 2>/dev/null)" != "${BILLGRAPH_PYTHON_TOOLS[*]}" ]; then
    python3 -m pip --version >/dev/null 2>&1 || install_packages python3-pip
    say "installing ${BILLGRAPH_PYTHON_TOOLS[*]}"
    rm -rf "$dir"
    python3 -m pip install -q --disable-pip-version-check --no-warn-script-location --root-user-action=ignore --target "$dir" \
      "${BILLGRAPH_PYTHON_TOOLS[@]}"
    echo "${BILLGRAPH_PYTHON_TOOLS[*]}" > "$dir/.pinned"
  fi
  export PYTHONPATH="$dir${PYTHONPATH:+:$PYTHONPATH}"
}

# GraphiQL's built files (RULES.md section 8: the IDE works with no internet), from a PyPI
# wheel that ships them: graphene-django-graphiql-static (GraphiQL 2 with React 17), pinned
# by version and by the wheel's SHA-256. Only the files the page loads are kept, in
# .build-graphiql/ of this checkout (never committed); `billgraph serve --graphiql DIR`
# serves them.
BILLGRAPH_GRAPHIQL_WHEEL=graphene-django-graphiql-static==0.8
BILLGRAPH_GRAPHIQL_SHA256=f5a8669485fdf2ef292ad024867093d057c63d165f52a64d58f4313fd6b5e3c5
BILLGRAPH_GRAPHIQL_FILES=(graphiql.min.js graphiql.min.css react.production.min.js react-dom.production.min.js)

install_graphiql() {
  local dir="$PWD/.build-graphiql"
  [ "$(cat "$dir/.pinned" 2>/dev/null)" = "$BILLGRAPH_GRAPHIQL_SHA256" ] && return 0
  python3 -m pip --version >/dev/null 2>&1 || install_packages python3-pip
  say "fetching GraphiQL's files ($BILLGRAPH_GRAPHIQL_WHEEL)"
  local download
  download=$(mktemp -d)
  python3 -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: -d "$download" "$BILLGRAPH_GRAPHIQL_WHEEL"
  local wheel
  wheel=$(ls "$download"/*.whl)
  echo "$BILLGRAPH_GRAPHIQL_SHA256  $wheel" | sha256sum --check --quiet || {
    echo "the GraphiQL wheel's SHA-256 is not the pinned one" >&2
    rm -rf "$download"
    return 1
  }
  rm -rf "$dir"
  mkdir -p "$dir"
  python3 - "$wheel" "$dir" "${BILLGRAPH_GRAPHIQL_FILES[@]}" <<'PY'
import sys, zipfile
wheel, target, names = sys.argv[1], sys.argv[2], sys.argv[3:]
with zipfile.ZipFile(wheel) as z:
    for name in names:
        with open(f"{target}/{name}", "wb") as out:
            out.write(z.read(f"graphene_django_graphiql_static/static/graphene_django_graphiql_static/{name}"))
PY
  rm -rf "$download"
  echo "$BILLGRAPH_GRAPHIQL_SHA256" > "$dir/.pinned"
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

# cluster_dir DIR: DIR exists, belongs to the cluster's owner and is closed to others.
cluster_dir() {
  mkdir -p "$1"
  [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$1"
  chmod 700 "$1"
}

# pg_start DIR PORT [SERVER-OPTIONS]: creates the cluster in DIR if needed and starts it on 127.0.0.1:PORT.
pg_start() {
  local dir=$1 port=$2 bin
  bin=$(pg_bin)
  cluster_dir "$dir"
  if [ ! -f "$dir/PG_VERSION" ]; then
    say "creating a PostgreSQL cluster in $dir"
    as_owner "$bin/initdb" -D "$dir" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  fi
  # Already running (scripts/run again after Ctrl-C, which stops only the server): keep it.
  if as_owner "$bin/pg_ctl" -D "$dir" status >/dev/null 2>&1; then return 0; fi
  as_owner "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200 ${3:-}" start >/dev/null
}

pg_stop() {
  local dir=$1
  [ -f "$dir/postmaster.pid" ] || return 0
  as_owner "$(pg_bin)/pg_ctl" -D "$dir" -m fast -w stop >/dev/null || true
}

# pg_standby DIR PORT PRIMARY-PORT [SERVER-OPTIONS]: a hot standby of the cluster on
# PRIMARY-PORT, made with pg_basebackup -R (streaming replication) in DIR unless DIR
# already holds one, and started on 127.0.0.1:PORT (RULES.md section 9: read replicas).
pg_standby() {
  local dir=$1 port=$2 primary=$3
  if [ ! -f "$dir/PG_VERSION" ]; then
    cluster_dir "$dir"
    say "making a standby of port $primary in $dir"
    # (its warnings about the primary's socket file, which lives in its data folder, are noise)
    as_owner "$(pg_bin)/pg_basebackup" -h 127.0.0.1 -p "$primary" -U postgres -D "$dir" -R -X stream -c fast \
      2> >(grep -v "skipping special file" >&2)
  fi
  pg_start "$dir" "$port" "-c hot_standby_feedback=on ${4:-}"
}

# pgbouncer_start DIR PORT DATABASE-PORT: Debian's PgBouncer on 127.0.0.1:PORT in front of
# every database of the cluster on DATABASE-PORT, in transaction-pooling mode (RULES.md
# section 9: `serve --prepared-statements off` works behind it). PgBouncer refuses the
# `options` startup parameter by which billgraph sets statement_timeout, so it is
# ignored here and the timeout (30 s, billgraph's default) is set by PgBouncer itself on
# each server connection. Stop it with pgbouncer_stop DIR.
pgbouncer_start() {
  local dir=$1 port=$2 database=$3
  cluster_dir "$dir"
  echo '"postgres" ""' > "$dir/users.txt"
  cat > "$dir/pgbouncer.ini" <<INI
[databases]
* = host=127.0.0.1 port=$database connect_query='SET statement_timeout = 30000'
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $dir/users.txt
pool_mode = transaction
default_pool_size = 40
max_client_conn = 1000
ignore_startup_parameters = options
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
INI
  as_owner pgbouncer -q -d "$dir/pgbouncer.ini"
  local tries=0
  until "$(pg_bin)/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres; do
    tries=$((tries + 1))
    [ $tries -lt 100 ] || { echo "PgBouncer did not start; see $dir/pgbouncer.log" >&2; return 1; }
    sleep 0.1
  done
}

pgbouncer_stop() {
  local pid
  pid=$(cat "$1/pgbouncer.pid" 2>/dev/null) || return 0
  kill "$pid" 2>/dev/null || true
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
