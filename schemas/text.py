"""Names and free text that people read: what makes a string unsafe to show or group by.

An alert, a daily report or a terminal shows names as they came. A newline forges a second
log line, U+202E (right-to-left override) makes ``pudong`` read as something else, a zero-width
character splits one district into two that look the same, and a name of spaces or with a
trailing space is a second district nobody can see. Such strings are bad input, never
silently cleaned: a producer must learn that it sends them.
"""

from __future__ import annotations

import unicodedata
from typing import Final

__all__ = ["describe", "one_line", "text_problem"]

# Allowed though str.isprintable() refuses them: private-use characters (some rare Chinese
# characters in names are encoded there), code points this Python does not know yet, and
# spaces other than U+0020 inside a name (U+3000, the ideographic space).
_ALLOWED_CATEGORIES: Final = frozenset({"Co", "Cn", "Zs"})
_FREE_TEXT_CONTROLS: Final = frozenset("\t\n\r")


def describe(char: str) -> str:
    """``U+202E RIGHT-TO-LEFT OVERRIDE``: a character named without showing it."""
    name = unicodedata.name(char, "")
    return f"U+{ord(char):04X}" + (f" {name}" if name else "")


def text_problem(value: str, *, free_text: bool = False) -> str | None:
    """What is wrong with ``value`` as a name (or, with ``free_text``, as a note), or None.

    A name is not blank, has no white space at either end, and holds no control, format,
    surrogate or line/paragraph-separator character. Free text may be blank and may hold
    tabs and line breaks, nothing else of those. The answer never quotes the value.
    """
    if not free_text:
        if not value or value.isspace():
            return "is blank"
        if value[0].isspace() or value[-1].isspace():
            return "has white space at its start or end"
    if value.isprintable():
        return None
    for char in value:
        if char.isprintable() or unicodedata.category(char) in _ALLOWED_CATEGORIES:
            continue
        if free_text and char in _FREE_TEXT_CONTROLS:
            continue
        return f"holds the control or format character {describe(char)}"
    return None


def one_line(text: str, limit: int = 300) -> str:
    """``text`` made safe for one line of a terminal or log: every character that is not
    printable becomes a ``\\uXXXX`` escape, and the whole is cut at ``limit`` characters."""
    if not text.isprintable():
        text = "".join(
            char if char.isprintable() else f"\\u{ord(char):04x}" if ord(char) < 0x10000
            else f"\\U{ord(char):08x}"
            for char in text
        )
    return text if len(text) <= limit else text[: limit - 1] + "…"
