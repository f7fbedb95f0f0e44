#!/usr/bin/env bash
# A local 3-node Apache Kafka cluster (KRaft) on loopback, for fault tests (`make chaos`):
# three processes, each broker and controller (node ids 1..3), one static controller quorum,
# replication 3 and min.insync.replicas 2 for the internal topics.
#   kafka-cluster.sh up | down | status | bootstrap | leader | kill NODE | start NODE
# Node n listens on KAFKA_CLUSTER_PORT+n-1 (clients) and KAFKA_CLUSTER_PORT+10+n-1
# (controller); everything lives under $RUN_DIR/kafka-cluster/node<n>. The jars are kafka.sh's
# (resolved once by `kafka.sh libs`), the configuration is its server.properties template
# with the node id, the quorum and the replication settings changed.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
RUN_DIR=${RUN_DIR:-$ROOT/.run}
BASE_PORT=${KAFKA_CLUSTER_PORT:-9192}
NODES=(1 2 3)
KAFKA_HEAP_OPTS=${KAFKA_CLUSTER_HEAP_OPTS:--Xms128m -Xmx512m}
KAFKA_START_TIMEOUT=${KAFKA_START_TIMEOUT:-120}
LIBS=${KAFKA_LIBS_DIR:-$ROOT/.run/kafka-libs}
HOME_DIR=$RUN_DIR/kafka-cluster

log() { printf 'kafka-cluster: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

port() { echo $((BASE_PORT + $1 - 1)); }
controller_port() { echo $((BASE_PORT + 10 + $1 - 1)); }
node_dir() { echo "$HOME_DIR/node$1"; }
pid_file() { echo "$(node_dir "$1")/kafka.pid"; }
running() { [ -f "$(pid_file "$1")" ] && kill -0 "$(cat "$(pid_file "$1")")" 2>/dev/null; }
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
check_node() { case "${1:-}" in 1 | 2 | 3) ;; *) die "node must be 1, 2 or 3 (got '${1:-}')" ;; esac; }

java_cmd() { # node -> the java command line of that node
  # shellcheck disable=SC2206  # the heap options are meant to split into words
  JAVA=(java $KAFKA_HEAP_OPTS -XX:+UseG1GC -Djava.awt.headless=true
    -Dkafka.logs.dir="$(node_dir "$1")/logs" -Dlog4j2.configurationFile="$ROOT/deploy/kafka/log4j2.xml"
    -cp "$LIBS/*")
}

voters() {
  local n out=""
  for n in "${NODES[@]}"; do out+="${out:+,}$n@127.0.0.1:$(controller_port "$n")"; done
  echo "$out"
}

bootstrap() {
  local n out=""
  for n in "${NODES[@]}"; do out+="${out:+,}127.0.0.1:$(port "$n")"; done
  echo "$out"
}

# kafka.sh's template, made a cluster member: static voters instead of the single-node
# bootstrap, replication 3 / min ISR 2 for what the broker creates itself.
render() {
  local n=$1 dir
  dir=$(node_dir "$n")
  mkdir -p "$dir/logs" "$dir/data"
  sed -e "s|@KAFKA_PORT@|$(port "$n")|g" -e "s|@CONTROLLER_PORT@|$(controller_port "$n")|g" \
    -e "s|@DATA_DIR@|$dir/data|g" \
    -e "s|^node.id=.*|node.id=$n|" \
    -e "s|^controller.quorum.bootstrap.servers=.*|controller.quorum.voters=$(voters)|" \
    -e "s|^\(.*replication.factor\)=1$|\1=3|" \
    -e "s|^\(.*min.isr\)=1$|\1=2|" \
    -e "s|^min.insync.replicas=1$|min.insync.replicas=2|" \
    "$ROOT/deploy/kafka/server.properties.in" >"$dir/server.properties"
}

format_all() {
  local n cluster_id
  [ -f "$HOME_DIR/cluster.id" ] || {
    java_cmd 1
    cluster_id=$("${JAVA[@]}" kafka.tools.StorageTool random-uuid 2>"$HOME_DIR/format.log" | tail -n 1)
    [ -n "$cluster_id" ] || die "could not create a cluster id (log: $HOME_DIR/format.log)"
    echo "$cluster_id" >"$HOME_DIR/cluster.id"
  }
  cluster_id=$(cat "$HOME_DIR/cluster.id")
  for n in "${NODES[@]}"; do
    [ -f "$(node_dir "$n")/data/meta.properties" ] && continue
    java_cmd "$n"
    "${JAVA[@]}" kafka.tools.StorageTool format -t "$cluster_id" \
      -c "$(node_dir "$n")/server.properties" >>"$HOME_DIR/format.log" 2>&1 \
      || { tail -n 20 "$HOME_DIR/format.log" >&2; die "formatting node $n failed (log: $HOME_DIR/format.log)"; }
  done
}

