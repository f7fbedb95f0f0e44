#!/usr/bin/env bash
# Project-local PostgreSQL cluster for development and tests.
#   postgres.sh up | down | status
# initdb into $RUN_DIR/pg on its own port (PGPORT, default 54320), listening on 127.0.0.1
# only. PostgreSQL refuses to run as root: as root the cluster runs as the unprivileged
# `postgres` user (PG_RUN_AS) on a folder it owns; an ordinary user runs it as themselves.
# Local-only trust authentication on 127.0.0.1; point DATABASE_URL at a real server for
# anything else.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
RUN_DIR=${RUN_DIR:-$ROOT/.run}
PGPORT=${PGPORT:-54320}
PG_DB=${PG_DB:-veilig}
PG_USER=${PG_USER:-veilig}
PG_HOME=$RUN_DIR/pg
PG_DATA=$PG_HOME/data
PG_LOG=$PG_HOME/postgres.log

log() { printf 'postgres: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

find_bin() {
  if [ -n "${PG_BIN:-}" ]; then echo "$PG_BIN"; return; fi
  if command -v pg_ctl >/dev/null; then dirname "$(readlink -f "$(command -v pg_ctl)")"; return; fi
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  [ -n "$d" ] || die "PostgreSQL server binaries (initdb, pg_ctl) not found; install them (Debian: apt-get install postgresql) or set PG_BIN"
  echo "$d"
}
BIN=$(find_bin)

as_owner() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u "${PG_RUN_AS:-postgres}" -- "$@"
  else
    "$@"
  fi
}

running() { [ -f "$PG_DATA/postmaster.pid" ] && as_owner "$BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1; }

up() {
  mkdir -p "$PG_HOME"
  if [ "$(id -u)" = 0 ]; then chown "${PG_RUN_AS:-postgres}" "$PG_HOME"; fi
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
  # fsync off: a developer's and CI's throwaway cluster; production runs a real server.
  as_owner "$BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t 60 \
    -o "-p $PGPORT -c listen_addresses=127.0.0.1 -k $PG_HOME -c max_connections=200 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c shared_buffers=256MB" \
    start >/dev/null 2>&1 \
    || { tail -n 20 "$PG_LOG" >&2; die "PostgreSQL did not start (log: $PG_LOG)"; }
  as_owner "$BIN/psql" -h 127.0.0.1 -p "$PGPORT" -U "$PG_USER" -d postgres -Atqc \
    "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'" | grep -q 1 \
    || as_owner "$BIN/createdb" -h 127.0.0.1 -p "$PGPORT" -U "$PG_USER" "$PG_DB"
  log "up on 127.0.0.1:$PGPORT (database $PG_DB, user $PG_USER)"
}

down() {
  if ! running; then
    log "not running"
    return 0
  fi
  as_owner "$BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 stop >/dev/null
  log "stopped"
}

status() {
  if running; then echo "postgres: running on 127.0.0.1:$PGPORT"; else echo "postgres: stopped"; fi
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
