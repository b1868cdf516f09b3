"""Stable identifiers of outputs (CONTRACT.md §5).

An alert's id depends only on (kind, subject, due_at), so every run and every worker derives
the same id for the same lapse: consumers de-duplicate by ``alert_id`` alone.
"""

from __future__ import annotations

import hashlib

__all__ = ["alert_id"]


def alert_id(kind: str, subject: str, due_epoch: int) -> str:
    """``al-`` + 32 hex digits of SHA-256 over kind, subject and the due instant (epoch s)."""
    digest = hashlib.sha256(f"{kind}\x1f{subject}\x1f{due_epoch}".encode()).hexdigest()
    return f"al-{digest[:32]}"
