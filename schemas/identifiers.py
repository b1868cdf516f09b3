"""Raw personal identifiers in a text (CONTRACT.md §2, v1.2): detection and redaction.

The text is *read* first: each character as Unicode NFKC normalises it (full-width digits and
letters count), any decimal digit (Unicode category Nd: Arabic-Indic ``٣``, Devanagari ``३``
…) as its ASCII digit, format characters (category Cf: a soft hyphen, a zero-width space)
skipped, and, in text that is JSON as written, each escape (``\\u0031``) as what it stands
for, and every dash (a hyphen, a non-breaking hyphen, an en dash, a minus sign …) as ``-``. In
that reading a token is a run of 17 digits followed by a digit or ``X``/``x`` (a PRC resident
ID), or a mobile number: 11 digits starting with 1, or the same grouped 3-4-4 by single spaces
or hyphens (``139 8765 4321``), optionally preceded by ``+86``, ``0086`` or ``86``; in each
case the run is not part of a longer run of digits. Such a token must never
reach a topic, a log, a metric label, the ledger, or anything written for people.

Redaction replaces each token by ``[redacted]`` in the text *as written*: the reading keeps,
for each unit whose reading is not one character for one (an escape, a skipped format
character, a character NFKC expands), where it came from, so the token's units are replaced
and every other character is kept as it was. The cost is linear and small: a text whose
reading changes nothing a token could be made of (nearly all of them) is searched as it is,
and the positions kept are those of the irregular units only, in arrays of machine integers,
never a list per character.
"""

from __future__ import annotations

import re
import unicodedata
from array import array
from bisect import bisect_right
from dataclasses import dataclass
from functools import cache, lru_cache
from io import StringIO
from itertools import chain
from typing import Final

__all__ = [
    "COARSE",
    "DASHES",
    "REDACTED",
    "RUN",
    "TOKEN",
    "contains_raw",
    "loggable",
    "looks_raw",
    "read",
    "redact_text",
    "token_spans",
]

REDACTED: Final = "[redacted]"

# In the reading every digit is 0-9 and no format character is left. (?<![0-9]) / (?![0-9]):
# the run is not part of a longer run. +86, 0086 and 86 are glued on purpose; a resident ID's
# 18th character may be X, after which a digit starts a new run.
TOKEN: Final = re.compile(
    r"(?:\+86|(?<![0-9])(?:0086|86)?)(?:1[0-9]{10}|1[0-9]{2}[ -][0-9]{4}[ -][0-9]{4})(?![0-9])"
    r"|(?<![0-9])[0-9]{17}(?:[0-9](?![0-9])|[Xx])"
)
# The shape of a reading, one byte a character: a digit "0", a space or hyphen " ", "+" as
# itself, anything else "." (a character that is not ASCII becomes "?" first). Every token
# holds 11 digits in a row or the grouped form, so these two searches (memchr-fast) find where
# one may be; the regex above then runs only on the stretch of digits, spaces, hyphens and
# plus signs around a hit.
SHAPE: Final = bytes(
    ord("0") if 48 <= b <= 57 else ord(" ") if b in b" -" else ord("+") if b == 43
    else ord(".") for b in range(256))
RUN: Final = b"0" * 11
GROUPED: Final = b"000 0000 0000"
# Coarser, for the filter every line pays: digits, spaces and hyphens all "0". A token holds
# 11 of them in a row either way (the grouped form 13), so one search tells a text that
# cannot hold one, as fast as a search for 11 digits alone; a stretch such as "2022-09-06 10"
# passes it and is then searched precisely.
COARSE: Final = bytes(ord("0") if 48 <= b <= 57 or b in b" -" else ord(".") for b in range(256))
# A JSON escape (one unit of the text as written); surrogate pairs are one unit.
ESCAPE: Final = re.compile(r"\\(?:u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}"
                           r"|u[0-9a-fA-F]{4}|.)", re.DOTALL)
