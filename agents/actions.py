"""What an operator's action may apply to: one rule for the engine and the ledger.

An action (``ack``, ``resolve``, ``assign``) applies to an alert only if the alert exists,
its subject is the action's subject, and the alert is not closed (resolved, or caught up by
the system). The ledger judges it on the alert's row (:func:`refusal`), the command line and
the console refuse what it would ignore, and the engine, which only sees the subject's own
state, ignores an action its subject does not hold (``agents/escalation.py``), giving one of
the same reasons. Every reason is a name from :data:`REASONS`, a closed set: it is a metric
label and a column of the ledger's audit.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "ACTIONS",
    "CLOSED_STATES",
    "REASONS",
    "explain",
    "refusal",
]

ACTIONS: Final = ("ack", "resolve", "assign")
"""The actions of the ``action`` topic (contract v1.2): acknowledge, resolve, assign."""

CLOSED_STATES: Final = frozenset({"resolved", "caught_up"})
"""An alert in one of these states is closed: no action applies to it any more."""

REASONS: Final = {
    "unknown_alert": "no such alert",
    "not_subjects_alert": "its subject is not the alert's",
    "alert_closed": "its alert is closed (resolved or caught up)",
    "escalation_over": "its alert's escalation had already ended",
}
"""Why an action was ignored, by name. ``unknown_alert`` and ``alert_closed`` are the
ledger's (it holds every alert); the engine, which sees one subject's state, cannot tell an
unknown alert from another subject's (``not_subjects_alert``) and knows an alert's
escalation, not whether an operator closed it (``escalation_over``: requirement met, an
earlier action, or level 3 reached)."""


def refusal(alert_subject: str | None, alert_state: str | None, subject: str) -> str | None:
    """Why an action on ``subject`` does not apply to the alert, or None when it does.

    ``alert_subject`` and ``alert_state`` are the alert's (both None: no such alert).
    """
    if alert_subject is None or alert_state is None:
        return "unknown_alert"
    if alert_subject != subject:
        return "not_subjects_alert"
    if alert_state in CLOSED_STATES:
        return "alert_closed"
    return None


def explain(counts: dict[str, int]) -> str:
    """Ignored actions by reason, for people: "1 action ignored: its subject is not the
    alert's; 2 actions ignored: no such alert" (reasons in :data:`REASONS`' order)."""
    parts = []
    for reason, words in REASONS.items():
        count = counts.get(reason, 0)
        if count:
            parts.append(f"{count:,} action{'s' if count != 1 else ''} ignored: {words}")
    return "; ".join(parts)
