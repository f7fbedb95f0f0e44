# Veilig Haarlem — the two commands a newcomer needs are `make run` and `make test`.
# Everything else is set up on the way: the virtual environment, the Kafka jars (Maven),
# a project-local PostgreSQL cluster. Settings come from the environment (see README).

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# uv installs the locked packages: the same wheels as pip, in seconds instead of two minutes
# (measured on a clean machine: pip 133 s, uv 34 s with the bytecode compiled). Compiled at
# install, as pip does: where PYTHONDONTWRITEBYTECODE is set (this CI machine) nothing else
# writes it, and every service a test starts would compile its imports again (twice as slow).
UV := uv==0.13.9
RUN_DIR ?= $(CURDIR)/.run
export RUN_DIR

# The services find the local infrastructure on the ports it was started on (KAFKA_PORT,
# PGPORT), unless the environment points them at an existing cluster and server.
# LOCAL_DEVELOPMENT: this is a developer's machine (webhooks to the stand-ins on http://127.0.0.1).
# The local broker authenticates (SASL/SCRAM): the CLI signs in as its administrator, and
# `veilig run` gives each service its own principal from KAFKA_CREDENTIALS_DIR.
KAFKA_CREDENTIALS = $(RUN_DIR)/kafka/credentials
ifeq ($(KAFKA_BOOTSTRAP_SERVERS),)
LOCAL_KAFKA_ENV = KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT KAFKA_SASL_MECHANISM=SCRAM-SHA-512 \
	KAFKA_SASL_USERNAME=veilig-admin KAFKA_SASL_PASSWORD_FILE="$(KAFKA_CREDENTIALS)/veilig-admin" \
	KAFKA_CREDENTIALS_DIR="$(KAFKA_CREDENTIALS)"
endif
LOCAL_ENV = KAFKA_BOOTSTRAP_SERVERS="$${KAFKA_BOOTSTRAP_SERVERS:-127.0.0.1:$${KAFKA_PORT:-9092}}" \
	DATABASE_URL="$${DATABASE_URL:-postgresql://veilig@127.0.0.1:$${PGPORT:-54320}/veilig}" \
	LOCAL_DEVELOPMENT="$${LOCAL_DEVELOPMENT:-true}" $(LOCAL_KAFKA_ENV)

# Tests run their own broker and database on other ports, so a running `make run` is left alone.
TEST_ENV := TEST_RUN_DIR="$(CURDIR)/.run/test"

.PHONY: help venv up down run demo bench chaos chaos-scenarios test test-unit lint format clean status topics browser ops-tools

help:
	@echo "make run      install what is missing, start Kafka, PostgreSQL and all services (Ctrl-C stops)"
	@echo "make test     install what is missing and run the whole test suite against a real broker and database"
	@echo "make up/down  start/stop the infrastructure only (Kafka, PostgreSQL)"
	@echo "make demo     replay the demo scenario against a running platform"
	@echo "make bench    benchmark the platform against the broker alone (QUICK=1: under 3 minutes)"
	@echo "make chaos    inject faults under load, check nothing is lost or doubled (QUICK=1: scenarios 1-2), then the fault tests"
	@echo "make lint     ruff check + format check"
	@echo "make clean    stop everything and remove the run folder and the virtual environment"

$(STAMP): pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed (set PYTHON=...)")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check $(UV)
	$(BIN)/uv pip install --quiet --python $(BIN)/python --compile-bytecode -c requirements.lock -e '.[dev]'
	@touch $@

venv: $(STAMP)

# Infrastructure: each part is skipped when the environment points at an existing one.
up: venv
ifeq ($(KAFKA_BOOTSTRAP_SERVERS),)
	@deploy/local/kafka.sh up
else
	@echo "kafka: using KAFKA_BOOTSTRAP_SERVERS=$(KAFKA_BOOTSTRAP_SERVERS)"
endif
ifeq ($(DATABASE_URL),)
	@deploy/local/postgres.sh up
else
	@echo "postgres: using DATABASE_URL from the environment"
endif
	@$(LOCAL_ENV) $(BIN)/veilig topics apply