launch() { # start one node's process, do not wait
  local n=$1 dir
  dir=$(node_dir "$n")
  if running "$n"; then return 0; fi
  port_busy "$(port "$n")" && die "port $(port "$n") is already taken; set KAFKA_CLUSTER_PORT"
  port_busy "$(controller_port "$n")" && die "port $(controller_port "$n") is already taken; set KAFKA_CLUSTER_PORT"
  java_cmd "$n"
  # The server log tells when this start is done: a fresh file, not the last start's lines.
  : >"$dir/logs/stdout.log"
  [ -f "$dir/logs/server.log" ] && mv "$dir/logs/server.log" "$dir/logs/server.log.$(date +%s)"
  setsid "${JAVA[@]}" kafka.Kafka "$dir/server.properties" </dev/null >"$dir/logs/stdout.log" 2>&1 &
  echo $! >"$(pid_file "$n")"
  log "node $n starting (pid $!) on 127.0.0.1:$(port "$n")"
}

wait_started() {
  local n=$1 dir waited=0
  dir=$(node_dir "$n")
  until grep -q "Kafka Server started" "$dir/logs/server.log" 2>/dev/null && port_busy "$(port "$n")"; do
    if ! running "$n"; then
      tail -n 25 "$dir/logs/stdout.log" >&2 || true
      rm -f "$(pid_file "$n")"
      die "node $n did not start (logs: $dir/logs)"
    fi
    [ "$waited" -lt "$KAFKA_START_TIMEOUT" ] || die "node $n did not start within ${KAFKA_START_TIMEOUT}s (logs: $dir/logs)"
    sleep 1
    waited=$((waited + 1))
  done
  log "node $n up on 127.0.0.1:$(port "$n")"
}

up() {
  "$ROOT/deploy/local/kafka.sh" libs
  mkdir -p "$HOME_DIR"
  local n
  for n in "${NODES[@]}"; do render "$n"; done
  format_all
  # All three at once: no node finishes starting before a quorum of controllers is up.
  for n in "${NODES[@]}"; do launch "$n"; done
  for n in "${NODES[@]}"; do wait_started "$n"; done
  log "up: $(bootstrap)"
}

stop_node() { # node signal
  local n=$1 signal=$2 pid waited=0
  if ! running "$n"; then
    rm -f "$(pid_file "$n")"
    return 0
  fi
  pid=$(cat "$(pid_file "$n")")
  kill "-$signal" "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$waited" -ge 30 ]; then
      log "node $n did not stop within 30s, killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    sleep 1
    waited=$((waited + 1))
  done
  rm -f "$(pid_file "$n")"
}

down() {
  local n
  for n in "${NODES[@]}"; do
    if running "$n"; then kill -TERM "$(cat "$(pid_file "$n")")" 2>/dev/null || true; fi
  done
  for n in "${NODES[@]}"; do stop_node "$n" TERM; done
  log "stopped"
}

# The active controller (the quorum's leader), as the quorum itself says.
leader() {
  local n
  for n in "${NODES[@]}"; do
    running "$n" || continue
    java_cmd "$n"
    "${JAVA[@]}" org.apache.kafka.tools.MetadataQuorumCommand \
      --bootstrap-controller "127.0.0.1:$(controller_port "$n")" describe --status 2>/dev/null \
      | awk -F: '/^LeaderId/ { gsub(/ /, "", $2); print $2; found = 1 } END { exit !found }' \
      && return 0
  done
  die "no controller answered"
}

status() {
  local n
  for n in "${NODES[@]}"; do
    if running "$n"; then
      echo "kafka-cluster: node $n running (pid $(cat "$(pid_file "$n")")) on 127.0.0.1:$(port "$n")"
    else
      echo "kafka-cluster: node $n stopped"
    fi
  done
}

case "${1:-}" in
  up) up ;;
  down) [ -d "$HOME_DIR" ] && down || true ;;
  status) status ;;
  bootstrap) bootstrap ;;
  leader) leader ;;
  kill) check_node "${2:-}"; stop_node "$2" KILL; log "node $2 killed" ;;
  start) check_node "${2:-}"; render "$2"; launch "$2"; wait_started "$2" ;;
  *) echo "usage: $0 up|down|status|bootstrap|leader|kill NODE|start NODE" >&2; exit 2 ;;
esac
