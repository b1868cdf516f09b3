"""The decoder: bytes or a parsed object in, a valid event or a :class:`Rejection` out.

It never raises. Each way CONTRACT.md §3 says input can be wrong maps to one machine-readable
``reason`` (see ``outputs.REJECTION_REASONS``) and a human message naming the field. Unknown
extra fields are ignored, so producers can add fields without breaking consumers.

Order of the checks: a raw identifier anywhere (``rawscan``) wins over every other reason,
so it is searched for first, in the raw bytes; then one msgspec pass decodes the line
straight into its typed event; then a repeated key (``dupkeys``), and the rules a schema
cannot say (``implausible_time``, fields another field's value requires, half a coordinate,
names with control characters, cohort names). Only input msgspec refuses is parsed again, by
orjson, to find its exact reason.

*v1.2*: a replay line may carry ``received_at``, the record's own receipt (CONTRACT.md §1).
``decode_line(..., with_receipt=True)`` gives it back beside the event, so the engine can tell
a line's entry lag (known only from the record's own receipt).
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from functools import reduce
from typing import Any, Final, Literal, overload

import msgspec

from closedloop.schemas.dupkeys import first_repeated_key, may_repeat
from closedloop.schemas.events import (
    FREE_TEXT_FIELDS,
    MODELS,
    NAME_FIELDS,
    REQUIRED_WHEN,
    Cohort,
    Event,
    Instant,
    Round,
    Sampling,
)
from closedloop.schemas.identifiers import contains_raw, loggable, redact_text
from closedloop.schemas.outputs import DeadLetter
from closedloop.schemas.plausible import (
    DEFAULT_MAX_CLOCK_SKEW,
    implausible,
    implausible_receipt,
)
from closedloop.schemas.rawscan import (
    find_raw,
    find_raw_elsewhere,
    find_raw_in,
    parse_json,
    plain_ascii,
    redact_original,
)
from closedloop.schemas.text import text_problem

__all__ = [
    "Rejection",
    "dead_letter",
    "decode_envelope",
    "decode_event",
    "decode_line",
    "envelope_receipt",
    "header_receipt",
    "header_value",
    "raw_in_line",
    "validate_event",
]

# Fields that name a person (or may): the benchmark's identity-only check looks at these.
IDENTITY_FIELDS: Final = ("person_id", "worker_id", "operator_id", "subject")
# Every string field of each model (the JSON Schemas note on each that raw identifiers are
# refused; the decoder searches every string of the input, known field or not).
STRING_FIELDS: Final = {
    model: tuple(
        name for name, kind in zip(
            model.__struct_fields__, msgspec.structs.fields(model), strict=True
        )
        if "str" in str(kind.type)
    )
    for model in MODELS.values()
}
# Per model: the fields text_problem checks (name, free text?), and for the repeated-key
# filter how many JSON strings (keys and string values) a decoded event proves its object
# had: a constant for the required fields, plus each optional field that is not None.
_TEXT_FIELDS: Final = {
    model: tuple(
        (name, name in FREE_TEXT_FIELDS) for name in model.__struct_fields__
        if name in NAME_FIELDS or name in FREE_TEXT_FIELDS
    )
    for model in MODELS.values()
}


def _json_strings(kind: msgspec.inspect.Type) -> int:
    """JSON strings a field of this type writes: its key, and its value if a string."""
    while isinstance(kind, msgspec.inspect.Metadata):
        kind = kind.type
    if isinstance(kind, msgspec.inspect.UnionType):
        kind = next(t for t in kind.types if not isinstance(t, msgspec.inspect.NoneType))
        return _json_strings(kind)
    strings = (msgspec.inspect.StrType, msgspec.inspect.DateTimeType, msgspec.inspect.LiteralType)
    return 2 if isinstance(kind, strings) else 1


_FIELDS: Final = {model: msgspec.inspect.type_info(model).fields  # type: ignore[attr-defined]
                  for model in MODELS.values()}
_OPTIONAL: Final = {
    model: tuple((f.name, _json_strings(f.type)) for f in _FIELDS[model] if not f.required)
    for model in MODELS.values()
}
_REQUIRED: Final = {model: sum(_json_strings(f.type) for f in _FIELDS[model] if f.required)
                    for model in MODELS.values()}


def _is_nullable(kind: msgspec.inspect.Type) -> bool:
    while isinstance(kind, msgspec.inspect.Metadata):
        kind = kind.type
    return isinstance(kind, msgspec.inspect.UnionType) and any(
        isinstance(t, msgspec.inspect.NoneType) for t in kind.types)


def _is_list(kind: msgspec.inspect.Type) -> bool:
    while isinstance(kind, msgspec.inspect.Metadata):
        kind = kind.type
    return isinstance(kind, msgspec.inspect.ListType)


# Required fields whose string count varies: a nullable one (null writes no string value)
# and a list of strings (one per item); their key is in _REQUIRED already.
_VARYING: Final = {
    model: tuple((f.name, _is_list(f.type)) for f in _FIELDS[model]
                 if f.required and (_is_nullable(f.type) or _is_list(f.type)))
    for model in MODELS.values()
}
# Per model: (field, value, fields that value requires), from events.REQUIRED_WHEN.
_REQUIRED_WHEN: Final = {MODELS[topic]: rules for topic, rules in REQUIRED_WHEN.items()}
_RAW_MESSAGE: Final = (
    "looks like a raw resident ID or mobile number; send a pseudonym (closedloop pseudonymize)"
)


def _raw(where: str) -> Rejection:
    return Rejection("raw_identifier", f"{where}: {_RAW_MESSAGE}")


def raw_in_line(line: bytes) -> Rejection | None:
    """``raw_identifier`` when a raw identifier is anywhere in ``line`` (every reading the
    decoder makes of it), else None: for a writer that must not pass such a line on."""
    if plain_ascii(line):
        return None
    where = find_raw(line)
    return None if where is None else _raw(where)


_MISSING = re.compile(
    r"^Object missing required field `(?P<field>[^`]+)`(?: - at `(?P<at>[^`]+)`)?"
)
_AT = re.compile(r" - at `\$\.?(?P<path>[^`]*)`$")


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why an input was refused; ``message`` is safe to log (no raw identifier)."""

    reason: str
    message: str


