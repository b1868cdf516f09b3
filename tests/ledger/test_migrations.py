"""The Alembic scripts create exactly the models' schema, and go down and up again cleanly."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from closedloop.streams.cli import main
from closedloop.streams.ledger.engine import open_engine
from closedloop.streams.ledger.migrate import current_revision, head_revision
from closedloop.streams.ledger.models import Base

TABLES = {"alert", "daily_report", "person_state", "dead_letter", "processed_event"}


def _check_round_trip(url: str) -> None:
    engine = open_engine(url)
    try:
        assert main(["db", "upgrade", "--url", url]) == 0
        assert current_revision(engine) == head_revision()
        assert set(inspect(engine).get_table_names()) >= TABLES
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []

        assert main(["db", "downgrade", "base", "--url", url]) == 0
        assert current_revision(engine) is None
        assert set(inspect(engine).get_table_names()) & TABLES == set()

        assert main(["db", "upgrade", "--url", url]) == 0  # and up again after a full downgrade
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_sqlite_up_and_down(sqlite_url: str) -> None:
    _check_round_trip(sqlite_url)


@pytest.mark.integration
def test_postgresql_up_and_down(pg_schema_url: str) -> None:
    _check_round_trip(pg_schema_url)


def test_default_url_comes_from_the_environment(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CLOSEDLOOP_DATABASE_URL", sqlite_url)
    assert main(["db", "upgrade"]) == 0
    assert main(["db", "current"]) == 0
    assert f"revision {head_revision()}" in capsys.readouterr().out


def test_read_commands_refuse_a_missing_or_old_ledger(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["alerts", "list", "--url", sqlite_url]) == 1
    assert "no ledger at" in capsys.readouterr().err
    assert main(["db", "upgrade", "--url", sqlite_url]) == 0
    assert main(["db", "downgrade", "base", "--url", sqlite_url]) == 0
    assert main(["report", "daily", "--date", "2022-09-06", "--url", sqlite_url]) == 1
    assert "closedloop db upgrade" in capsys.readouterr().err


def test_db_says_the_revision_reached_and_refuses_an_unknown_one(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["db", "upgrade", "--url", sqlite_url]) == 0
    capsys.readouterr()
    # a relative step is told as where it went (it printed "is at -1")
    assert main(["db", "downgrade", "-1", "--url", sqlite_url]) == 0
    engine = open_engine(sqlite_url)
    try:
        reached = current_revision(engine)
    finally:
        engine.dispose()
    assert reached not in (None, head_revision())
    assert capsys.readouterr().err.endswith(f"is at revision {reached}\n")
    # a revision that does not exist is bad usage
    assert main(["db", "upgrade", "nosuch", "--url", sqlite_url]) == 2
    assert "Can't locate revision identified by 'nosuch'" in capsys.readouterr().err