_UNITS_ESCAPED: Final = re.compile(ESCAPE.pattern + r"|[^\x00-\x7f]+", re.DOTALL)
_NON_ASCII: Final = re.compile(r"[^\x00-\x7f]+")
_OTHER_DIGIT: Final = re.compile(r"[^\D0-9]")  # a decimal digit that is not 0-9
# Every dash, read as "-": a writer grouping a mobile 3-4-4 may type any of them, and on the
# page "139‐8765‐4321" (U+2010 HYPHEN) is the ASCII spelling. Unicode category Pd and the
# minus sign (superscript and subscript minus read as it after NFKC); a test holds this list
# to the Unicode database.
DASHES: Final = ("\u058a\u05be\u1400\u1806\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u2e17"
                 "\u2e1a\u2e3a\u2e3b\u2e40\u2e5d\u301c\u3030\u30a0\ufe31\ufe32\ufe58\ufe63"
                 "\uff0d\U00010ead")
_DASH: Final = re.compile(f"[{DASHES}]")
_AS_HYPHEN: Final = str.maketrans(dict.fromkeys(DASHES, "-"))
_ASTRAL: Final = re.compile("[\U00010000-\U0010ffff]")  # a character beyond the BMP
# An escape not known harmless at sight: neither a JSON escape of one character nor one of
# U+4000-U+9FFF (CJK ideographs, where no digit, separator or format character is). The
# second backslash of an escaped one looks suspect too: that only costs a closer look.
_SUSPECT: Final = re.compile(r'\\(?![\\"/bfnrt]|u[4-9][0-9a-fA-F]{3})')
_SIMPLE_ESCAPES: Final = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_LITERAL_ESCAPES: Final = frozenset('"\\/')  # escapes standing for the character itself
_TOKEN_CHARS: Final = frozenset("0123456789 -+Xx")  # what a token is made of, once read
_CHUNK: Final = 256  # characters a non-ASCII run is judged by at once
_SLICE: Final = 1 << 16  # characters searched for escapes at once
_WHOLE: Final = 1 << 14  # characters of other scripts normalised whole at most


@lru_cache(maxsize=16384)
def _char(char: str) -> str:
    """What one character reads as: NFKC, any decimal digit as 0-9, format characters gone,
    a dash as ``-``."""
    value = unicodedata.normalize("NFKC", char)
    if value.isascii():
        return value
    return "".join(str(unicodedata.decimal(c)) if c.isdecimal()
                   else "" if unicodedata.category(c) == "Cf"
                   else "-" if c in DASHES else c for c in value)


@lru_cache(maxsize=16384)
def _escape(unit: str) -> str:
    """What one JSON escape (or a backslash and the character after it) reads as."""
    kind = unit[1]
    if kind == "u" and len(unit) >= 6:
        high = int(unit[2:6], 16)
        char = (chr(high) if len(unit) == 6 else
                chr(0x10000 + ((high - 0xD800) << 10) + int(unit[8:12], 16) - 0xDC00))
        return _char(char)
    if kind in _SIMPLE_ESCAPES:
        return _SIMPLE_ESCAPES[kind]
    if kind in _LITERAL_ESCAPES:
        return kind
    # not a JSON escape (``\1``): read as written, backslash and all; read as "1" it would
    # glue a token onto the digits before it
    return "\\" + _char(kind)


@dataclass(frozen=True, slots=True)
class _Classes:
    """Regexes over characters as written, built once from the Unicode database (about 0.1 s,
    the first time a text needs them): what is special once NFKC is done (a format
    character, a digit of another script), a character reading as two digits or more (``⑩``),
    and a stretch that may read as 11 digits (each character read as a digit, with only
    format characters and single separators between)."""

    special: re.Pattern[str]
    multi: re.Pattern[str]
    bmp: _Stretches  # for a text without characters beyond U+FFFF: much faster
    full: _Stretches


@dataclass(frozen=True, slots=True)
class _Stretches:
    """A regex character class with ranges beyond U+FFFF is tested range by range (about
    100 ns a character, against 10 for one within the BMP), so each comes in two sets."""

    stretch: re.Pattern[str]
    more: re.Pattern[str]  # the rest of a stretch: gaps and digits, as long as it goes
    gap: re.Pattern[str]  # one character that may sit inside a stretch without a digit


