"""Testing rounds on the worker: a round report summed from every person partition's share.

Each person partition holds every round (agents/shared.py) and makes each of its reports
from its own persons when its clock passes the report's instant (agents/rounds.py), as a
:class:`~closedloop.agents.state.RoundPart` sent to the report stage under the round's key.
Every person partition makes every report of a round, once, whenever the round reached it
(a round arriving after its close makes them at once), so the report is made when the
shares of all partitions are in: counts summed per district, the median over all delays.

Shares are kept by partition, so a redelivered one replaces itself; a report already made
is remembered by its (stage, as_of), so a share redelivered after it adds nothing.
"""

from __future__ import annotations

from typing import Final

from closedloop.agents.requirements import Context
from closedloop.agents.rounds import report
from closedloop.agents.state import ReportState, RoundPart

__all__ = ["KEY_PREFIX", "on_part", "round_key"]

KEY_PREFIX: Final = "\x00round:"
"""A round's key in the report stage's table: apart from the districts' keys."""


def round_key(round_id: str) -> str:
    return f"{KEY_PREFIX}{round_id}"


def on_part(ctx: Context, st: ReportState, part: RoundPart) -> None:
    """Keep one partition's share; make the report once every partition's is in."""
    name = f"{part.stage}:{part.at}"
    if st.rdone is not None and name in st.rdone:
        return
    if st.rparts is None:
        st.rparts = {}
    shares = st.rparts.setdefault(name, {})
    shares[part.source] = part
    if len(shares) < part.of:
        return
    del st.rparts[name]
    if not st.rparts:
        st.rparts = None
    if st.rdone is None:
        st.rdone = []
    st.rdone.append(name)
    ctx.out.round_reports.append(report(ctx.cal, [shares[source] for source in sorted(shares)]))
