"""Option types shared by the commands: a bad value is one line and exit 2 (argparse's
usage error), never a traceback from deep inside a run."""

from __future__ import annotations

import argparse

__all__ = ["non_negative", "positive", "sizes"]


def _number(text: str, kind: type[int] | type[float], least: float, named: str) -> float:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {named}") from None
    if not value >= least:  # not ">=": NaN is refused too
        raise argparse.ArgumentTypeError(f"{text!r} must be {least:g} or more")
    return value


def positive(text: str) -> int:
    """A whole number of at least 1 (persons, days, runs, operations)."""
    return int(_number(text, int, 1, "a whole number"))


def non_negative(text: str) -> float:
    """A number of 0 or more (a scale), NaN refused."""
    return _number(text, float, 0, "a number")


def sizes(text: str) -> list[int]:
    """Comma-separated whole numbers of at least 2 (sizes compared on a log scale)."""
    values = [part.strip() for part in text.split(",") if part.strip()]
    if not values:
        raise argparse.ArgumentTypeError(f"{text!r} names no size")
    numbers = [positive(value) for value in values]
    if min(numbers) < 2:
        raise argparse.ArgumentTypeError(f"{text!r}: each size must be at least 2")
    return numbers