def _stretches(digits: list[int], gaps: list[int]) -> _Stretches:
    digit = f"[0-9{_class(digits)}]"
    gap = f"[ \\-{_class(gaps)}]"
    return _Stretches(
        stretch=re.compile(f"{digit}(?:{gap}*+{digit}){{10}}"),
        more=re.compile(f"(?:{gap}*+{digit})*+"),
        gap=re.compile(gap),
    )


def _class(code_points: list[int]) -> str:
    """A regex character class body for ``code_points`` (sorted), as ranges."""
    parts: list[str] = []
    start = previous = -2
    for point in [*code_points, -1]:
        if point == previous + 1:
            previous = point
            continue
        if start >= 0:
            parts.append(f"\\U{start:08x}" if start == previous
                         else f"\\U{start:08x}-\\U{previous:08x}")
        start = previous = point
    return "".join(parts)


@cache
def _classes() -> _Classes:
    formats: list[int] = []
    digits: list[int] = []
    multi: list[int] = []
    separators: list[int] = []
    for point in chain(range(0x80, 0xD800), range(0xE000, 0x20000), range(0xE0000, 0xE1000)):
        char = chr(point)
        if unicodedata.category(char) == "Cf":
            formats.append(point)
        elif (not unicodedata.is_normalized("NFKC", char) or char.isdecimal()
              or char in DASHES):
            value = _char(char)
            count = sum(c in "0123456789" for c in value)
            if count:
                digits.append(point)
            if count > 1:
                multi.append(point)
            if value in (" ", "-"):
                separators.append(point)
    gaps = sorted(separators + formats)

    def bmp(points: list[int]) -> list[int]:
        return [point for point in points if point <= 0xFFFF]

    return _Classes(
        special=re.compile(f"[{_class(formats)}]|[^\\D0-9]"),
        multi=re.compile(f"[{_class(multi)}]"),
        bmp=_stretches(bmp(digits), bmp(gaps)),
        full=_stretches(digits, gaps),
    )


def _plain_chunk(chunk: str) -> bool:
    """True when each character of ``chunk`` reads as itself and is no part of a token:
    NFKC-normal, printable (so no format character), no digit of another script, no dash."""
    return (unicodedata.is_normalized("NFKC", chunk) and chunk.isprintable()
            and _OTHER_DIGIT.search(chunk) is None and _DASH.search(chunk) is None)


def _harmless(value: str) -> bool:
    """A unit reading as ``value`` is no part of a token, nor joins two runs (as a skipped
    format character, reading as nothing, does)."""
    return bool(value) and _TOKEN_CHARS.isdisjoint(value)


def _no_candidate(text: str) -> bool:
    """An ASCII text with neither 11 digits in a row nor a 3-4-4 group."""
    return text.encode("ascii").translate(COARSE).find(RUN) < 0


def _stand_in(text: str, units: set[str] | None) -> str | None:
    """A text with the tokens of ``text``'s reading, made cheaply (``""`` when it certainly
    has none), or None when only the reading itself can tell: each escape that reads as
    something harmless stands as one character that is no digit, and the rest is
    NFKC-normalised whole, which is the reading when no format character or digit of another
    script is left."""
    harmless = units is None or all(_harmless(_escape(unit)) for unit in units)
    if text.isascii() and _no_candidate(text):
        # an escape that reads as something harmless has a backslash and a "u" at its start,
        # which break a run as what it reads as does: so its hex digits add candidates,
        # never hide one
        return "" if harmless else None
    if units is not None:
        if not harmless:
            return None
        text = ESCAPE.sub("_", text)
    if text.isascii():
        return text
    if len(text) > _WHOLE:
        return None  # NFKC of megabytes of text in other scripts takes seconds: the regions
    normal = unicodedata.normalize("NFKC", text)
    if _DASH.search(normal) is not None:
        normal = normal.translate(_AS_HYPHEN)
    if normal.isprintable() and _OTHER_DIGIT.search(normal) is None:
        return normal  # printable: no format character (the common case, tested in C)
    return None if _classes().special.search(normal) else normal