ifeq ($(KAFKA_BOOTSTRAP_SERVERS),)
	@$(LOCAL_ENV) $(BIN)/veilig kafka principals --credentials "$(KAFKA_CREDENTIALS)"
	@echo "kafka: read-only ops client: kcat -F $(RUN_DIR)/kafka/ops-client.properties -L"
endif

down:
	@deploy/local/kafka.sh down
	@deploy/local/postgres.sh down

status:
	@deploy/local/kafka.sh status
	@deploy/local/postgres.sh status

topics: venv
	@$(LOCAL_ENV) $(BIN)/veilig topics apply

run: up
	@trap 'deploy/local/kafka.sh down; deploy/local/postgres.sh down' EXIT; $(LOCAL_ENV) $(BIN)/veilig run $(if $(filter 0,$(DEMO)),--no-demo,)

demo: venv
	@$(LOCAL_ENV) $(BIN)/veilig demo

# The platform as `make run` has it (without the demo), measured; results in bench-results/.
# Its data is its own (BENCH_RUN_DIR, fresh each time): a run leaves tens of thousands of
# reports behind that must reach neither `make run` nor the next benchmark. The Kafka tools
# come with the broker's jars, which are needed against a cluster elsewhere too. No $(MAKE) in
# the last line, so that `make -n bench` runs nothing.
BENCH_RUN_DIR ?= $(CURDIR)/.run/bench
bench: export RUN_DIR := $(BENCH_RUN_DIR)
# Durability as in production: fsync, synchronous_commit and full_page_writes on (the
# development cluster turns them off); producers use acks=all everywhere. The results say so.
bench: export PG_DURABLE := 1
bench: venv ops-tools
ifeq ($(KAFKA_BOOTSTRAP_SERVERS),)
	@deploy/local/kafka.sh down >/dev/null && rm -rf "$(RUN_DIR)/kafka"
endif
ifeq ($(DATABASE_URL),)
	@deploy/local/postgres.sh purge >/dev/null
endif
	@$(MAKE) --no-print-directory up
	@deploy/local/kafka.sh libs
	@trap 'deploy/local/kafka.sh down; deploy/local/postgres.sh down' EXIT; \
		$(LOCAL_ENV) $(BIN)/veilig bench $(if $(filter 1,$(QUICK)),--quick,) $(if $(REPLICAS),--replicas $(REPLICAS),)

# Faults against the real processes (tools/chaos); results in chaos-results/. It stops and
# starts its own broker and PostgreSQL, so it has its own run folder (fresh each time) and
# ports, whatever the environment points at: a running `make run` or test suite is untouched.
CHAOS_RUN_DIR ?= $(CURDIR)/.run/chaos
CHAOS_KAFKA_PORT ?= 39092
CHAOS_PGPORT ?= 54349
CHAOS_CLUSTER_PORT ?= 39192
chaos-scenarios: export RUN_DIR := $(CHAOS_RUN_DIR)
chaos-scenarios: export KAFKA_PORT := $(CHAOS_KAFKA_PORT)
chaos-scenarios: export KAFKA_CONTROLLER_PORT := $(shell echo $$(($(CHAOS_KAFKA_PORT) + 1)))
chaos-scenarios: export KAFKA_CLUSTER_PORT := $(CHAOS_CLUSTER_PORT)
chaos-scenarios: export PGPORT := $(CHAOS_PGPORT)
chaos-scenarios: export KAFKA_BOOTSTRAP_SERVERS := 127.0.0.1:$(CHAOS_KAFKA_PORT)
chaos-scenarios: export DATABASE_URL := postgresql://veilig@127.0.0.1:$(CHAOS_PGPORT)/veilig
chaos-scenarios: export PII_KEY_FILE := $(CHAOS_RUN_DIR)/secrets/pii.keys
chaos-scenarios: export SECRETS_KEY_FILE := $(CHAOS_RUN_DIR)/secrets/secrets.keys
chaos-scenarios: export LOCAL_DEVELOPMENT := true
chaos-scenarios: export KAFKA_SECURITY_PROTOCOL := SASL_PLAINTEXT
chaos-scenarios: export KAFKA_SASL_USERNAME := veilig-admin
chaos-scenarios: export KAFKA_SASL_PASSWORD_FILE := $(CHAOS_RUN_DIR)/kafka/credentials/veilig-admin
chaos-scenarios: export INTAKE_PORT := 38081
chaos-scenarios: export TRIAGE_PORT := 38082
chaos-scenarios: export NOTIFY_PORT := 38083
chaos-scenarios: export ANALYTICS_PORT := 38084
chaos-scenarios: export INTAKE_METRICS_PORT := 38181
chaos-scenarios: export TRIAGE_METRICS_PORT := 38182
chaos-scenarios: export NOTIFY_METRICS_PORT := 38183
chaos-scenarios: export ANALYTICS_METRICS_PORT := 38184
chaos-scenarios: export CHAOS_SECOND_TRIAGE_PORT := 38091
chaos-scenarios: export CHAOS_SECOND_NOTIFY_PORT := 38092
chaos-scenarios: export STANDIN_WEBHOOK_PORT := 38090
chaos-scenarios: export STANDIN_SMTP_PORT := 38025
chaos-scenarios: export CHAOS_RECEIVER_PORT := 38095
chaos-scenarios: venv
	@deploy/local/kafka-cluster.sh down >/dev/null 2>&1; deploy/local/kafka.sh down >/dev/null
	@deploy/local/postgres.sh purge >/dev/null
	@rm -rf "$(RUN_DIR)"
	@deploy/local/kafka.sh up
	@deploy/local/postgres.sh up
	@$(LOCAL_ENV) $(BIN)/veilig topics apply
	@trap 'deploy/local/kafka-cluster.sh down; deploy/local/kafka.sh down; deploy/local/postgres.sh down' EXIT; \
		$(BIN)/veilig chaos $(if $(filter 1,$(QUICK)),--quick,) $(CHAOS_ARGS)

