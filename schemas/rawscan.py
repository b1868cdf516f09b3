"""Raw identifiers in a whole input document (CONTRACT.md §2, v1.2): find them, redact them.

A line is searched as it is written, through its JSON escapes: so every string and key of an
event and its envelope is searched, wherever it is nested, and every number as written
(``"pool_size": 13912345678``, a line that is a bare number; a latitude ``31.12345678901``
holds the run ``12345678901`` and is a raw identifier too: producers round coordinates to a
few decimals). A line that is not UTF-8, or not JSON, is also read as UTF-16 (little- and
big-endian, from its first and its second byte: a byte order mark, or a line cut at the wrong
byte) and as GB18030, and searched in each reading.

Every input line pays for the search, so it is layered: a cheap filter over the raw bytes
(:func:`plain_ascii`) lets almost every line through at once; only a line it cannot clear is
read and searched (``identifiers``); only a line refused as not JSON is read in the other
encodings.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final, Literal

import orjson

from closedloop.schemas.dupkeys import first_repeated_key
from closedloop.schemas.identifiers import (
    COARSE,
    REDACTED,
    RUN,
    contains_raw,
    loggable,
    redact_text,
)

__all__ = ["find_raw", "find_raw_elsewhere", "find_raw_in", "parse_json", "plain_ascii",
           "redact_original"]

# ``bytes in bytes`` first tries the needle as an int, raising and discarding a formatted
# TypeError: ~300 ns a test, more than the scan. An int needle (one byte) or ``find`` skips it.
_BACKSLASH: Final = ord("\\")
_MAX_INT_DIGITS: Final = 4000  # Python refuses to read longer integers from text
_OUT_OF_RANGE: Final = 1 << 64  # stands for such an integer: beyond every field's range


def plain_ascii(document: bytes) -> bool:
    """True when ``document`` is ASCII with no escape and no run of 11 characters that are
    digits, spaces or hyphens (which every token, a 3-4-4 group too, holds): it holds no raw
    identifier as UTF-8, and each JSON string in it is the bytes between its quotes. Nearly
    every input line is; the decoder asks this first and skips the rest for it. (One
    translation and one search: measured about 10x faster than a compiled regex such as
    rb"[0-9]{11}", which restarts at every digit of the timestamps.)"""
    return (document.isascii() and _BACKSLASH not in document
            and document.translate(COARSE).find(RUN) < 0)


@dataclass(frozen=True, slots=True)
class _Encoding:
    """One way of reading a line's bytes as text: ``codec`` from byte ``start`` on, in whole
    code units of ``unit`` bytes; ``errors`` keeps every byte (decoding then encoding gives
    the bytes back), so a reading can be redacted where it is and the rest kept as written."""

    name: str
    codec: str
    errors: str
    start: int = 0
    unit: int = 1

    def span(self, data: bytes) -> tuple[int, int]:
        return self.start, self.start + (len(data) - self.start) // self.unit * self.unit

    def decode(self, data: bytes) -> str:
        start, end = self.span(data)
        return data[start:end].decode(self.codec, self.errors)


_UTF8: Final = _Encoding("UTF-8", "utf-8", "surrogateescape")
_ELSEWHERE: Final = (
    _Encoding("UTF-16LE", "utf-16-le", "surrogatepass", 0, 2),
    _Encoding("UTF-16LE from its second byte", "utf-16-le", "surrogatepass", 1, 2),
    _Encoding("UTF-16BE", "utf-16-be", "surrogatepass", 0, 2),
    _Encoding("UTF-16BE from its second byte", "utf-16-be", "surrogatepass", 1, 2),
    _Encoding("GB18030", "gb18030", "surrogateescape"),
)


def _other_encodings(data: bytes) -> Iterator[_Encoding]:
    for encoding in _ELSEWHERE:
        if encoding.codec == "gb18030" and data.isascii():
            continue  # ASCII reads the same in GB18030 as in UTF-8
        if encoding.span(data)[1] > encoding.start:
            yield encoding


def _holds(encoding: _Encoding, data: bytes) -> bool:
    try:
        text = encoding.decode(data)
    except UnicodeError:  # not reachable with these error handlers; nothing read, nothing held
        return False
    return contains_raw(text, escapes=True)


def find_raw(document: bytes) -> str | None:
    """Where a raw identifier is in a line, else None: in its UTF-8 reading, and, when it is
    not UTF-8, in every other reading too.

    The answer is a path such as ``value.person_id``, safe to log: a key that is itself a raw
    identifier shows as ``[redacted]``.
    """
    try:
        text = document.decode("utf-8")
    except UnicodeDecodeError:
        if _holds(_UTF8, document):
            return "the line"
        return find_raw_elsewhere(document, utf8=False)
    if not contains_raw(text, escapes=True):
        return None
    parsed, value = _parse(document)
    if not parsed:
        return "the line"
    return (find_raw_in(value) or
            ("a repeated key's value" if first_repeated_key(document) else "a number"))


def find_raw_elsewhere(document: bytes, *, utf8: bool = True) -> str | None:
    """Where a raw identifier is in a reading of ``document`` other than UTF-8, else None:
    for a line refused as not JSON (``utf8``: its UTF-8 reading was searched already)."""
    if utf8 and not document.isascii():
        try:
            document.decode("utf-8")
        except UnicodeDecodeError:
            return None  # find_raw read it in every encoding
    for encoding in _other_encodings(document):
        if _holds(encoding, document):
            return f"the line (read as {encoding.name})"
    return None


def _big_int(text: str) -> int:
    """An integer as written, or one standing for it beyond every field's range when it is
    too long for Python to read (such a number in a field nobody knows is ignored)."""
    if len(text) <= _MAX_INT_DIGITS:
        return int(text)
    return -_OUT_OF_RANGE if text.startswith("-") else _OUT_OF_RANGE


def _refuse(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json(document: bytes | str) -> Any:
    """A JSON document parsed by orjson; a number orjson cannot hold (beyond a double) is read
    by the standard library instead, so it counts like any other value (ignored in a field
    nobody knows, out of range in a known one) rather than making the line not JSON.
    Raises ``json.JSONDecodeError`` (orjson's is one) or RecursionError."""
    try:
        return orjson.loads(document)
    except orjson.JSONDecodeError as exc:
        if "infinity" not in exc.msg:
            raise
    return json.loads(document, parse_int=_big_int, parse_constant=_refuse)


def _is_json(document: bytes) -> bool:
    """Does the decoder take ``document`` for JSON (whatever else is wrong with it)?"""
    try:
        parse_json(document)
    except (ValueError, RecursionError):
        return False
    return True


def _parse(document: bytes) -> tuple[bool, Any]:
    """(True, value) for JSON, only to name where an identifier is: the standard parser also
    takes what orjson refuses but JSON allows, such as an escaped lone surrogate."""
    try:
        return True, parse_json(document)
    except (ValueError, RecursionError):
        pass
    try:
        return True, json.loads(document, parse_int=_big_int)
    except (ValueError, RecursionError):
        return False, None


def find_raw_in(value: Any, path: tuple[str, ...] = ()) -> str | None:
    """``find_raw`` for a parsed JSON value: its strings, keys and numbers; iterative, so no
    nesting depth can break it."""
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
        elif (isinstance(node, int | float) and not isinstance(node, bool)
              and abs(node) != _OUT_OF_RANGE and contains_raw(repr(node))):
            return loggable(".".join(where)) or "value"
    return None


def _redacted_in(encoding: _Encoding, data: bytes) -> bytes | None:
    """``data`` with every token of its reading in ``encoding`` replaced, the rest as it was;
    None when that reading holds a token but cannot be written back exactly."""
    start, end = encoding.span(data)
    chunk = data[start:end]
    try:
        text = chunk.decode(encoding.codec, encoding.errors)
        cleaned = redact_text(text, escapes=True)
        if cleaned == text:
            return data
        if text.encode(encoding.codec, encoding.errors) != chunk:
            return None
        return data[:start] + cleaned.encode(encoding.codec, encoding.errors) + data[end:]
    except UnicodeError:
        return None


def redact_original(original: bytes) -> tuple[str, Literal["utf-8", "base64"]]:
    """The dead-letter copy of ``original``: every token ``[redacted]`` in every reading the
    search makes of it (a JSON line: UTF-8; any other line: UTF-8, UTF-16 in both byte orders
    and alignments, GB18030), the rest as written; as text when the original and the copy
    are UTF-8, else base64. Redacting one reading can change another's (a shorter run of
    bytes moves the UTF-16 alignment), so it goes round until none changes; if a token
    somehow survived, the copy is withheld altogether."""
    try:
        original.decode("utf-8")
    except UnicodeDecodeError:
        utf8 = False
    else:
        utf8 = True
    everywhere = not utf8 or not _is_json(original)

    def readings(data: bytes) -> tuple[_Encoding, ...]:
        return (_UTF8, *_other_encodings(data)) if everywhere else (_UTF8,)

    data: bytes | None = original
    clean = False  # a whole round found every reading clean
    for _ in range(4):
        before = data
        for encoding in readings(original if data is None else data):
            data = None if data is None else _redacted_in(encoding, data)
        if data is None:
            break
        if data == before:
            clean = True
            break
    if data is None or not clean:
        data = REDACTED.encode("ascii")
    if utf8:
        try:
            return data.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            pass
    return base64.b64encode(data).decode("ascii"), "base64"
