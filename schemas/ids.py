"""Stable identifiers of outputs (CONTRACT.md §5), and ids that never look like a mobile.

An alert's id depends only on (kind, subject, due_at), so every run and every worker derives
the same id for the same lapse: consumers de-duplicate by ``alert_id`` alone.

Every id made of hex digits (alert ids, pseudonyms, generated event ids) is spelt with
:func:`spell_digit_runs`: about 1 hex string of 32 in 390 holds 11 digits in a row, which
contract v1.1 §2 reads as a raw mobile number wherever it stands, so such an id would be
refused as input (an operator's ack of that alert, say) and would count as a raw identifier
in every output.
"""

from __future__ import annotations

import hashlib
import re
from typing import Final

__all__ = ["alert_id", "spell_digit_runs"]

_DIGIT_RUN: Final = re.compile(r"[0-9]{11,}")
_SPELL: Final = str.maketrans("0123456789", "ghijklmnop")


def spell_digit_runs(text: str, start: int = 0) -> str:
    """Spell in g-p every digit at or after ``start`` that stands in a run of 11 or more.

    Hex digits never include g-p, so for a hex tail this is one-to-one, and a string without
    such a run is returned unchanged (ids made before keep their value).
    """
    if _DIGIT_RUN.search(text) is None:
        return text
    chars = list(text)
    for run in _DIGIT_RUN.finditer(text):
        for index in range(max(run.start(), start), run.end()):
            chars[index] = text[index].translate(_SPELL)
    return "".join(chars)


def alert_id(kind: str, subject: str, due_epoch: int) -> str:
    """``al-`` + 32 hex digits of SHA-256 over kind, subject and the due instant (epoch s),
    long digit runs spelt (:func:`spell_digit_runs`)."""
    digest = hashlib.sha256(f"{kind}\x1f{subject}\x1f{due_epoch}".encode()).hexdigest()
    return spell_digit_runs(f"al-{digest[:32]}")
