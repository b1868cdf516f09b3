"""``closedloop pseudonymize``: right pseudonyms, one per person, and no raw identifier ever
printed — not even when the input is wrong."""

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
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from closedloop.schemas.decode import validate_event
from closedloop.schemas.events import PSEUDONYM_PATTERN, Followup
from closedloop.schemas.identifiers import contains_raw, looks_raw
from closedloop.streams.cli import pseudonymize
from closedloop.streams.cli.pseudonymize import ENV_KEY, PseudonymError, normalize, pseudonym

KEY = b"test-key-0123456789abcdef"  # 25 bytes
RESIDENT_ID = "11010119900307123X"
MOBILE = "13812345678"
RAW_IDS = (RESIDENT_ID, RESIDENT_ID.lower(), MOBILE, "110101199003071234")


def expected(canonical: str, key: bytes = KEY, prefix: str = "pz:") -> str:
    """The pseudonym computed independently, straight from the definition."""
    return prefix + hmac.new(key, canonical.encode(), hashlib.sha256).hexdigest()[:32]


def run_cli(
    tmp_path: Path, *argv: str, stdin: str | bytes = "", key: str | None = KEY.decode()
) -> subprocess.CompletedProcess[bytes]:
    """The real command line, as a user runs it."""
    env = {k: v for k, v in os.environ.items() if k != ENV_KEY}
    if key is not None:
        env[ENV_KEY] = key
    return subprocess.run(
        [sys.executable, "-m", "closedloop.streams.cli", "pseudonymize", *argv],
        input=stdin.encode() if isinstance(stdin, str) else stdin,
        capture_output=True, env=env, cwd=tmp_path, timeout=60, check=False,
    )


def run_here(*argv: str) -> int:
    """The sub-command in-process (fast; output through capsys)."""
    parser = argparse.ArgumentParser()
    pseudonymize.add_parser(parser)
    return pseudonymize.run(parser.parse_args(list(argv)))


# --- the function -------------------------------------------------------------


def test_known_answer() -> None:
    assert pseudonym(RESIDENT_ID, KEY) == expected(RESIDENT_ID)
    assert pseudonym(MOBILE, KEY, prefix="sh:") == expected(MOBILE, prefix="sh:")


def test_fixed_vector() -> None:
    # HMAC-SHA256(b"0123456789abcdef", b"13812345678") begins 9a6a05aaf6e16b4533623812bf4184c6;
    # pinned so that a change of algorithm, truncation or normalisation cannot go unseen.
    assert pseudonym("138 1234 5678", b"0123456789abcdef") == "pz:9a6a05aaf6e16b4533623812bf4184c6"


@pytest.mark.parametrize(
    ("spelling", "canonical"),
    [
        ("110101 19900307 123x", RESIDENT_ID),
        ("11010119900307123x", RESIDENT_ID),
        ("  11010119900307123X\t", RESIDENT_ID),
        ("１１０１０１１９９００３０７１２３Ｘ", RESIDENT_ID),  # full-width, as typed in some IMEs
        ("138 1234 5678", MOBILE),
        ("138-1234-5678", MOBILE),
        ("+86 138 1234 5678", MOBILE),
        ("008613812345678", MOBILE),
    ],
)
def test_same_person_same_pseudonym(spelling: str, canonical: str) -> None:
    assert normalize(spelling) == canonical
    assert pseudonym(spelling, KEY) == expected(canonical)


def test_different_people_and_keys_differ() -> None:
    assert pseudonym(MOBILE, KEY) != pseudonym("13812345679", KEY)
    assert pseudonym(MOBILE, KEY) != pseudonym(MOBILE, KEY + b"!")


def test_an_x_inside_other_identifiers_is_left_alone() -> None:
    # Only a resident ID's check digit is case-folded; a passport number keeps its spelling.
    assert normalize("e1234567x") == "e1234567x"


@pytest.mark.parametrize("raw", [*RAW_IDS, "E12345678", "x"])
@pytest.mark.parametrize("prefix", ["pz:", "", "city-7.pz:"])
def test_pseudonym_is_a_valid_person_id(raw: str, prefix: str) -> None:
    value = pseudonym(raw, KEY, prefix)
    assert re.fullmatch(PSEUDONYM_PATTERN, value)
    assert not looks_raw(value)
    decoded = validate_event(
        "followup",
        {"event_id": "fu-1", "occurred_at": "2022-09-06T09:10:00+08:00", "person_id": value,
         "kind": "located"},
    )
    assert isinstance(decoded, Followup)