def _escapes_of(text: str, escapes: bool) -> set[str] | None:
    """The escapes of ``text`` that may read as part of a token, each once, when escapes are
    read and it has any (an empty set when none may); else None. Text a producer escaped
    whole (Chinese as ``\\u4e2d``) has only escapes known harmless at sight: it is not
    listed escape by escape."""
    if not escapes or "\\" not in text:
        return None
    return _distinct_escapes(text) if _SUSPECT.search(text) else set()


def _distinct_escapes(text: str) -> set[str]:
    """The escapes of ``text``, each once; found a slice at a time, so that a line of a
    million escapes never lists them all. A slice may start inside an escape or split one:
    the piece found then is no escape (harmless, or read in full when it looks special),
    and the whole escape is found in the slice before, whose end overlaps."""
    if len(text) <= _SLICE:
        return set(ESCAPE.findall(text))
    found: set[str] = set()
    for start in range(0, len(text), _SLICE):
        found.update(ESCAPE.findall(text, start, start + _SLICE + 12))
    return found


_PAIR: Final = re.compile(r"\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}")
_HEX4: Final = re.compile(r"\\u[0-9a-fA-F]{4}")
_OTHER_ESCAPE: Final = re.compile(r"\\.", re.DOTALL)
_SKIPPED: Final = "\u200b"  # a format character: it stands for what reads as nothing
# A digit stands as an Arabic-Indic zero: a digit, but no hex digit, so that it can never
# complete the "\u00" of a broken escape before it into an escape of its own.
_STANDS_FOR: Final = {**{d: "\u0660" for d in "0123456789"}, " ": " ", "-": " ", "+": "+",
                      "X": "X", "x": "X"}


def _stands_for(unit: str) -> str | None:
    """What an escape that is part of a token may stand as, as long as it is written: its
    reading with each digit as a digit, each other character as "_" (harmless) or as itself,
    then format characters (read as nothing); None if it reads as more than it is long."""
    value = "".join(_STANDS_FOR.get(char, "_") for char in _escape(unit))
    return None if len(value) > len(unit) else value + _SKIPPED * (len(unit) - len(value))


def _escapes_blanked(text: str, units: set[str]) -> str | None:
    """``text`` with every escape standing as a text as long as it (so positions stay):
    ``_`` for each character of one that reads as something harmless, or what the reading
    makes of it (:func:`_stands_for`); None when one cannot be said that way. All in C but a
    look at each distinct escape: a line of a million escapes costs no call per escape."""
    text = text.replace("\\\\", "__")  # after this, each backslash starts an escape
    for unit in units:
        if unit != "\\\\" and not _harmless(_escape(unit)):
            stand = _stands_for(unit)
            if stand is None:
                return None
            text = text.replace(unit, stand)
    text = _PAIR.sub("_" * 12, text)
    text = _HEX4.sub("_" * 6, text)
    return _OTHER_ESCAPE.sub("__", text)


def _regions(text: str, units: set[str] | None) -> list[tuple[int, int]]:
    """Spans of ``text`` as written outside which its reading holds no token: each stretch
    of 11 characters or more that may read as a digit with nothing between them but format
    characters and separators, from the character before it (a ``+``) to the unit after it
    (an ``X``). Escapes are judged by what they read as (:func:`_escapes_blanked`). A
    character reading as two digits or more (``⑩``) makes the whole text one region."""
    classes = _classes()
    if classes.multi.search(text) is not None:
        return [(0, len(text))]
    written = text
    if units is not None:
        blanked = _escapes_blanked(text, units)
        if blanked is None:
            return [(0, len(text))]
        text = blanked

    def unit_end(position: int) -> int:
        """Where the unit written at ``position`` ends (an escape, or one character)."""
        if written[position] == "\\" and text[position] != "\\":
            escape = ESCAPE.match(written, position)
            if escape is not None:
                return escape.end()
        return position + 1

    def unit_start(position: int) -> int:
        """Where the unit holding ``position`` starts: an escape that covers it (the
        first, so a surrogate pair is taken whole), else ``position``."""
        if text is written:
            return position
        for at in range(max(0, position - 11), position + 1):
            if written[at] == "\\" and text[at] != "\\" and _escape_starts(written, at):
                escape = ESCAPE.match(written, at)
                if escape is not None and escape.end() > position:
                    return at
        return position

    sets = classes.full if _ASTRAL.search(text) else classes.bmp
    regions: list[tuple[int, int]] = []
    pos = 0
    while (found := sets.stretch.search(text, pos)) is not None:
        start = found.start()
        while start > 0 and sets.gap.match(text, start - 1):
            start -= 1
        if start > 0 and text[start - 1] not in "_\\":
            start -= 1  # the character before (a "+"), unless it ends an escape
        start = unit_start(start)
        rest = sets.more.match(text, found.end())  # matches the empty string at least
        pos = end = found.end() if rest is None else rest.end()
        while end < len(text) and sets.gap.match(text, end):
            end += 1  # the rest of an escape standing for a digit, and separators
        if end < len(text):
            end = unit_end(end)
        if regions and start <= regions[-1][1]:
            regions[-1] = (regions[-1][0], max(end, regions[-1][1]))
        else:
            regions.append((start, end))
    return regions