def _allowed(model: type[Event] | None, path: str) -> str:
    """The values the contract allows for the enum field at ``path`` of ``model``."""
    name = path.split(".")[-1].split("[")[0]
    field = next((f for f in _FIELDS.get(model, ()) if f.name == name), None)  # type: ignore[arg-type]
    kind = None if field is None else field.type
    while isinstance(kind, msgspec.inspect.Metadata | msgspec.inspect.UnionType):
        kind = (kind.type if isinstance(kind, msgspec.inspect.Metadata) else
                next((t for t in kind.types if isinstance(t, msgspec.inspect.LiteralType)),
                     None))
    if not isinstance(kind, msgspec.inspect.LiteralType):
        return ""
    return " (one of " + ", ".join(map(str, kind.values)) + ")"


def _classify(error: str, model: type[Event] | None = None) -> Rejection:
    """Map a msgspec validation message onto the contract's reasons. An unknown enum value is
    not repeated (whatever a producer put there, a name or a number, stays out of the log)."""
    missing = _MISSING.match(error)
    if missing:
        field = missing.group("field")
        return Rejection("missing_field", f"{field}: required field is missing")
    at = _AT.search(error)
    path = at.group("path") if at else ""
    text = (error[: at.start()] if at else error).replace("\\Z'", "$'")  # as the schemas say
    if text.startswith("Invalid enum value"):
        reason = "unknown_enum"
        text = "not a value the contract names" + _allowed(model, path)
    elif "with a timezone component" in text:
        reason = "naive_timestamp"
    elif text.startswith("Invalid RFC3339"):
        reason = "invalid_timestamp"
    elif text.endswith("got `null`"):
        reason = "missing_field"
    elif text.startswith("Expected `") and ", got `" in text:
        reason = "wrong_type"
    else:
        reason = "invalid_value"
    return Rejection(reason, redact_text(f"{path or 'value'}: {text}"))


