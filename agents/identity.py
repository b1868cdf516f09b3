"""Identity misuse (杜绝借用、套用他人信息检测), CONTRACT.md §4.

``identity_suspect``: one person sampled at two sites whose distance over the elapsed time
implies more than ``max_speed_kmh``, or more than ``max_samples_per_day`` tubes in one local
day; at most one alert per person per local day.

The check is a requirement due at the earliest violating sampling of the day, so that it
fires once every event up to that instant has arrived (within allowed lateness) and the
alert is the same whatever the arrival order. Consecutive samplings with coordinates
suffice: by the triangle inequality a too-fast pair implies a too-fast consecutive pair.
"""

from __future__ import annotations

import math
from datetime import date, timedelta
from typing import Any, Final

from closedloop.agents.requirements import Context, LapseHandler, State, open_req, raise_alert

__all__ = ["HANDLERS", "check_day", "distance_km", "on_sampled"]

EARTH_RADIUS_KM: Final = 6371.0088


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def check_day(
    ctx: Context, samples: list[list[Any]], day: date
) -> tuple[int, dict[str, Any]] | None:
    """The earliest violation whose later sampling falls on ``day``, with its evidence."""
    start = ctx.cal.day_start(day)
    end = ctx.cal.day_start(day + timedelta(days=1))
    found: tuple[int, dict[str, Any]] | None = None
    in_day = [s for s in samples if start <= s[0] < end]
    limit = ctx.policy.max_samples_per_day
    if len(in_day) > limit:
        # Counted as of the violating sampling (the alert's due_at), not as of when the check
        # fires: that depends on how far the clock lags, and the alert must not.
        at = in_day[limit][0]
        count = sum(1 for s in in_day if s[0] <= at)
        found = (at, {"reason": "too_many_samples", "samples_that_day": count})
    previous: list[Any] | None = None
    for sample in samples:
        if sample[4] is None or sample[5] is None:
            continue
        if sample[0] >= end:
            break
        if previous is not None and sample[0] >= start and sample[3] != previous[3]:
            km = distance_km(previous[4], previous[5], sample[4], sample[5])
            hours = (sample[0] - previous[0]) / 3600
            speed = math.inf if hours == 0 else km / hours
            if km > 0 and speed > ctx.policy.max_speed_kmh:
                if found is None or sample[0] < found[0]:
                    found = (sample[0], {
                        "reason": "impossible_travel",
                        "sites": [previous[3], sample[3]],
                        "distance_km": round(km, 3),
                        "minutes_apart": round(hours * 60, 2),
                        "implied_speed_kmh": None if math.isinf(speed) else round(speed, 1),
                    })
                break  # later pairs of this day cannot be earlier than this one
        previous = sample
    return found


def on_sampled(ctx: Context, st: State, person_id: str, sample: list[Any]) -> None:
    """After a new sampling, (re)arm the check of each local day it can affect.

    A new sampling can only create a violation with its neighbours in time, or by the count
    of its own day, so those are looked at first; the full day check runs only on a hit.
    """
    samples = st["samples"]
    if len(samples) == 1:
        return
    index = samples.index(sample)
    days = []
    if _too_fast(ctx, samples, index) or _too_many(ctx, samples, index):
        days.append(ctx.cal.date_of(sample[0]))
    if index + 1 < len(samples) and _too_fast(ctx, samples, index + 1):
        days.append(ctx.cal.date_of(samples[index + 1][0]))
    alerted = st.get("id_days", ())
    for day in days:
        if day.isoformat() in alerted:
            continue
        found = check_day(ctx, samples, day)
        if found is None:
            continue
        name = f"identity:{day.isoformat()}"
        current = st.get("req", {}).get(name)
        if current is None or found[0] < current:
            open_req(st, name, found[0])


def _too_fast(ctx: Context, samples: list[list[Any]], index: int) -> bool:
    """Is the pair (previous sampling with coordinates, ``samples[index]``) too fast?"""
    later = samples[index]
    if later[4] is None or later[5] is None:
        return False
    for earlier in reversed(samples[:index]):
        if earlier[4] is not None and earlier[5] is not None:
            if earlier[3] == later[3]:
                return False
            km = distance_km(earlier[4], earlier[5], later[4], later[5])
            hours = (later[0] - earlier[0]) / 3600
            return km > 0 and (hours == 0 or km / hours > ctx.policy.max_speed_kmh)
    return False


def _too_many(ctx: Context, samples: list[list[Any]], index: int) -> bool:
    """Does the day of ``samples[index]`` hold more samplings than allowed?"""
    limit = ctx.policy.max_samples_per_day
    if len(samples) <= limit:
        return False
    day = ctx.cal.date_of(samples[index][0])
    return sum(1 for s in samples if ctx.cal.date_of(s[0]) == day) > limit


def _lapse_identity(ctx: Context, st: State, person_id: str, name: str, due: int) -> int | None:
    day = date.fromisoformat(name.split(":", 1)[1])
    found = check_day(ctx, st.get("samples", []), day)
    if found is None:
        return None
    at, evidence = found
    st.setdefault("id_days", []).append(day.isoformat())
    district = next((s[6] for s in st["samples"] if s[0] == at), None)
    raise_alert(
        ctx, st, kind="identity_suspect", subject=person_id, due=at, person_id=person_id,
        district=district, details={"date": day.isoformat(), **evidence},
    )
    return None


HANDLERS: Final[dict[str, LapseHandler]] = {"identity": _lapse_identity}
