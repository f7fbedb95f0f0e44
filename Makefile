# Veilig Haarlem — the two commands a newcomer needs are `make run` and `make test`.
# Everything else is set up on the way: the virtual environment, the Kafka jars (Maven),
# a project-local PostgreSQL cluster. Settings come from the environment (see README).

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUN_DIR ?= $(CURDIR)/.run
export RUN_DIR

# Tests run their own broker and database on other ports, so a running `make run` is left alone.
TEST_ENV := TEST_RUN_DIR="$(CURDIR)/.run/test"

.PHONY: help venv up down run demo bench test test-unit lint format clean status topics browser

help:
	@echo "make run      install what is missing, start Kafka, PostgreSQL and all services (Ctrl-C stops)"
	@echo "make test     install what is missing and run the whole test suite against a real broker and database"
	@echo "make up/down  start/stop the infrastructure only (Kafka, PostgreSQL)"
	@echo "make demo     replay the demo scenario against a running platform"
	@echo "make bench    benchmark the platform against the broker alone (QUICK=1: under 3 minutes)"
	@echo "make lint     ruff check + format check"
	@echo "make clean    stop everything and remove the run folder and the virtual environment"

$(STAMP): pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed (set PYTHON=...)")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip==25.3
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[dev]'
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
	@$(BIN)/veilig topics apply

down:
	@deploy/local/kafka.sh down
	@deploy/local/postgres.sh down

status:
	@deploy/local/kafka.sh status
	@deploy/local/postgres.sh status

topics: venv
	@$(BIN)/veilig topics apply

run: up
	@trap 'deploy/local/kafka.sh down; deploy/local/postgres.sh down' EXIT; $(BIN)/veilig run $(if $(filter 0,$(DEMO)),--no-demo,)

demo: venv
	@$(BIN)/veilig demo

# The platform as `make run` has it (without the demo), measured; results in bench-results/.
# Its data is its own (BENCH_RUN_DIR, fresh each time): a run leaves tens of thousands of
# reports behind that must reach neither `make run` nor the next benchmark. The Kafka tools
# come with the broker's jars, which are needed against a cluster elsewhere too. No $(MAKE) in
# the last line, so that `make -n bench` runs nothing.
BENCH_RUN_DIR ?= $(CURDIR)/.run/bench
bench: export RUN_DIR := $(BENCH_RUN_DIR)
bench: venv
ifeq ($(KAFKA_BOOTSTRAP_SERVERS),)
	@deploy/local/kafka.sh down >/dev/null && rm -rf "$(RUN_DIR)/kafka"
endif
ifeq ($(DATABASE_URL),)
	@deploy/local/postgres.sh purge >/dev/null
endif
	@$(MAKE) --no-print-directory up
	@deploy/local/kafka.sh libs
	@trap 'deploy/local/kafka.sh down; deploy/local/postgres.sh down' EXIT; \
		$(BIN)/veilig bench $(if $(filter 1,$(QUICK)),--quick,)

# The dashboard's browser test drives Debian's chromium (nothing downloads a browser build);
# as root it is installed here, otherwise that one test is skipped.
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -q && apt-get install -y -q chromium; } || echo "chromium is missing: the browser test will be skipped (Debian: apt-get install chromium)"

test: venv browser
	@deploy/local/kafka.sh libs
	@$(TEST_ENV) deploy/local/run-tests.sh

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
	@for d in "$(CURDIR)/.run" "$(CURDIR)/.run/test" "$(CURDIR)/.run/bench"; do RUN_DIR="$$d" deploy/local/postgres.sh purge; done
	rm -rf .run $(VENV) .pytest_cache .ruff_cache .hypothesis test-artifacts bench-results
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