def validate_event(
    topic: str,
    obj: Any,
    cohorts: Collection[str] | None = None,
    *,
    received_at: float | None = None,
    max_clock_skew: int = DEFAULT_MAX_CLOCK_SKEW,
    receipt: datetime | None = None,
) -> Event | Rejection:
    """Validate a parsed JSON value as an event of ``topic`` received at ``received_at``
    (epoch seconds; None: the receipt is unknown and only its upper bound goes unchecked).
    ``receipt``: the record's own receipt when it carries one (*v1.2*), which then bounds
    its times instead (the caller checks it against ``received_at``:
    ``plausible.implausible_receipt``)."""
    if isinstance(topic, str) and contains_raw(topic):
        return _raw("topic")
    where = find_raw_in(obj)
    if where is not None:
        return _raw(where)
    return _validate(topic, obj, cohorts, received_at, max_clock_skew, receipt)


def _validate(
    topic: str,
    obj: Any,
    cohorts: Collection[str] | None,
    received_at: float | None,
    max_clock_skew: int,
    receipt: datetime | None = None,
) -> Event | Rejection:
    """``validate_event`` once the raw-identifier search is done."""
    model = MODELS.get(topic)
    if model is None:
        shown = redact_text(str(topic))
        return Rejection("unknown_topic", f"topic {shown!r} is not an input topic")
    if not isinstance(obj, dict):
        return Rejection("not_object", f"{topic}: the event must be a JSON object")
    try:
        event = msgspec.convert(obj, model)
    except msgspec.ValidationError as exc:
        return _classify(str(exc), model)
    return _after_checks(event, cohorts, received_at, max_clock_skew, receipt=receipt)


def _after_checks(
    event: Event,
    cohorts: Collection[str] | None,
    received_at: float | None,
    max_clock_skew: int,
    names_plain: bool = False,
    receipt: datetime | None = None,
) -> Event | Rejection:
    """Rules a field-by-field schema cannot say: plausible times, fields another field's
    value requires, coordinates in pairs, printable names, cohort names. ``names_plain``: the
    document proved every name printable with no white space at either end
    (:func:`_plain_names`)."""
    why = implausible(event, received_at, max_clock_skew, receipt)
    if why is not None:
        return Rejection("implausible_time", why)
    required = _REQUIRED_WHEN.get(type(event))
    if required is not None:
        lacking = _missing_required(event, required)
        if lacking is not None:
            return lacking
    if isinstance(event, Sampling) and (event.site_lat is None) != (event.site_lon is None):
        given, missing = (("site_lat", "site_lon") if event.site_lon is None
                          else ("site_lon", "site_lat"))
        return Rejection("missing_field", f"{missing}: required when {given} is given "
                         "(half a coordinate places the site nowhere)")
    for name, free_text in () if names_plain else _TEXT_FIELDS[type(event)]:
        value = getattr(event, name)
        # inlined common case: printable, and (a name) no white space at either end
        if value is None or (value.isprintable() and (
                free_text or not (value[0].isspace() or value[-1].isspace()))):
            continue
        problem = text_problem(value, free_text=free_text)
        if problem is not None:
            return Rejection("invalid_value", f"{name}: {problem}")
    if isinstance(event, Round):
        return _round_checks(event, cohorts)
    if isinstance(event, Cohort) and cohorts is not None and event.cohort not in cohorts:
        return _unknown_cohort(event.cohort)
    return event


def _missing_required(
    event: Event, rules: tuple[tuple[str, str, tuple[str, ...]], ...]
) -> Rejection | None:
    """``missing_field`` for the first field the event's own values require and lack."""
    for switch, value, fields in rules:
        if getattr(event, switch) == value:
            for name in fields:
                if getattr(event, name) is None:
                    return Rejection("missing_field", f"{name}: required when {switch} is "
                                     f"\"{value}\"")
    return None


def _unknown_cohort(name: str) -> Rejection:
    return Rejection(
        "unknown_cohort", f"cohort: {redact_text(name)!r} is not a cohort the policy defines")