def _escape_starts(written: str, at: int) -> bool:
    """Does the backslash at ``at`` start an escape? Backslashes pair from the first of a
    run, so it does when an even number of them is right before it."""
    before = at
    while before > 0 and written[before - 1] == "\\":
        before -= 1
    return (at - before) % 2 == 0


def _written_spans(text: str, escapes: bool) -> list[tuple[int, int]]:
    """Where the tokens of ``text``'s reading are in ``text`` as written, in order."""
    units = _escapes_of(text, escapes)
    stand_in = _stand_in(text, units)
    if stand_in is not None:
        if not stand_in or (stand_in.isascii() and _no_candidate(stand_in)):
            return []
        spans = token_spans(stand_in)
        if not spans or stand_in is text:
            return spans  # none, or the stand-in is the text itself
    found: list[tuple[int, int]] = []
    for start, end in _regions(text, units):
        reading = read(text[start:end], escapes)
        found.extend((start + first, start + last) for first, last in (
            reading.written(*span) for span in token_spans(reading.text)))
    return found


def token_spans(reading: str) -> list[tuple[int, int]]:
    """Where the tokens of a reading (:func:`read`) are, in order."""
    shape = (reading.encode("ascii") if reading.isascii()
             else reading.encode("ascii", "replace")).translate(SHAPE)
    spans: list[tuple[int, int]] = []
    size = len(shape)
    run, grouped = shape.find(RUN), shape.find(GROUPED)  # the next hit of each, or -1
    while run >= 0 or grouped >= 0:
        hit = min(at for at in (run, grouped) if at >= 0)
        start = shape.rfind(b".", 0, hit) + 1
        end = shape.find(b".", hit)
        end = size if end < 0 else end
        spans.extend(match.span() for match in TOKEN.finditer(reading, start, min(size, end + 1)))
        if 0 <= run < end:
            run = shape.find(RUN, end)
        if 0 <= grouped < end:
            grouped = shape.find(GROUPED, end)
    return spans


class Reading:
    """A text as read (``text``) and where each of its characters came from in the text as
    written: the same position, shifted by the irregular units before it, whose spans in
    both texts are kept in four arrays (sorted)."""

    __slots__ = ("_nrm_end", "_nrm_start", "_src_end", "_src_start", "text")

    def __init__(self, text: str, size: int = 0) -> None:
        """``size``: the length of the text as written (positions in 4 bytes while no
        reading can reach 2**31: NFKC expands a character to 18 at most)."""
        self.text = text
        kind = "i" if size < 2**26 else "q"
        self._src_start, self._src_end = array(kind), array(kind)
        self._nrm_start, self._nrm_end = array(kind), array(kind)

    def _irregular(self, src_start: int, src_end: int, nrm_start: int, nrm_end: int) -> None:
        self._src_start.append(src_start)
        self._src_end.append(src_end)
        self._nrm_start.append(nrm_start)
        self._nrm_end.append(nrm_end)

    def _unit(self, position: int) -> tuple[int, int]:
        """The span, as written, of the unit the reading's character ``position`` came from."""
        index = bisect_right(self._nrm_start, position) - 1
        if index >= 0 and position < self._nrm_end[index]:
            return self._src_start[index], self._src_end[index]
        base_src, base_nrm = ((self._src_end[index], self._nrm_end[index]) if index >= 0
                              else (0, 0))
        at = base_src + position - base_nrm
        return at, at + 1

    def written(self, start: int, end: int) -> tuple[int, int]:
        """The span, as written, of the units that make the reading's ``[start, end)``."""
        return self._unit(start)[0], self._unit(end - 1)[1]


