"""Raw personal identifiers (CONTRACT.md §2, v1.1): detection and redaction.

A token is, as a substring after NFKC normalisation (so full-width digits count), a run of 17
digits followed by a digit or ``X``/``x`` (a PRC resident ID), or a run of 11 digits starting
with 1, optionally preceded by ``+86`` or ``0086`` (a mobile number), where the run is not
part of a longer run of digits. Digits are ``0``-``9`` after normalisation. Such a token must
never reach a topic, a log, a metric label or the ledger.

Redaction works on the text as it was, unit by unit (a character, or a JSON escape such as
``\\u0031``), so a token spelt with full-width digits or escapes is found and replaced while
everything around it is kept byte for byte.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

__all__ = [
    "REDACTED",
    "contains_raw",
    "loggable",
    "looks_raw",
    "normalize",
    "redact_bytes",
    "redact_text",
]

REDACTED: Final = "[redacted]"

# (?<![0-9]) / (?![0-9]): the run is not part of a longer run. A resident ID's 18th character
# may be X, after which a digit starts a new run; +86 and 0086 are glued on purpose.
_TOKEN_SOURCE: Final = (
    r"(?:\+86|(?<![0-9])(?:0086)?)1[0-9]{10}(?![0-9])"
    r"|(?<![0-9])[0-9]{17}(?:[0-9](?![0-9])|[Xx])"
)
TOKEN: Final = re.compile(_TOKEN_SOURCE)
TOKEN_BYTES: Final = re.compile(_TOKEN_SOURCE.encode("ascii"))
# A JSON escape (one unit of the text as written); surrogate pairs are one unit.
_ESCAPE = re.compile(r"\\(?:u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}"
                     r"|u[0-9a-fA-F]{4}|.)", re.DOTALL)
_SIMPLE_ESCAPES: Final = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_LITERAL_ESCAPES: Final = frozenset('"\\/')  # escapes standing for the character itself


def normalize(text: str) -> str:
    """NFKC, skipped for ASCII text (already normal), so the common case costs nothing."""
    return text if text.isascii() else unicodedata.normalize("NFKC", text)


def loggable(text: str) -> str:
    """``text`` with every character that is not printable escaped (``\\ud800``, ``\\n``):
    a message naming a key from the input must stay one UTF-8 line (a lone surrogate could
    not be written at all)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text)


def looks_raw(value: str) -> bool:
    """True when the whole value (normalised) is one token, e.g. a bare mobile number."""
    match = TOKEN.fullmatch(normalize(value))
    return match is not None


def contains_raw(text: str) -> bool:
    """True when ``text`` holds a token anywhere (the v1.1 rule for every string)."""
    return TOKEN.search(normalize(text)) is not None


def _unit_value(unit: str, escapes: bool) -> str:
    """What one unit of the written text reads as, normalised."""
    if escapes and len(unit) > 1:
        if unit[1] == "u":
            try:
                unit = (chr(int(unit[2:6], 16)) if len(unit) == 6 else
                        chr(0x10000 + ((int(unit[2:6], 16) - 0xD800) << 10)
                            + int(unit[8:12], 16) - 0xDC00))
            except ValueError:  # not reachable through _ESCAPE; kept as written
                return unit
        elif unit[1] in _SIMPLE_ESCAPES:
            unit = _SIMPLE_ESCAPES[unit[1]]
        elif unit[1] in _LITERAL_ESCAPES:
            unit = unit[1]
        # else not a JSON escape (``\1``): read as written, backslash and all, as the ASCII
        # fast path reads it; read as "1" it would glue a token onto the digits before it
    return unit if unit.isascii() else unicodedata.normalize("NFKC", unit)


def _units(text: str, escapes: bool) -> list[str]:
    if not escapes or "\\" not in text:
        return list(text)
    units: list[str] = []
    pos = 0
    for match in _ESCAPE.finditer(text):
        units.extend(text[pos:match.start()])
        units.append(match.group())
        pos = match.end()
    units.extend(text[pos:])
    return units


def redact_text(text: str, *, escapes: bool = False) -> str:
    """Replace every token in ``text`` by ``[redacted]``, keeping everything else as written.

    With ``escapes``, JSON escapes are read as what they stand for (``\\u0031`` is a 1), for
    text that is JSON as written (a string literal's body, or a line that is not JSON).
    """
    if text.isascii() and not (escapes and "\\u" in text):
        return TOKEN.sub(REDACTED, text)
    units = _units(text, escapes)
    values = [_unit_value(unit, escapes) for unit in units]
    normal = "".join(values)
    matches = list(TOKEN.finditer(normal))
    if not matches:
        return text
    # owner[i]: the unit that normal[i] came from.
    owner = [index for index, value in enumerate(values) for _ in value]
    out: list[str] = []
    done = 0
    for match in matches:
        first, last = owner[match.start()], owner[match.end() - 1]
        if first < done:  # two tokens from one unit: already replaced
            continue
        out.extend(units[done:first])
        out.append(REDACTED)
        done = last + 1
    out.extend(units[done:])
    return "".join(out)


def redact_bytes(data: bytes) -> bytes:
    """``redact_text`` for bytes that are not UTF-8 (their dead letter is base64): the
    undecodable bytes pass through unchanged, the text around them is redacted."""
    text = data.decode("utf-8", "surrogateescape")
    return redact_text(text, escapes=True).encode("utf-8", "surrogateescape")
