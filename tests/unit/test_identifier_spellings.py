"""How raw identifiers may be written (CONTRACT.md §2, v1.2) and how they are redacted: any
decimal digit, format characters inside a run, a mobile grouped 3-4-4, a bare ``86``, JSON
escapes; the token replaced where it is written and every other character kept as it was,
at a cost linear and small in the text's size."""

from __future__ import annotations

import tracemalloc
import unicodedata
from typing import Final

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from closedloop.schemas.identifiers import (
    DASHES,
    REDACTED,
    contains_raw,
    looks_raw,
    read,
    redact_text,
    token_spans,
)

MOBILE: Final = "13912345678"
RESIDENT_ID: Final = "11010119900307123X"
# every script with decimal digits: its zero, found from the Unicode database
ZEROS: Final = sorted({chr(c - unicodedata.decimal(chr(c))) for c in range(0x80, 0x20000)
                       if chr(c).isdecimal()})


def spelt(digits: str, zero: str) -> str:
    return "".join(chr(ord(zero) + int(d)) if d.isdigit() else d for d in digits)


def escaped(text: str) -> str:
    return "".join(f"\\u{ord(c):04x}" if ord(c) < 0x10000 else
                   "".join(f"\\u{u:04x}" for u in _surrogates(c)) for c in text)


def _surrogates(char: str) -> tuple[int, int]:
    point = ord(char) - 0x10000
    return 0xD800 + (point >> 10), 0xDC00 + (point & 0x3FF)


@pytest.mark.parametrize("zero", ZEROS, ids=[f"U+{ord(z):04X}" for z in ZEROS])
def test_a_mobile_in_the_digits_of_any_script_is_found_and_redacted(zero: str) -> None:
    text = f"call {spelt(MOBILE, zero)} now"
    assert contains_raw(text)
    assert redact_text(text) == f"call {REDACTED} now"
    assert redact_text(escaped(text), escapes=True) == escaped("call ") + REDACTED + escaped(
        " now")


def test_scripts_can_be_mixed_within_a_number() -> None:
    mixed = "".join(spelt(d, ZEROS[n % len(ZEROS)]) for n, d in enumerate(RESIDENT_ID))
    assert looks_raw(mixed) and redact_text(f"id:{mixed};") == f"id:{REDACTED};"


@pytest.mark.parametrize("mark", ["\u00ad", "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff",
                                  "\u202e", "\u00ad\u200b"],
                         ids=["soft-hyphen", "zwsp", "zwnj", "zwj", "word-joiner", "bom",
                              "rlo", "two"])
def test_format_characters_inside_a_run_are_skipped(mark: str) -> None:
    text = f"tel {MOBILE[:3]}{mark}{MOBILE[3:7]}{mark}{MOBILE[7:]}."
    assert contains_raw(text)
    assert redact_text(text) == f"tel {REDACTED}."
    # and a format character cannot split off a twelfth digit: 12 digits are no mobile
    assert not contains_raw(f"{MOBILE}{mark}9")


@pytest.mark.parametrize("grouped", [
    "139 1234 5678", "139-1234-5678", "139 1234-5678", "+86 139 1234 5678",
    "+86139-1234-5678", "86139 1234 5678", "0086139-1234-5678", "１３９－１２３４－５６７８",
    "１３９\u30001234\u30005678", "139\u200b 1234 5678",
])
def test_a_mobile_grouped_3_4_4_is_found(grouped: str) -> None:
    assert contains_raw(f"mobile: {grouped}")
    assert MOBILE[3:7] not in redact_text(f"mobile: {grouped}")


# Every dash a writer may group the digits with: on the page "139‐1234‐5678" (U+2010 HYPHEN)
# is the mobile number as plainly as its ASCII spelling.
DASH_SPELLINGS: Final = ("\u2010", "\u2011", "\u2012", "\u2013", "\u2014", "\u2212",
                         "\ufe63", "\u301c", "\u207b")


@pytest.mark.parametrize("dash", DASH_SPELLINGS, ids=[f"U+{ord(d):04X}" for d in DASH_SPELLINGS])
def test_a_mobile_grouped_by_any_dash_is_found_and_redacted(dash: str) -> None:
    text = f"tel {MOBILE[:3]}{dash}{MOBILE[3:7]}{dash}{MOBILE[7:]}."
    assert contains_raw(text) and looks_raw(text[4:-1])
    assert redact_text(text) == f"tel {REDACTED}."
    assert redact_text(f"海淀 {text}") == f"海淀 tel {REDACTED}."
    assert redact_text(escaped(text), escapes=True) == escaped("tel ") + REDACTED + escaped(".")
    # a dash is one separator: two of them are no 3-4-4 group
    assert not contains_raw(f"{MOBILE[:3]}{dash}{dash}{MOBILE[3:7]} {MOBILE[7:]}")


def test_every_unicode_dash_and_the_minus_sign_read_as_a_hyphen() -> None:
    dashes = {chr(c) for c in range(0x80, 0x110000)
              if unicodedata.category(chr(c)) == "Pd" or chr(c) == "\u2212"}
    assert dashes <= set(DASHES)
    assert all(read(dash).text == "-" for dash in DASHES)


@pytest.mark.parametrize("text", [
    "139  1234 5678", "139 1234 56789", "1139 1234 5678", "139 12345 678", "139_1234_5678",
    "239 1234 5678", "139.1234.5678", "2022-09-06 1234-5678",
])
def test_other_groupings_are_not_a_mobile(text: str) -> None:
    assert not contains_raw(text), text


