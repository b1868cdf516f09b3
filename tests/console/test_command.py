"""``closedloop console user add|list|disable`` and ``serve``'s options, as an administrator
runs them."""

from __future__ import annotations

import io
import sys

import console_city as sample
import pytest

from closedloop.streams.cli import build_parser, main
from closedloop.streams.console import accounts
from closedloop.streams.ledger.engine import open_engine
from closedloop.streams.ledger.migrate import upgrade


def _stdin(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(text))


def test_user_add_reads_the_password_from_stdin_and_it_signs_in(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    upgrade(sqlite_url)
    _stdin(monkeypatch, "a-password-of-length\n")
    assert main(["console", "user", "add", "op-017", "--role", "operator", "--districts",
                 "pudong,xuhui", "--ledger", sqlite_url]) == 0
    assert "account op-017 added: operator, pudong, xuhui" in capsys.readouterr().out
    engine = open_engine(sqlite_url)
    try:
        session = accounts.sign_in(engine, "op-017", "a-password-of-length", "127.0.0.1")
        assert session.caller.districts == frozenset({"pudong", "xuhui"})
    finally:
        engine.dispose()
    assert main(["console", "user", "list", "--ledger", sqlite_url]) == 0
    listed = capsys.readouterr().out
    assert "op-017" in listed and "pudong,xuhui" in listed and "a-password" not in listed
    assert main(["console", "user", "disable", "op-017", "--ledger", sqlite_url]) == 0
    assert main(["console", "user", "list", "--ledger", sqlite_url]) == 0
    assert "op-017  operator  pudong,xuhui" in capsys.readouterr().out


def test_user_add_refuses_what_will_not_do_in_one_line(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    upgrade(sqlite_url)
    engine = open_engine(sqlite_url)
    sample.fill(engine)  # a ledger whose districts are known
    engine.dispose()
    cases = [
        (["pd-2", "--role", "operator", "--districts", "浦东"], "long enough password",
         "no district '浦东' in the ledger; known: 浦东新区"),
        (["pd-2", "--role", "operator"], "short", "at least 10 characters"),
        (["13800138000", "--role", "viewer"], "long enough password", "operator id"),
        (["city-op", "--role", "viewer"], "long enough password", "already an account"),
    ]
    for arguments, password, said in cases:
        _stdin(monkeypatch, password + "\n")
        assert main(["console", "user", "add", *arguments, "--ledger", sqlite_url]) == 2
        err = capsys.readouterr().err
        assert said in err and err.count("\n") == 1, err
        assert "13800138000" not in err
    with pytest.raises(SystemExit):  # there is no option to give a password in an argument
        main(["console", "user", "add", "x-1", "--role", "viewer", "--password", "p"])


def test_serve_binds_this_machine_only_unless_told(capsys: pytest.CaptureFixture[str]
                                                  ) -> None:
    args = build_parser().parse_args(["console", "serve"])
    assert (args.host, args.port, args.secure_cookies) == ("127.0.0.1", 8080, False)
    with pytest.raises(SystemExit):
        main(["console", "serve", "--help"])
    help_text = capsys.readouterr().out
    for said in ("reverse_proxy 127.0.0.1:8080", "proxy_pass http://127.0.0.1:8080",
                 "--secure-cookies", "--forwarded-allow-ips", "CLOSEDLOOP_CONSOLE_SECRET"):
        assert said in help_text


def test_serve_refuses_a_missing_ledger_in_one_line(
    tmp_path: object, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["console", "serve", "--ledger", f"sqlite:///{tmp_path}/none.db"]) == 1
    assert "no ledger at" in capsys.readouterr().err
