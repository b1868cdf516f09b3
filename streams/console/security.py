"""The console's security rules as pure functions: password hashes, tokens, signed cookie
values, CSRF tokens, and how many failed sign-ins are too many.

- Passwords are hashed with scrypt (standard library, memory-hard: n=2**14, r=8, p=1, 16 MiB
  and tens of milliseconds a try) with a 16-byte random salt, stored as
  ``scrypt$n$r$p$salt$hash`` so the cost can be raised later without breaking old hashes.
- A session is a random 32-byte token in a cookie whose value is signed (HMAC-SHA256 with the
  server's secret); the ledger keeps only the token's SHA-256.
- A form's CSRF token is the HMAC of the session token (or, before signing in, of a random
  token in its own signed cookie): a page of another site can neither read it nor make it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

__all__ = [
    "ACCOUNT_FAILURES",
    "ADDRESS_FAILURES",
    "FAILURE_WINDOW",
    "csrf_token",
    "hash_password",
    "locked_until",
    "new_token",
    "same",
    "sign",
    "token_hash",
    "unsign",
    "verify_password",
]

_N, _R, _P = 2**14, 8, 1
_MAXMEM: Final = 64 * 1024 * 1024

FAILURE_WINDOW: Final = timedelta(minutes=15)
ACCOUNT_FAILURES: Final = 5
"""Failed sign-ins of one account within the window after which it must wait."""
ADDRESS_FAILURES: Final = 20
"""Failed sign-ins from one client address within the window (any accounts) after which it
must wait: guessing many accounts' passwords from one place is slowed too."""

MIN_PASSWORD: Final = 10


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """A slow salted hash of ``password`` to store (never the password)."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, maxmem=_MAXMEM,
                            dklen=32)
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` is the one ``stored`` was made from (in constant time)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        again = hashlib.scrypt(password.encode(), salt=_unb64(salt), n=int(n), r=int(r),
                               p=int(p), maxmem=_MAXMEM, dklen=32)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(again, _unb64(digest))


DUMMY_HASH: Final = "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA$" + "A" * 43
"""Checked against when the account does not exist, so an unknown name takes as long as a
wrong password (the time of an answer does not tell which names exist)."""


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """What the ledger keeps of a session token."""
    return hashlib.sha256(token.encode()).hexdigest()


def _mac(secret: bytes, purpose: str, value: str) -> str:
    return _b64(hmac.new(secret, f"{purpose}:{value}".encode(), hashlib.sha256).digest())


def sign(secret: bytes, purpose: str, value: str) -> str:
    """``value`` with its signature, for a cookie (``purpose`` keeps one cookie's value from
    being replayed as another's)."""
    return f"{value}.{_mac(secret, purpose, value)}"


def unsign(secret: bytes, purpose: str, signed: str | None) -> str | None:
    """The value of a cookie ``sign`` made, or None if it is missing or was tampered with."""
    if not signed or "." not in signed:
        return None
    value, _, mac = signed.rpartition(".")
    return value if hmac.compare_digest(mac, _mac(secret, purpose, value)) else None


def same(given: str, expected: str) -> bool:
    """Whether a token sent back is the one expected (in constant time; empty never is)."""
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


def csrf_token(secret: bytes, token: str) -> str:
    """The CSRF token of the forms of the browser holding ``token`` (its session token, or
    before sign-in its pre-session token)."""
    return _mac(secret, "csrf", token)


@dataclass(frozen=True, slots=True)
class Failures:
    """Failed sign-ins within :data:`FAILURE_WINDOW`: how many, and the oldest's instant."""

    count: int
    oldest: datetime | None


def locked_until(account: Failures, address: Failures) -> datetime | None:
    """Until when a sign-in is refused without checking the password, or None: an account
    with :data:`ACCOUNT_FAILURES` failures in the window, or an address with
    :data:`ADDRESS_FAILURES`, waits until its oldest failure leaves the window."""
    until = [failures.oldest + FAILURE_WINDOW
             for failures, most in ((account, ACCOUNT_FAILURES), (address, ADDRESS_FAILURES))
             if failures.count >= most and failures.oldest is not None]
    return max(until) if until else None
