#!/usr/bin/env bash
# Project-local PostgreSQL cluster for development and tests.
#   postgres.sh up | down | status | purge | where
# initdb on its own port (PGPORT, default 54320), listening on 127.0.0.1 only, TCP only (no
# Unix socket: its path would be limited to ~100 bytes and may hold spaces).
#
# Where the cluster lives (docs/decisions/0004-local-postgres-as-root.md):
# - an ordinary user runs it as themselves in $RUN_DIR/pg;
# - PostgreSQL refuses to run as root, so as root it runs as the unprivileged `postgres` user
#   (PG_RUN_AS). That user cannot enter a checkout under /root or any other 0700 folder, so its
#   data lives in a folder it owns, tied to this run folder: $PG_SHARED_ROOT (default
#   /var/tmp)/veilig-<hash of $RUN_DIR>/pg. `postgres.sh purge` (and `make clean`) removes it;
#   $RUN_DIR/pg.location says where it is.
# Local-only trust authentication on 127.0.0.1; point DATABASE_URL at a real server for
# anything else. PG_DURABLE=1 keeps fsync, synchronous_commit and full_page_writes on (the
# benchmark); the default turns them off for a throwaway development and test cluster.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
RUN_DIR=${RUN_DIR:-$ROOT/.run}
PGPORT=${PGPORT:-54320}
PG_DB=${PG_DB:-veilig}
PG_USER=${PG_USER:-veilig}
RUN_AS=${PG_RUN_AS:-postgres}

log() { printf 'postgres: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

is_root() { [ "$(id -u)" = 0 ]; }

pg_home() {
  if is_root; then
    local key
    key=$(printf '%s' "$RUN_DIR" | sha256sum | cut -c1-12)
    echo "${PG_SHARED_ROOT:-/var/tmp}/veilig-$key/pg"
  else
    echo "$RUN_DIR/pg"
  fi
}
PG_HOME=$(pg_home)
PG_DATA=$PG_HOME/data
PG_LOG=$PG_HOME/postgres.log

find_bin() {
  if [ -n "${PG_BIN:-}" ]; then echo "$PG_BIN"; return; fi
  if command -v pg_ctl >/dev/null; then dirname "$(readlink -f "$(command -v pg_ctl)")"; return; fi
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  [ -n "$d" ] || die "PostgreSQL server binaries (initdb, pg_ctl) not found; install them (Debian: apt-get install postgresql) or set PG_BIN"
  echo "$d"
}

as_owner() {
  if is_root; then
    # From /: the user may not enter the folder we were called from.
    (cd / && runuser -u "$RUN_AS" -- "$@")
  else
    "$@"
  fi
}

running() {
  [ -f "$PG_DATA/postmaster.pid" ] && as_owner "$BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1
}

# Checks that fail in the first second with what is wrong and what to do, before any tool's
# raw error can.
preflight() {
  if is_root; then
    id -u "$RUN_AS" >/dev/null 2>&1 \
      || die "running as root, PostgreSQL needs an unprivileged user to run as, and '$RUN_AS' does not exist; create it (useradd --system --home /var/lib/postgresql $RUN_AS) or set PG_RUN_AS"
    [ "$(id -u "$RUN_AS")" != 0 ] || die "PG_RUN_AS=$RUN_AS is root; PostgreSQL refuses to run as root"
    mkdir -p "$PG_HOME" || die "cannot create $PG_HOME; set PG_SHARED_ROOT to a folder root can write"
    chown "$RUN_AS" "$PG_HOME" "$(dirname "$PG_HOME")"
    chmod 0700 "$PG_HOME"
    runuser -u "$RUN_AS" -- test -w "$PG_HOME" \
      || die "user $RUN_AS cannot write $PG_HOME (a parent folder it cannot enter?); set PG_SHARED_ROOT to a folder every user can enter, such as /var/tmp"
    printf '%s\n' "$PG_HOME" >"$RUN_DIR/pg.location"
  else
    mkdir -p "$PG_HOME" 2>/dev/null || die "cannot create $PG_HOME; is the run folder $RUN_DIR yours and writable?"
    [ -w "$PG_HOME" ] || die "$PG_HOME is not writable by $(id -un)"
  fi
}

up() {
  BIN=$(find_bin)
  mkdir -p "$RUN_DIR"
  preflight
  if running; then
    log "already running on 127.0.0.1:$PGPORT"
    return 0
  fi
  if [ ! -f "$PG_DATA/PG_VERSION" ]; then
    log "initdb into $PG_DATA"
    as_owner "$BIN/initdb" -D "$PG_DATA" -U "$PG_USER" --auth=trust --encoding=UTF8 \
      --locale=C.UTF-8 >"$PG_HOME/initdb.log" 2>&1 \
      || { tail -n 20 "$PG_HOME/initdb.log" >&2; die "initdb failed (log: $PG_HOME/initdb.log)"; }
  fi
  (exec 3<>"/dev/tcp/127.0.0.1/$PGPORT") 2>/dev/null \
    && die "port $PGPORT is already taken by another process; set PGPORT or stop it"
  local durability="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  if [ "${PG_DURABLE:-0}" = 1 ]; then
    durability="-c fsync=on -c synchronous_commit=on -c full_page_writes=on"
  fi
  # The options go through a shell inside pg_ctl: no path may appear in them (spaces).
  as_owner "$BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t 60 \
    -o "-p $PGPORT -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c max_connections=200 $durability -c shared_buffers=256MB" \
    start >/dev/null 2>&1 \
    || { tail -n 20 "$PG_LOG" >&2; die "PostgreSQL did not start (log: $PG_LOG)"; }
  as_owner "$BIN/psql" -h 127.0.0.1 -p "$PGPORT" -U "$PG_USER" -d postgres -Atqc \
    "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'" | grep -q 1 \
    || as_owner "$BIN/createdb" -h 127.0.0.1 -p "$PGPORT" -U "$PG_USER" "$PG_DB"
  log "up on 127.0.0.1:$PGPORT (database $PG_DB, user $PG_USER, data in $PG_DATA)"
}

down() {
  BIN=$(find_bin)
  if ! running; then
    log "not running"
    return 0
  fi
  as_owner "$BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 stop >/dev/null
  log "stopped"
}

# Stop and remove the cluster's data (wherever it lives) and the pointer to it.
purge() {
  down
  rm -rf "$PG_HOME"
  if is_root; then rmdir "$(dirname "$PG_HOME")" 2>/dev/null || true; fi
  rm -f "$RUN_DIR/pg.location"
}

status() {
  BIN=$(find_bin)
  if running; then echo "postgres: running on 127.0.0.1:$PGPORT"; else echo "postgres: stopped"; fi
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  purge) purge ;;
  where) echo "$PG_HOME" ;;
  *) echo "usage: $0 up|down|status|purge|where" >&2; exit 2 ;;
esac
