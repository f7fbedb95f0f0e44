"""How every Kafka client of the platform authenticates: one home for the security options.

The services, the operators' CLI, the benchmark and the tests build their aiokafka clients
with ``client_options(settings)`` and the FastStream broker with ``broker_security(settings)``;
both read the same settings (``KAFKA_SECURITY_PROTOCOL``, ``KAFKA_SASL_MECHANISM``,
``KAFKA_SASL_USERNAME`` with ``KAFKA_SASL_PASSWORD`` or ``KAFKA_SASL_PASSWORD_FILE``,
``KAFKA_SSL_CAFILE``). docs/decisions/0011 says why the local broker requires SASL/SCRAM too.
"""

from __future__ import annotations

import ssl
from typing import Any

from aiokafka.helpers import create_ssl_context
from faststream.security import (
    BaseSecurity,
    SASLPlaintext,
    SASLScram256,
    SASLScram512,
)
from pydantic import SecretStr

from services.common.settings import Settings


class KafkaCredentialsError(RuntimeError):
    """The settings ask for SASL but give no usable password."""


def _uses_ssl(settings: Settings) -> bool:
    return settings.kafka_security_protocol in ("SSL", "SASL_SSL")


def _uses_sasl(settings: Settings) -> bool:
    return settings.kafka_security_protocol.startswith("SASL")


def _ssl_context(settings: Settings) -> ssl.SSLContext | None:
    if not _uses_ssl(settings):
        return None
    cafile = str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
    return create_ssl_context(cafile=cafile)


def sasl_password(settings: Settings) -> str:
    """The principal's password: KAFKA_SASL_PASSWORD, else the file KAFKA_SASL_PASSWORD_FILE."""
    if settings.kafka_sasl_password is not None:
        return settings.kafka_sasl_password.get_secret_value()
    path = settings.kafka_sasl_password_file
    if path is None:
        raise KafkaCredentialsError(
            f"KAFKA_SECURITY_PROTOCOL is {settings.kafka_security_protocol} but neither "
            "KAFKA_SASL_PASSWORD nor KAFKA_SASL_PASSWORD_FILE is set"
        )
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise KafkaCredentialsError(
            f"KAFKA_SASL_PASSWORD_FILE {path} cannot be read: {exc.strerror}"
        ) from exc


def _username(settings: Settings) -> str:
    if not settings.kafka_sasl_username:
        raise KafkaCredentialsError(
            f"KAFKA_SECURITY_PROTOCOL is {settings.kafka_security_protocol} but "
            "KAFKA_SASL_USERNAME is not set"
        )
    return settings.kafka_sasl_username


def signed_in_as(settings: Settings, username: str, password: str) -> Settings:
    """The same cluster and protocol, signed in as another principal."""
    return settings.model_copy(
        update={
            "kafka_sasl_username": username,
            "kafka_sasl_password": SecretStr(password),
            "kafka_sasl_password_file": None,
        }
    )


def client_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments of every aiokafka client: where the brokers are and how to sign in."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "security_protocol": settings.kafka_security_protocol,
    }
    context = _ssl_context(settings)
    if context is not None:
        options["ssl_context"] = context
    if _uses_sasl(settings):
        options |= {
            "sasl_mechanism": settings.kafka_sasl_mechanism,
            "sasl_plain_username": _username(settings),
            "sasl_plain_password": sasl_password(settings),
        }
    return options


_SASL = {"SCRAM-SHA-512": SASLScram512, "SCRAM-SHA-256": SASLScram256, "PLAIN": SASLPlaintext}


def broker_security(settings: Settings) -> BaseSecurity | None:
    """The same options in FastStream's terms (``KafkaBroker(security=...)``)."""
    context = _ssl_context(settings)
    if _uses_sasl(settings):
        return _SASL[settings.kafka_sasl_mechanism](
            _username(settings),
            sasl_password(settings),
            ssl_context=context,
            use_ssl=_uses_ssl(settings),
        )
    if context is not None:
        return BaseSecurity(ssl_context=context, use_ssl=True)
    return None


def java_client_properties(settings: Settings) -> str:
    """The same options as a Java client's properties file (the Kafka tools' --command-config,
    --producer.config)."""
    lines = [
        f"bootstrap.servers={settings.kafka_bootstrap_servers}",
        f"security.protocol={settings.kafka_security_protocol}",
    ]
    if settings.kafka_ssl_cafile:
        lines += ["ssl.truststore.type=PEM", f"ssl.truststore.location={settings.kafka_ssl_cafile}"]
    if _uses_sasl(settings):
        module = (
            "org.apache.kafka.common.security.plain.PlainLoginModule"
            if settings.kafka_sasl_mechanism == "PLAIN"
            else "org.apache.kafka.common.security.scram.ScramLoginModule"
        )
        lines += [
            f"sasl.mechanism={settings.kafka_sasl_mechanism}",
            f'sasl.jaas.config={module} required username="{_username(settings)}" '
            f'password="{sasl_password(settings)}";',
        ]
    return "\n".join(lines) + "\n"