def _round_checks(event: Round, cohorts: Collection[str] | None) -> Round | Rejection:
    """A round closes after it opens, names printable districts and a known cohort."""
    if event.closes_at <= event.opens_at:
        return Rejection("invalid_value", "closes_at: a round must close after it opens "
                         f"(opens_at {event.opens_at.isoformat()}, closes_at "
                         f"{event.closes_at.isoformat()})")
    for number, district in enumerate(event.districts):
        problem = text_problem(district)
        if problem is not None:
            return Rejection("invalid_value", f"districts[{number}]: {problem}")
    if event.cohort is not None and cohorts is not None and event.cohort not in cohorts:
        return _unknown_cohort(event.cohort)
    return event


def _strings_proved(event: Event) -> int:
    """How many JSON strings (distinct keys, and string values) ``event``'s object had."""
    model = type(event)
    count = _REQUIRED[model]
    for name, strings in _OPTIONAL[model]:
        if getattr(event, name) is not None:
            count += strings
    for name, is_list in _VARYING[model]:
        value = getattr(event, name)
        if is_list:
            count += len(value)
        elif value is None:
            count -= 1  # counted as key and value; null has no string
    return count


def _repeated(document: bytes, strings_proved: int | None = None) -> Rejection | None:
    """``duplicate_key`` when an object of ``document`` (valid JSON) repeats a key."""
    if strings_proved is not None and not may_repeat(document, strings_proved):
        return None
    key = first_repeated_key(document)
    if key is None:
        return None
    shown = "topic" if key == "topic" else redact_text(key)
    return Rejection("duplicate_key", f"{shown}: a key given twice in one object (which "
                     "value counts would depend on the parser)")


_DECODERS: Final = {topic: msgspec.json.Decoder(model) for topic, model in MODELS.items()}
# One replay line decodes in one msgspec pass into a per-topic line struct, tagged by its
# "topic": measured about 1.5x faster than an envelope with a raw value decoded again.
_LINE_TYPES: Final = {
    msgspec.defstruct(
        f"{model.__name__}Line", [("value", model), ("received_at", Instant | None, None)],
        tag_field="topic", tag=topic, frozen=True,
    ): topic
    for topic, model in MODELS.items()
}
_LINE_DECODER: Final[msgspec.json.Decoder[Any]] = msgspec.json.Decoder(
    reduce(operator.or_, _LINE_TYPES)
)
# msgspec raises UnicodeDecodeError (a ValueError) on non-UTF-8 strings and RecursionError on
# deep nesting; the slow path gives both their reason.
_REFUSED: Final = (msgspec.MsgspecError, ValueError, RecursionError)


_DEL: Final = 0x7F
_OPENS_WITH_SPACE: Final = b'" '
_ENDS_WITH_SPACE: Final = b' "'


def _plain_names(document: bytes) -> bool:
    """For a :func:`plain_ascii` document (JSON): is every string in it printable, with no
    white space at either end? Its strings are the bytes between their quotes, which JSON
    keeps at or above 0x20, so only DEL is not printable and only a space is white space,
    and a string opening or ending with one has it next to its quote. The per-field checks
    are then skipped (a line with spaces between its tokens still takes them)."""
    return (_DEL not in document and document.find(_OPENS_WITH_SPACE) < 0
            and document.find(_ENDS_WITH_SPACE) < 0)


