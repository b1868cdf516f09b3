"""Retests after a pooled positive or an invalid result (the person side of the tube join).

``pool_positive``: each member needs a *single-tube* sampling within ``retest_within`` of the
report; ``invalid``: every member needs a new sampling (any tube) within the same window;
else ``retest_missed`` for that person. A sampling counts if it is taken at or after the
report, at or before the due instant, in another tube.
"""

from __future__ import annotations

from typing import Any, Final

from closedloop.agents.requirements import Context, LapseHandler, State, open_req, raise_alert

__all__ = ["HANDLERS", "on_retest_needed"]


def on_retest_needed(ctx: Context, st: State, person_id: str, msg: dict[str, Any]) -> None:
    tube = msg["tube"]
    retests = st.setdefault("retests", {})
    if tube in retests:
        return
    retests[tube] = {
        "reported": msg["reported"],
        "single": msg["single"],
        "result": msg["result"],
        "district": msg.get("district"),
    }
    open_req(st, f"retest:{tube}", msg["reported"] + ctx.policy.retest_within)


def _lapse_retest(ctx: Context, st: State, person_id: str, name: str, due: int) -> int | None:
    tube = name.split(":", 1)[1]
    need = st.get("retests", {}).pop(tube, None)
    if not st.get("retests"):
        st.pop("retests", None)
    if need is None:
        return None
    for sample in st.get("samples", []):
        at, other_tube, pool_size = sample[0], sample[1], sample[2]
        in_window = need["reported"] <= at <= due and other_tube != tube
        if in_window and (pool_size == 1 or not need["single"]):
            return None
    raise_alert(
        ctx, st, kind="retest_missed", subject=person_id, due=due, person_id=person_id,
        tube_id=tube, district=need["district"],
        details={
            "tube_result": need["result"],
            "reported_at": ctx.cal.iso(need["reported"]),
            "retest_within_hours": ctx.policy.retest_within / 3600,
            "needs": "single_tube" if need["single"] else "any_tube",
        },
    )
    return None


HANDLERS: Final[dict[str, LapseHandler]] = {"retest": _lapse_retest}
