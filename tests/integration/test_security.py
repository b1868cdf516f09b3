"""SASL/SCRAM-SHA-512 over TLS, end to end, on a second broker that speaks nothing else.

The session starts ``deploy/kafka/start-secure.sh`` with its CA, keystore and passwords in
this session's tmp dir and on free ports, and stops it afterwards. The clients connect as the
broker's least-privilege app user (ACLs on topics and groups named ``sec*`` only), with the
password in a file and the CA in a file, as a deployment does:

- ``produce`` + ``clock --until`` + ``worker --clock event`` publish exactly replay's alerts;
- ``alerts tail --idle-exit`` reads them;
- a wrong password fails fast with one clear line, exit 1, no traceback, no password;
- the password is on no process's command line and not in the worker's log.

Like the other integration tests: skipped on a developer's machine when the broker cannot be
started (with the reason), failed when ``CI`` is set.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from worker_harness import CLOSEDLOOP, Deployment, free_port, replay, simulate

REPO = Path(__file__).resolve().parents[2]
UNTIL = "2022-09-10T12:00:00+08:00"  # past the city's last event, as in test_worker.py
APP_PREFIX = "sec"  # the app user's ACLs cover topics and groups starting with this
START_TIMEOUT_S = 150


@dataclass(frozen=True)
class SecureBroker:
    bootstrap: str
    home: Path
    env: dict[str, str]  # start-secure.sh's settings, for stop-secure.sh

    @property
    def ca_file(self) -> Path:
        return self.home / "ca.pem"

    @property
    def password_file(self) -> Path:
        return self.home / "app.password"

    @property
    def password(self) -> str:
        return self.password_file.read_text().strip()

    def client_env(self, password_file: Path | None = None) -> dict[str, str]:
        return {
            "CLOSEDLOOP_KAFKA": self.bootstrap,
            "CLOSEDLOOP_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "CLOSEDLOOP_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "CLOSEDLOOP_KAFKA_USERNAME": "closedloop",
            "CLOSEDLOOP_KAFKA_PASSWORD_FILE": str(password_file or self.password_file),
            "CLOSEDLOOP_KAFKA_CA_FILE": str(self.ca_file),
            "CLOSEDLOOP_KAFKA_CONNECT_TIMEOUT": "10",
        }


@pytest.fixture(scope="session")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    home = tmp_path_factory.mktemp("secure-kafka")
    port, controller_port = free_port(), free_port()
    env = {
        **os.environ,
        "CLOSEDLOOP_SECURE_KAFKA_DIR": str(home),
        "CLOSEDLOOP_SECURE_KAFKA_PORT": str(port),
        "CLOSEDLOOP_SECURE_KAFKA_CONTROLLER_PORT": str(controller_port),
        "CLOSEDLOOP_SECURE_KAFKA_APP_PREFIX": APP_PREFIX,
        "CLOSEDLOOP_PYTHON": sys.executable,
    }
    broker = SecureBroker(f"127.0.0.1:{port}", home, env)
    try:
        started = subprocess.run(
            ["bash", str(REPO / "deploy/kafka/start-secure.sh")], env=env,
            capture_output=True, text=True, timeout=START_TIMEOUT_S,
        )
        problem = None if started.returncode == 0 else (
            f"exit {started.returncode}:\n{started.stdout[-1500:]}{started.stderr[-3000:]}")
    except subprocess.TimeoutExpired:
        problem = f"no answer within {START_TIMEOUT_S} s"
    if problem is not None:
        subprocess.run(["bash", str(REPO / "deploy/kafka/stop-secure.sh")], env=env,
                       capture_output=True, timeout=60)
        message = f"deploy/kafka/start-secure.sh could not start the SASL_SSL broker: {problem}"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message + "\n(needs Java 17+, openssl and the jars of deploy/kafka/fetch.sh)")
    assert f"CA: {broker.ca_file}" in started.stdout
    yield broker
    subprocess.run(["bash", str(REPO / "deploy/kafka/stop-secure.sh")], env=env,
                   capture_output=True, timeout=60)


class SecureDeployment(Deployment):
    """The worker harness with the security settings in the environment of every command,
    and its topic reader connecting as the app user too."""

    broker: SecureBroker

    @property
    def env(self) -> dict[str, str]:
        return {**super().env, **self.broker.client_env()}

    def consumer_options(self) -> dict[str, Any]:
        from closedloop.streams.kafka.settings import KafkaSettings

        settings = KafkaSettings(
            bootstrap=self.bootstrap, security_protocol="SASL_SSL",
            username="closedloop", password_file=str(self.broker.password_file),
            ca_file=str(self.broker.ca_file), connect_timeout=10,
        )
        return settings.kafka_python()


@dataclass
class Pipeline:
    deployment: SecureDeployment
    worker: subprocess.Popen[bytes]
    expected: list[dict[str, Any]]
    published: list[dict[str, Any]]


@pytest.fixture(scope="module")
def pipeline(secure_broker: SecureBroker, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[Pipeline]:
    """A small city through produce + worker over SASL_SSL, and replay's alerts for it."""
    workdir = tmp_path_factory.mktemp("secure-city")
    city = workdir / "city.jsonl"
    # 200 people, seed 5: five alert kinds, small enough to keep this transport test quick.
    simulate(city, people=200, days=2, seed=5)
    expected, _ = replay(city, UNTIL, workdir)
    assert len({a["kind"] for a in expected}) >= 4  # a city that exercises several loops
    deployment = SecureDeployment(secure_broker.bootstrap, workdir,
                                  prefix=f"{APP_PREFIX}{uuid.uuid4().hex[:10]}")
    deployment.broker = secure_broker
    try:
        worker = deployment.start_worker()
        deployment.produce(city, until=UNTIL)
        published = deployment.wait_for("alerts", len(expected), timeout=180)
        yield Pipeline(deployment, worker, expected, published)
    finally:
        deployment.stop_all()