def _utf8(document: bytes) -> bool:
    """Is ``document`` UTF-8? msgspec skips the bytes of keys it does not know without
    looking at them, so a line with broken UTF-8 in an unknown key would pass as JSON; it is
    not (RFC 8259), and the slow path says so (``not_json``). ASCII, the common case, is
    checked in C at memory speed."""
    if document.isascii():
        return True
    try:
        document.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def decode_event(
    topic: str,
    raw: bytes,
    cohorts: Collection[str] | None = None,
    *,
    received_at: float | None = None,
    max_clock_skew: int = DEFAULT_MAX_CLOCK_SKEW,
    receipt: datetime | None = None,
) -> Event | Rejection:
    """Parse and validate one message value (the worker's records).

    ``received_at``: the record's receipt (epoch seconds) as the run knows it; ``receipt``:
    the record's own, from its ``received_at`` header (*v1.2*, :func:`header_receipt`), which
    then bounds the event's times and may be no more than ``max_clock_skew`` after
    ``received_at``.

    Fast path: msgspec decodes the bytes straight into the model (schemas/VALIDATION.md).
    Anything it refuses takes the slow path, orjson then the same checks, which finds the
    precise reason; both paths accept and refuse the same inputs.
    """
    plain = plain_ascii(raw)  # no raw identifier in it, and UTF-8
    if not plain:
        where = find_raw(raw)
        if where is not None:
            return _raw(where)
    if receipt is not None:
        why = implausible_receipt(receipt, received_at, max_clock_skew)
        if why is not None:
            return Rejection("implausible_time", why)
    decoder = _DECODERS.get(topic)
    if decoder is not None and (plain or _utf8(raw)):
        try:
            event = decoder.decode(raw)
        except _REFUSED:
            pass
        else:
            return _repeated(raw, _strings_proved(event)) or _after_checks(
                event, cohorts, received_at, max_clock_skew, plain and _plain_names(raw),
                receipt)
    try:
        obj = parse_json(raw)
    except (ValueError, RecursionError) as exc:
        return _not_json(raw, exc)
    return _repeated(raw) or _validate(topic, obj, cohorts, received_at, max_clock_skew,
                                       receipt)


def _not_json(document: bytes | str, exc: Exception, *, searched: bool = True) -> Rejection:
    """``not_json``, saying where; a raw identifier in another reading of the line (UTF-16,
    GB18030) wins. ``searched``: find_raw has read the line already, as the decoder does
    before anything else."""
    if isinstance(document, bytes):
        where = (find_raw_elsewhere(document) if searched else find_raw(document)
                 or find_raw_elsewhere(document))
        if where is not None:
            return _raw(where)
        try:
            document.decode("utf-8")
        except UnicodeDecodeError as bad:
            return Rejection("not_json", f"not JSON: byte {bad.start} is not UTF-8 "
                             f"({bad.reason})")
    if isinstance(exc, json.JSONDecodeError):
        return Rejection("not_json", f"not JSON: {exc.msg} at byte {exc.pos}")
    return Rejection("not_json", f"not JSON: {type(exc).__name__}: {exc}"[:200])


RECEIVED_AT_HEADER: Final = "received_at"
"""*v1.2* The Kafka record header holding the record's own receipt (CONTRACT.md §1)."""
NO_RECEIPT_HEADER: Final = b"none"
"""The header's value for a record sent without a receipt of its own: its entry lag is
unknown, and its receipt is the record's timestamp as before v1.2."""


def header_value(receipt: datetime | None) -> bytes:
    """The ``received_at`` header ``closedloop produce`` writes for a line's receipt."""
    return NO_RECEIPT_HEADER if receipt is None else receipt.isoformat().encode()


def header_receipt(value: bytes) -> datetime | Rejection | None:
    """A record's own receipt from its ``received_at`` header: None for ``none`` (no receipt
    of its own), else an RFC 3339 instant with an offset, parsed as every timestamp is."""
    if value == NO_RECEIPT_HEADER:
        return None
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return Rejection("invalid_timestamp", "received_at header: not UTF-8")
    if contains_raw(text):
        return _raw("received_at header")
    receipt = _receipt(text, None, DEFAULT_MAX_CLOCK_SKEW)
    if isinstance(receipt, Rejection):
        return Rejection(receipt.reason, "received_at header" + receipt.message[11:])
    return receipt


class _ReceiptOnly(msgspec.Struct):
    received_at: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET


_decode_receipt_only: Final = msgspec.json.Decoder(_ReceiptOnly).decode


