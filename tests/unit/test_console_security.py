"""The console's security rules as pure functions: password hashes, signed values, CSRF
tokens and the sign-in limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from closedloop.streams.console import security

SECRET = b"s" * 32
T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def test_a_password_hash_is_salted_slow_and_checks_only_its_password() -> None:
    first = security.hash_password("correct horse battery")
    second = security.hash_password("correct horse battery")
    assert first != second  # a new salt each time
    assert first.startswith("scrypt$16384$8$1$") and "correct" not in first
    assert security.verify_password("correct horse battery", first)
    assert not security.verify_password("correct horse batterY", first)
    assert not security.verify_password("anything", "not a hash")
    assert not security.verify_password("anything", security.DUMMY_HASH)


def test_a_signed_value_is_refused_when_changed_or_signed_for_another_purpose() -> None:
    signed = security.sign(SECRET, "session", "token-1")
    assert security.unsign(SECRET, "session", signed) == "token-1"
    assert security.unsign(SECRET, "pre", signed) is None
    assert security.unsign(b"t" * 32, "session", signed) is None
    assert security.unsign(SECRET, "session", signed.replace("token-1", "token-2")) is None
    assert security.unsign(SECRET, "session", "token-1") is None
    assert security.unsign(SECRET, "session", None) is None


def test_a_csrf_token_belongs_to_one_session_and_an_empty_one_never_matches() -> None:
    token = security.csrf_token(SECRET, "session-a")
    assert security.same(token, security.csrf_token(SECRET, "session-a"))
    assert not security.same(token, security.csrf_token(SECRET, "session-b"))
    assert not security.same("", "")


def test_failures_lock_until_the_oldest_leaves_the_window() -> None:
    few = security.Failures(security.ACCOUNT_FAILURES - 1, T0)
    many = security.Failures(security.ACCOUNT_FAILURES, T0)
    none = security.Failures(0, None)
    assert security.locked_until(few, none) is None
    assert security.locked_until(many, none) == T0 + security.FAILURE_WINDOW
    # an address is judged on its own limit, higher: many accounts tried from one place
    address = security.Failures(security.ADDRESS_FAILURES, T0 + timedelta(minutes=1))
    assert security.locked_until(few, security.Failures(security.ACCOUNT_FAILURES, T0)) is None
    assert security.locked_until(few, address) == T0 + timedelta(minutes=1) + (
        security.FAILURE_WINDOW)