def _digests_with_a_mobile_shaped_run(count: int) -> list[str]:
    """Identifiers whose plain hex digest (under KEY) holds 11 or more digits in a row."""
    found = []
    for number in range(100_000):
        raw = f"E{number:08d}"
        digest = hmac.new(KEY, normalize(raw).encode(), hashlib.sha256).hexdigest()[:32]
        if re.search(r"[0-9]{11}", digest):
            found.append(raw)
            if len(found) == count:
                return found
    raise AssertionError("no such digest in 100,000 identifiers")


@pytest.mark.parametrize("prefix", ["pz:", "", "p1234567:"])
def test_a_digest_with_a_mobile_shaped_run_still_makes_an_accepted_person_id(
    prefix: str,
) -> None:
    # given identifiers whose hex digest holds an 11-digit run (about 1 in 390): contract
    # v1.1 §2 would reject such a person_id as a mobile number
    for raw in _digests_with_a_mobile_shaped_run(3):
        # when pseudonymised
        value = pseudonym(raw, KEY, prefix)
        # then no run of 11 digits is left, and the decoder accepts it
        assert not re.search(r"[0-9]{11}", value), value
        assert not contains_raw(value)
        decoded = validate_event(
            "followup",
            {"event_id": "fu-1", "occurred_at": "2022-09-06T09:10:00+08:00",
             "person_id": value, "kind": "located"},
        )
        assert isinstance(decoded, Followup), decoded


def test_a_digest_without_a_long_run_is_unchanged_and_spelling_is_one_to_one() -> None:
    # every pseudonym made before keeps its value; a spelt one can equal no plain hex one
    assert pseudonym(MOBILE, KEY) == expected(MOBILE)
    spelt = pseudonym(_digests_with_a_mobile_shaped_run(1)[0], KEY)
    assert re.search("[g-p]", spelt)


@pytest.mark.parametrize(
    ("raw", "key", "prefix"),
    [
        (MOBILE, b"short", "pz:"),
        (MOBILE, KEY, "pz "),
        (MOBILE, KEY, "p" * 97),
        (" - ", KEY, "pz:"),
        (MOBILE, KEY, "pz12345678901:"),
        (MOBILE, KEY, "pz:139-1234-"),
        (MOBILE, KEY, "pz:139-1234-56"),
        (MOBILE, KEY, "139-1234-5678:"),
    ],
    ids=["short-key", "bad-prefix-char", "prefix-too-long", "empty-identifier",
         "prefix-with-11-digits", "prefix-ending-3-4", "prefix-ending-3-4-2",
         "prefix-with-3-4-4"],
)
def test_refuses_bad_settings_without_echoing_the_identifier(
    raw: str, key: bytes, prefix: str
) -> None:
    with pytest.raises(PseudonymError) as raised:
        pseudonym(raw, key, prefix)
    assert MOBILE not in str(raised.value)


# --- the key ------------------------------------------------------------------


def test_key_from_env() -> None:
    assert pseudonymize.key_from_env({ENV_KEY: "k" * 16}) == b"k" * 16


