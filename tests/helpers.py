"""Named instants, event builders and a replay runner for the rule and replay tests.

Every builder returns a replay envelope ``{"topic": ..., "value": {...}}`` (CONTRACT.md §6)
with a fresh ``event_id`` unless one is given; every timestamp is RFC 3339 in +08:00
(Asia/Shanghai, the default policy's zone). :func:`run` feeds envelopes, in list order,
through ``replay_lines`` with the default policy and returns the parsed outputs.
"""

from __future__ import annotations

import io
import itertools
import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any, Final, NamedTuple
from zoneinfo import ZoneInfo

from closedloop.schemas.instants import parse_instant
from closedloop.schemas.policy import Policy, default_policy
from closedloop.streams.app.replay import replay_lines

__all__ = [
    "ALERT_FIELDS",
    "DAY1",
    "DAY2",
    "DAY3",
    "LATENESS",
    "T0",
    "TZ",
    "Envelope",
    "Outputs",
    "Raw",
    "RawOutputs",
    "action",
    "alerts_of",
    "assert_well_formed",
    "at",
    "cohort",
    "envelope",
    "epoch",
    "followup",
    "keys_of",
    "lab",
    "midnight_after",
    "next_event_id",
    "policy",
    "population",
    "round_",
    "round_city",
    "run",
    "run_bytes",
    "run_escalations",
    "run_rounds",
    "sampling",
    "to_line",
    "travel",
]

TZ: Final = ZoneInfo("Asia/Shanghai")
LATENESS: Final = timedelta(minutes=5)

# Named instants. T0 is a Tuesday morning; DAY1..DAY3 open the local days from T0 on.
T0: Final = "2022-09-06T09:00:00+08:00"  # 09:00 local, 2022-09-06
DAY1: Final = "2022-09-06T00:00:00+08:00"  # local midnight opening 2022-09-06
DAY2: Final = "2022-09-07T00:00:00+08:00"  # ... 2022-09-07 (the end of DAY1)
DAY3: Final = "2022-09-08T00:00:00+08:00"  # ... 2022-09-08

ALERT_FIELDS: Final = frozenset(
    {"alert_id", "kind", "subject", "person_id", "tube_id", "district", "due_at",
     "raised_at", "details"}
)

Envelope = dict[str, Any]
Raw = bytes | str
"""A replay line given verbatim (for bad input): bytes or text, without the newline."""

_ids = itertools.count(1)
_RFC3339_LOCAL = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+08:00$")


def policy() -> Policy:
    """The contract's default policy."""
    return default_policy()


def next_event_id(prefix: str = "ev") -> str:
    """A process-wide unique event id."""
    return f"{prefix}-{next(_ids):06d}"


def at(
    base: str,
    *,
    days: float = 0,
    hours: float = 0,
    minutes: float = 0,
    seconds: float = 0,
) -> str:
    """``base`` moved by the given amount, as RFC 3339 in +08:00.

    ``at(T0, hours=2, seconds=-1)`` is one second before push + 2 h when T0 is the push.
    """
    moved = datetime.fromisoformat(base) + timedelta(
        days=days, hours=hours, minutes=minutes, seconds=seconds
    )
    return moved.astimezone(TZ).isoformat()


def epoch(instant: str) -> int:
    """Epoch seconds of an RFC 3339 instant."""
    return int(datetime.fromisoformat(instant).timestamp())


def local(text: str) -> int:
    """Epoch seconds of a local instant of 2022: ``local("09-06 09:30")`` is
    2022-09-06T09:30+08:00."""
    return epoch(f"2022-{text.replace(' ', 'T')}:00+08:00")


def midnight_after(instant: str) -> str:
    """00:00 local of the day after ``instant``'s local date (the end of its day)."""
    local = datetime.fromisoformat(instant).astimezone(TZ)
    start = datetime(local.year, local.month, local.day, tzinfo=TZ)
    return (start + timedelta(days=1)).isoformat()


def envelope(topic: str, value: Mapping[str, Any]) -> Envelope:
    return {"topic": topic, "value": dict(value)}


