"""Repeated keys in one JSON object: bad input (reason ``duplicate_key``).

RFC 8259 leaves ``{"person_id": "a", "person_id": "b"}`` to the parser, and every parser here
(orjson, msgspec) quietly keeps the last value. A producer and a consumer that disagree on
which one counts read two different events from the same bytes, so such a line is refused.

Checking costs one byte count on almost every line. A decoded event proves a number of JSON
strings its line held (the keys of its fields, and the values that are strings); every
string is written between two ``"`` and an escaped quote only adds one, so when the line has
exactly twice that many ``"``, it holds no other key, and no key twice. Only the rest
(unknown fields, explicit nulls, escaped quotes, repeats) are tokenised exactly.
"""

from __future__ import annotations

import json
import re
from typing import Final

__all__ = ["first_repeated_key", "may_repeat"]

# A JSON document's tokens that matter here: strings (so brackets inside them are skipped) and
# the structural characters; possessive, so a long string costs no memory per character
# (see rawscan.py).
_TOKEN: Final = re.compile(rb'"(?:[^"\\]++|\\.)*+"|[{}\[\]:,]', re.DOTALL)


def may_repeat(document: bytes, strings_proved: int) -> bool:
    """False when ``document`` (valid JSON) cannot repeat a key: it holds no more strings
    than the ``strings_proved`` (distinct keys, and string values) its decoding proved."""
    return document.count(b'"') != 2 * strings_proved


def _key(token: bytes) -> str:
    """A key token as the string it stands for (``"\\u0061"`` is ``a``)."""
    try:
        value = json.loads(token)
    except ValueError:  # not reachable for a document a JSON parser accepted
        return token.decode("utf-8", "replace")
    return value if isinstance(value, str) else ""


def first_repeated_key(document: bytes) -> str | None:
    """The first key written twice in one object of ``document`` (valid JSON), else None.

    Iterative, so no nesting depth can break it. Keys compare as the strings they stand for.
    """
    objects: list[set[str] | None] = []  # per open bracket: the keys seen, None for an array
    last_string: bytes | None = None
    for match in _TOKEN.finditer(document):
        token = match.group()
        first = token[:1]
        if first == b'"':
            last_string = token
            continue
        if first == b":" and last_string is not None and objects:
            keys = objects[-1]
            if keys is not None:
                key = _key(last_string)
                if key in keys:
                    return key
                keys.add(key)
        elif first in b"{[":
            objects.append(set() if first == b"{" else None)
        elif first in b"}]" and objects:
            objects.pop()
        last_string = None
    return None
