"""Turn raw identifiers into pseudonyms: HMAC-SHA256 under CLOSEDLOOP_PSEUDONYM_KEY.

Producers must send a pseudonym as ``person_id`` (CONTRACT.md §2); this is the reference way
to make one. A keyed HMAC rather than a plain hash because resident IDs and mobile numbers
are few enough to enumerate: without the key nobody can recompute the mapping. The same
person always gets the same pseudonym because the identifier is normalised first (spaces
and hyphens dropped, full-width digits folded, a ``+86``/``0086`` prefix removed, a resident
ID's trailing ``x`` upper-cased).

Input is one identifier a line, or with ``--column`` a CSV file whose named column is
replaced (other columns are kept). No raw identifier is ever printed in an error message:
errors name the column and the line number only.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import hmac
import io
import os
import re
import sys
import tempfile
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TextIO

from closedloop.schemas.identifiers import looks_raw, redact_text
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
_SEPARATORS = re.compile(r"[\s\-]+")
_COUNTRY_CODE = re.compile(r"(?:\+86|0086)(1[0-9]{10})")
_RESIDENT_ID_LOWER_X = re.compile(r"[0-9]{17}x")


class PseudonymError(ValueError):
    """Bad key, prefix or identifier; the message never contains the identifier."""


def normalize(raw: str) -> str:
    """The canonical spelling of an identifier, so one person gets one pseudonym."""
    text = _SEPARATORS.sub("", unicodedata.normalize("NFKC", raw))
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


def _lines(source: TextIO, tally: _Tally, key: bytes, prefix: str) -> Iterator[str]:
    for line in source:
        yield tally.convert(line.rstrip("\r\n"), key, prefix) + "\n"


def _csv_rows(
    source: TextIO, column: str, tally: _Tally, key: bytes, prefix: str
) -> Iterator[list[str]]:
    reader = csv.reader(source)
    try:
        header = next(reader, None)
        if header is None:
            raise _InputError(f"the input is empty; expected a CSV header with column {column!r}")
        if column not in header:
            raise _InputError(f"line 1: the CSV header has no column {column!r}")
        index = header.index(column)
        yield header
        for row in reader:
            if not row:
                yield row
                continue
            if len(row) <= index:
                raise _InputError(
                    f"line {reader.line_num}: {len(row)} field(s), no value for column "
                    f"{column!r} (the header has {len(header)})"
                )
            row[index] = tally.convert(row[index], key, prefix)
            yield row
    except csv.Error as exc:
        problem = redact_text(str(exc))
        raise _InputError(f"line {reader.line_num}: malformed CSV ({problem})") from None


def _convert(
    source: TextIO, sink: TextIO, column: str | None, key: bytes, prefix: str
) -> _Tally:
    tally = _Tally()
    if column is None:
        sink.writelines(_lines(source, tally, key, prefix))
    else:
        csv.writer(sink, lineterminator="\n").writerows(
            _csv_rows(source, column, tally, key, prefix)
        )
    return tally


@contextlib.contextmanager
def _open_input(path: str, encoding: str) -> Iterator[TextIO]:
    if path == "-":
        if isinstance(sys.stdin, io.TextIOWrapper):
            sys.stdin.reconfigure(encoding=encoding, newline="")
        yield sys.stdin
        return
    with open(path, encoding=encoding, newline="") as handle:
        yield handle


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
    parser.add_argument("--column", metavar="NAME", help="CSV mode: the column to replace")
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
    """Exit 0 on success, 1 on bad input (nothing written to --output), 2 on bad setup."""
    try:
        key = key_from_env()
        check_settings(key, args.prefix)
    except PseudonymError as exc:
        return _fail(str(exc), 2)
    try:
        with _open_input(args.input, args.encoding) as source, _open_output(args.output) as sink:
            tally = _convert(source, sink, args.column, key, args.prefix)
    except _InputError as exc:
        return _fail(str(exc), 1)
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
