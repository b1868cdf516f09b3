"""What the rules make: the one typed value every handler writes its outputs into.

A rule reads its inputs from the :class:`~closedloop.agents.requirements.Context` (policy,
calendar, clock, shared facts) and writes what it makes into ``ctx.out``, an
:class:`Effects`: alerts and escalations, daily and round reports for the output topics,
forwards, contributions and round shares for other stages, and the keys it decided to
forget. Whoever runs the rules owns the value and hands out a fresh one when it takes what
is there (a worker per record, replay per flush): nothing is cleared by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from closedloop.agents.state import Contribution, Forward, LabTold, RoundPart
from closedloop.schemas.outputs import Alert, DailyReport, RoundReport

__all__ = ["Effects"]


@dataclass(slots=True)
class Effects:
    alerts: list[Alert] = field(default_factory=list)
    escalations: list[Alert] = field(default_factory=list)  # kind escalated: their own topic
    reports: list[DailyReport] = field(default_factory=list)
    round_reports: list[RoundReport] = field(default_factory=list)  # agents/round_sum.py
    forwards: list[tuple[str, Forward]] = field(default_factory=list)  # to the person stage
    contributions: list[Contribution] = field(default_factory=list)  # to the report stage
    round_parts: list[RoundPart] = field(default_factory=list)  # agents/rounds.py shares
    labs: list[tuple[str, LabTold]] = field(default_factory=list)  # to the data-entry stage
    # Keys whose gc lapse decided to forget them: the stage deletes each as it finishes with
    # it (a decision about the key, not state: never changelogged).
    gone: set[str] = field(default_factory=set)
    # Operator actions kept for an alert their subject never raised, forgotten since the
    # runner last looked (prune_early): ignored, their subject is not the alert's.
    actions_dropped: int = 0
    # Records a rule ignored and counted, by what they were (the supervision rules: findings
    # given again, records whose finding never came): None until one is (most inputs none).
    counted: dict[str, int] | None = None

    def count(self, name: str, n: int = 1) -> None:
        if n:
            counted = self.counted
            if counted is None:
                self.counted = counted = {}
            counted[name] = counted.get(name, 0) + n

    def contribute(self, district: str | None, at: int, name: str, delta: int = 1) -> None:
        """Count ``delta`` for the daily report of ``district`` at event time ``at``."""
        if district is not None and delta:
            self.contributions.append(Contribution(district, at, name, delta))