def read(text: str, escapes: bool = False) -> Reading:
    """``text`` as the search reads it (see the module's docstring); with ``escapes``, JSON
    escapes are read as what they stand for (text that is JSON as written)."""
    if text.isascii() and not (escapes and "\\" in text):
        return Reading(text)
    out = StringIO()
    write = out.write
    reading = Reading("", len(text))
    src = nrm = 0  # where the next unit starts, as written and as read
    for match in (_UNITS_ESCAPED if escapes else _NON_ASCII).finditer(text):
        start, end = match.span()
        if start > src:
            write(text[src:start])
            nrm += start - src
        unit = match.group()
        if unit[0] == "\\":
            value = _escape(unit)
        elif end - start == 1:
            value = _char(unit)
        else:
            nrm = _read_run(unit, start, out, reading, nrm)
            src = end
            continue
        if len(value) != end - start:
            reading._irregular(start, end, nrm, nrm + len(value))
        write(value)
        nrm += len(value)
        src = end
    write(text[src:])
    reading.text = out.getvalue()
    return reading


def _read_run(run: str, start: int, out: StringIO, reading: Reading, nrm: int) -> int:
    """Read a run of non-ASCII characters written from ``start``; returns the position after
    it in the reading. Chunks whose characters read as themselves are copied whole."""
    for offset in range(0, len(run), _CHUNK):
        chunk = run[offset:offset + _CHUNK]
        if _plain_chunk(chunk):
            out.write(chunk)
            nrm += len(chunk)
            continue
        values = [_char(char) for char in chunk]
        joined = "".join(values)
        out.write(joined)
        if len(joined) == len(chunk):  # one for one (full-width digits): nothing to keep
            nrm += len(chunk)
            continue
        for index, value in enumerate(values):
            if len(value) != 1:
                reading._irregular(start + offset + index, start + offset + index + 1, nrm,
                                   nrm + len(value))
            nrm += len(value)
    return nrm


def contains_raw(text: str, *, escapes: bool = False) -> bool:
    """True when ``text``'s reading holds a token anywhere (the rule for every string)."""
    units = _escapes_of(text, escapes)
    stand_in = _stand_in(text, units)
    if stand_in is not None:
        if not stand_in or (stand_in.isascii() and _no_candidate(stand_in)):
            return False
        return bool(token_spans(stand_in))
    return any(token_spans(read(text[start:end], escapes).text)
               for start, end in _regions(text, units))


def looks_raw(value: str) -> bool:
    """True when the whole value, read, is one token, e.g. a bare mobile number."""
    return TOKEN.fullmatch(read(value).text) is not None


def redact_text(text: str, *, escapes: bool = False) -> str:
    """Replace every token in ``text`` by ``[redacted]``, keeping everything else as written.

    With ``escapes``, JSON escapes are read as what they stand for (``\\u0031`` is a 1), for
    text that is JSON as written (a string literal's body, or a whole line).
    """
    spans = _written_spans(text, escapes)
    if not spans:
        return text
    pieces: list[str] = []
    done = 0  # written up to here
    last: tuple[int, int] | None = None  # the replacement pending, as written
    for written in spans:
        if last is not None and written[0] < last[1]:  # two tokens from one unit
            last = (last[0], max(last[1], written[1]))
            continue
        if last is not None:
            pieces += (text[done:last[0]], REDACTED)
            done = last[1]
        last = written
    if last is not None:
        pieces += (text[done:last[0]], REDACTED)
        done = last[1]
    pieces.append(text[done:])
    return "".join(pieces)


def loggable(text: str) -> str:
    """``text`` with every character that is not printable escaped (``\\ud800``, ``\\n``):
    a message naming a key from the input must stay one UTF-8 line (a lone surrogate could
    not be written at all)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text)
