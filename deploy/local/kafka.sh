#!/usr/bin/env bash
# Local Apache Kafka (KRaft, one combined broker+controller) for development and tests.
#   kafka.sh libs | up | down | status
# Everything lives under $RUN_DIR/kafka (data, logs, pid). Jars are resolved from Maven
# Central by deploy/kafka/pom.xml into $RUN_DIR/kafka-libs once; a stamp with the pom's
# checksum makes a second start download nothing.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
RUN_DIR=${RUN_DIR:-$ROOT/.run}
KAFKA_PORT=${KAFKA_PORT:-9092}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1))}
# TLS where a certificate is configured: PEM certificate (chain) and its private key. The
# SASL_SSL listener binds KAFKA_TLS_HOST (all interfaces by default: it is the one other hosts
# use) and is advertised as KAFKA_TLS_ADVERTISED_HOST, a name the certificate carries.
KAFKA_TLS_CERT_FILE=${KAFKA_TLS_CERT_FILE:-}
KAFKA_TLS_KEY_FILE=${KAFKA_TLS_KEY_FILE:-}
KAFKA_TLS_PORT=${KAFKA_TLS_PORT:-$((KAFKA_PORT + 2))}
KAFKA_TLS_HOST=${KAFKA_TLS_HOST:-0.0.0.0}
KAFKA_TLS_ADVERTISED_HOST=${KAFKA_TLS_ADVERTISED_HOST:-localhost}
KAFKA_HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xms256m -Xmx768m}
KAFKA_START_TIMEOUT=${KAFKA_START_TIMEOUT:-90}
LIBS=${KAFKA_LIBS_DIR:-$ROOT/.run/kafka-libs}
HOME_DIR=$RUN_DIR/kafka
PID_FILE=$HOME_DIR/kafka.pid
LOG_DIR=$HOME_DIR/logs
DATA_DIR=$HOME_DIR/data
# Passwords of the local principals, owner-only: veilig-admin (made here), the services' and
# veilig-ops (made by `veilig kafka principals`).
CREDENTIALS=$HOME_DIR/credentials
POM=$ROOT/deploy/kafka/pom.xml

