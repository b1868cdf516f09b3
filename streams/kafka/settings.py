"""Connection and deployment settings, from the environment (never from secrets on a command
line): what every Kafka client of closedloop, worker or command-line tool, connects with.

| variable | default | meaning |
|---|---|---|
| CLOSEDLOOP_KAFKA | 127.0.0.1:9092 | bootstrap servers |
| CLOSEDLOOP_TOPIC_PREFIX | closedloop | topic name prefix |
| CLOSEDLOOP_PARTITIONS | 12 | partitions of every topic (co-partitioned) |
| CLOSEDLOOP_REPLICATION | 1 | replication factor of created topics (3 in production) |
| CLOSEDLOOP_KAFKA_SECURITY_PROTOCOL | PLAINTEXT | or SASL_SSL, SSL, SASL_PLAINTEXT |
| CLOSEDLOOP_KAFKA_SASL_MECHANISM | SCRAM-SHA-512 | with SASL_* |
| CLOSEDLOOP_KAFKA_USERNAME | — | SASL user name |
| CLOSEDLOOP_KAFKA_PASSWORD_FILE | — | a file holding the SASL password |
| CLOSEDLOOP_KAFKA_CA_FILE | — | CA bundle that signed the brokers' certificates |
| CLOSEDLOOP_KAFKA_CONNECT_TIMEOUT | 30 | seconds the command-line clients try to reach a broker |

There is deliberately no way to give a password on the command line or in a variable: a
command line is readable by every user of the machine (``/proc/PID/cmdline``, ``ps``). The
password lives in a file (a mounted Secret in Kubernetes) that only the service can read.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

__all__ = ["KafkaSettings", "KafkaSetupError", "connection_failure", "watch_connections"]


class KafkaSetupError(Exception):
    """Kafka settings that cannot work, or a broker that cannot be reached with them: a
    one-line reason for the operator (never a secret). The command line prints it, exit 1."""


PROTOCOLS: Final = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
_TOPIC_PREFIX: Final = re.compile(r"[A-Za-z0-9._-]{1,200}")


def _number(env: Mapping[str, str], name: str, default: str, kind: type[int] | type[float],
            least: float) -> Any:
    """``name``'s value as a number of at least ``least``, or a one-line refusal."""
    text = env.get(name, default)
    try:
        value = kind(text)
    except ValueError:
        raise KafkaSetupError(f"{name}={text!r} is not a number") from None
    if not value >= least:  # NaN is refused too
        raise KafkaSetupError(f"{name}={text!r} must be {least:g} or more")
    return value


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    bootstrap: str = "127.0.0.1:9092"
    prefix: str = "closedloop"
    partitions: int = 12
    replication: int = 1
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "SCRAM-SHA-512"
    username: str | None = None
    password_file: str | None = None
    ca_file: str | None = None
    connect_timeout: float = 30.0

    @classmethod
    def from_env(cls, **overrides: Any) -> KafkaSettings:
        """The settings from the environment, ``overrides`` (command-line options) winning;
        a value that cannot work is a :class:`KafkaSetupError` naming its variable."""
        env = os.environ
        values: dict[str, Any] = {
            "bootstrap": env.get("CLOSEDLOOP_KAFKA", "127.0.0.1:9092"),
            "prefix": env.get("CLOSEDLOOP_TOPIC_PREFIX", "closedloop"),
            "partitions": _number(env, "CLOSEDLOOP_PARTITIONS", "12", int, 1),
            "replication": _number(env, "CLOSEDLOOP_REPLICATION", "1", int, 1),
            "security_protocol": env.get("CLOSEDLOOP_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT"),
            "sasl_mechanism": env.get("CLOSEDLOOP_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512"),
            "username": env.get("CLOSEDLOOP_KAFKA_USERNAME"),
            "password_file": env.get("CLOSEDLOOP_KAFKA_PASSWORD_FILE"),
            "ca_file": env.get("CLOSEDLOOP_KAFKA_CA_FILE"),
            "connect_timeout": _number(env, "CLOSEDLOOP_KAFKA_CONNECT_TIMEOUT", "30", float,
                                       0.001),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)
        if not _TOPIC_PREFIX.fullmatch(settings.prefix):
            raise KafkaSetupError(
                f"topic prefix {settings.prefix!r} (CLOSEDLOOP_TOPIC_PREFIX or --prefix): "
                "1-200 characters of letters, digits, '.', '_' and '-', as Kafka's topic "
                "names allow")
        if settings.security_protocol not in PROTOCOLS:
            raise KafkaSetupError(
                f"CLOSEDLOOP_KAFKA_SECURITY_PROTOCOL={settings.security_protocol!r} is not one "
                f"of {', '.join(PROTOCOLS)}")
        if settings.partitions < 1:
            raise KafkaSetupError(f"--partitions {settings.partitions}: must be 1 or more")
        return settings

    def password(self) -> str | None:
        """The SASL password, read from ``password_file`` (None without SASL)."""
        if not self.security_protocol.startswith("SASL"):
            return None
        if not self.username or not self.password_file:
            raise KafkaSetupError(
                f"CLOSEDLOOP_KAFKA_SECURITY_PROTOCOL={self.security_protocol} needs "
                "CLOSEDLOOP_KAFKA_USERNAME and CLOSEDLOOP_KAFKA_PASSWORD_FILE")
        try:
            password = Path(self.password_file).read_text("utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise KafkaSetupError(
                f"cannot read CLOSEDLOOP_KAFKA_PASSWORD_FILE {self.password_file}: {reason}"
            ) from None
        if not password:
            raise KafkaSetupError(f"CLOSEDLOOP_KAFKA_PASSWORD_FILE {self.password_file} is empty")
        return password

    def kafka_python(self) -> dict[str, Any]:
        """Keyword arguments for kafka-python's clients."""
        from kafka import KafkaConsumer

        config: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap.split(","),
            "security_protocol": self.security_protocol,
        }
        # kafka-python 3 gives up on the first broker after this long (2.x has no such option).
        if "bootstrap_timeout_ms" in KafkaConsumer.DEFAULT_CONFIG:
            config["bootstrap_timeout_ms"] = int(self.connect_timeout * 1000)
        if self.security_protocol.startswith("SASL"):
            config.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.username,
                sasl_plain_password=self.password(),
            )
        if self.ca_file:
            config["ssl_cafile"] = self.ca_file
        return config

    def aiokafka(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka's clients (the worker's consume loop, benchmarks)."""
        config: dict[str, Any] = {"bootstrap_servers": self.bootstrap.split(","),
                                  "security_protocol": self.security_protocol}
        if self.security_protocol.startswith("SASL"):
            config.update(sasl_mechanism=self.sasl_mechanism,
                          sasl_plain_username=self.username,
                          sasl_plain_password=self.password())
        if "SSL" in self.security_protocol:
            import ssl

            config["ssl_context"] = ssl.create_default_context(cafile=self.ca_file)
        return config


_last_connection_error: list[str] = []


class _ConnectionErrors(logging.Handler):
    """Keeps the last connection failure kafka-python logs while it retries: its own
    exception after the retries only says it could not bootstrap."""

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("Bootstrap failed"):  # the final give-up, no reason in it
            return
        if "failed:" not in message and "Connection lost" not in message:
            return
        # A request cut short by the give-up deadline says less than the failure before it.
        if "RequestTimedOut" in message and _last_connection_error:
            return
        _last_connection_error[:] = [message]


def watch_connections() -> None:
    """Remember kafka-python's connection failures (warnings and errors, at no extra cost:
    its logger's level is left alone) for :func:`connection_failure`."""
    logger = logging.getLogger("kafka.net")
    if not any(isinstance(h, _ConnectionErrors) for h in logger.handlers):
        logger.addHandler(_ConnectionErrors(logging.WARNING))


