"""A replay line as a producer publishes it: its input topic, message key and value.

``closedloop produce`` and the in-memory bus both turn replay lines into keyed records this
way, so the bus's partitions hold what Kafka's would. A line that is no envelope of an input
topic, or a keyless record for a compacted topic (the broker would refuse it, and the whole
batch it travels in), is refused here, before it reaches a topic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import msgspec

from closedloop.schemas.decode import Rejection, decode_envelope
from closedloop.schemas.events import KEY_FIELD
from closedloop.streams.engine.topology import TOPOLOGY

__all__ = ["Publishable", "Refused", "blank", "publishable"]


class _Envelope(msgspec.Struct):
    topic: str
    value: msgspec.Raw


# Only what a producer looks at: the key field of every input topic, from the contract's
# table itself, so that a topic added there is keyed here too (a field missing here made
# every record of its topic keyless, spread over partitions at random).
_Keyed = msgspec.defstruct(
    "_Keyed", [(name, object, None) for name in sorted(set(KEY_FIELD.values()))])


_decode_envelope = msgspec.json.Decoder(_Envelope).decode
_decode_keyed = msgspec.json.Decoder(_Keyed).decode


@dataclass(frozen=True, slots=True)
class Publishable:
    topic: str  # short name of an input topic
    key: bytes | None  # the contract's key field, UTF-8; None when the event has none
    value: bytes


@dataclass(frozen=True, slots=True)
class Refused:
    rejection: Rejection
    topic: str | None  # the input topic it was meant for, when the envelope says


_JSON_SPACE: Final = b" \t\r\n"


def blank(line: bytes) -> bool:
    """A line of JSON white space only (RFC 8259: space, tab, CR, LF), skipped as no input.
    Not ``bytes.strip()``'s white space: a line of form feeds or vertical tabs is not JSON,
    and is dead-lettered, never skipped unseen."""
    return not line.strip(_JSON_SPACE)


def publishable(line: bytes) -> Publishable | Refused | None:
    """The record a replay line makes, why it makes none, or None for a blank line."""
    line = line.rstrip(b"\r\n")
    if blank(line):
        return None
    try:
        envelope = _decode_envelope(line)
    except (msgspec.MsgspecError, ValueError):
        envelope = None
    if envelope is None or envelope.topic not in KEY_FIELD:
        # why, in replay's own words (not_json, not_object, …) when the line is not even an
        # envelope; a known envelope with an unknown topic keeps bad_envelope
        why = decode_envelope(line)
        return Refused(why if isinstance(why, Rejection) else Rejection(
            "bad_envelope", "not a replay envelope with a known input topic"), None)
    value = bytes(envelope.value)
    key = _key_of(envelope.topic, value)
    if key is None and TOPOLOGY.topic[envelope.topic].compact:  # the broker needs its key
        field = KEY_FIELD[envelope.topic]
        return Refused(Rejection("missing_field", f"{field}: the message key is required"),
                       envelope.topic)
    return Publishable(envelope.topic, key, value)


def _key_of(topic: str, value: bytes) -> bytes | None:
    try:
        keyed = _decode_keyed(value)
    except (msgspec.MsgspecError, ValueError):
        return None
    key = getattr(keyed, KEY_FIELD[topic])
    return key.encode() if isinstance(key, str) else None
