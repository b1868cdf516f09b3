"""Fixtures for the real services the integration tests use: Kafka and PostgreSQL.

Both are session-scoped and only check that the service answers; each test makes its own
topics and tables with unique names. When a service is missing, a developer's run skips the
tests that need it (with how to start it) but a CI run (env ``CI`` non-empty) fails them, so a
broken CI setup can never pass by skipping.

Every test under ``tests/integration`` is marked ``integration`` automatically
(``pytest -m "not integration"`` runs the rest). Subfolders may add their own conftest.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

DEFAULT_KAFKA = "127.0.0.1:9092"
DEFAULT_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:55432/closedloop_test"
CHECK_TIMEOUT_S = 5

_INTEGRATION_DIR = Path(__file__).parent / "integration"


def service_missing(service: str, env: str, target: str, error: BaseException) -> NoReturn:
    """Fail under CI, skip elsewhere, saying what was tried and how to get the service."""
    detail = (str(error).splitlines() or [""])[0]
    if not detail.startswith(type(error).__name__):
        detail = f"{type(error).__name__}: {detail}"
    problem = f"{service} is not reachable at {target} ({detail})"
    if os.environ.get("CI"):
        pytest.fail(
            f"{problem}. CI must provide it: .ci/run starts it with `make services`; "
            f"set {env} if it runs elsewhere.",
            pytrace=False,
        )
    pytest.skip(f"{problem}. Start it with `make services` (or set {env}).")


def new_kafka_admin(bootstrap: str, timeout_s: float = CHECK_TIMEOUT_S) -> Any:
    """A KafkaAdminClient that gives up on an absent broker after ``timeout_s``."""
    from kafka import KafkaAdminClient

    config: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "request_timeout_ms": int(timeout_s * 1000),
    }
    # kafka-python 3 waits up to 30 s for a first broker by default; 2.x has no such option.
    if "bootstrap_timeout_ms" in KafkaAdminClient.DEFAULT_CONFIG:
        config["bootstrap_timeout_ms"] = int(timeout_s * 1000)
    return KafkaAdminClient(**config)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """Bootstrap servers of a Kafka broker that answers (env CLOSEDLOOP_KAFKA)."""
    bootstrap = os.environ.get("CLOSEDLOOP_KAFKA") or DEFAULT_KAFKA
    try:
        admin = new_kafka_admin(bootstrap)
        try:
            admin.list_topics()
        finally:
            admin.close()
    except Exception as exc:
        service_missing("Kafka", "CLOSEDLOOP_KAFKA", bootstrap, exc)
    return bootstrap


@pytest.fixture(scope="session")
def kafka_admin(kafka_bootstrap: str) -> Iterator[Any]:
    """A kafka-python KafkaAdminClient on that broker, shared by the session."""
    admin = new_kafka_admin(kafka_bootstrap)
    yield admin
    admin.close()


@pytest.fixture(scope="session")
def pg_url() -> str:
    """SQLAlchemy URL of a PostgreSQL database that accepts connections
    (env CLOSEDLOOP_TEST_DATABASE_URL)."""
    from sqlalchemy import create_engine, text

    url = os.environ.get("CLOSEDLOOP_TEST_DATABASE_URL") or DEFAULT_DATABASE_URL
    try:
        engine = create_engine(url, connect_args={"connect_timeout": CHECK_TIMEOUT_S})
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        finally:
            engine.dispose()
    except Exception as exc:
        service_missing("PostgreSQL", "CLOSEDLOOP_TEST_DATABASE_URL", url, exc)
    return url


def pytest_configure(config: pytest.Config) -> None:
    # kafka-python loads its protocol schemas with importlib.resources calls deprecated since
    # Python 3.11: hundreds of warnings per run that say nothing about this project.
    for text in ("read_text is deprecated", "open_text is deprecated"):
        config.addinivalue_line("filterwarnings", f"ignore:{text}:DeprecationWarning")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(_INTEGRATION_DIR):
            item.add_marker(pytest.mark.integration)
