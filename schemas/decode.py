"""The decoder: bytes or a parsed object in, a valid event or a :class:`Rejection` out.

It never raises. Each way CONTRACT.md §3 says input can be wrong maps to one machine-readable
``reason`` (see ``outputs.REJECTION_REASONS``) and a human message naming the field. Unknown
extra fields are ignored, so producers can add fields without breaking consumers.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any, Final

import msgspec
import orjson

from closedloop.schemas.events import MODELS, Cohort, Event, Lab
from closedloop.schemas.identifiers import (
    REDACTED,
    contains_raw,
    looks_raw,
    redact_bytes,
    redact_text,
)
from closedloop.schemas.outputs import DeadLetter

__all__ = [
    "Rejection",
    "dead_letter",
    "decode_envelope",
    "decode_event",
    "decode_line",
    "validate_event",
]

# Fields that name a person (or may): checked for raw identifiers before anything else.
IDENTITY_FIELDS: Final = ("person_id", "worker_id", "operator_id", "subject")
# Free text, where an identifier may hide inside other words.
FREE_TEXT_FIELDS: Final = frozenset({"origin", "reason", "note"})
# Every string field of each model: none may be a raw identifier (CONTRACT.md §2: raw
# identifiers never reach a topic), whatever it is called.
STRING_FIELDS: Final = {
    model: tuple(
        name for name, kind in zip(
            model.__struct_fields__, msgspec.structs.fields(model), strict=True
        )
        if "str" in str(kind.type)
    )
    for model in MODELS.values()
}
_RAW_MESSAGE: Final = (
    "looks like a raw resident ID or mobile number; send a pseudonym (closedloop pseudonymize)"
)


def _raw_field(items: Iterable[tuple[str, Any]]) -> Rejection | None:
    for field, value in items:
        if isinstance(value, str) and (
            looks_raw(value) or (field in FREE_TEXT_FIELDS and contains_raw(value))
        ):
            return Rejection("raw_identifier", f"{field}: {_RAW_MESSAGE}")
    return None

_MISSING = re.compile(
    r"^Object missing required field `(?P<field>[^`]+)`(?: - at `(?P<at>[^`]+)`)?"
)
_AT = re.compile(r" - at `\$\.?(?P<path>[^`]*)`$")


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why an input was refused; ``message`` is safe to log (no raw identifier)."""

    reason: str
    message: str


def _classify(error: str) -> Rejection:
    """Map a msgspec validation message onto the contract's reasons."""
    missing = _MISSING.match(error)
    if missing:
        field = missing.group("field")
        return Rejection("missing_field", f"{field}: required field is missing")
    at = _AT.search(error)
    path = at.group("path") if at else ""
    text = error[: at.start()] if at else error
    if text.startswith("Invalid enum value"):
        reason = "unknown_enum"
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
    topic: str, obj: Any, cohorts: Collection[str] | None = None
) -> Event | Rejection:
    """Validate a parsed JSON value as an event of ``topic``."""
    model = MODELS.get(topic)
    if model is None:
        shown = redact_text(str(topic))
        return Rejection("unknown_topic", f"topic {shown!r} is not an input topic")
    if not isinstance(obj, dict):
        return Rejection("not_object", f"{topic}: the event must be a JSON object")
    raw = _raw_field(obj.items())
    if raw is not None:
        return raw
    try:
        event = msgspec.convert(obj, model)
    except msgspec.ValidationError as exc:
        return _classify(str(exc))
    return _after_checks(event, cohorts)


def _after_checks(event: Event, cohorts: Collection[str] | None) -> Event | Rejection:
    """Rules a field-by-field schema cannot say: raw identifiers, lab result, cohort names."""
    raw = _raw_field((name, getattr(event, name)) for name in STRING_FIELDS[type(event)])
    if raw is not None:
        return raw
    if isinstance(event, Lab) and event.status == "reported" and event.result is None:
        return Rejection("missing_field", "result: required when status is \"reported\"")
    if isinstance(event, Cohort) and cohorts is not None and event.cohort not in cohorts:
        return Rejection(
            "unknown_cohort",
            f"cohort: {redact_text(event.cohort)!r} is not a cohort the policy defines",
        )
    return event


