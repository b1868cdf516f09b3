"""Raw identifiers in a whole input document (CONTRACT.md §2, v1.1): find them, redact them.

The rule covers every string of an event and of its envelope, keys included, wherever it is
nested, but not JSON numbers (a latitude ``31.12345678901`` is fine). Every input line pays
for the search, so it is layered: a cheap filter over the raw bytes lets almost every line
through at once; only a line it cannot clear is parsed and its strings searched one by one.
"""

from __future__ import annotations

import base64
import json
import re
import unicodedata
from typing import Any, Final, Literal

import orjson

from closedloop.schemas.dupkeys import first_repeated_key
from closedloop.schemas.identifiers import (
    REDACTED,
    TOKEN,
    TOKEN_BYTES,
    contains_raw,
    loggable,
    redact_bytes,
    redact_text,
)

__all__ = ["find_raw", "find_raw_in", "plain_ascii", "redact_original"]

# Digits to "0", so that one substring search finds any run of 11 (every token holds one).
# Measured about 10x faster than a compiled regex such as rb"[0-9]{11}", which restarts at
# every digit of the timestamps; a one-byte search for the backslash of an escape is a
# memchr, where b"\\u" costs more than the translation.
_ZEROS: Final = bytes.maketrans(b"0123456789", b"0" * 10)
_RUN: Final = b"0" * 11
# ``bytes in bytes`` first tries the needle as an int, raising and discarding a formatted
# TypeError: ~300 ns a test, more than the scan. An int needle (one byte) or ``find`` skips it.
_BACKSLASH: Final = ord("\\")
# Possessive (Python 3.11+): with a plain ``*`` over an alternation the regex engine keeps a
# backtracking frame per character or escape, about 130 bytes each, so one 1 MB string took
# over 100 MiB (found by the hostile-input fuzz). A string literal never needs to backtrack.
_STRING_LITERAL = re.compile(r'"(?:[^"\\]++|\\.)*+"', re.DOTALL)


def _may_hold(data: bytes) -> bool:
    """False only when ``data`` cannot hold a token: no run of 11 digits and no escape."""
    return _BACKSLASH in data or data.translate(_ZEROS).find(_RUN) >= 0


def plain_ascii(document: bytes) -> bool:
    """True when ``document`` is ASCII with no escape and no run of 11 digits: it holds no
    raw identifier, it is UTF-8, and each JSON string in it is the bytes between its quotes.
    Nearly every input line is; the decoder asks this first and skips the rest for it."""
    return (document.isascii() and _BACKSLASH not in document
            and document.translate(_ZEROS).find(_RUN) < 0)


def find_raw(document: bytes) -> str | None:
    """Where a raw identifier is in a JSON document (or a line that is not one), else None.

    The answer is a path such as ``value.person_id``, safe to log: a key that is itself a raw
    identifier shows as ``[redacted]``.
    """
    if document.isascii():
        if plain_ascii(document):
            return None
        if b"\\u" not in document and TOKEN_BYTES.search(document) is None:
            return None  # unescaped ASCII: strings read as written, so the bytes tell it all
        return _find_in_document(document)
    try:
        text = document.decode("utf-8")
    except UnicodeDecodeError:
        return _find_in_text(document.decode("utf-8", "surrogateescape"))
    normal = unicodedata.normalize("NFKC", text)
    if not _may_hold(normal.encode("utf-8")):
        return None
    if "\\u" not in normal and TOKEN.search(normal) is None:
        return None
    return _find_in_document(document)


def _parse(document: bytes) -> tuple[bool, Any]:
    """(True, value) for JSON; the standard parser takes what orjson refuses but JSON allows,
    such as an escaped lone surrogate."""
    try:
        return True, orjson.loads(document)
    except orjson.JSONDecodeError:
        pass
    try:
        return True, json.loads(document)
    except (ValueError, RecursionError):
        return False, None


def _find_in_document(document: bytes) -> str | None:
    parsed, value = _parse(document)
    if not parsed:
        return _find_in_text(document.decode("utf-8", "surrogateescape"))
    where = find_raw_in(value)
    if where is None and first_repeated_key(document) is not None:
        # The parsed value kept only the last of a repeated key's values; the others are
        # strings of the line too, and the contract's search covers every string.
        text = document.decode("utf-8", "surrogateescape")
        if any(redact_text(m.group(), escapes=True) != m.group()
               for m in _STRING_LITERAL.finditer(text)):
            return "a repeated key's value"
    return where


def _find_in_text(text: str) -> str | None:
    """Not JSON: the whole text counts, its escapes read as what they stand for."""
    return "the line" if redact_text(text, escapes=True) != text else None


def find_raw_in(value: Any, path: tuple[str, ...] = ()) -> str | None:
    """``find_raw`` for a parsed JSON value; iterative, so no nesting depth can break it."""
    stack: list[tuple[tuple[str, ...], Any]] = [(path, value)]
    while stack:
        where, node = stack.pop()
        if isinstance(node, str):
            if contains_raw(node):
                return loggable(".".join(where)) or "value"  # keys are anyone's text
        elif isinstance(node, dict):
            for key, item in node.items():
                key = str(key)
                if contains_raw(key):
                    return loggable(".".join((*where, REDACTED))) + " (a key)"
                stack.append(((*where, key), item))
        elif isinstance(node, list):
            stack.extend(((*where, str(i)), item) for i, item in enumerate(node))
    return None


def redact_original(original: bytes) -> tuple[str, Literal["utf-8", "base64"]]:
    """The dead-letter copy of ``original``: every token ``[redacted]``, the rest as written.

    A JSON document has only its strings (and keys) searched, each read through its escapes;
    anything else is searched whole. Bytes that are not UTF-8 are redacted where they decode
    and kept as base64. If a token somehow survived, the copy is withheld altogether.
    """
    try:
        text = original.decode("utf-8")
    except UnicodeDecodeError:
        cleaned = redact_bytes(original)
        if find_raw(cleaned) is not None:
            cleaned = REDACTED.encode("ascii")
        return base64.b64encode(cleaned).decode("ascii"), "base64"
    if find_raw(original) is None:
        return text, "utf-8"
    if _parse(original)[0]:
        text = _STRING_LITERAL.sub(lambda m: redact_text(m.group(), escapes=True), text)
    else:
        text = redact_text(text, escapes=True)
    if find_raw(text.encode("utf-8")) is not None:
        return REDACTED, "utf-8"
    return text, "utf-8"