log() { printf 'kafka: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# The configured certificate and key as a PKCS#12 key store (what every JVM reads) with a
# random password, owner-only, and the SASL_SSL listener's settings.
tls_keystore() {
  local dir=$HOME_DIR/tls password
  (umask 077; mkdir -p "$dir"; secret >"$dir/keystore.password")
  password=$(cat "$dir/keystore.password")
  (umask 077; openssl pkcs12 -export -in "$KAFKA_TLS_CERT_FILE" -inkey "$KAFKA_TLS_KEY_FILE" \
    -name kafka -out "$dir/keystore.p12" -passout "file:$dir/keystore.password" 2>"$LOG_DIR/tls.log") \
    || { cat "$LOG_DIR/tls.log" >&2; die "the TLS certificate and key could not be made into a key store"; }
  cat >>"$HOME_DIR/server.properties" <<EOF

# TLS for the SASL_SSL listener (kafka.sh, from KAFKA_TLS_CERT_FILE and KAFKA_TLS_KEY_FILE).
ssl.keystore.type=PKCS12
ssl.keystore.location=$dir/keystore.p12
ssl.keystore.password=$password
ssl.key.password=$password
ssl.client.auth=none
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
EOF
  log "TLS: SASL_SSL on $KAFKA_TLS_HOST:$KAFKA_TLS_PORT (advertised as $KAFKA_TLS_ADVERTISED_HOST)"
}

running() { [ -f "$PID_FILE" ] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null; }

libs() {
  local stamp=$LIBS/.pom.sha256 want
  want=$(sha256sum "$POM" | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return 0
  fi
  command -v mvn >/dev/null || die "Maven (mvn) is needed to fetch the Kafka jars; install it (Debian: apt-get install maven)"
  command -v java >/dev/null || die "Java 17+ is needed to run Kafka; install it (Debian: apt-get install openjdk-17-jre-headless)"
  log "resolving Kafka jars from Maven Central (once) ..."
  rm -rf "$LIBS" && mkdir -p "$LIBS"
  mvn -q -B -f "$POM" dependency:copy-dependencies -DincludeScope=runtime \
    -DoutputDirectory="$LIBS" >"$RUN_DIR/mvn.log" 2>&1 \
    || { tail -n 30 "$RUN_DIR/mvn.log" >&2; die "mvn could not resolve the Kafka jars (log: $RUN_DIR/mvn.log)"; }
  echo "$want" >"$stamp"
}

# shellcheck disable=SC2206  # the heap options are meant to split into words
JAVA=(java $KAFKA_HEAP_OPTS -XX:+UseG1GC -Djava.awt.headless=true
  -Dkafka.logs.dir="$LOG_DIR" -Dlog4j2.configurationFile="$ROOT/deploy/kafka/log4j2.xml"
  -cp "$LIBS/*")

secret() { head -c 24 /dev/urandom | base64 | tr -d '/+=\n'; }

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

up() {
  if running; then
    log "already running (pid $(cat "$PID_FILE")) on 127.0.0.1:$KAFKA_PORT"
    return 0
  fi
  libs
  port_busy "$KAFKA_PORT" && die "port $KAFKA_PORT is already taken by another process; set KAFKA_PORT or stop it"
  port_busy "$KAFKA_CONTROLLER_PORT" && die "controller port $KAFKA_CONTROLLER_PORT is already taken; set KAFKA_CONTROLLER_PORT"
  mkdir -p "$LOG_DIR" "$DATA_DIR"
  if [ -f "$DATA_DIR/meta.properties" ] && [ ! -f "$CREDENTIALS/veilig-admin" ]; then
    log "the local broker's data predates SASL (no administrator credential): starting it afresh"
    rm -rf "$DATA_DIR" && mkdir -p "$DATA_DIR"
  fi
  (umask 077; mkdir -p "$CREDENTIALS"
    [ -f "$CREDENTIALS/veilig-admin" ] || secret >"$CREDENTIALS/veilig-admin"
    [ -f "$CREDENTIALS/.controller" ] || secret >"$CREDENTIALS/.controller")
  local admin_password controller_password
  admin_password=$(cat "$CREDENTIALS/veilig-admin")
  controller_password=$(cat "$CREDENTIALS/.controller")
  local tls_listener="" tls_advertised=""
  if [ -n "$KAFKA_TLS_CERT_FILE$KAFKA_TLS_KEY_FILE" ]; then
    [ -r "$KAFKA_TLS_CERT_FILE" ] && [ -r "$KAFKA_TLS_KEY_FILE" ] \
      || die "KAFKA_TLS_CERT_FILE and KAFKA_TLS_KEY_FILE must both name readable PEM files"
    port_busy "$KAFKA_TLS_PORT" && die "TLS port $KAFKA_TLS_PORT is already taken; set KAFKA_TLS_PORT"
    tls_listener=",SASL_SSL://$KAFKA_TLS_HOST:$KAFKA_TLS_PORT"
    tls_advertised=",SASL_SSL://$KAFKA_TLS_ADVERTISED_HOST:$KAFKA_TLS_PORT"
  fi
  (umask 077; sed -e "s|@KAFKA_PORT@|$KAFKA_PORT|g" -e "s|@CONTROLLER_PORT@|$KAFKA_CONTROLLER_PORT|g" \
    -e "s|@DATA_DIR@|$DATA_DIR|g" -e "s|@ADMIN_PASSWORD@|$admin_password|g" \
    -e "s|@CONTROLLER_PASSWORD@|$controller_password|g" \
    -e "s|@TLS_LISTENER@|$tls_listener|g" -e "s|@TLS_ADVERTISED@|$tls_advertised|g" \
    "$ROOT/deploy/kafka/server.properties.in" >"$HOME_DIR/server.properties")
  [ -z "$tls_listener" ] || tls_keystore
  if [ ! -f "$DATA_DIR/meta.properties" ]; then
    local cluster_id
    cluster_id=$("${JAVA[@]}" kafka.tools.StorageTool random-uuid 2>"$LOG_DIR/format.log" | tail -n 1) \
      || cluster_id=""
    [ -n "$cluster_id" ] || {
      tail -n 20 "$LOG_DIR/format.log" >&2
      die "Kafka did not start: could not create a cluster id with java (log: $LOG_DIR/format.log)"
    }
    "${JAVA[@]}" kafka.tools.StorageTool format --standalone -t "$cluster_id" \
      -c "$HOME_DIR/server.properties" \
      --add-scram "SCRAM-SHA-512=[name=veilig-admin,password=$admin_password]" \
      >>"$LOG_DIR/format.log" 2>&1 \
      || { tail -n 20 "$LOG_DIR/format.log" >&2; die "formatting the KRaft storage failed (log: $LOG_DIR/format.log)"; }
  fi
  : >"$LOG_DIR/stdout.log"
  # setsid: the broker outlives the make process that started it, and a Ctrl-C in that
  # terminal reaches it only through `kafka.sh down`.
  setsid "${JAVA[@]}" kafka.Kafka "$HOME_DIR/server.properties" </dev/null >"$LOG_DIR/stdout.log" 2>&1 &
  echo $! >"$PID_FILE"
  log "starting (pid $!), waiting up to ${KAFKA_START_TIMEOUT}s for 127.0.0.1:$KAFKA_PORT ..."
  local waited=0
  until grep -q "Kafka Server started" "$LOG_DIR/server.log" 2>/dev/null && port_busy "$KAFKA_PORT"; do
    if ! running; then
      log "the broker exited during start-up; last lines of its logs:"
      tail -n 25 "$LOG_DIR/stdout.log" >&2 || true
      grep -E "ERROR|FATAL|Exception" "$LOG_DIR/server.log" 2>/dev/null | tail -n 15 >&2 || true
      rm -f "$PID_FILE"
      die "Kafka did not start (logs: $LOG_DIR)"
    fi
    if [ "$waited" -ge "$KAFKA_START_TIMEOUT" ]; then
      tail -n 25 "$LOG_DIR/server.log" >&2 || true
      down
      die "Kafka did not answer on 127.0.0.1:$KAFKA_PORT within ${KAFKA_START_TIMEOUT}s (logs: $LOG_DIR)"
    fi
    sleep 1
    waited=$((waited + 1))
  done
  log "up on 127.0.0.1:$KAFKA_PORT after ${waited}s"
}

down() {
  if ! running; then
    rm -f "$PID_FILE"
    log "not running"
    return 0
  fi
  local pid waited=0
  pid=$(cat "$PID_FILE")
  kill -TERM "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$waited" -ge 30 ]; then
      log "broker did not stop within 30s, killing it"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 1
    waited=$((waited + 1))
  done
  rm -f "$PID_FILE"
  log "stopped"
}

status() {
  if running; then echo "kafka: running (pid $(cat "$PID_FILE")) on 127.0.0.1:$KAFKA_PORT"; else echo "kafka: stopped"; fi
}

case "${1:-}" in
  libs) mkdir -p "$RUN_DIR"; libs ;;
  up) mkdir -p "$RUN_DIR"; up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 libs|up|down|status" >&2; exit 2 ;;
esac