class _Envelope(msgspec.Struct):
    topic: str
    value: msgspec.Raw


_ENVELOPE_DECODER: Final = msgspec.json.Decoder(_Envelope)
_DECODERS: Final = {topic: msgspec.json.Decoder(model) for topic, model in MODELS.items()}


def decode_event(
    topic: str, raw: bytes, cohorts: Collection[str] | None = None
) -> Event | Rejection:
    """Parse and validate one message value.

    Fast path: msgspec decodes the bytes straight into the model (README "Validation speed").
    Anything it refuses takes the slow path, orjson then :func:`validate_event`, which finds
    the precise reason; both paths accept and refuse the same inputs.
    """
    decoder = _DECODERS.get(topic)
    if decoder is not None:
        try:
            return _after_checks(decoder.decode(raw), cohorts)
        except (msgspec.MsgspecError, ValueError, RecursionError):
            # ValueError: msgspec raises UnicodeDecodeError on non-UTF-8 strings, and
            # RecursionError on deep nesting; the slow path gives both their reason.
            pass
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return Rejection("not_json", f"not JSON: {exc.msg} at byte {exc.pos}")
    return validate_event(topic, obj, cohorts)


def decode_line(
    line: bytes, cohorts: Collection[str] | None = None
) -> tuple[str, Event | Rejection] | Rejection:
    """A replay line to (topic, event or rejection), or a rejection of the envelope itself."""
    try:
        envelope = _ENVELOPE_DECODER.decode(line)
        decoder = _DECODERS.get(envelope.topic)
        if decoder is not None:
            return envelope.topic, _after_checks(decoder.decode(envelope.value), cohorts)
    except (msgspec.MsgspecError, ValueError, RecursionError):
        pass  # as in decode_event
    parsed = decode_envelope(line)
    if isinstance(parsed, Rejection):
        return parsed
    topic, value = parsed
    return topic, validate_event(topic, value, cohorts)


def decode_envelope(line: bytes | str) -> tuple[str, Any] | Rejection:
    """Parse a replay line ``{"topic": name, "value": {...}}`` into (topic, value)."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return Rejection("not_json", f"not JSON: {exc.msg} at byte {exc.pos}")
    if not isinstance(obj, dict):
        return Rejection("not_object", "a replay line must be a JSON object")
    topic = obj.get("topic")
    if not isinstance(topic, str):
        return Rejection("bad_envelope", "topic: a replay line needs a string \"topic\"")
    if "value" not in obj:
        return Rejection("bad_envelope", "value: a replay line needs the event as \"value\"")
    return topic, obj["value"]


def _redact_identity_fields(raw: bytes) -> bytes:
    """Blank identity fields of a JSON document that look raw, keeping the rest as it was."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw
    # \u escapes hide digits from the text scan in dead_letter: re-encode such documents.
    escaped = b"\\u" in raw
    changed = escaped

    def walk(node: Any) -> Any:
        nonlocal changed
        if isinstance(node, dict):
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        if isinstance(node, str) and looks_raw(node):
            changed = True
            return REDACTED
        return node

    try:
        cleaned = walk(obj)
        return orjson.dumps(cleaned) if changed else raw
    except (RecursionError, orjson.JSONEncodeError):
        # Too deep to rebuild (orjson writes 254 levels at most): without escapes the text
        # scan still finds every identifier; with them, withhold the bytes rather than leak.
        return REDACTED.encode() if escaped else raw


def dead_letter(
    rejection: Rejection,
    original: bytes,
    *,
    topic: str | None = None,
    partition: int | None = None,
    offset: int | None = None,
    line: int | None = None,
) -> DeadLetter:
    """Build the dead-letter record; raw identifiers in the original become ``[redacted]``."""
    cleaned = _redact_identity_fields(original)
    try:
        text = redact_text(cleaned.decode("utf-8"))
        encoding = "utf-8"
    except UnicodeDecodeError:
        text = base64.b64encode(redact_bytes(cleaned)).decode("ascii")
        encoding = "base64"
    return DeadLetter(
        reason=rejection.reason,  # type: ignore[arg-type]
        message=rejection.message,
        topic=topic,
        partition=partition,
        offset=offset,
        line=line,
        original=text,
        original_encoding=encoding,  # type: ignore[arg-type]
    )
