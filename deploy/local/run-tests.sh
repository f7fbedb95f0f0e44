#!/usr/bin/env bash
# `make test`: the whole suite against a real Kafka broker and a real PostgreSQL.
# Both are started fresh on test ports in their own run folder (a running `make run` is left
# alone) unless KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL point at existing ones, and both are
# stopped afterwards whatever the outcome.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
export RUN_DIR=${TEST_RUN_DIR:-$ROOT/.run/test}
export KAFKA_PORT=${TEST_KAFKA_PORT:-19092}
export KAFKA_CONTROLLER_PORT=${TEST_KAFKA_CONTROLLER_PORT:-19093}
export PGPORT=${TEST_PGPORT:-54329}

cleanup() {
  [ -n "${own_kafka:-}" ] && deploy/local/kafka.sh down
  [ -n "${own_pg:-}" ] && deploy/local/postgres.sh down
}
trap cleanup EXIT

if [ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ]; then
  deploy/local/kafka.sh down >/dev/null 2>&1
  rm -rf "$RUN_DIR/kafka"
  own_kafka=1
  # TLS where a certificate is configured: the test broker has one (self-signed, made here),
  # so tests/integration/test_kafka_security.py signs in over SASL_SSL too.
  tls=$RUN_DIR/tls
  mkdir -p "$tls"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout "$tls/broker.key" -out "$tls/broker.crt" 2>"$tls/openssl.log" \
    || { cat "$tls/openssl.log" >&2; exit 1; }
  # Only for this broker: a `make up` a test starts (test_clone_anywhere) must not take them.
  tls_port=${TEST_KAFKA_TLS_PORT:-$((KAFKA_PORT + 2))}
  KAFKA_TLS_CERT_FILE=$tls/broker.crt KAFKA_TLS_KEY_FILE=$tls/broker.key KAFKA_TLS_HOST=127.0.0.1 \
    KAFKA_TLS_PORT=$tls_port deploy/local/kafka.sh up || exit 1
  export TEST_KAFKA_TLS_BOOTSTRAP=localhost:$tls_port TEST_KAFKA_TLS_CAFILE=$tls/broker.crt
  export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$KAFKA_PORT
  # The tests and the services they start sign in as the broker's administrator; the tests
  # of access (tests/integration/test_kafka_security.py) make and use the other principals.
  export KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT KAFKA_SASL_MECHANISM=SCRAM-SHA-512
  export KAFKA_SASL_USERNAME=veilig-admin
  export KAFKA_SASL_PASSWORD_FILE=$RUN_DIR/kafka/credentials/veilig-admin
  # A partner's new submission topic is read within seconds, not the default 30.
  export KAFKA_METADATA_MAX_AGE_SECONDS=${KAFKA_METADATA_MAX_AGE_SECONDS:-2}
fi
if [ -z "${DATABASE_URL:-}" ]; then
  deploy/local/postgres.sh purge >/dev/null 2>&1
  own_pg=1
  deploy/local/postgres.sh up || exit 1
  export DATABASE_URL=postgresql://veilig@127.0.0.1:$PGPORT/veilig
fi

# The project's bytecode, fresh: where PYTHONDONTWRITEBYTECODE is set (CI) Python writes none,
# and each of the hundreds of service processes the suite starts would compile it again.
.venv/bin/python -m compileall -q schemas services tools tests >/dev/null
.venv/bin/pytest -ra --durations=20 "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure, not a pass" >&2
  exit 1
fi
exit "$rc"
