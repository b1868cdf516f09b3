"""Testing rounds on the worker: a round report summed from every person partition's share.

Each person partition holds every round (agents/shared.py) and makes each of its reports
from its own persons when its clock passes the report's instant (agents/rounds.py), as a
:class:`~closedloop.agents.state.RoundPart` sent to the report stage under the round's key.
Every person partition makes every report of a round, once, whenever the round reached it
(a round arriving after its close makes them at once), so the report is made when the
shares of all partitions are in: counts summed per district, the median over all delays.

Shares are kept by partition, so a redelivered one replaces itself; the latest report made of
each stage is remembered by its as_of, so a share redelivered after it adds nothing (a
partition sends its shares in as_of order, so every earlier report of the stage is made too).
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
    made = _made_through(st)
    if part.at <= made.get(part.stage, -1):
        return  # made already: a redelivered share
    name = f"{part.stage}:{part.at}"
    if st.rparts is None:
        st.rparts = {}
    shares = st.rparts.setdefault(name, {})
    shares[part.source] = part
    if len(shares) < part.of:
        return
    del st.rparts[name]
    if not st.rparts:
        st.rparts = None
    made[part.stage] = part.at
    st.made_through = made
    ctx.out.round_reports.append(report(ctx.cal, [shares[source] for source in sorted(shares)]))


def _made_through(st: ReportState) -> dict[int, int]:
    """The state's latest report made per stage, with the list an older changelog kept of
    every report made folded in."""
    made = st.made_through if st.made_through is not None else {}
    if st.rdone:
        for name in st.rdone:
            stage, _, at = name.partition(":")
            made[int(stage)] = max(made.get(int(stage), -1), int(at))
        st.made_through, st.rdone = made, None
    return made