@pytest.mark.parametrize("value", [None, "", "fifteen-bytes!!"])
def test_refuses_to_run_without_a_proper_key(
    value: str | None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    source = tmp_path / "ids.txt"
    source.write_text(f"{MOBILE}\n", "utf-8")
    if value is None:
        monkeypatch.delenv(ENV_KEY, raising=False)
    else:
        monkeypatch.setenv(ENV_KEY, value)
    assert run_here(str(source)) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert ENV_KEY in err
    assert MOBILE not in err


def test_cli_refuses_without_key(tmp_path: Path) -> None:
    done = run_cli(tmp_path, stdin=f"{MOBILE}\n", key=None)
    assert done.returncode == 2
    assert done.stdout == b""
    assert ENV_KEY.encode() in done.stderr
    assert MOBILE.encode() not in done.stderr


# --- line mode and CSV mode ---------------------------------------------------


def test_cli_line_mode_keeps_lines_aligned(tmp_path: Path) -> None:
    done = run_cli(tmp_path, "-", stdin=f"{MOBILE}\n\n110101 19900307123x\r\n+86 138-1234-5678\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().split("\n") == [
        expected(MOBILE), "", expected(RESIDENT_ID), expected(MOBILE), ""
    ]
    assert b"3 identifier(s)" in done.stderr
    assert b"1 blank" in done.stderr
    for raw in RAW_IDS:
        assert raw.encode() not in done.stderr


def test_csv_mode_replaces_only_the_column(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(ENV_KEY, KEY.decode())
    source = tmp_path / "people.csv"
    source.write_text(
        "name,id_number,district\n"
        '"Li, Wei",110101199003071 23x,haidian\n'
        "Wang Fang,13812345678,\"chaoyang\"\n"
        "Zhao,,xicheng\n",
        "utf-8",
    )
    output = tmp_path / "out.csv"
    assert run_here(str(source), "--column", "id_number", "--output", str(output)) == 0
    assert output.read_text("utf-8") == (
        "name,id_number,district\n"
        f'"Li, Wei",{expected(RESIDENT_ID)},haidian\n'
        f"Wang Fang,{expected(MOBILE)},chaoyang\n"
        "Zhao,,xicheng\n"
    )
    out, err = capsys.readouterr()
    assert out == ""
    assert "2 identifier(s)" in err


def test_csv_with_a_byte_order_mark(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Spreadsheet exports often start with a BOM; the header must still be found.
    monkeypatch.setenv(ENV_KEY, KEY.decode())
    source = tmp_path / "export.csv"
    source.write_bytes("\ufeffid_number\n13812345678\n".encode())
    assert run_here(str(source), "--column", "id_number") == 0
    assert capsys.readouterr().out == f"id_number\n{expected(MOBILE)}\n"


# --- errors never show a raw identifier ---------------------------------------


def test_missing_column_names_column_and_line_only(tmp_path: Path) -> None:
    # No header at all: the "header" the tool sees is a row of raw identifiers.
    source = tmp_path / "headerless.csv"
    source.write_text(f"{RESIDENT_ID},{MOBILE}\n{MOBILE},{RESIDENT_ID}\n", "utf-8")
    output = tmp_path / "out.csv"
    done = run_cli(tmp_path, str(source), "--column", "id_number", "--output", str(output))
    assert done.returncode == 1
    assert b"line 1" in done.stderr
    assert b"'id_number'" in done.stderr
    assert RESIDENT_ID.encode() not in done.stderr
    assert MOBILE.encode() not in done.stderr
    assert not output.exists()  # nothing half-written


def test_short_row_names_line_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(ENV_KEY, KEY.decode())
    source = tmp_path / "people.csv"
    source.write_text(f"name,phone,id_number\nLi,{MOBILE},{RESIDENT_ID}\nWang,{MOBILE}\n", "utf-8")
    output = tmp_path / "out.csv"
    assert run_here(str(source), "--column", "phone", "--column", "id_number",
                    "-o", str(output)) == 1
    out, err = capsys.readouterr()
    assert "line 3" in err
    assert "'id_number'" in err
    assert MOBILE not in err + out
    assert RESIDENT_ID not in err + out
    assert not output.exists()
    assert list(tmp_path.iterdir()) == [source]  # no temporary file left behind


def test_wrong_encoding_is_reported_without_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(ENV_KEY, KEY.decode())
    source = tmp_path / "gbk.csv"
    source.write_bytes(f"姓名,id_number\n张三,{RESIDENT_ID}\n".encode("gbk"))
    assert run_here(str(source), "--column", "id_number") == 1
    out, err = capsys.readouterr()
    assert "--encoding" in err
    assert RESIDENT_ID not in err + out
    # ...and with the right encoding it works.
    assert run_here(str(source), "--column", "id_number", "--encoding", "gbk") == 0
    assert capsys.readouterr().out == f"姓名,id_number\n张三,{expected(RESIDENT_ID)}\n"


def test_unreadable_input_named_without_raw_identifier(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Even a file named after a person is not echoed as such.
    monkeypatch.setenv(ENV_KEY, KEY.decode())
    assert run_here(str(tmp_path / f"{MOBILE}.txt")) == 1
    err = capsys.readouterr().err
    assert "cannot open" in err
    assert MOBILE not in err


@pytest.mark.parametrize(
    "argv",
    [
        ("--column", MOBILE),
        ("--column", "".join(chr(0xFF10 + int(d)) for d in MOBILE)),
        ("--column", f"+86{MOBILE}"),
        ("--column", RESIDENT_ID),
        ("--encoding", MOBILE),
    ],
    ids=["column-mobile", "column-full-width", "column-plus86", "column-resident-id",
         "encoding"],
)
def test_a_raw_identifier_typed_as_an_option_is_never_echoed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    argv: tuple[str, ...],
) -> None:
    # An operator pastes an identifier where the column name (or encoding) belongs.
    monkeypatch.setenv(ENV_KEY, KEY.decode())
    source = tmp_path / "people.csv"
    source.write_text("name,id_number\nLi,x\n", "utf-8")
    assert run_here(str(source), *argv) in (1, 2)
    out, err = capsys.readouterr()
    assert "[redacted]" in err
    assert len(err.splitlines()) == 1
    assert contains_raw(err + out) is False


# --- every named column, and nothing raw anywhere else ---------------------------


def test_every_named_column_is_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a CSV with a resident ID and a mobile number per person
    monkeypatch.setenv(ENV_KEY, KEY.decode())
    source = tmp_path / "people.csv"
    source.write_text(f"name,id_number,mobile\nLi,{RESIDENT_ID},{MOBILE}\n", "utf-8")
    # When both columns are named
    assert run_here(str(source), "--column", "id_number", "--column", "mobile") == 0
    # Then both are pseudonyms, not only the last one named
    out, err = capsys.readouterr()
    assert out == f"name,id_number,mobile\nLi,{expected(RESIDENT_ID)},{expected(MOBILE)}\n"
    assert "2 identifier(s)" in err


@pytest.mark.parametrize("where", ["file", "stdin"])
def test_an_identifier_in_a_column_not_named_refuses_the_run_and_writes_nothing(
    tmp_path: Path, where: str
) -> None:
    # Given a mobile number in a notes column nobody named
    text = (f"name,id_number,note\nLi,{RESIDENT_ID},ok\n"
            f"Wang,{RESIDENT_ID},call +86 {MOBILE[:3]}{MOBILE[3:]} first\nZhao,,{MOBILE}\n")
    source = tmp_path / "people.csv"
    source.write_text(text, "utf-8")
    output = tmp_path / "out.csv"
    argv = [str(source) if where == "file" else "-", "--column", "id_number"]
    # When it is pseudonymized to a file, or to standard output
    to_file = run_cli(tmp_path, *argv, "-o", str(output), stdin=text)
    to_stdout = run_cli(tmp_path, *argv, stdin=text)
    for done in (to_file, to_stdout):
        # Then the run refuses (exit 2), naming row and column, never the value
        assert done.returncode == 2, done.stderr
        assert done.stdout == b""
        message = done.stderr.decode()
        assert len(message.splitlines()) == 1
        assert "row 3, column 3 ('note')" in message
        assert "1 more cell" in message
        assert not contains_raw(message)
        assert MOBILE[3:] not in message
    assert not output.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["people.csv"]


def test_an_identifier_as_a_column_name_is_refused_by_position(tmp_path: Path) -> None:
    source = tmp_path / "people.csv"
    source.write_text(f"id_number,{MOBILE}\n{RESIDENT_ID},x\n", "utf-8")
    done = run_cli(tmp_path, str(source), "--column", "id_number")
    assert done.returncode == 2
    assert b"row 1, column 2" in done.stderr
    assert not contains_raw(done.stderr.decode())
    assert done.stdout == b""


@pytest.mark.parametrize(
    "spelling",
    [
        f"(+86){MOBILE}", f"86{MOBILE}", f"(+86) {MOBILE[:3]}-{MOBILE[3:7]}-{MOBILE[7:]}",
        MOBILE[:5] + "\u200b" + MOBILE[5:], MOBILE[:5] + "\u00ad" + MOBILE[5:],
        "".join(chr(0x0660 + int(d)) for d in MOBILE),  # Arabic-Indic digits
        "".join(chr(0x0966 + int(d)) for d in MOBILE),  # Devanagari digits
        f"{MOBILE[:3]}\u2010{MOBILE[3:7]}\u2010{MOBILE[7:]}",  # U+2010 HYPHEN
        f"+86 {MOBILE[:3]}\u2013{MOBILE[3:7]}\u2212{MOBILE[7:]}",  # en dash, minus sign
    ],
    ids=["bracketed-plus86", "86", "grouped", "zero-width-space", "soft-hyphen",
         "arabic-indic", "devanagari", "unicode-hyphen", "dashes"],
)
def test_other_spellings_of_one_mobile_give_one_pseudonym(spelling: str) -> None:
    assert normalize(spelling) == MOBILE
    assert pseudonym(spelling, KEY) == expected(MOBILE)


# Spellings of raw identifiers the contract's search finds in any string (§2).
_FORMS = st.sampled_from([
    lambda raw: raw,
    lambda raw: "".join(chr(0xFF10 + int(c)) if c.isdigit() else c for c in raw),
    lambda raw: f"+86{raw}" if raw.startswith("1") and len(raw) == 11 else raw,
    lambda raw: f"0086{raw}" if raw.startswith("1") and len(raw) == 11 else raw,
    lambda raw: f"tel:{raw};",
    lambda raw: f"备注 {raw} 已联系",
    # contract v1.2: any decimal digit, format characters inside, 3-4-4 groups, a bare 86
    lambda raw: "".join(chr(0x0660 + int(c)) if c.isdigit() else c for c in raw),
    lambda raw: "".join(chr(0x0966 + int(c)) if c.isdigit() else c for c in raw),
    lambda raw: "\u00ad".join(raw[i:i + 4] for i in range(0, len(raw), 4)),
    lambda raw: f"{raw[:3]}\u200b{raw[3:]}",
    lambda raw: f"{raw[:3]} {raw[3:7]} {raw[7:]}" if len(raw) == 11 else raw,
    lambda raw: f"{raw[:3]}-{raw[3:7]}-{raw[7:]}" if len(raw) == 11 else raw,
    lambda raw: f"86{raw}" if raw.startswith("1") and len(raw) == 11 else raw,
])
_PLAIN_CELL = st.text(alphabet="abcxyz 区街道,\"\n-_", max_size=12)


@st.composite
def _csv_with_identifiers(draw: st.DrawFn) -> tuple[list[list[str]], list[str], set[int]]:
    """A CSV table (header first), the columns to name, and the columns holding identifiers."""
    width = draw(st.integers(1, 5))
    header = [f"c{i}" for i in range(width)]
    rows = draw(st.lists(st.lists(_PLAIN_CELL, min_size=width, max_size=width), max_size=6))
    raw_columns: set[int] = set()
    for _ in range(draw(st.integers(0, 4))):
        if not rows:
            break
        row, column = draw(st.integers(0, len(rows) - 1)), draw(st.integers(0, width - 1))
        raw = draw(st.sampled_from(RAW_IDS))
        rows[row][column] = draw(_FORMS)(raw)
        raw_columns.add(column)
    named = draw(st.lists(st.sampled_from(header), min_size=1, unique=True))
    return [header, *rows], named, raw_columns


@settings(max_examples=150, deadline=None)
@given(_csv_with_identifiers())
def test_no_raw_identifier_leaves_pseudonymize_whatever_the_columns(
    case: tuple[list[list[str]], list[str], set[int]]
) -> None:
    table, named, raw_columns = case
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(table)
    with tempfile.TemporaryDirectory() as folder:
        source, output = Path(folder, "in.csv"), Path(folder, "out.csv")
        source.write_text(buffer.getvalue(), "utf-8")
        err = io.StringIO()
        os.environ[ENV_KEY] = KEY.decode()
        try:
            with contextlib.redirect_stderr(err):
                status = run_here(str(source), *itertools.chain.from_iterable(
                    ("--column", name) for name in named), "-o", str(output))
        finally:
            del os.environ[ENV_KEY]
        named_indexes = {table[0].index(name) for name in named}
        assert not contains_raw(err.getvalue())
        if raw_columns <= named_indexes:
            assert status == 0, err.getvalue()
            written = output.read_text("utf-8")
            assert not contains_raw(written)
            assert next(csv.reader(io.StringIO(written))) == table[0]
        else:
            assert status == 2
            assert "nothing was written" in err.getvalue()
            assert not output.exists()