def _event(topic: str, occurred_at: str, event_id: str | None, **fields: Any) -> Envelope:
    value: dict[str, Any] = {
        "event_id": event_id if event_id is not None else next_event_id(topic),
        "occurred_at": occurred_at,
    }
    value.update({name: v for name, v in fields.items() if v is not None})
    return envelope(topic, value)


def travel(
    person: str,
    at: str,
    *,
    risk: str = "high",
    arrived: str | None = None,
    district: str = "district-a",
    origin: str = "Shanghai",
    event_id: str | None = None,
) -> Envelope:
    """A pushed travel record; ``at`` is the push time, ``arrived`` defaults to it."""
    return _event(
        "travel", at, event_id, person_id=person, district=district,
        arrived_at=arrived if arrived is not None else at, origin=origin, risk=risk,
    )


def followup(
    person: str,
    at: str,
    kind: str = "visit",
    *,
    worker_id: str | None = None,
    event_id: str | None = None,
) -> Envelope:
    """A grid worker's record: ``located``, ``visit`` or ``released``."""
    return _event("followup", at, event_id, person_id=person, kind=kind, worker_id=worker_id)


def sampling(
    person: str,
    tube: str,
    at: str,
    *,
    pool_size: int = 1,
    site: str = "site-1",
    district: str = "district-a",
    lat: float | None = None,
    lon: float | None = None,
    reason: str | None = None,
    event_id: str | None = None,
) -> Envelope:
    """A swab taken at ``at`` (the collection time) into ``tube``."""
    return _event(
        "sampling", at, event_id, person_id=person, tube_id=tube, site_id=site,
        district=district, pool_size=pool_size, site_lat=lat, site_lon=lon, reason=reason,
    )


def lab(
    tube: str,
    at: str,
    result: str | None = None,
    *,
    status: str | None = None,
    lab_id: str = "lab-1",
    event_id: str | None = None,
) -> Envelope:
    """A lab record; with a ``result`` it is ``reported``, without one ``received``."""
    if status is None:
        status = "received" if result is None else "reported"
    return _event("lab", at, event_id, tube_id=tube, lab_id=lab_id, status=status, result=result)


def cohort(
    person: str,
    at: str,
    name: str = "cold_chain",
    *,
    active: bool = True,
    district: str = "district-a",
    event_id: str | None = None,
) -> Envelope:
    """A key-population roster change."""
    return _event(
        "cohort", at, event_id, person_id=person, cohort=name, district=district, active=active
    )


def action(
    alert_id: str,
    subject: str,
    at: str,
    kind: str = "ack",
    *,
    operator_id: str = "operator-1",
    note: str | None = None,
    assignee: str | None = None,
    event_id: str | None = None,
) -> Envelope:
    """An operator handling an alert (*v1.2*: or assigning it, ``kind="assign"``)."""
    return _event(
        "action", at, event_id, alert_id=alert_id, subject=subject, action=kind,
        operator_id=operator_id, note=note, assignee=assignee,
    )


def population(
    person: str,
    at: str,
    *,
    district: str = "district-a",
    grid: str | None = None,
    status: str = "resident",
    event_id: str | None = None,
) -> Envelope:
    """A roster record (v1.1 ``population``)."""
    return _event("population", at, event_id, person_id=person, district=district, grid=grid,
                  status=status)


def round_(
    round_id: str,
    at: str,
    opens: str,
    closes: str,
    districts: list[str] | None = None,
    *,
    cohort: str | None = None,
    event_id: str | None = None,
) -> Envelope:
    """A testing round (v1.1 ``round``); districts default to ["district-a"]."""
    return _event("round", at, event_id, round_id=round_id, opens_at=opens, closes_at=closes,
                  districts=districts if districts is not None else ["district-a"],
                  cohort=cohort)


def to_line(item: Envelope | Raw) -> bytes:
    """One replay line (without newline)."""
    if isinstance(item, bytes):
        return item
    if isinstance(item, str):
        return item.encode("utf-8")
    return json.dumps(item, ensure_ascii=False).encode("utf-8")


class RawOutputs(NamedTuple):
    alerts: bytes
    reports: bytes
    dead_letters: bytes
    stats: Counter[str]


