#!/usr/bin/env bash
# CI for examples/pgsink: starts a throwaway PostgreSQL on loopback, runs the
# module's tests against it (PGSINK_TEST_DSN) and stops the server by PID
# whatever happens. Installs Debian's postgresql package if no server is found.
set -euo pipefail
cd "$(dirname "$0")"

find_pg_bin() {
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$d/initdb" ] && [ -x "$d/postgres" ]; then echo "$d"; return 0; fi
  done
  if command -v initdb >/dev/null && command -v postgres >/dev/null; then
    dirname "$(command -v postgres)"; return 0
  fi
  return 1
}

if ! PGBIN=$(find_pg_bin); then
  echo "PostgreSQL not found; installing Debian's package"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y postgresql
  PGBIN=$(find_pg_bin)
fi
echo "PostgreSQL binaries: $PGBIN ($("$PGBIN/postgres" --version))"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/pgsink-ci.XXXXXX")
pg_pid=""
cleanup() {
  local rc=$?
  if [ -n "$pg_pid" ] && kill -0 "$pg_pid" 2>/dev/null; then
    kill -INT "$pg_pid" 2>/dev/null || true # fast shutdown
    for _ in $(seq 1 100); do kill -0 "$pg_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pg_pid" 2>/dev/null || true
  fi
  if [ $rc -ne 0 ] && [ -f "$tmp/postgres.log" ]; then
    echo "--- postgres.log (tail)"; tail -n 30 "$tmp/postgres.log" || true
  fi
  rm -rf "$tmp"
  exit $rc
}
trap cleanup EXIT INT TERM

# postgres refuses to run as root: run it as the postgres user then.
as_pg=()
if [ "$(id -u)" -eq 0 ]; then
  id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
  chown postgres "$tmp"
  as_pg=(runuser -u postgres --)
fi

"${as_pg[@]}" "$PGBIN/initdb" -D "$tmp/data" -U pgsink -A trust --no-sync -E UTF8 >"$tmp/initdb.log" 2>&1 ||
  { cat "$tmp/initdb.log"; exit 1; }
mkdir -p "$tmp/sock"; [ ${#as_pg[@]} -eq 0 ] || chown postgres "$tmp/sock"

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
started=""
for _ in 1 2 3 4 5; do
  port=$((20000 + RANDOM % 40000))
  port_free "$port" || continue
  "${as_pg[@]}" "$PGBIN/postgres" -D "$tmp/data" -h 127.0.0.1 -p "$port" -k "$tmp/sock" \
    -c fsync=off -c synchronous_commit=off -c full_page_writes=off >"$tmp/postgres.log" 2>&1 &
  launcher=$!
  for _ in $(seq 1 100); do
    if [ -f "$tmp/data/postmaster.pid" ]; then pg_pid=$(head -n 1 "$tmp/data/postmaster.pid"); fi
    if "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$port" -U pgsink -d postgres; then started=1; break; fi
    kill -0 "$launcher" 2>/dev/null || break
    sleep 0.1
  done
  [ -n "$started" ] && break
  [ -z "$pg_pid" ] || kill -KILL "$pg_pid" 2>/dev/null || true
  pg_pid=""
done
[ -n "$started" ] || { echo "PostgreSQL did not start"; cat "$tmp/postgres.log"; exit 1; }
echo "PostgreSQL PID $pg_pid on 127.0.0.1:$port"

export PGSINK_TEST_DSN="postgres://pgsink@127.0.0.1:$port/postgres?sslmode=disable"
go vet ./...
go vet -tags integration ./...
go test -race -count=1 -timeout 3m ./...
# The -target aws path against kinesalite and dynalite, when they are running
# (.ci/run starts them before calling this script).
if [ -n "${SHARDFLOW_KINESALITE_ENDPOINT:-}" ] && [ -n "${SHARDFLOW_DYNALITE_ENDPOINT:-}" ]; then
  go test -race -count=1 -timeout 3m -tags integration -run 'Against' ./...
else
  echo "emulator endpoints not set: skipping the kinesalite/dynalite test (source ../../.ci/emulators.sh && emulators_start)"
fi
