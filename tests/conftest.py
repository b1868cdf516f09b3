"""Fixtures for the real services the integration tests use: Kafka and PostgreSQL, and the
ledgers the ledger and console tests run on (SQLite, and PostgreSQL in a private schema).

The services' fixtures are session-scoped and only check that the service answers; each test
makes its own topics and tables with unique names. When a service is missing, a developer's
run skips the tests that need it (with how to start it) but a CI run (env ``CI`` non-empty)
fails them, so a broken CI setup can never pass by skipping.

Every test under ``tests/integration`` is marked ``integration`` automatically
(``pytest -m "not integration"`` runs the rest). Subfolders may add their own conftest.py.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest
from sqlalchemy import Engine, create_engine, make_url, text

from closedloop.streams.ledger.engine import open_engine
from closedloop.streams.ledger.migrate import upgrade

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


# Ledgers for the tests: a fresh SQLite file, and a private schema on the real PostgreSQL.
# The PostgreSQL database is shared with other tests and engineers, so each test gets its own
# schema (via ``search_path``) and drops it afterwards.
@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.db'}"


@pytest.fixture
def pg_schema_url(pg_url: str) -> Iterator[str]:
    """A URL on the test database whose tables all land in a new, private schema."""
    schema = f"ledger_{uuid.uuid4().hex[:12]}"
    admin = create_engine(pg_url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(pg_url).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def ledger_url(request: pytest.FixtureRequest) -> str:
    """A migrated ledger on each supported database."""
    name = "sqlite_url" if request.param == "sqlite" else "pg_schema_url"
    url: str = request.getfixturevalue(name)
    upgrade(url)
    return url


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[Engine]:
    engine = open_engine(ledger_url)
    yield engine
    engine.dispose()


def pytest_configure(config: pytest.Config) -> None:
    # kafka-python loads its protocol schemas with importlib.resources calls deprecated since
    # Python 3.11: hundreds of warnings per run that say nothing about this project.
    for message in ("read_text is deprecated", "open_text is deprecated"):
        config.addinivalue_line("filterwarnings", f"ignore:{message}:DeprecationWarning")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(_INTEGRATION_DIR):
            item.add_marker(pytest.mark.integration)
