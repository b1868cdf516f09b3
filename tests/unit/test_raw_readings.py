"""Raw identifiers in numbers and in other encodings (CONTRACT.md §2, v1.2): a line that is
a number, an array of them, a number in a field, and a line in UTF-16 (with or without a byte
order mark, cut at either byte) or in GB18030 is refused as ``raw_identifier``, and its dead
letter holds the identifier in no reading of its bytes."""

from __future__ import annotations

import base64
from typing import Any, Final

import orjson
import pytest

from closedloop.schemas.decode import Rejection, dead_letter, decode_event, decode_line
from closedloop.schemas.events import Sampling
from closedloop.schemas.identifiers import REDACTED, contains_raw
from closedloop.schemas.outputs import DeadLetter

MOBILE: Final = "13912345678"
FULL_WIDTH: Final = "".join(chr(0xFF10 + int(d)) for d in MOBILE)
SAMPLING: Final = {
    "event_id": "s-1", "occurred_at": "2022-09-06T09:00:00+08:00", "person_id": "pz:00aa11bb",
    "tube_id": "tube-1", "site_id": "site-1", "district": "徐汇区", "pool_size": 1,
}
READINGS: Final = (("utf-8", 0), ("utf-16-le", 0), ("utf-16-le", 1), ("utf-16-be", 0),
                   ("utf-16-be", 1), ("gb18030", 0))


def line(value: Any, topic: str = "sampling") -> bytes:
    return orjson.dumps({"topic": topic, "value": value})


