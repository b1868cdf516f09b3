"""The names the application layer's options take, without importing what uses them: a
front end builds its forms (the command line its parser, on every start) from these alone.
"""

from __future__ import annotations

from typing import Final

__all__ = ["LEVELS", "OPEN", "SORTS", "STAGES", "STATES"]

STATES: Final = ("raised", "acknowledged", "resolved", "caught_up")
"""An alert's status: raised, acknowledged by an operator, resolved by one, or caught up
(closed by the system). Resolved and caught up are closed."""

OPEN: Final = ("raised", "acknowledged")
"""The states of an alert still to be handled."""

LEVELS: Final = (1, 2, 3)
"""Escalation levels: 1 the alert as raised, 2 the district command, 3 the city command."""

SORTS: Final = ("due", "newest", "severity")
"""``due``: oldest due first (the default: the backlog in order); ``newest``: latest due first;
``severity``: by kind from the most urgent, then the highest level, then newest."""

STAGES: Final = ("progress", "close", "final")
"""A testing round's reports, in the order they come."""
