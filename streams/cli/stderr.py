"""Standard error for people (CONTRACT.md §2): no raw identifier reaches it.

A command echoes what it was given when it refuses it (a file that does not open, an instant
that does not parse, a policy file's name), and a user may type a mobile number in the wrong
place. Rather than every message redacting what it quotes, the command line writes all of
standard error through :class:`RedactedStream`, which redacts each line as a whole (a token
written in two pieces by one ``print`` is still one token).
"""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Iterator
from typing import TextIO

from closedloop.schemas.identifiers import redact_text

__all__ = ["RedactedStream", "redacted_stderr"]

_HELD_AT_MOST = 1 << 16  # characters held waiting for the end of a line


class RedactedStream(io.TextIOBase):
    """A text stream that writes every line to ``stream`` with each raw identifier in it
    ``[redacted]``; a line is written when it ends (a newline, or a carriage return for a
    progress line), on :meth:`flush`, or once it is very long."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self._stream = stream
        self._held = ""

    def write(self, text: str) -> int:
        held = self._held + text
        end = max(held.rfind("\n"), held.rfind("\r")) + 1
        if end == 0 and len(held) > _HELD_AT_MOST:
            end = len(held)
        if end:
            self._stream.write(redact_text(held[:end]))
        self._held = held[end:]
        return len(text)

    def flush(self) -> None:
        if self._held:
            self._stream.write(redact_text(self._held))
            self._held = ""
        self._stream.flush()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return self._stream.isatty()

    def fileno(self) -> int:
        return self._stream.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._stream.encoding

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return self._stream.errors


@contextlib.contextmanager
def redacted_stderr() -> Iterator[None]:
    """``sys.stderr`` redacted while the block runs (argparse's errors, every command's
    messages, a traceback), then what it was."""
    original = sys.stderr
    stream = RedactedStream(original)
    sys.stderr = stream
    try:
        yield
    finally:
        with contextlib.suppress(Exception):  # a closed pipe: nothing left to say
            stream.flush()
        sys.stderr = original