# Then the test suite's long fault scenarios (marked `fault`, left out of `make test`): a
# PostgreSQL restart under a partner's load, a service killed mid-stream end to end.
chaos: chaos-scenarios browser ops-tools
	@deploy/local/kafka.sh libs
	@$(TEST_ENV) deploy/local/run-tests.sh -m fault

# The dashboard's browser test drives Debian's chromium (nothing downloads a browser build);
# as root it is installed here, otherwise that one test is skipped.
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -q && apt-get install -y -q chromium; } || echo "chromium is missing: the browser test will be skipped (Debian: apt-get install chromium)"

# The alert rules and Alertmanager's configuration are tested with promtool and amtool from
# Debian's prometheus and prometheus-alertmanager packages, and `make bench` measures the
# platform against prometheus-alertmanager: only the binaries (and Alertmanager's templates)
# are unpacked (installing the packages would start the servers). Without them, those tests
# are skipped and the bench notes that the peer was not measured.
ops-tools: venv
	@{ [ -x $(BIN)/promtool ] && [ -x $(BIN)/amtool ] && [ -x $(BIN)/prometheus-alertmanager ] && [ -f /usr/share/prometheus/alertmanager/default.tmpl ]; } || deploy/prometheus/install-tools.sh $(BIN) || echo "promtool/amtool are missing: the alert rule tests will be skipped (Debian: prometheus, prometheus-alertmanager)"

test: venv browser ops-tools
	@deploy/local/kafka.sh libs
	@$(TEST_ENV) deploy/local/run-tests.sh -m "not fault"

test-unit: venv
	@$(BIN)/pytest -q tests/unit

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The PostgreSQL data of a root user's clusters lives outside the checkout (see postgres.sh):
# purge removes it wherever it is.
clean: down
	@RUN_DIR="$(CURDIR)/.run/test" deploy/local/kafka.sh down
	@RUN_DIR="$(CURDIR)/.run/chaos" deploy/local/kafka.sh down
	@RUN_DIR="$(CURDIR)/.run/chaos" deploy/local/kafka-cluster.sh down
	@for d in "$(CURDIR)/.run" "$(CURDIR)/.run/test" "$(CURDIR)/.run/bench" "$(CURDIR)/.run/chaos"; do RUN_DIR="$$d" deploy/local/postgres.sh purge; done
	rm -rf .run $(VENV) .pytest_cache .ruff_cache .hypothesis test-artifacts bench-results chaos-results
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
