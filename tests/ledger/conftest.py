"""Ledgers for the tests: a fresh SQLite file, and a private schema on the real PostgreSQL.

The PostgreSQL database is shared with other tests and engineers, so each test gets its own
schema (via ``search_path``) and drops it afterwards. Tests that need the broker or the server
are marked ``integration``; the session fixtures fail them under CI when a service is missing.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, make_url, text

from closedloop.streams.ledger.engine import open_engine
from closedloop.streams.ledger.migrate import upgrade


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
