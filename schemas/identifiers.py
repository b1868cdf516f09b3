"""Raw personal identifiers (CONTRACT.md §2): detection and redaction.

An 18-character PRC resident ID (``\\d{17}[\\dXx]``) or an 11-digit mobile number (``1\\d{10}``)
must never reach a topic, a log, a metric label or the ledger.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["REDACTED", "contains_raw", "looks_raw", "redact_bytes", "redact_text"]

REDACTED: Final = "[redacted]"
_RAW_WHOLE = re.compile(r"\d{17}[\dXx]|1\d{10}")
# Inside free text, any such digit run not glued to other digits is scrubbed.
_RAW_INSIDE = re.compile(r"(?<!\d)(?:\d{17}[\dXx]|1\d{10})(?![\dXx])")
_RAW_INSIDE_BYTES = re.compile(rb"(?<![0-9])(?:[0-9]{17}[0-9Xx]|1[0-9]{10})(?![0-9Xx])")


def looks_raw(value: str) -> bool:
    """True when the whole value is a resident ID or a mobile number."""
    return len(value) in (11, 18) and _RAW_WHOLE.fullmatch(value) is not None


def contains_raw(text: str) -> bool:
    """True when free text holds a raw-identifier-shaped token anywhere."""
    return _RAW_INSIDE.search(text) is not None


def redact_text(text: str) -> str:
    """Replace every raw-identifier-shaped token in ``text`` by ``[redacted]``."""
    return _RAW_INSIDE.sub(REDACTED, text)


def redact_bytes(data: bytes) -> bytes:
    """``redact_text`` for bytes that are not UTF-8 (kept as base64, where a scan can't see)."""
    return _RAW_INSIDE_BYTES.sub(REDACTED.encode("ascii"), data)