def envelope_receipt(line: bytes) -> datetime | Rejection | None:
    """A replay line's own receipt, its envelope's ``received_at`` (*v1.2*), for a producer
    that passes it on as the ``received_at`` header: None when the line has none (or null),
    a rejection naming ``received_at`` when it is no RFC 3339 instant with an offset. Not
    judged against any clock here: the reader of the record does that, by its own."""
    try:
        given = _decode_receipt_only(line).received_at
    except _REFUSED:
        return Rejection("bad_envelope", "not a replay envelope")
    if isinstance(given, msgspec.UnsetType):
        return None
    try:
        value = parse_json(bytes(given))
    except (ValueError, RecursionError) as exc:
        return _not_json(line, exc)
    return _receipt(value, None, DEFAULT_MAX_CLOCK_SKEW)


Line = tuple[str, Event | Rejection, datetime | None]
"""A replay line read with its receipt: its topic, its event or why not, and its own receipt
(*v1.2*: the envelope's ``received_at``; None when the line has none, so its entry lag is
unknown)."""


@overload
def decode_line(
    line: bytes, cohorts: Collection[str] | None = None, *, received_at: float | None = None,
    max_clock_skew: int = DEFAULT_MAX_CLOCK_SKEW, with_receipt: Literal[False] = False,
) -> tuple[str, Event | Rejection] | Rejection: ...


@overload
def decode_line(
    line: bytes, cohorts: Collection[str] | None = None, *, received_at: float | None = None,
    max_clock_skew: int = DEFAULT_MAX_CLOCK_SKEW, with_receipt: Literal[True],
) -> Line | Rejection: ...


def decode_line(
    line: bytes,
    cohorts: Collection[str] | None = None,
    *,
    received_at: float | None = None,
    max_clock_skew: int = DEFAULT_MAX_CLOCK_SKEW,
    with_receipt: bool = False,
) -> tuple[str, Event | Rejection] | Line | Rejection:
    """A replay line to (topic, event or rejection), or a rejection of the envelope itself;
    ``with_receipt``: (topic, event or rejection, the line's own receipt or None).

    ``received_at`` is the run's receipt (epoch seconds, or None when unknown): a line's own
    ``received_at`` (*v1.2*) replaces it as the bound of the event's times, and may itself be
    no more than ``max_clock_skew`` after it. One function rather than two, so that the
    common path pays for no extra call either way.
    """
    plain = plain_ascii(line)  # no raw identifier in it, and UTF-8
    if not plain:
        where = find_raw(line)
        if where is not None:
            return _line_of(_named_topic(line, _raw(where)), None, with_receipt)
    try:
        parsed = _LINE_DECODER.decode(line) if plain or _utf8(line) else None
    except _REFUSED:
        parsed = None
    if parsed is not None:
        event: Event = parsed.value  # every line type has its event as "value"
        topic = _LINE_TYPES[type(parsed)]
        receipt: datetime | None = parsed.received_at
        # the envelope's keys "topic" and "value" and the topic's name, besides the event's;
        # and "received_at" with its value when given
        strings = 3 + _strings_proved(event)
        if receipt is not None:
            strings += 2
            why = implausible_receipt(receipt, received_at, max_clock_skew)
            if why is not None:
                return _line_of(_envelope_repeat(
                    topic, _repeated(line, strings) or Rejection("implausible_time", why)),
                    receipt, with_receipt)
        if not may_repeat(line, strings):
            # The common case, without _repeated and _envelope_repeat: no key can repeat,
            # and no after-check rejects as duplicate_key.
            decoded = _after_checks(event, cohorts, received_at, max_clock_skew,
                                    plain and _plain_names(line), receipt)
            return (topic, decoded, receipt) if with_receipt else (topic, decoded)
        return _line_of(_envelope_repeat(topic, _repeated(line, strings) or _after_checks(
            event, cohorts, received_at, max_clock_skew, receipt=receipt)), receipt,
            with_receipt)
    envelope = _split_envelope(line, searched=True)
    if isinstance(envelope, Rejection):
        return envelope
    topic, value, given = envelope
    refused = _repeated(line)
    if refused is not None:
        return _line_of(_envelope_repeat(topic, refused), None, with_receipt)
    receipt_read = _receipt(given, received_at, max_clock_skew)
    if isinstance(receipt_read, Rejection):
        return _line_of((topic, receipt_read), None, with_receipt)
    return _line_of((topic, _validate(topic, value, cohorts, received_at, max_clock_skew,
                                      receipt_read)), receipt_read, with_receipt)


