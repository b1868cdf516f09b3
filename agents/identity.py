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
from bisect import bisect_left
from datetime import date, timedelta
from operator import attrgetter
from typing import Any, Final

from closedloop.agents.requirements import (
    Context,
    LapseHandler,
    open_req_by,
    raise_alert,
)
from closedloop.agents.state import PersonState, Sample, loops_of, split_name

__all__ = ["HANDLERS", "check_day", "distance_km", "on_sampled"]

EARTH_RADIUS_KM: Final = 6371.0088


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def check_day(
    ctx: Context, samples: tuple[Sample, ...], day: date
) -> tuple[int, dict[str, Any]] | None:
    """The earliest violation whose later sampling falls on ``day``, with its evidence."""
    start = ctx.cal.day_start(day)
    end = ctx.cal.day_start(day + timedelta(days=1))
    found: tuple[int, dict[str, Any]] | None = None
    in_day = [s for s in samples if start <= s.at < end]
    limit = ctx.policy.max_samples_per_day
    if len(in_day) > limit:
        # Counted as of the violating sampling (the alert's due_at), not as of when the check
        # fires: that depends on how far the clock lags, and the alert must not.
        at = in_day[limit].at
        count = sum(1 for s in in_day if s.at <= at)
        found = (at, {"reason": "too_many_samples", "samples_that_day": count})
    previous: Sample | None = None
    for sample in samples:
        if sample.lat is None or sample.lon is None:
            continue
        if sample.at >= end:
            break
        if previous is not None and sample.at >= start and sample.site != previous.site:
            assert previous.lat is not None and previous.lon is not None  # (skipped if not)
            km = distance_km(previous.lat, previous.lon, sample.lat, sample.lon)
            hours = (sample.at - previous.at) / 3600
            speed = math.inf if hours == 0 else km / hours
            if km > 0 and speed > ctx.policy.max_speed_kmh:
                if found is None or sample.at < found[0]:
                    found = (sample.at, {
                        "reason": "impossible_travel",
                        "sites": [previous.site, sample.site],
                        "distance_km": round(km, 3),
                        "minutes_apart": round(hours * 60, 2),
                        "implied_speed_kmh": None if math.isinf(speed) else round(speed, 1),
                    })
                break  # later pairs of this day cannot be earlier than this one
        previous = sample
    return found


def on_sampled(ctx: Context, st: PersonState, person_id: str, sample: Sample) -> None:
    """After a new sampling, (re)arm the check of each local day it can affect.

    A new sampling can only create a violation with its neighbours in time, or by the count
    of its own day, so those are looked at first; the full day check runs only on a hit.
    """
    samples = st.samples
    if samples is None or len(samples) == 1:
        return
    index = samples.index(sample)
    days = []
    if _too_fast(ctx, samples, index) or _too_many(ctx, samples, index):
        days.append(ctx.cal.date_of(sample.at))
    if index + 1 < len(samples) and _too_fast(ctx, samples, index + 1):
        days.append(ctx.cal.date_of(samples[index + 1].at))
    loops = st.loops
    alerted = (loops.id_days if loops is not None else None) or ()
    for day in days:
        if day.isoformat() in alerted:
            continue
        found = check_day(ctx, samples, day)
        if found is None:
            continue
        open_req_by(st, f"identity:{day.isoformat()}", found[0])


def _too_fast(ctx: Context, samples: tuple[Sample, ...], index: int) -> bool:
    """Is the pair (previous sampling with coordinates, ``samples[index]``) too fast?"""
    later = samples[index]
    if later.lat is None or later.lon is None:
        return False
    for earlier in reversed(samples[:index]):
        if earlier.lat is not None and earlier.lon is not None:
            if earlier.site == later.site:
                return False
            km = distance_km(earlier.lat, earlier.lon, later.lat, later.lon)
            hours = (later.at - earlier.at) / 3600
            return km > 0 and (hours == 0 or km / hours > ctx.policy.max_speed_kmh)
    return False


def _too_many(ctx: Context, samples: tuple[Sample, ...], index: int) -> bool:
    """Does the day of ``samples[index]`` hold more samplings than allowed?"""
    limit = ctx.policy.max_samples_per_day
    if len(samples) <= limit:
        return False
    # The day's samplings are a slice of the time-sorted list: two bisections instead of a
    # calendar lookup per sampling (date_of(t) == day exactly when start <= t < end).
    day = ctx.cal.date_of(samples[index].at)
    start = bisect_left(samples, ctx.cal.day_start(day), key=_AT)
    end = bisect_left(samples, ctx.cal.day_start(day + timedelta(days=1)), key=_AT)
    return end - start > limit


_AT: Final = attrgetter("at")  # a sampling's time, in C: the bisections call it per step


def _lapse_identity(ctx: Context, st: PersonState, person_id: str, name: str, due: int
                    ) -> int | None:
    day = date.fromisoformat(split_name(name)[1])
    samples = st.samples or ()
    found = check_day(ctx, samples, day)
    if found is None:
        return None
    at, evidence = found
    loops = loops_of(st)
    if loops.id_days is None:
        loops.id_days = []
    loops.id_days.append(day.isoformat())
    district = next((s.district for s in samples if s.at == at), None)
    raise_alert(
        ctx, st, kind="identity_suspect", subject=person_id, due=at, person_id=person_id,
        district=district, details={"date": day.isoformat(), **evidence},
    )
    return None


HANDLERS: Final[dict[str, LapseHandler[PersonState]]] = {"identity": _lapse_identity}