def connection_failure(exc: BaseException, settings: KafkaSettings) -> str | None:
    """An operator's explanation of a client that could not reach Kafka, or None when ``exc``
    is something else. Never contains the password."""
    from kafka.errors import KafkaTimeoutError

    # kafka-python 3 raises KafkaTimeoutError("Unable to bootstrap ..."); 2.x NoBrokersAvailable.
    if not ((isinstance(exc, KafkaTimeoutError) and "bootstrap" in str(exc))
            or type(exc).__name__ == "NoBrokersAvailable"):
        return None
    who = settings.security_protocol
    if settings.security_protocol.startswith("SASL"):
        who += f", {settings.sasl_mechanism} as user {settings.username!r}"
    last = _last_connection_error[0] if _last_connection_error else ""
    if "Handshake failed" in last:
        reason = re.sub(r"\s*\(backoff [^)]*\)$", "", last.split("Handshake failed:", 1)[1])
        cause = (f"the TLS handshake failed ({reason.strip()}); check "
                 "CLOSEDLOOP_KAFKA_CA_FILE and the broker address")
    elif "SaslAuthenticationFailed" in last or (
            "disconnected" in last and settings.security_protocol.startswith("SASL")):
        # The broker rejects bad credentials and closes the connection; kafka-python sees the
        # rejection or, when the close wins the race, just the disconnection.
        cause = ("the broker closed the connection during authentication: the user name or "
                 "password is wrong, or the mechanism is not enabled for this user "
                 "(CLOSEDLOOP_KAFKA_USERNAME, CLOSEDLOOP_KAFKA_PASSWORD_FILE, "
                 "CLOSEDLOOP_KAFKA_SASL_MECHANISM)")
    elif "refused" in last.lower():
        cause = "connection refused: is the broker running at that address?"
    else:
        cause = f"last error: {last}" if last else "no broker answered"
    message = (f"cannot connect to Kafka at {settings.bootstrap} ({who}) within "
               f"{settings.connect_timeout:g} s: {cause}")
    try:
        secret = settings.password()
    except KafkaSetupError:
        secret = None
    return message.replace(secret, "[redacted]") if secret else message
