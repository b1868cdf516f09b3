"""The Alembic scripts create exactly the models' schema, and go down and up again cleanly."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from closedloop.schemas.ids import spell_digit_runs
from closedloop.streams.cli import main
from closedloop.streams.ledger.engine import open_engine
from closedloop.streams.ledger.migrate import current_revision, head_revision, upgrade
from closedloop.streams.ledger.models import Base

TABLES = {"alert", "daily_report", "person_state", "dead_letter", "processed_event",
          "ledger_secret"}


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


def test_0006_replaces_plain_digests_already_stored(sqlite_url: str) -> None:
    # given a ledger at 0005 holding a file line's dead letter with a plain digest
    upgrade(sqlite_url, "0005")
    engine = open_engine(sqlite_url)
    plain = hashlib.sha256(b'{"pool_size": 13912345678}').hexdigest()[:24]
    try:
        with engine.begin() as connection:
            connection.execute(text(
                "INSERT INTO dead_letter (origin, line, reason, message, received_at) VALUES "
                "(:origin, 7, 'invalid_value', 'pool_size', '2022-09-08 00:00:00'), "
                "('closedloop.sampling.v1/0/5', NULL, 'not_json', 'x', '2022-09-08 00:00:00')"),
                {"origin": f"line 7 #{spell_digit_runs(plain)}"})
        # when it is upgraded
        upgrade(sqlite_url)
        with engine.connect() as connection:
            origins = sorted(connection.execute(text("SELECT origin FROM dead_letter")).scalars())
            key = connection.execute(text("SELECT secret FROM ledger_secret")).scalar_one()
    finally:
        engine.dispose()
    # then no plain digest is left: it is keyed with the ledger's new secret
    keyed = hmac.new(key, spell_digit_runs(plain).encode(), hashlib.sha256).hexdigest()[:24]
    assert origins == ["closedloop.sampling.v1/0/5", f"line 7 #{spell_digit_runs(keyed)}"]


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
