"""Properties of replay over random small cities (CONTRACT.md §1, §2, §3, §5).

A city is a few persons with pushes, follow-ups, cohort changes, swabs and lab records, at
times clustered on whole hours (so that deadlines of 2, 4, 6, 12 and 24 h meet events
exactly, one second before and after) over two days; the clock then runs on to the end of
every regimen. Tubes are physically sensible: members are distinct and never more than the
pool size, all filled at one site, each tube has one report at most, after its members'
collection. A person's second push, when there is one, comes less than 5 min after the
first (a correction), and cohort changes may come in such pairs too.
"""

from __future__ import annotations

import json
import random
from typing import Any

from helpers import (
    T0,
    Envelope,
    action,
    assert_well_formed,
    at,
    cohort,
    epoch,
    followup,
    lab,
    run,
    run_bytes,
    sampling,
    travel,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from closedloop.schemas.identifiers import looks_raw

# Derandomized: the same examples on every run, so a failure is never a matter of luck.
PROPERTY = settings(
    max_examples=50, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
UNTIL = at(T0, days=10)  # after the end of every regimen started within the two days
LATENESS_S = 300
PERSONS = ("person-a", "person-b", "person-c", "person-d")
DISTRICTS = ("district-a", "district-b")
RISKS = ("high", "medium", "outside_province", "inside_province")
COHORTS = ("cold_chain", "courier")
SITES = (
    ("site-shanghai", 31.2304, 121.4737),
    ("site-suzhou", 31.3089, 120.6187),
    ("site-nocoords", None, None),
)
JITTERS = (0, 0, 1, 59, 60, 240, 299, 300, 301, 1800)


@st.composite
def offsets(draw: st.DrawFn) -> int:
    """Seconds after T0: a whole hour of the first two days, plus a small jitter."""
    hour = draw(st.sampled_from((0, 1, 2, 4, 6, 12, 24)) | st.integers(0, 47))
    jitter = draw(st.sampled_from(JITTERS) | st.integers(0, 900))
    return hour * 3600 + jitter


soon = st.integers(0, LATENESS_S - 1)  # a second record for the same key, < 5 min later


def _iso(offset: int) -> str:
    return at(T0, seconds=offset)


@st.composite
def cities(draw: st.DrawFn) -> list[Envelope]:
    """A random small city, as envelopes in generation order."""
    events: list[Envelope] = []
    for person in draw(st.lists(st.sampled_from(PERSONS), unique=True)):
        pushed = draw(offsets())
        for later in [0, draw(soon.filter(bool))][: draw(st.integers(1, 2))]:  # a re-push
            events.append(travel(
                person, _iso(pushed + later),
                risk=draw(st.sampled_from(RISKS)),
                arrived=_iso(pushed - 3600 * draw(st.sampled_from((0, 1, 10, 30)))),
                district=draw(st.sampled_from(DISTRICTS)),
            ))
    for _ in range(draw(st.integers(0, 8))):
        events.append(followup(
            draw(st.sampled_from(PERSONS)), _iso(draw(offsets())),
            draw(st.sampled_from(("located", "located", "visit", "visit", "released"))),
        ))
    for _ in range(draw(st.integers(0, 4))):
        person, name, changed = (
            draw(st.sampled_from(PERSONS)), draw(st.sampled_from(COHORTS)), draw(offsets())
        )
        for later in [0, draw(soon)][: draw(st.integers(1, 2))]:  # e.g. joined, then left
            events.append(cohort(
                person, _iso(changed + later), name, active=draw(st.booleans()),
                district=draw(st.sampled_from(DISTRICTS)),
            ))
    for number in range(draw(st.integers(0, 4))):
        tube = f"tube-{number}"
        pool_size = draw(st.sampled_from((1, 3, 10)))
        members = draw(st.lists(
            st.sampled_from(PERSONS), unique=True, max_size=min(pool_size, 3)
        ))
        site, lat, lon = draw(st.sampled_from(SITES))  # a tube is filled at one site
        district = draw(st.sampled_from(DISTRICTS))
        collected = []
        for person in members:
            when = draw(offsets())
            collected.append(when)
            events.append(sampling(
                person, tube, _iso(when), pool_size=pool_size, site=site, lat=lat, lon=lon,
                district=district,
            ))
        start = max(collected) if collected else draw(offsets())
        if draw(st.booleans()):
            delay = draw(st.sampled_from((1800, 4 * 3600, 4 * 3600 + 1, 5 * 3600)))
            events.append(lab(tube, _iso(start + delay)))
        if draw(st.booleans()):
            delay = draw(st.sampled_from((3600, 3 * 3600, 12 * 3600, 12 * 3600 + 1)))
            result = draw(st.sampled_from(("negative", "positive", "positive", "invalid")))
            events.append(lab(tube, _iso(start + delay), result))
    if draw(st.booleans()):
        events.append(action("al-0000", draw(st.sampled_from(PERSONS)), _iso(draw(offsets()))))
    return events


def _time(event: Envelope) -> int:
    return epoch(event["value"]["occurred_at"])


def _lines(data: bytes) -> list[str]:
    return sorted(data.decode().splitlines())


class TestDeterminism:
    @PROPERTY
    @given(cities())
    def test_same_input_twice_gives_byte_identical_output(self, city: list[Envelope]) -> None:
        # given a random city
        # when replayed twice
        first = run_bytes(city, until=UNTIL)
        second = run_bytes(city, until=UNTIL)
        # then byte-identical alerts, reports and dead letters
        assert first.alerts == second.alerts
        assert first.reports == second.reports
        assert first.dead_letters == second.dead_letters

    @PROPERTY
    @given(cities())
    def test_alert_ids_are_unique_and_alerts_well_formed(self, city: list[Envelope]) -> None:
        # given a random city
        # when replayed to the end of every regimen
        alerts, _, letters, _ = run(city, until=UNTIL)
        # then well-formed, unique, sorted alerts and no dead letter
        assert letters == []
        assert_well_formed(alerts)
        order = [(a["raised_at"], a["alert_id"]) for a in alerts]
        assert order == sorted(order)


class TestDuplicates:
    @PROPERTY
    @given(cities(), st.randoms(use_true_random=False))
    def test_resending_events_later_in_the_file_changes_nothing(
        self, city: list[Envelope], rnd: random.Random
    ) -> None:
        # given the city in time order, and copies of some events (same event_id) re-sent
        # at random later places in the file
        ordered = sorted(city, key=_time)
        noisy: list[Envelope] = list(ordered)
        chosen = [i for i in range(len(ordered)) if rnd.random() < 0.4]
        for index in chosen:
            original = noisy.index(ordered[index])
            noisy.insert(rnd.randint(original + 1, len(noisy)), json.loads(json.dumps(
                ordered[index]
            )))
        # when both files are replayed
        clean = run_bytes(ordered, until=UNTIL)
        resent = run_bytes(noisy, until=UNTIL)
        # then the copies were ignored, counted, and changed no output
        assert resent.alerts == clean.alerts
        assert resent.reports == clean.reports
        assert resent.stats["duplicates_ignored"] == len(chosen)


def _late_orders(city: list[Envelope], rnd: random.Random) -> list[list[Envelope]]:
    """File orders of ``city`` in which an event only ever comes after events less than
    5 min younger than itself (so every event arrives within allowed lateness)."""
    ordered = sorted(city, key=_time)
    # sorting by time plus a jitter in [0, 299] s can only swap events < 5 min apart
    jitter = {id(event): rnd.randint(0, LATENESS_S - 1) for event in ordered}
    jittered = sorted(ordered, key=lambda event: _time(event) + jitter[id(event)])
    # within 5-min buckets (random phase) last first: every pair in a bucket swaps places
    phase = rnd.randint(0, LATENESS_S - 1)
    reversed_ = [
        event for _, event in sorted(
            enumerate(ordered),
            key=lambda item: ((_time(item[1]) + phase) // LATENESS_S, -item[0]),
        )
    ]
    orders = [jittered, reversed_]
    for order in orders:
        for i, early in enumerate(order):
            assert all(_time(early) - _time(late) < LATENESS_S for late in order[i + 1:])
    return orders


class TestArrivalOrder:
    @PROPERTY
    @given(cities(), st.randoms(use_true_random=False))
    def test_reordering_within_allowed_lateness_changes_no_alert(
        self, city: list[Envelope], rnd: random.Random
    ) -> None:
        # given the city in time order, and file orders in which events arrive up to
        # 5 min "late"
        in_order = run_bytes(sorted(city, key=_time), until=UNTIL)
        for order in _late_orders(city, rnd):
            # when replayed
            late = run_bytes(order, until=UNTIL)
            # then the alerts are the same
            assert _lines(late.alerts) == _lines(in_order.alerts)

    @PROPERTY
    @given(cities(), st.randoms(use_true_random=False))
    def test_reordering_within_allowed_lateness_changes_no_report(
        self, city: list[Envelope], rnd: random.Random
    ) -> None:
        # given a random city in time order and in orders with events up to 5 min late
        # when each is replayed
        in_order = run_bytes(sorted(city, key=_time), until=UNTIL)
        for order in _late_orders(city, rnd):
            late = run_bytes(order, until=UNTIL)
            # then the same daily reports
            assert _lines(late.reports) == _lines(in_order.reports)


# Fields a raw identifier may be put into, by topic (values the decoder accepts by shape).
RAW_FIELDS: dict[str, tuple[str, ...]] = {
    "travel": ("person_id", "district", "origin", "event_id"),
    "followup": ("person_id", "worker_id", "event_id"),
    "sampling": ("person_id", "tube_id", "site_id", "district", "reason", "event_id"),
    "lab": ("tube_id", "lab_id", "event_id"),
    "cohort": ("person_id", "district", "event_id"),
    "action": ("subject", "operator_id", "note", "alert_id", "event_id"),
}
raw_identifiers = st.from_regex(r"\A[0-9]{17}[0-9Xx]\Z") | st.from_regex(r"\A1[0-9]{10}\Z")


def _strings(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [s for value in node.values() for s in _strings(value)]
    if isinstance(node, list):
        return [s for value in node for s in _strings(value)]
    return [node] if isinstance(node, str) else []


class TestPrivacy:
    @PROPERTY
    @given(cities(), st.data())
    def test_no_raw_identifier_reaches_any_output(
        self, city: list[Envelope], data: st.DataObject
    ) -> None:
        # given some events carrying a raw resident ID or mobile number in some field
        injected: list[str] = []
        for event in city:
            if data.draw(st.integers(0, 2)) == 0:
                field = data.draw(st.sampled_from(RAW_FIELDS[event["topic"]]))
                raw = data.draw(raw_identifiers)
                event["value"][field] = raw
                injected.append(raw)
        # when the city is replayed
        out = run_bytes(city, until=UNTIL)
        # then no alert, report or dead letter carries one
        for stream in (out.alerts, out.reports, out.dead_letters):
            text = stream.decode()
            assert not [raw for raw in injected if raw in text]
            for line in text.splitlines():
                assert not [s for s in _strings(json.loads(line)) if looks_raw(s)], line