def by_id(alerts: list[dict[str, Any]]) -> dict[str, bytes]:
    return {a["alert_id"]: orjson.dumps(a, option=orjson.OPT_SORT_KEYS) for a in alerts}


def test_worker_over_sasl_ssl_equals_replay(pipeline: Pipeline) -> None:
    got, expected = by_id(pipeline.published), by_id(pipeline.expected)
    missing = [expected[i] for i in sorted(set(expected) - set(got))]
    extra = [got[i] for i in sorted(set(got) - set(expected))]
    differ = [(got[i], expected[i]) for i in sorted(set(got) & set(expected))
              if got[i] != expected[i]]
    assert (missing, extra, differ) == ([], [], []), (
        f"{len(got)} alerts published, {len(expected)} from replay; missing {missing}; "
        f"not raised by replay {extra}; differing (worker, replay) {differ}")


def test_alerts_tail_over_sasl_ssl(pipeline: Pipeline) -> None:
    tail = subprocess.run(
        [*CLOSEDLOOP, "alerts", "tail", "--from-beginning", "--idle-exit", "3", "--json"],
        env=pipeline.deployment.env, capture_output=True, timeout=60,
    )
    assert tail.returncode == 0, tail.stderr.decode()[-2000:]
    tailed = [orjson.loads(line) for line in tail.stdout.splitlines()]
    assert by_id(tailed) == by_id(pipeline.expected)


def test_password_is_on_no_command_line_and_not_in_the_worker_log(pipeline: Pipeline) -> None:
    password = pipeline.deployment.broker.password.encode()
    worker = pipeline.worker
    assert worker.poll() is None  # still running: its /proc entry is the live one
    cmdline = Path(f"/proc/{worker.pid}/cmdline").read_bytes()
    assert b"worker" in cmdline and password not in cmdline
    # nor on any other process's command line (the producer, the broker, ...)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                assert password not in (entry / "cmdline").read_bytes(), entry.name
            except OSError:  # gone meanwhile, or not ours to read
                continue
    log = worker.log_path.read_bytes()  # type: ignore[attr-defined]
    assert b"Worker ready" in log and password not in log


def test_a_wrong_password_fails_fast_and_clearly(
    secure_broker: SecureBroker, tmp_path: Path
) -> None:
    wrong = "wrong-" + uuid.uuid4().hex
    bad = tmp_path / "wrong.password"
    bad.write_text(wrong + "\n")
    city = tmp_path / "one.jsonl"
    city.write_text('{"topic": "cohort", "value": {}}\n')
    env = {**os.environ, **secure_broker.client_env(password_file=bad),
           "CLOSEDLOOP_TOPIC_PREFIX": f"{APP_PREFIX}wrong", "CLOSEDLOOP_PARTITIONS": "4"}
    commands = {
        "produce": ["produce", str(city)],
        "alerts tail": ["alerts", "tail", "--idle-exit", "1"],  # named as typed, with its action
        "worker": ["worker", "--clock", "event", "--app-id", f"{APP_PREFIX}wrong-app",
                   "--data-dir", str(tmp_path / "data"), "--web-port", str(free_port())],
    }
    started = time.monotonic()
    running = {name: subprocess.Popen([*CLOSEDLOOP, *args], env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, start_new_session=True)
               for name, args in commands.items()}
    for name, process in running.items():
        try:
            out, err = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            pytest.fail(f"closedloop {name} with a wrong password still runs after 60 s")
        output = (out + err).decode()
        assert process.returncode == 1, output
        assert "Traceback" not in output
        lines = err.decode().strip().splitlines()
        assert len(lines) == 1, output
        assert lines[0].startswith(f"closedloop {name}: cannot connect to Kafka at "
                                   f"{secure_broker.bootstrap}"), output
        assert "user name or password is wrong" in lines[0], output
        assert wrong not in output and secure_broker.password not in output
    assert time.monotonic() - started < 50  # the 10 s connect timeout, not a hang