class Outputs(NamedTuple):
    alerts: list[dict[str, Any]]
    reports: list[dict[str, Any]]
    dead_letters: list[dict[str, Any]]
    stats: Counter[str]


def run_bytes(
    events: Iterable[Envelope | Raw], until: str | None = None, pol: Policy | None = None
) -> RawOutputs:
    """Replay ``events`` in order (then move the clock to ``until``); the bytes written."""
    alerts, reports, letters = io.BytesIO(), io.BytesIO(), io.BytesIO()
    result = replay_lines(
        (to_line(item) for item in events),
        pol if pol is not None else policy(),
        until=None if until is None else parse_instant(until),
        alerts_out=alerts,
        reports_out=reports,
        deadletter_out=letters,
    )
    return RawOutputs(alerts.getvalue(), reports.getvalue(), letters.getvalue(), result.stats)


def _parse(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.splitlines() if line.strip()]


def run(
    events: Iterable[Envelope | Raw], until: str | None = None, pol: Policy | None = None
) -> Outputs:
    """Replay ``events``; returns (alerts, reports, dead_letters, stats), parsed."""
    raw = run_bytes(events, until, pol)
    return Outputs(_parse(raw.alerts), _parse(raw.reports), _parse(raw.dead_letters), raw.stats)


def run_escalations(
    events: Iterable[Envelope | Raw], until: str | None = None, pol: Policy | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], Counter[str]]:
    """Replay ``events``; returns (alerts, escalations, stats), parsed."""
    alerts, escalations = io.BytesIO(), io.BytesIO()
    result = replay_lines(
        (to_line(item) for item in events),
        pol if pol is not None else policy(),
        until=None if until is None else parse_instant(until),
        alerts_out=alerts,
        escalations_out=escalations,
    )
    return _parse(alerts.getvalue()), _parse(escalations.getvalue()), result.stats


def run_rounds(
    events: Iterable[Envelope | Raw], until: str | None = None, pol: Policy | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], bytes]:
    """Replay ``events``; returns (alerts, round reports, the round reports' bytes)."""
    alerts, rounds = io.BytesIO(), io.BytesIO()
    replay_lines(
        (to_line(item) for item in events),
        pol if pol is not None else policy(),
        until=None if until is None else parse_instant(until),
        alerts_out=alerts,
        round_reports_out=rounds,
    )
    return _parse(alerts.getvalue()), _parse(rounds.getvalue()), rounds.getvalue()