def _line_of(
    decoded: tuple[str, Event | Rejection] | Rejection, receipt: datetime | None,
    with_receipt: bool,
) -> tuple[str, Event | Rejection] | Line | Rejection:
    if isinstance(decoded, Rejection) or not with_receipt:
        return decoded
    return (*decoded, receipt)


_NO_RECEIPT: Final = object()
"""A line without the key ``received_at`` (as against one that writes ``null``)."""
_RECEIPT_TYPE: Final[Any] = Instant | None


def _receipt(
    given: object, received_at: float | None, max_clock_skew: int
) -> datetime | Rejection | None:
    """The line's own receipt from its envelope's ``received_at`` (parsed JSON): None when
    absent or null, a rejection naming ``received_at`` when it is no plausible instant."""
    if given is _NO_RECEIPT or given is None:
        return None
    try:
        receipt: datetime = msgspec.convert(given, _RECEIPT_TYPE)
    except msgspec.ValidationError as exc:
        found = _classify(str(exc))
        return Rejection(found.reason, found.message.replace("value:", "received_at:", 1))
    why = implausible_receipt(receipt, received_at, max_clock_skew)
    return receipt if why is None else Rejection("implausible_time", why)


def _named_topic(line: bytes, rejection: Rejection) -> tuple[str, Rejection] | Rejection:
    """The rejection with the line's topic when that is an input topic's name (so the dead
    letter says where the event was going); a name is never an identifier, anything else
    in the "topic" field may be."""
    try:
        obj = parse_json(line)
    except (ValueError, RecursionError):
        return rejection
    topic = obj.get("topic") if isinstance(obj, dict) else None
    return (topic, rejection) if isinstance(topic, str) and topic in MODELS else rejection


def _envelope_repeat(
    topic: str, decoded: Event | Rejection
) -> tuple[str, Event | Rejection] | Rejection:
    """A line whose "topic" key is repeated has no topic to name; any other, its topic."""
    if isinstance(decoded, Rejection) and decoded.reason == "duplicate_key" \
            and decoded.message.startswith("topic:"):
        return decoded
    return topic, decoded


def decode_envelope(line: bytes | str) -> tuple[str, Any] | Rejection:
    """Parse a replay line ``{"topic": name, "value": {...}}`` into (topic, value)."""
    envelope = _split_envelope(line, searched=False)
    return envelope if isinstance(envelope, Rejection) else envelope[:2]


def _split_envelope(line: bytes | str, *, searched: bool
                    ) -> tuple[str, Any, object] | Rejection:
    """(topic, value, received_at as parsed or ``_NO_RECEIPT``) of a replay line;
    ``searched``: the line was searched for raw identifiers already (:func:`_not_json`)."""
    try:
        obj = parse_json(line)
    except (ValueError, RecursionError) as exc:
        return _not_json(line, exc, searched=searched)
    if not isinstance(obj, dict):
        return Rejection("not_object", "a replay line must be a JSON object")
    topic = obj.get("topic")
    if not isinstance(topic, str):
        return Rejection("bad_envelope", "topic: a replay line needs a string \"topic\"")
    if "value" not in obj:
        return Rejection("bad_envelope", "value: a replay line needs the event as \"value\"")
    return topic, obj["value"], obj.get("received_at", _NO_RECEIPT)


def dead_letter(
    rejection: Rejection,
    original: bytes,
    *,
    topic: str | None = None,
    partition: int | None = None,
    offset: int | None = None,
    line: int | None = None,
) -> DeadLetter:
    """Build the dead-letter record; raw identifiers in every copy become ``[redacted]``."""
    text, encoding = redact_original(original)
    return DeadLetter(
        reason=rejection.reason,  # type: ignore[arg-type]
        message=redact_text(loggable(rejection.message)),
        topic=topic,
        partition=partition,
        offset=offset,
        line=line,
        original=text,
        original_encoding=encoding,
    )