@pytest.mark.parametrize("prefix", ["+86", "0086", "86", "＋８６", "+\u200b86"])
def test_a_country_code_is_redacted_with_the_number(prefix: str) -> None:
    text = f"tel {prefix}{MOBILE}."
    assert redact_text(text) == f"tel {REDACTED}."


def test_a_bare_86_prefix_makes_13_digits_a_mobile_and_only_86() -> None:
    assert looks_raw("86" + MOBILE)
    assert not contains_raw("87" + MOBILE) and not contains_raw("860" + MOBILE)


def test_numbers_are_read_as_written() -> None:
    # a coordinate with 11 decimals holds the run 12345678901: by the letter, a mobile
    assert redact_text('{"site_lat": 31.12345678901}') == '{"site_lat": 31.' + REDACTED + "}"
    assert not contains_raw('{"site_lat": 31.123456}')
    assert redact_text("[13912345678, 1.5]") == f"[{REDACTED}, 1.5]"


def test_redaction_keeps_every_other_unit_as_written() -> None:
    text = ("\\u00e9t\\u00e9 \\ud83d\\ude00 " + escaped("١٣٩") + " \u200b" + spelt("1234", "０")
            + "-5678 and 110101\\u0031\\u0039900307123x ok \\n")
    assert redact_text(text, escapes=True) == (
        f"\\u00e9t\\u00e9 \\ud83d\\ude00 {REDACTED} and {REDACTED} ok \\n")


def test_an_expanding_character_is_replaced_whole() -> None:
    # ⑬ reads "13": the token starts inside it, the whole character goes
    assert redact_text("a ⑬912345678 b") == f"a {REDACTED} b"
    assert redact_text("a ¹³⁹¹²³⁴⁵⁶⁷⁸ b") == f"a {REDACTED} b"


def test_an_invalid_escape_is_read_as_written() -> None:
    # "\1" is no JSON escape: read as a backslash and a 1 (so the 1 starts a run), never as
    # a lone 1 glued onto the 0 before it
    assert redact_text("tel 0\\" + MOBILE, escapes=True) == "tel 0\\" + REDACTED


@pytest.mark.parametrize("filler", ["a", "界", "\\u754c", "ab\u200bc", "١"])
def test_redacting_a_long_text_costs_memory_in_proportion(filler: str) -> None:
    # a few bytes per character of the text, never a list per character
    text = filler * (2_000_000 // len(filler)) + " " + spelt(MOBILE, "０")
    tracemalloc.start()
    try:
        cleaned = redact_text(text, escapes=True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert cleaned.endswith(" " + REDACTED) and len(cleaned) < len(text)
    assert peak < 12 * len(text), f"{peak / len(text):.1f} bytes a character"


# --- the fast paths against the plain reading ---------------------------------------------------

UNITS: Final = (
    "1", "3", "9", "0", "8", "6", "+", " ", "-", "X", "x", "a", "_", ".", "界", "é", "\\",
    "１", "３", "٣", "१", "𝟏", "①", "⑬", "¹", "\u00ad", "\u200b", "\ufeff", "\u3000", "－",
    "\u2010", "\u2212", "\\u2013",
    "＋", "\\u0031", "\\u0033", "\\uff18", "\\u00e9", "\\u754c", "\\u200b", "\\u0020",
    "\\ud835\\udfcf", "\\n", "\\\\", "\\\"", "\\1", "\\u00", "13912345678", "139 1234 5678",
    "86", "0086", "11010119900307123", "\ud800",
)


def _reference(text: str, escapes: bool) -> str:
    """Redaction by the plain reading of the whole text, with no shortcut."""
    reading = read(text, escapes)
    spans: list[tuple[int, int]] = []
    for start, end in token_spans(reading.text):
        first, last = reading.written(start, end)
        if spans and first < spans[-1][1]:  # two tokens from one unit
            spans[-1] = (spans[-1][0], max(spans[-1][1], last))
        else:
            spans.append((first, last))
    out, done = [], 0
    for first, last in spans:
        out += (text[done:first], REDACTED)
        done = last
    return "".join(out) + text[done:]


@settings(max_examples=3000, deadline=None, derandomize=True, database=None)
@given(units=st.lists(st.sampled_from(UNITS), max_size=40), escapes=st.booleans())
# found by this test at higher counts: a run right after an escape that is no JSON escape
# ("\1" read as written); a broken escape ("\u00") before an escape standing for a digit
@example(units=["1", "13912345678", "\\", "13912345678"], escapes=True)
@example(units=["\\u00", "1", "\\ud835\\udfcf", "13912345678", "139 1234 5678"], escapes=True)
def test_the_shortcuts_find_what_the_plain_reading_finds(units: list[str], escapes: bool) -> None:
    text = "".join(units)
    expected = _reference(text, escapes)
    assert contains_raw(text, escapes=escapes) == (expected != text)
    assert redact_text(text, escapes=escapes) == expected


def test_the_escapes_taken_as_harmless_at_sight_read_as_nothing_of_a_token() -> None:
    # U+4000-U+9FFF: no digit, separator, plus, X or format character (they are not listed)
    assert all(not contains_raw("1391234" + chr(c) + "5678") and
               not contains_raw("139" + chr(c) + "12345678", escapes=True)
               for c in range(0x4000, 0xA000, 7))
    assert redact_text("\\u4e2d139\\u4e2d12345678\\u4e2d", escapes=True) == (
        "\\u4e2d139\\u4e2d12345678\\u4e2d")
    assert redact_text("\\u4e2d13912345678\\u4e2d", escapes=True) == (
        f"\\u4e2d{REDACTED}\\u4e2d")
