"""Shared fixtures. Integration tests talk to the real Kafka broker and PostgreSQL that
`make test` (deploy/local/run-tests.sh) starts, found through KAFKA_BOOTSTRAP_SERVERS and
DATABASE_URL. Tests isolate themselves by unique topic prefixes, consumer groups and
databases instead of restarting the infrastructure."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest
from cryptography.fernet import Fernet

from services.common.settings import Settings
from tests.support import fresh_database, stack_settings

# Personal data and channel secrets are sealed with keys from configuration; the tests bring
# their own.
os.environ.setdefault("PII_KEYS", Fernet.generate_key().decode())
os.environ.setdefault("SECRETS_KEYS", Fernet.generate_key().decode())
# A developer's machine: receivers and stand-ins listen on http://127.0.0.1 (services and CLI
# processes the tests start inherit it). Tests of the production rules switch it off.
os.environ.setdefault("LOCAL_DEVELOPMENT", "true")


def _require(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(
            f"{name} is not set: integration tests need the real infrastructure; "
            "run them with `make test` (which starts Kafka and PostgreSQL) or point "
            f"{name} at a running one"
        )
    return value


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    return _require("KAFKA_BOOTSTRAP_SERVERS")


@pytest.fixture(scope="session")
def admin_database_url() -> str:
    return _require("DATABASE_URL")


@pytest.fixture
async def database_url(admin_database_url: str) -> AsyncIterator[str]:
    """A fresh, empty database for one test, dropped afterwards."""
    async with fresh_database(admin_database_url) as url:
        yield url


@pytest.fixture
def topic_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}."


@pytest.fixture
def settings(kafka_bootstrap: str, database_url: str, topic_prefix: str) -> Settings:
    return stack_settings(kafka_bootstrap, database_url, topic_prefix)
