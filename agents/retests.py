"""Retests after a pooled positive or an invalid result (the person side of the tube join).

``pool_positive``: each member needs a *single-tube* sampling within ``retest_within`` of the
report; ``invalid``: every member needs a new sampling (any tube) within the same window;
else ``retest_missed`` for that person. A sampling counts if it is taken at or after the
report, at or before the due instant, in another tube.
"""

from __future__ import annotations

from typing import Final

from closedloop.agents.requirements import Context, LapseHandler, open_req, raise_alert
from closedloop.agents.state import PersonState, Retest, RetestNeed, loops_of, split_name

__all__ = ["HANDLERS", "on_retest_needed"]


def on_retest_needed(ctx: Context, st: PersonState, person_id: str, msg: Retest) -> None:
    tube = msg.tube
    loops = loops_of(st)
    retests = loops.retests
    if retests is None:
        loops.retests = retests = {}
    elif tube in retests:
        return
    retests[tube] = RetestNeed(reported=msg.reported, single=msg.single, result=msg.result,
                               district=msg.district)
    open_req(st, f"retest:{tube}", msg.reported + ctx.policy.retest_within)


def _lapse_retest(ctx: Context, st: PersonState, person_id: str, name: str, due: int
                  ) -> int | None:
    tube = split_name(name)[1]
    loops = st.loops
    need = None if loops is None or loops.retests is None else loops.retests.pop(tube, None)
    if loops is not None and not loops.retests:
        loops.retests = None
    if need is None:
        return None
    for sample in st.samples or ():
        in_window = need.reported <= sample.at <= due and sample.tube != tube
        if in_window and (sample.pool == 1 or not need.single):
            return None
    raise_alert(
        ctx, st, kind="retest_missed", subject=person_id, due=due, person_id=person_id,
        tube_id=tube, district=need.district,
        details={
            "tube_result": need.result,
            "reported_at": ctx.cal.iso(need.reported),
            "retest_within_hours": ctx.policy.retest_within / 3600,
            "needs": "single_tube" if need.single else "any_tube",
        },
    )
    return None


HANDLERS: Final[dict[str, LapseHandler[PersonState]]] = {"retest": _lapse_retest}
