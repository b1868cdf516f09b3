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
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["KafkaSettings"]


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

    @classmethod
    def from_env(cls, **overrides: Any) -> KafkaSettings:
        env = os.environ
        values: dict[str, Any] = {
            "bootstrap": env.get("CLOSEDLOOP_KAFKA", "127.0.0.1:9092"),
            "prefix": env.get("CLOSEDLOOP_TOPIC_PREFIX", "closedloop"),
            "partitions": int(env.get("CLOSEDLOOP_PARTITIONS", "12")),
            "replication": int(env.get("CLOSEDLOOP_REPLICATION", "1")),
            "security_protocol": env.get("CLOSEDLOOP_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT"),
            "sasl_mechanism": env.get("CLOSEDLOOP_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512"),
            "username": env.get("CLOSEDLOOP_KAFKA_USERNAME"),
            "password_file": env.get("CLOSEDLOOP_KAFKA_PASSWORD_FILE"),
            "ca_file": env.get("CLOSEDLOOP_KAFKA_CA_FILE"),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def password(self) -> str | None:
        if self.password_file is None:
            return None
        return Path(self.password_file).read_text("utf-8").strip()

    def kafka_python(self) -> dict[str, Any]:
        """Keyword arguments for kafka-python's clients."""
        config: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap.split(","),
            "security_protocol": self.security_protocol,
        }
        if self.security_protocol.startswith("SASL"):
            config.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.username,
                sasl_plain_password=self.password(),
            )
        if self.ca_file:
            config["ssl_cafile"] = self.ca_file
        return config