def alerts_of(alerts: Iterable[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [alert for alert in alerts if alert["kind"] == kind]


def keys_of(alerts: Iterable[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(kind, subject, due_at) of each alert, in output order."""
    return [(alert["kind"], alert["subject"], alert["due_at"]) for alert in alerts]


def _check_alert(alert: Mapping[str, Any]) -> Iterator[str]:
    if set(alert) != ALERT_FIELDS:
        yield f"fields {sorted(alert)} != {sorted(ALERT_FIELDS)}"
    for name in ("due_at", "raised_at"):
        if not _RFC3339_LOCAL.match(str(alert.get(name))):
            yield f"{name} {alert.get(name)!r} is not RFC 3339 in +08:00"
    if not isinstance(alert.get("details"), dict):
        yield "details is not an object"
    kind, subject = alert.get("kind"), alert.get("subject")
    if kind in ("lab_sla_breached", "orphan_result", "pool_positive"):
        if alert.get("person_id") is not None or alert.get("tube_id") != subject:
            yield "a tube alert has person_id null and tube_id = subject"
    elif kind in ("late_entries", "lab_silent", "rectification_overdue", "recheck_missed",
                  "recheck_failed", "repeat_offender"):
        if alert.get("person_id") is not None or alert.get("tube_id") is not None:
            yield "a source's, lab's or unit's alert has person_id and tube_id null"
    elif alert.get("person_id") != subject:
        yield "a person alert has person_id = subject"
    if kind in ("unlocated", "followup_overdue", "test_missed", "identity_suspect") and (
        alert.get("tube_id") is not None
    ):
        yield "a person alert that is about no tube has tube_id null"
    if kind in ("positive", "retest_missed") and not isinstance(alert.get("tube_id"), str):
        yield "positive / retest_missed name their tube"
    if str(alert.get("raised_at")) < str(alert.get("due_at")):
        yield "raised_at before due_at"


def assert_well_formed(alerts: list[dict[str, Any]]) -> None:
    """Every alert carries the contract's fields, with the right nulls, and none is repeated."""
    problems = [f"{a.get('kind')} {a.get('subject')}: {p}" for a in alerts for p in _check_alert(a)]
    assert not problems, problems
    keys = keys_of(alerts)
    assert len(keys) == len(set(keys)), "an alert was emitted twice for one (kind, subject, due_at)"
    ids = [alert["alert_id"] for alert in alerts]
    assert len(ids) == len(set(ids)), "alert ids repeat"


def v11_events(person: str) -> dict[str, dict[str, Any]]:
    """One valid event of each topic contract v1.1 added, for ``person``."""
    return {
        "population": {
            "event_id": "pop-1",
            "occurred_at": "2022-04-01T08:00:00+08:00",
            "person_id": person,
            "district": "pudong",
            "grid": "pd-0042",
            "status": "resident",
        },
        "round": {
            "event_id": "rnd-1",
            "occurred_at": "2022-04-01T20:00:00+08:00",
            "round_id": "sh-2022-04-02",
            "opens_at": "2022-04-02T06:00:00+08:00",
            "closes_at": "2022-04-02T18:00:00+08:00",
            "districts": ["pudong", "minhang"],
        },
        "checkpoint": {
            "event_id": "chk-1",
            "occurred_at": "2022-04-02T10:00:00+08:00",
            "person_id": person,
            "checkpoint_id": "g2-toll-3",
            "district": "jiading",
            "role": "driver",
            "proof_sampled_at": "2022-04-01T09:00:00+08:00",
            "visited": ["320505", "310115"],
            "vehicle_id": "沪A-12345",
        },
        "area": {
            "event_id": "area-1",
            "occurred_at": "2022-04-01T00:00:00+08:00",
            "county": "320505",
            "level": "high",
        },
        "clinic": {
            "event_id": "cln-1",
            "occurred_at": "2022-04-02T11:00:00+08:00",
            "person_id": person,
            "facility_id": "pharm-88",
            "facility_kind": "pharmacy",
            "district": "xuhui",
            "reason": "antipyretic",
        },
    }


def v12_events(person: str) -> dict[str, dict[str, Any]]:
    """One valid event of each topic contract v1.2 added (``inspection``: a finding)."""
    return {
        "inspection": {
            "event_id": "insp-1",
            "occurred_at": "2022-04-02T14:00:00+08:00",
            "unit_id": "venue-mall-7",
            "unit_kind": "venue",
            "district": "xuhui",
            "record": "finding",
            "finding_id": "f-2022-0402-7",
            "category": "venue_code",
            "severity": "major",
            "inspector_id": "insp:team-3-li",
        },
    }


def checkpoint(
    person: str,
    at: str,
    proof: str | None,
    *,
    visited: Iterable[str] = (),
    district: str = "district-a",
    role: str = "driver",
    checkpoint_id: str = "toll-1",
    vehicle_id: str | None = None,
    event_id: str | None = None,
) -> Envelope:
    """*v1.1* An entry at a checkpoint showing a negative test sampled at ``proof`` (or none)."""
    item = _event("checkpoint", at, event_id, person_id=person, checkpoint_id=checkpoint_id,
                  district=district, role=role, visited=list(visited), vehicle_id=vehicle_id)
    item["value"]["proof_sampled_at"] = proof  # required, null when no proof is shown
    return item


def area(county: str, at: str, level: str, *, event_id: str | None = None) -> Envelope:
    """*v1.1* A county's risk level from ``at`` on."""
    return _event("area", at, event_id, county=county, level=level)


def clinic(
    person: str,
    at: str,
    kind: str = "hospital",
    *,
    facility_id: str = "facility-1",
    district: str = "district-a",
    reason: str = "fever",
    event_id: str | None = None,
) -> Envelope:
    """*v1.1* A sentinel visit."""
    return _event("clinic", at, event_id, person_id=person, facility_id=facility_id,
                  facility_kind=kind, district=district, reason=reason)


_DISTRICTS: Final = ("district-a", "district-b", "district-c", "district-d")


def _person(n: int) -> str:
    return f"person-{n:04d}"


def round_city(persons: int = 200) -> list[tuple[str, Envelope]]:
    """(occurred_at, envelope) of a city with testing rounds, in no particular order.

    ``persons`` on the roster over four districts the day before; ``r-abc`` (09:00-12:00,
    districts a, b, c) and ``r-city`` (10:00-12:00, every district) close at one instant;
    ``r-late`` (09:00-10:30, district-d) is called at 11:00, after its close. A third of the
    persons are sampled in the rounds, some others caught up after the close; person 8 leaves
    and persons 4 and 5 move at 10:40; two visitors off the roster are sampled in the rounds'
    districts."""
    before, opens, closes = at(T0, days=-1), T0, at(T0, hours=3)
    events: list[tuple[str, Envelope]] = []
    for n in range(persons):
        district = _DISTRICTS[n % 4]
        grid = f"grid-{n % 7}" if n % 2 else None
        status = "floating" if n % 9 == 0 else "resident"
        events.append((before, population(_person(n), before, district=district, grid=grid,
                                          status=status)))
    called = at(T0, hours=-1)
    events += [
        (called, round_("r-abc", called, opens, closes,
                        ["district-a", "district-b", "district-c"])),
        (called, round_("r-city", called, at(opens, hours=1), closes, ["*"])),
        # called at 11:00 for 09:00-10:30 in district-d: it arrives after its close
        (at(T0, hours=2), round_("r-late", at(T0, hours=2), opens, at(T0, hours=1, minutes=30),
                                 ["district-d"])),
    ]
    for n in range(persons):
        district = _DISTRICTS[n % 4]
        if n % 3 == 0:  # sampled in the rounds, spread over 09:00..11:59
            instant = at(opens, minutes=n % 180)
        elif n % 5 == 1:  # caught up after the close, within the 24 h
            instant = at(closes, hours=1 + n % 20, minutes=n % 60)
        else:
            continue
        events.append((instant, sampling(_person(n), f"tube-{n:04d}", instant,
                                         district=district, site=f"site-{district}")))
    moved = at(T0, hours=1, minutes=40)
    events += [
        # off the roster before the close; moved from district-a to d and from b to a
        (moved, population(_person(8), moved, status="left")),
        (moved, population(_person(4), moved, district="district-d", grid="grid-9")),
        (moved, population(_person(5), moved, district="district-a")),
        # sampled in the rounds' districts but not on the roster
        (at(T0, minutes=50), sampling("visitor-01", "tube-v1", at(T0, minutes=50),
                                      district="district-b", site="site-district-b")),
        (at(T0, hours=2, minutes=10), sampling("visitor-02", "tube-v2",
                                               at(T0, hours=2, minutes=10),
                                               district="district-d", site="site-district-d")),
    ]
    return events


def inspection(
    unit: str,
    record: str,
    at: str,
    finding_id: str = "f1",
    *,
    category: str | None = "venue_code",
    severity: str | None = "critical",
    result: str | None = None,
    unit_kind: str = "venue",
    district: str = "district-a",
    event_id: str | None = None,
) -> Envelope:
    """*v1.2* A supervision record about a unit: a finding (with its category and severity),
    a ``rectified`` record or a ``recheck`` (with its result)."""
    fields: dict[str, Any] = {"unit_id": unit, "unit_kind": unit_kind, "district": district,
                              "record": record, "finding_id": finding_id}
    if record == "finding":
        fields |= {"category": category, "severity": severity}
    if result is not None:
        fields["result"] = result
    return _event("inspection", at, event_id, **fields)


def supervision_edges(t0: str) -> list[Envelope]:
    """Every edge of the supervision rules (CONTRACT.md v1.2 §4) that needs no record later
    than the allowed lateness, each on its own unit, in event time (reversed only within the
    lateness), with one unit's repeat 90 days on. Default policy: critical 24 h to rectify,
    major 72 h, recheck within 168 h, repeat_window 90 d."""
    day = 24.0
    cases: list[tuple[str, Envelope]] = []

    def add(*records: Envelope) -> None:
        cases.extend((r["value"]["occurred_at"], r) for r in records)

    # rectified exactly at the window's end: in time; a second later: overdue
    add(inspection("u-rect-end", "finding", t0),
        inspection("u-rect-end", "rectified", at(t0, hours=day)))
    add(inspection("u-rect-late", "finding", t0, district="district-b"),
        inspection("u-rect-late", "rectified", at(t0, hours=day, seconds=1)))
    # a recheck that fails twice, then passes: two recheck_failed, then closed
    add(inspection("u-fail-twice", "finding", t0, severity="major"),
        inspection("u-fail-twice", "rectified", at(t0, hours=1)),
        inspection("u-fail-twice", "recheck", at(t0, hours=2), result="fail"),
        inspection("u-fail-twice", "rectified", at(t0, hours=3)),
        inspection("u-fail-twice", "recheck", at(t0, hours=4), result="fail"),
        inspection("u-fail-twice", "rectified", at(t0, hours=5)),
        inspection("u-fail-twice", "recheck", at(t0, hours=6), result="pass"))
    # a look-back nobody made: recheck_missed 168 h after the rectification
    add(inspection("u-no-recheck", "finding", t0, severity="major"),
        inspection("u-no-recheck", "rectified", at(t0, hours=2)))
    # a repeat exactly repeat_window after the first finding (in the window), and one a
    # second later (out of it)
    add(inspection("u-repeat", "finding", t0, "r1", severity="minor"),
        inspection("u-repeat", "recheck", at(t0, hours=1), "r1", result="pass"),
        inspection("u-repeat", "finding", at(t0, days=90), "r2", severity="minor"),
        inspection("u-repeat", "recheck", at(t0, days=90, hours=1), "r2", result="pass"))
    add(inspection("u-no-repeat", "finding", t0, "r1", severity="minor"),
        inspection("u-no-repeat", "recheck", at(t0, hours=1), "r1", result="pass"),
        inspection("u-no-repeat", "finding", at(t0, days=90, seconds=1), "r2",
                   severity="minor"),
        inspection("u-no-repeat", "recheck", at(t0, days=90, hours=1), "r2", result="pass"))
    # a duplicate finding_id (another event, another severity): ignored
    add(inspection("u-dup", "finding", at(t0, minutes=10), severity="minor"),
        inspection("u-dup", "finding", at(t0, minutes=11), severity="critical"),
        inspection("u-dup", "rectified", at(t0, hours=30)))
    # a rectification whose finding never comes: nothing raised, counted
    add(inspection("u-orphan", "rectified", at(t0, hours=3), "ghost"))
    # a second rectification before the recheck: ignored, counted
    add(inspection("u-rect-twice", "finding", t0, severity="major"),
        inspection("u-rect-twice", "rectified", at(t0, hours=1)),
        inspection("u-rect-twice", "rectified", at(t0, hours=2)),
        inspection("u-rect-twice", "recheck", at(t0, hours=3), result="pass"))
    events = [envelope for _, envelope in sorted(cases, key=lambda case: case[0])]
    # records in reverse order within the lateness: a recheck, its rectification, its
    # finding, two minutes apart, arriving last first; and the same in order on a twin unit
    story = [inspection("{u}", "finding", at(t0, hours=30), severity="major"),
             inspection("{u}", "rectified", at(t0, hours=30, minutes=2)),
             inspection("{u}", "recheck", at(t0, hours=30, minutes=4), result="fail")]
    place = next(i for i, e in enumerate(events)
                 if e["value"]["occurred_at"] > at(t0, hours=30, minutes=4))
    for unit, order in (("u-in-order", story), ("u-reversed", story[::-1])):
        for offset, record in enumerate(order):
            value = {**record["value"], "unit_id": unit,
                     "event_id": f"{unit}-{record['value']['record']}"}
            events.insert(place + offset, {"topic": "inspection", "value": value})
        place += len(order)
    return events


def received(item: Envelope, when: str) -> Envelope:
    """``item`` with its envelope's ``received_at`` (contract v1.2 §1): its own receipt."""
    return {**item, "received_at": when}


def entry_edges(t0: str) -> tuple[list[Envelope], list[Envelope], str]:
    """Every edge of the data-entry rules (CONTRACT.md v1.2 §4 "Data entry"), in two parts
    and the instant between them: the first part ends with a record that moves the clock
    (the watermark) past its day's cut-off, which a worker gets from ``clock --until`` that
    instant; the second holds records received before that cut-off but read after it, and
    two bad receipts. Each edge has a source (or lab) of its own; lines are in arrival order
    (by receipt), as a platform's export is. Default policy: sampling within 2 h, followup
    4 h, at least 10 records a day, late share 0.2, a lab silent after 3 h, cut-off 22:00.
    """
    hour = 3600.0
    first: list[tuple[str, Envelope]] = []

    def arrive(item: Envelope, lag: float) -> None:
        """``item`` entered ``lag`` seconds after it happened."""
        when = at(item["value"]["occurred_at"], seconds=lag)
        first.append((when, received(item, when)))

    def site(name: str, lags: list[float], district: str = "district-a") -> None:
        for i, lag in enumerate(lags):
            arrive(sampling(f"pe-{name}-{i:02d}", f"tb-{name}-{i:02d}", at(t0, minutes=5 * i),
                            site=name, district=district, event_id=f"{name}-{i}"), lag)

    late, on_time, within = 3 * hour, 600.0, 2 * hour
    site("site-share", [late] * 2 + [on_time] * 8)  # exactly late_share and late_entries_min
    site("site-below", [late] * 2 + [on_time] * 9)  # 2 of 11: under the share
    site("site-few", [late] * 9)  # every one late, one record short of the minimum
    site("site-within", [within] * 10)  # a lag of exactly entry_within is on time
    site("site-over", [within + 1] * 10)  # a second more is late
    for i in range(10):  # a grid worker's night: the person stage's source, 5 h late
        arrive(followup(f"pe-night-{i:02d}", at(t0, minutes=10 * i), "visit",
                        worker_id="gw-night", event_id=f"night-{i}"), 5 * hour)
    # labs with one tube each, received at t0: reported one second before the silence would
    # begin, exactly at its first instant (then not waiting any more), a second after it
    # (silent from t0 + 3 h to its report), and never (silent, escalated by nobody acting)
    for name, report in (("lab-ended", 3 * hour - 1), ("lab-exact", 3 * hour),
                         ("lab-late", 3 * hour + 1), ("lab-stuck", None)):
        arrive(lab(f"tb-{name}", t0, lab_id=name, event_id=f"{name}-rcv"), 60)
        if report is not None:
            arrive(lab(f"tb-{name}", at(t0, seconds=report), "negative", lab_id=name,
                       event_id=f"{name}-rep"), 60)
    cutoff = at(t0, hours=13)  # 22:00 local
    between = at(cutoff, minutes=5)
    arrive(sampling("pe-clock", "tb-clock", at(between, minutes=5), site="site-clock",
                    event_id="clock"), 0)
    events = [item for _, item in sorted(first, key=lambda pair: pair[0])]
    # received before the cut-off but read after the clock passed it: the next day's
    later: list[Envelope] = []
    for i in range(10):
        happened = at(t0, hours=9, minutes=5 * i)
        later.append(received(sampling(f"pe-after-{i:02d}", f"tb-after-{i:02d}", happened,
                                       site="site-after", event_id=f"after-{i}"),
                              at(happened, hours=3)))
    # a received_at without an offset (never published), and one beyond the skew
    later.append(received(sampling("pe-naive", "tb-naive", at(t0, days=1), site="site-bad",
                                   event_id="naive"), "2022-09-07T09:00:00"))
    later.append(received(sampling("pe-far-00", "tb-far", at(t0, days=1), site="site-bad",
                                   event_id="far"), "2099-01-01T00:00:00+08:00"))
    later.append(received(sampling("pe-day-02", "tb-day2", at(t0, days=1, hours=1),
                                   site="site-clock", event_id="day2"),
                          at(t0, days=1, hours=1)))
    return events, later, between
