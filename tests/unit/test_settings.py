"""Kafka settings: the password only from its file, and connection failures explained in one
line that never holds the password."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from kafka.errors import KafkaTimeoutError

from closedloop.streams.kafka.settings import (
    KafkaSettings,
    KafkaSetupError,
    connection_failure,
    watch_connections,
)


def sasl(tmp_path: Path, password: str = "s3cret-pw") -> KafkaSettings:
    path = tmp_path / "password"
    path.write_text(password + "\n")
    return KafkaSettings(bootstrap="broker:9094", security_protocol="SASL_SSL",
                         username="app", password_file=str(path), ca_file="/ca.pem")


def test_kafka_python_config_reads_the_password_file(tmp_path: Path) -> None:
    config = sasl(tmp_path).kafka_python()
    assert config["security_protocol"] == "SASL_SSL"
    assert config["sasl_mechanism"] == "SCRAM-SHA-512"
    assert config["sasl_plain_username"] == "app"
    assert config["sasl_plain_password"] == "s3cret-pw"
    assert config["ssl_cafile"] == "/ca.pem"


def test_plaintext_needs_no_password() -> None:
    assert KafkaSettings().password() is None
    assert "sasl_plain_password" not in KafkaSettings().kafka_python()


@pytest.mark.parametrize("problem", ["no user", "no file", "missing file", "empty file"])
def test_unusable_sasl_settings_are_refused_clearly(tmp_path: Path, problem: str) -> None:
    settings = sasl(tmp_path, "" if problem == "empty file" else "pw")
    if problem == "no user":
        settings = KafkaSettings(security_protocol="SASL_SSL", password_file=settings.password_file)
    elif problem == "no file":
        settings = KafkaSettings(security_protocol="SASL_SSL", username="app")
    elif problem == "missing file":
        settings = KafkaSettings(security_protocol="SASL_SSL", username="app",
                                 password_file=str(tmp_path / "absent"))
    with pytest.raises(KafkaSetupError, match="CLOSEDLOOP_KAFKA_"):
        settings.kafka_python()


def log_failure(message: str) -> None:
    watch_connections()
    logging.getLogger("kafka.net.manager").warning(message)


def test_a_rejected_password_is_named_and_never_shown(tmp_path: Path) -> None:
    settings = sasl(tmp_path)
    log_failure("Bootstrap connection to bootstrap-0 failed: KafkaConnectionError: socket "
                "disconnected s3cret-pw (backoff 0.05 secs)")
    message = connection_failure(KafkaTimeoutError("Unable to bootstrap from [...]"), settings)
    assert message is not None
    assert message.startswith("cannot connect to Kafka at broker:9094 (SASL_SSL, "
                              "SCRAM-SHA-512 as user 'app') within 30 s")
    assert "user name or password is wrong" in message
    assert "s3cret-pw" not in message


def test_an_untrusted_certificate_points_at_the_ca_file(tmp_path: Path) -> None:
    log_failure("Bootstrap connection to bootstrap-0 failed: KafkaConnectionError: Handshake "
                "failed: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed "
                "(backoff 1.00 secs)")
    message = connection_failure(KafkaTimeoutError("Unable to bootstrap"), sasl(tmp_path))
    assert message is not None and "CLOSEDLOOP_KAFKA_CA_FILE" in message
    assert "CERTIFICATE_VERIFY_FAILED" in message and "backoff" not in message


def test_other_errors_are_left_alone(tmp_path: Path) -> None:
    assert connection_failure(ValueError("x"), sasl(tmp_path)) is None
    assert connection_failure(KafkaTimeoutError("flush timed out"), sasl(tmp_path)) is None


@pytest.mark.parametrize(("variable", "value", "says"), [
    ("CLOSEDLOOP_PARTITIONS", "abc", "CLOSEDLOOP_PARTITIONS='abc' is not a number"),
    ("CLOSEDLOOP_REPLICATION", "0", "CLOSEDLOOP_REPLICATION='0' must be 1 or more"),
    ("CLOSEDLOOP_KAFKA_CONNECT_TIMEOUT", "nan", "must be 0.001 or more"),
    ("CLOSEDLOOP_KAFKA_SECURITY_PROTOCOL", "SASL-SSL", "is not one of PLAINTEXT, SSL"),
    ("CLOSEDLOOP_TOPIC_PREFIX", "bad prefix", "topic prefix 'bad prefix'"),
    ("CLOSEDLOOP_TOPIC_PREFIX", "", "topic prefix ''"),
])
def test_a_setting_that_cannot_work_is_one_line_naming_its_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, says: str
) -> None:
    # a new user's typos used to end in a traceback, or (the protocol, an empty prefix) in
    # a plain connection and topics named ".sampling.v1"
    monkeypatch.setenv(variable, value)
    with pytest.raises(KafkaSetupError) as refused:
        KafkaSettings.from_env()
    assert says in str(refused.value) and "\n" not in str(refused.value)


def test_a_prefix_option_is_checked_as_the_variable_is(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLOSEDLOOP_TOPIC_PREFIX", raising=False)
    assert KafkaSettings.from_env(prefix="city-a.v2").prefix == "city-a.v2"
    with pytest.raises(KafkaSetupError):
        KafkaSettings.from_env(prefix="city/a")
