"""Option types shared by the commands: a bad value is one line and exit 2 (argparse's
usage error), never a traceback from deep inside a run."""

from __future__ import annotations

import argparse

__all__ = ["positive", "sizes"]


def positive(text: str) -> int:
    """A whole number of at least 1 (persons, days, runs, operations)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def sizes(text: str) -> list[int]:
    """Comma-separated whole numbers of at least 2 (sizes compared on a log scale)."""
    values = [part.strip() for part in text.split(",") if part.strip()]
    if not values:
        raise argparse.ArgumentTypeError(f"{text!r} names no size")
    numbers = [positive(value) for value in values]
    if min(numbers) < 2:
        raise argparse.ArgumentTypeError(f"{text!r}: each size must be at least 2")
    return numbers
