"""Turn raw identifiers into pseudonyms: HMAC-SHA256 under CLOSEDLOOP_PSEUDONYM_KEY.

Producers must send a pseudonym as ``person_id`` (CONTRACT.md §2); this is the reference way
to make one. A keyed HMAC rather than a plain hash because resident IDs and mobile numbers
are few enough to enumerate: without the key nobody can recompute the mapping. The same
person always gets the same pseudonym because the identifier is normalised first (spaces,
hyphens and every other dash dropped, full-width digits folded, a ``+86``/``0086`` prefix
removed, a resident ID's trailing ``x`` upper-cased).

Input is one identifier a line, or with ``--column`` (repeatable) a CSV file whose named
columns are replaced (other columns are kept). A raw identifier in any cell of a column not
named would pass through unchanged, so the whole input is searched first (CONTRACT.md §2's
search, as for every input event) and the run refuses, writing nothing, if one is found. No
raw identifier is ever printed in an error message: errors name the row and the column only.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import hmac
import io
import itertools
import os
import re
import shutil
import sys
import tempfile
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager as ContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TextIO, cast

from closedloop.schemas.identifiers import DASHES, contains_raw, looks_raw, redact_text
from closedloop.schemas.ids import spell_digit_runs
from closedloop.schemas.text import one_line

__all__ = [
    "ENV_KEY",
    "PseudonymError",
    "add_parser",
    "check_settings",
    "key_from_env",
    "normalize",
    "pseudonym",
    "run",
]

ENV_KEY: Final = "CLOSEDLOOP_PSEUDONYM_KEY"
MIN_KEY_BYTES: Final = 16
DEFAULT_PREFIX: Final = "pz:"
DIGEST_CHARS: Final = 32  # 128 bits of the HMAC: collision-free at any population size
# With 32 hex characters the pseudonym is a valid person_id (8..128 of [A-Za-z0-9_.:-]) for
# any such prefix of up to 96 characters, and is never 11 or 18 characters long.
_PREFIX = re.compile(r"[A-Za-z0-9_.:-]{0,96}")
_DIGIT_RUN = re.compile(r"[0-9]{11,}")
_SEPARATORS = re.compile(r"[\s\-()]+")
_COUNTRY_CODE = re.compile(r"(?:\+86|0086|86)(1[0-9]{10})")
_RESIDENT_ID_LOWER_X = re.compile(r"[0-9]{17}x")
SPOOL_IN_MEMORY: Final = 64 << 20  # standard input read twice: kept in memory up to this


class PseudonymError(ValueError):
    """Bad key, prefix or identifier; the message never contains the identifier."""


def _folded(text: str) -> str:
    """Any decimal digit (Arabic-Indic, Devanagari, full-width) as its ASCII digit, format
    characters (a soft hyphen, a zero-width space) dropped, and any dash (U+2010 HYPHEN, an en
    dash, a minus sign) as ``-``: as the raw-identifier search reads them."""
    if text.isascii():
        return text
    text = unicodedata.normalize("NFKC", text)
    return "".join(
        str(unicodedata.decimal(c)) if c.isdecimal() and not c.isascii()
        else "" if unicodedata.category(c) == "Cf" else "-" if c in DASHES else c
        for c in text)


def normalize(raw: str) -> str:
    """The canonical spelling of an identifier, so one person gets one pseudonym."""
    text = _SEPARATORS.sub("", _folded(raw))
    mobile = _COUNTRY_CODE.fullmatch(text)
    if mobile:
        text = mobile.group(1)
    if _RESIDENT_ID_LOWER_X.fullmatch(text):
        text = text[:-1] + "X"
    return text


def check_settings(key: bytes, prefix: str) -> None:
    """Refuse a key too short to resist guessing, or a prefix that breaks the person_id rules."""
    if len(key) < MIN_KEY_BYTES:
        raise PseudonymError(f"the key must be at least {MIN_KEY_BYTES} bytes")
    if not _PREFIX.fullmatch(prefix):
        raise PseudonymError("the prefix must be at most 96 characters of [A-Za-z0-9_.:-]")
    if _DIGIT_RUN.search(prefix):
        raise PseudonymError("the prefix must not hold 11 digits in a row: every pseudonym "
                             "would look like a mobile number (CONTRACT.md §2)")
    # a prefix ending in "139-1234-" makes every pseudonym whose digest starts with four
    # digits and a letter a mobile grouped 3-4-4
    if contains_raw(prefix) or any(contains_raw(f"{prefix}{'0' * digits}a")
                                   for digits in range(1, 5)):
        raise PseudonymError("the prefix must not hold or end in part of a mobile number "
                             "grouped 3-4-4 (CONTRACT.md §2)")


def pseudonym(raw: str, key: bytes, prefix: str = DEFAULT_PREFIX) -> str:
    """``prefix`` + the first 32 hex characters of HMAC-SHA256(key, normalised identifier),
    with any run of 11 or more digits spelt in the letters g-p (``ids.spell_digit_runs``): about
    1 digest in 20 holds one (a hex character is a digit 10 times in 16), which contract v1.1
    §2 would refuse as a mobile number.
    """
    check_settings(key, prefix)
    canonical = normalize(raw)
    if not canonical:
        raise PseudonymError("the identifier is empty")
    digest = hmac.new(key, canonical.encode("utf-8"), hashlib.sha256).hexdigest()
    return spell_digit_runs(prefix + digest[:DIGEST_CHARS], start=len(prefix))


def key_from_env(environ: Mapping[str, str] | None = None) -> bytes:
    """The HMAC key from ``CLOSEDLOOP_PSEUDONYM_KEY``; refuses a missing or short key."""
    env = os.environ if environ is None else environ
    value = env.get(ENV_KEY, "")
    if not value:
        raise PseudonymError(
            f"{ENV_KEY} is not set: refusing to pseudonymize without a key "
            "(generate one with `openssl rand -hex 32` and keep it secret)"
        )
    key = os.fsencode(value)  # the variable's original bytes, whatever the locale
    if len(key) < MIN_KEY_BYTES:
        raise PseudonymError(
            f"{ENV_KEY} is {len(key)} bytes; use at least {MIN_KEY_BYTES} "
            "(e.g. `openssl rand -hex 32`)"
        )
    return key


@dataclass(slots=True)
class _Tally:
    done: int = 0
    blank: int = 0
    unshaped: int = 0  # neither a resident ID nor a mobile number after normalisation

    def convert(self, raw: str, key: bytes, prefix: str) -> str:
        canonical = normalize(raw)
        if not canonical:
            self.blank += 1
            return ""
        if not looks_raw(canonical):
            self.unshaped += 1
        self.done += 1
        return pseudonym(canonical, key, prefix)

    def summary(self) -> str:
        text = f"pseudonymized {self.done} identifier(s)"
        if self.blank:
            text += f"; {self.blank} blank value(s) left blank"
        if self.unshaped:
            text += (
                f"; {self.unshaped} value(s) are not shaped like a resident ID or a mobile "
                "number (pseudonymized as given)"
            )
        return text


class _InputError(Exception):
    """A problem with the input, already phrased without its content."""


class _Refusal(Exception):
    """A raw identifier in a cell that would be written unchanged: nothing is written."""


def _lines(source: TextIO, tally: _Tally, key: bytes, prefix: str) -> Iterator[str]:
    for line in source:
        yield tally.convert(line.rstrip("\r\n"), key, prefix) + "\n"


def _records(source: TextIO) -> Iterator[tuple[int, list[str]]]:
    """(line number, row) of each CSV record; a malformed file is an _InputError."""
    reader = csv.reader(source)
    try:
        for row in reader:
            yield reader.line_num, row
    except csv.Error as exc:
        problem = redact_text(str(exc))
        raise _InputError(f"line {reader.line_num}: malformed CSV ({problem})") from None


def _header_indexes(header: list[str] | None, columns: list[str]) -> list[int]:
    if header is None:
        raise _InputError(f"the input is empty; expected a CSV header with column(s) "
                          f"{', '.join(map(repr, columns))}")
    for column in columns:
        if column not in header:
            raise _InputError(f"line 1: the CSV header has no column {column!r}")
    return sorted({header.index(column) for column in columns})


def _check_csv(source: TextIO, columns: list[str]) -> None:
    """The first pass: the header names every column, each row reaches them, and no cell
    outside them holds a raw identifier (it would be written as it is)."""
    records = _records(source)
    first = next(records, None)
    header = None if first is None else first[1]
    indexes = _header_indexes(header, columns)
    assert header is not None
    first_found: tuple[int, int] | None = None  # (row, column), 1-based
    found = 0
    for row, (line, cells) in enumerate(itertools.chain([(1, header)], records), start=1):
        if cells and len(cells) <= indexes[-1]:
            missing = next(c for c in columns if header.index(c) >= len(cells))
            raise _InputError(
                f"line {line}: {len(cells)} field(s), no value for column {missing!r} "
                f"(the header has {len(header)})")
        for index, cell in enumerate(cells):
            if index not in indexes and contains_raw(cell):
                found += 1
                first_found = first_found or (row, index + 1)
    if first_found is not None:
        row, column = first_found
        name = header[column - 1] if column <= len(header) else ""
        more = f" (and {found - 1} more cell(s))" if found > 1 else ""
        raise _Refusal(
            f"row {row}, column {column} ({name!r}) holds a raw identifier{more}, but only "
            f"{', '.join(map(repr, columns))} would be replaced: name every column that holds "
            "identifiers with --column, or remove them; nothing was written")


def _csv_rows(
    source: TextIO, columns: list[str], tally: _Tally, key: bytes, prefix: str
) -> Iterator[list[str]]:
    """The second pass, over input that _check_csv accepted."""
    records = _records(source)
    first = next(records, None)
    header = None if first is None else first[1]
    indexes = _header_indexes(header, columns)
    assert header is not None
    yield header
    for _, row in records:
        for index in indexes if row else ():
            row[index] = tally.convert(row[index], key, prefix)
        yield row


def _convert(
    source: TextIO, sink: Callable[[], ContextManager[TextIO]], columns: list[str] | None,
    key: bytes, prefix: str,
) -> _Tally:
    """Check the whole input first (CSV mode), then open the output and write it."""
    tally = _Tally()
    if not columns:
        with sink() as out:
            out.writelines(_lines(source, tally, key, prefix))
        return tally
    _check_csv(source, columns)
    source.seek(0)
    with sink() as out:
        csv.writer(out, lineterminator="\n").writerows(
            _csv_rows(source, columns, tally, key, prefix))
    return tally


@contextlib.contextmanager
def _open_input(path: str, encoding: str, *, rereadable: bool) -> Iterator[TextIO]:
    """The input as text; ``rereadable``: one that can be read twice (a pipe or standard
    input is copied to a temporary file first, in memory while small)."""
    if path == "-":
        if isinstance(sys.stdin, io.TextIOWrapper):
            sys.stdin.reconfigure(encoding=encoding, newline="")
        if not rereadable:
            yield sys.stdin
            return
        with _spooled(sys.stdin) as copy:
            yield copy
        return
    with open(path, encoding=encoding, newline="") as handle:
        if rereadable and not handle.seekable():
            with _spooled(handle) as copy:
                yield copy
            return
        yield handle


@contextlib.contextmanager
def _spooled(source: TextIO) -> Iterator[TextIO]:
    with tempfile.SpooledTemporaryFile(
        max_size=SPOOL_IN_MEMORY, mode="w+", encoding="utf-8", newline=""
    ) as copy:
        shutil.copyfileobj(source, copy)
        copy.seek(0)
        yield cast(TextIO, copy)


@contextlib.contextmanager
def _open_output(path: str | None) -> Iterator[TextIO]:
    """stdout, or a temporary file renamed over ``path`` only when everything succeeded."""
    if path is None or path == "-":
        yield sys.stdout
        return
    target = Path(path)
    fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    handle = open(fd, "w", encoding="utf-8", newline="")  # noqa: SIM115 - closed below
    try:
        with handle:
            yield handle
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "input", nargs="?", default="-", metavar="FILE",
        help="identifiers, one a line, or a CSV with --column; - or nothing: stdin",
    )
    parser.add_argument(
        "--column", metavar="NAME", action="append", dest="columns",
        help="CSV mode: a column to replace; repeat it for each column that holds "
        "identifiers (a raw identifier in any other column stops the run, nothing written)",
    )
    parser.add_argument("-o", "--output", metavar="FILE", help="write here (default: stdout)")
    parser.add_argument(
        "--prefix", default=DEFAULT_PREFIX,
        help=f"pseudonym prefix, up to 96 chars of [A-Za-z0-9_.:-] (default {DEFAULT_PREFIX!r})",
    )
    parser.add_argument(
        "--encoding", default="utf-8-sig",
        help="input encoding, e.g. gb18030 for some spreadsheet exports (default utf-8-sig)",
    )
    parser.epilog = f"The HMAC key is read from {ENV_KEY} (at least {MIN_KEY_BYTES} bytes)."


def _fail(message: str, status: int) -> int:
    """One line on stderr. Messages name the column and the encoding as given, and either
    may be a raw identifier typed in the wrong place: redacted here, whatever the caller."""
    print(f"closedloop pseudonymize: {one_line(redact_text(message))}", file=sys.stderr)
    return status


def run(args: argparse.Namespace) -> int:
    """Exit 0 on success, 1 on bad input (nothing written to --output), 2 on bad setup or a
    raw identifier outside the named columns (nothing written at all)."""
    try:
        key = key_from_env()
        check_settings(key, args.prefix)
    except PseudonymError as exc:
        return _fail(str(exc), 2)
    try:
        with _open_input(args.input, args.encoding, rereadable=bool(args.columns)) as source:
            tally = _convert(source, lambda: _open_output(args.output), args.columns, key,
                             args.prefix)
    except _InputError as exc:
        return _fail(str(exc), 1)
    except _Refusal as exc:
        return _fail(str(exc), 2)
    except UnicodeDecodeError:
        return _fail(f"the input is not valid {args.encoding}; pass --encoding", 1)
    except LookupError:
        return _fail(f"unknown encoding {args.encoding!r}", 2)
    except OSError as exc:
        name = redact_text(str(exc.filename or args.input))
        return _fail(f"cannot open {name}: {exc.strerror}", 1)
    print(tally.summary(), file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="closedloop pseudonymize", description=__doc__)
    add_parser(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
