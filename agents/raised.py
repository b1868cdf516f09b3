"""An alert a rule decided to raise, before it becomes an :class:`outputs.Alert`.

The v1.2 rules (``entry``, ``supervision``) take plain inputs and return these, with instants
as epoch seconds, so that they depend on no runtime: the stage that calls them turns each into
an alert (its stable id from (kind, subject, due), its instants in the policy's zone) and opens
its escalation, as it does for every other alert.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Any

import msgspec

__all__ = ["Raised", "half_up"]


class Raised(msgspec.Struct, frozen=True, kw_only=True):
    """An alert of ``kind`` about ``subject``, due (and raised) at ``due`` (epoch seconds)."""

    kind: str
    subject: str
    due: int
    district: str | None
    details: dict[str, Any]
    raised: int | None = None  # when the condition became true, if after ``due``
    person_id: str | None = None
    tube_id: str | None = None


def half_up(value: Fraction | int, places: int) -> float:
    """``value`` rounded half up to ``places`` decimals (CONTRACT.md §4: 0.125 → 0.13), from
    its exact value, never through a binary float."""
    exact = Fraction(value)
    rounded = (Decimal(exact.numerator) / Decimal(exact.denominator)).quantize(
        Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    return float(rounded)