def readings(data: bytes) -> list[str]:
    """``data`` read every way the search reads a line."""
    texts = []
    for codec, start in READINGS:
        chunk = data[start:]
        if codec.startswith("utf-16"):
            chunk = chunk[:len(chunk) // 2 * 2]
        texts.append(chunk.decode(codec, "surrogatepass" if "16" in codec
                                  else "surrogateescape"))
    return texts


def refused_and_clean(data: bytes) -> DeadLetter:
    """``data`` is refused as raw_identifier; its dead letter holds no token, in any reading,
    and its message none either."""
    result = decode_line(data)
    rejection = result if isinstance(result, Rejection) else result[1]
    assert isinstance(rejection, Rejection) and rejection.reason == "raw_identifier", rejection
    letter = dead_letter(rejection, data, line=1)
    kept = (base64.b64decode(letter.original) if letter.original_encoding == "base64"
            else letter.original.encode())
    for text in readings(kept):
        assert not contains_raw(text, escapes=True), text
    assert not contains_raw(letter.message)
    return letter


@pytest.mark.parametrize("data", [
    MOBILE.encode(), b"86" + MOBILE.encode(), b"-" + MOBILE.encode(), b" " + MOBILE.encode(),
    f"[{MOBILE}, 1, 2]".encode(), f"[1.5, 0.{MOBILE}]".encode(),
    b'{"topic": "sampling", "value": ' + MOBILE.encode() + b"}",
], ids=["bare", "bare-86", "negative", "spaced", "array", "decimals", "value"])
def test_a_line_that_is_a_number_or_holds_one_is_refused_and_redacted(data: bytes) -> None:
    letter = refused_and_clean(data)
    assert REDACTED in letter.original


def test_a_number_in_a_field_is_refused_whatever_else_is_wrong() -> None:
    # pool_size must be 1..: a mobile there was invalid_value, with the number in the letter
    letter = refused_and_clean(line(SAMPLING | {"pool_size": int(MOBILE)}))
    written = line(SAMPLING).decode()
    assert letter.original == written.replace('"pool_size":1', f'"pool_size":{REDACTED}')
    assert letter.message.startswith("value.pool_size: ")
    raw = orjson.dumps(SAMPLING | {"count": int("86" + MOBILE)})
    rejection = decode_event("sampling", raw)
    assert isinstance(rejection, Rejection) and rejection.reason == "raw_identifier"
    assert rejection.message.startswith("count: ")


@pytest.mark.parametrize(("codec", "bom", "cut"), [
    ("utf-16-le", True, False), ("utf-16-be", True, False), ("utf-16-le", False, False),
    ("utf-16-be", False, False), ("utf-16-le", False, True), ("utf-16-be", True, True),
])
def test_a_line_in_utf_16_is_read_as_utf_16(codec: str, bom: bool, cut: bool) -> None:
    text = orjson.dumps(SAMPLING | {"note": f"tel {MOBILE}"}).decode()
    data = ("\ufeff" + text if bom else text).encode(codec)
    if cut:  # the byte before it left from the line before (a UTF-16 newline is 2 bytes)
        data = b"\x00" + data
    refused_and_clean(data)


def test_a_line_in_gb18030_with_full_width_digits_is_read_as_gb18030() -> None:
    data = line(SAMPLING | {"note": f"电话{FULL_WIDTH}"}).decode().encode("gb18030")
    letter = refused_and_clean(data)
    assert letter.original_encoding == "base64"  # the original is not UTF-8
    kept = base64.b64decode(letter.original).decode("gb18030")
    assert "电话" + REDACTED in kept


def test_a_utf_16_line_of_arabic_indic_digits_is_found() -> None:
    # whose bytes are all ASCII, tab among them: valid UTF-8, but no JSON
    data = "".join(chr(0x0660 + int(d)) for d in MOBILE).encode("utf-16-le")
    refused_and_clean(data)


def test_a_line_that_is_no_json_in_any_reading_keeps_its_reason() -> None:
    for data in (b"\xff\xfe", "not json 界".encode("utf-16"), b"\x00\x01"):
        result = decode_line(data)
        assert isinstance(result, Rejection) and result.reason == "not_json", (data, result)


def test_the_not_utf8_message_names_the_byte_that_is_not() -> None:
    data = line(SAMPLING)
    bad = data.replace(b'"tube-1"', b'"tube-\xff"')
    result = decode_line(bad)
    assert isinstance(result, Rejection) and result.reason == "not_json"
    at = bad.index(b"\xff")
    assert result.message == f"not JSON: byte {at} is not UTF-8 (invalid start byte)"


def test_a_huge_number_in_an_unknown_field_is_ignored_whatever_else_is_wrong() -> None:
    huge = "9" * 400
    valid = line(SAMPLING).replace(b'"pool_size":1', b'"pool_size":1,"extra":' + huge.encode())
    result = decode_line(valid)
    assert isinstance(result, tuple) and isinstance(result[1], Sampling), result
    # the same line missing a field is refused for that field, not as not JSON
    missing = valid.replace(b'"tube_id":"tube-1",', b"")
    result = decode_line(missing)
    assert isinstance(result, tuple) and isinstance(result[1], Rejection)
    assert result[1].reason == "missing_field", result[1]
    # and beyond a double in a known field, it is out of range there
    known = line(SAMPLING).replace(b'"pool_size":1', b'"pool_size":' + huge.encode())
    result = decode_line(known)
    assert isinstance(result, tuple) and isinstance(result[1], Rejection)
    assert result[1].reason in ("invalid_value", "wrong_type"), result[1]


def test_an_unknown_enum_value_is_not_repeated() -> None:
    lab = {"event_id": "l-1", "occurred_at": "2022-09-06T09:00:00+08:00", "tube_id": "tube-1",
           "lab_id": "lab-1", "status": "Zhang San's tube"}
    result = decode_line(line(lab, "lab"))
    assert isinstance(result, tuple) and isinstance(result[1], Rejection)
    assert result[1].reason == "unknown_enum"
    assert "Zhang" not in result[1].message
    assert result[1].message == "status: not a value the contract names (one of received, reported)"


@pytest.mark.parametrize("district", [
    "海淀" + "".join(chr(0x0660 + int(d)) for d in MOBILE),  # Arabic-Indic
    "海淀" + "".join(chr(0x0966 + int(d)) for d in MOBILE),  # Devanagari
    f"海淀 {MOBILE[:5]}\u00ad{MOBILE[5:]}",  # a soft hyphen inside
    f"海淀 {MOBILE[:3]}\u200b{MOBILE[3:]}",  # a zero-width space inside
    f"海淀 {MOBILE[:3]} {MOBILE[3:7]} {MOBILE[7:]}",  # grouped 3-4-4
    f"海淀 86{MOBILE}",
    f"海淀 {MOBILE[:3]}\u2010{MOBILE[3:7]}\u2010{MOBILE[7:]}",  # grouped by U+2010 HYPHEN
    f"{MOBILE[:3]}\u2013{MOBILE[3:7]}\u2013{MOBILE[7:]}",  # grouped by en dashes
], ids=["arabic-indic", "devanagari", "soft-hyphen", "zero-width-space", "grouped", "86",
        "unicode-hyphen", "en-dash"])
def test_a_district_holding_a_mobile_in_any_spelling_never_reaches_an_alert(
    district: str,
) -> None:
    letter = refused_and_clean(line(SAMPLING | {"district": district}))
    assert orjson.loads(letter.original)["value"]["district"].endswith(REDACTED)
