"""What ``closedloop bench live`` feeds: a city's testing day as it happens, and how its alerts
are matched to their causes. Pure: the driver (:mod:`closedloop.streams.bench.live`) gives the
wall clock and does the sending and the reading.

The day's proportions are Shanghai's (2022-04-04: 25.67 M persons in 2.43 M tubes): nearly
every tube holds ten swabs (10-in-1), a few hold one (fever clinics, persons in quarantine).
Each tube's lab records follow its swabs in compressed time: received ``receive_after``
seconds after its first collection, reported ``report_after`` seconds after. A share of tubes
is positive, a share is never received by a lab, a share is received late, so that alerts of
both sorts fall due within a run of a few minutes:

- raised at once: ``positive`` (a single tube reported positive), when its report is applied;
- raised when due, once the worker's clock (wall time less the allowed lateness) passes it:
  ``pool_positive`` (due at the pooled tube's report) and ``lab_sla_breached`` (due at the
  first collection plus the SLA of the stage missed).
"""

from __future__ import annotations

import heapq
import math
import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Final

import orjson

__all__ = ["DISTRICTS", "MEASURED", "LiveFeed", "Record", "Shape", "Tube", "parse_iso",
           "percentile", "shanghai_iso"]

SHANGHAI: Final = timezone(timedelta(hours=8))
DISTRICTS: Final = ("huangpu", "xuhui", "changning", "jingan", "putuo", "hongkou", "yangpu",
                    "minhang", "baoshan", "jiading", "pudong", "jinshan", "songjiang",
                    "qingpu", "fengxian", "chongming")
SITES_PER_DISTRICT: Final = 12
LABS: Final = 20
MEASURED: Final = ("positive", "pool_positive", "lab_sla_breached")
"""The alerts whose latency is measured, in the order they are printed."""


@dataclass(frozen=True, slots=True)
class Shape:
    """The day's proportions and the lab's compressed timing (seconds)."""

    pool: int = 10
    single_share: float = 0.03  # tubes of one swab
    positive_single: float = 0.10  # of single tubes (clinics and quarantine test the likely)
    positive_pool: float = 0.005  # of pooled tubes
    lost_share: float = 0.005  # tubes no lab ever receives: both SLA stages lapse
    late_share: float = 0.005  # tubes received after the transport SLA, reported in time
    receive_after: int = 20
    report_after: int = 40
    late_receive_after: int = 90
    late_report_after: int = 100
    received_within: int = 60  # the bench's policy: lab.received_within
    reported_within: int = 120  # lab.reported_within

    def events_per_tube(self) -> float:
        """Records per tube on average: its swabs and, but for lost tubes, two lab records."""
        swabs = self.single_share + (1 - self.single_share) * self.pool
        return swabs + 2 * (1 - self.lost_share)


@dataclass(slots=True)
class Tube:
    tube_id: str
    pool: int
    start: int  # epoch seconds of its first collection
    fate: str  # "normal", "late" or "lost"
    result: str  # "negative" or "positive"
    lab_id: str
    swabs: int = 0
    reported_at: float | None = None  # when its report was handed to the producer


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    key: bytes
    value: bytes
    tube: Tube
    what: str  # "sampling", "received", "reported"


@dataclass
class LiveFeed:
    """An endless testing day: :meth:`next` gives the record to send at wall time ``now``."""

    shape: Shape = field(default_factory=Shape)
    seed: int = 1
    tag: str = "lv"  # keeps ids apart between runs on one broker
    tubes: dict[str, Tube] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._due: list[tuple[int, int, str, Tube]] = []  # (when, order, what, tube)
        self._order = 0
        self._current: Tube | None = None
        self._persons = 0

    def next(self, now: float) -> Record:
        """A lab record that has fallen due, else the next swab (a new tube when full)."""
        if self._due and self._due[0][0] <= now:
            _, _, what, tube = heapq.heappop(self._due)
            return self._lab(tube, what, now)
        current = self._current
        if current is None or current.swabs >= current.pool:
            current = self._current = self._new_tube(int(now))
        tube = current
        tube.swabs += 1
        self._persons += 1
        site = self._rng.randrange(SITES_PER_DISTRICT)
        district = DISTRICTS[len(self.tubes) % len(DISTRICTS)]
        value = {
            "event_id": f"{tube.tube_id}-s{tube.swabs}", "occurred_at": shanghai_iso(now),
            "person_id": f"{self.tag}:p{self._persons:09d}", "tube_id": tube.tube_id,
            "site_id": f"{district}-{site:02d}", "district": district, "pool_size": tube.pool,
        }
        return Record("sampling", tube.tube_id.encode(), orjson.dumps(value), tube, "sampling")

    def _new_tube(self, start: int) -> Tube:
        rng, shape = self._rng, self.shape
        pool = 1 if rng.random() < shape.single_share else shape.pool
        draw = rng.random()
        fate = ("lost" if draw < shape.lost_share
                else "late" if draw < shape.lost_share + shape.late_share else "normal")
        positive = rng.random() < (shape.positive_single if pool == 1 else shape.positive_pool)
        number = len(self.tubes)
        tube = Tube(f"{self.tag}:t{number:08d}", pool, start, fate,
                    "positive" if positive else "negative", f"lab-{number % LABS:02d}")
        self.tubes[tube.tube_id] = tube
        if fate != "lost":
            late = fate == "late"
            self._schedule(start + (shape.late_receive_after if late else shape.receive_after),
                           "received", tube)
            self._schedule(start + (shape.late_report_after if late else shape.report_after),
                           "reported", tube)
        return tube

    def _schedule(self, when: int, what: str, tube: Tube) -> None:
        self._order += 1
        heapq.heappush(self._due, (when, self._order, what, tube))

    def _lab(self, tube: Tube, what: str, now: float) -> Record:
        value: dict[str, object] = {
            "event_id": f"{tube.tube_id}-{what}", "occurred_at": shanghai_iso(now),
            "tube_id": tube.tube_id, "lab_id": tube.lab_id, "status": what,
        }
        if what == "reported":
            value["result"] = tube.result
            tube.reported_at = now
        return Record("lab", tube.tube_id.encode(), orjson.dumps(value), tube, what)

    def expected(self, end: float) -> Counter[str]:
        """The alerts due by ``end`` that this feed's records call for, by kind."""
        shape, due = self.shape, Counter[str]()
        for tube in self.tubes.values():
            if tube.result == "positive" and tube.reported_at is not None \
                    and tube.reported_at <= end:
                due["positive" if tube.pool == 1 else "pool_positive"] += 1
            if tube.fate != "normal" and tube.start + shape.received_within <= end:
                due["lab_sla_breached"] += 1  # the transport stage
            if tube.fate == "lost" and tube.start + shape.reported_within <= end:
                due["lab_sla_breached"] += 1  # the result stage
        return due


    def cause(self, alert: dict[str, object]) -> float | None:
        """When the cause of ``alert`` came to be, in epoch seconds: its due instant, or the
        hand-over of the lab report that raised it if that came later (a report's time is
        its whole second, the hand-over a fraction after); None for an alert not measured."""
        kind, due_at = alert.get("kind"), alert.get("due_at")
        if kind not in MEASURED or not isinstance(due_at, str):
            return None
        due = parse_iso(due_at)
        tube = self.tubes.get(str(alert.get("tube_id")))
        if kind != "lab_sla_breached" and tube is not None and tube.reported_at is not None:
            return max(due, tube.reported_at)
        return due


def shanghai_iso(instant: float) -> str:
    """RFC 3339 at +08:00, whole seconds (the engine counts event time in seconds)."""
    return datetime.fromtimestamp(int(instant), SHANGHAI).isoformat()


def parse_iso(text: str) -> float:
    return datetime.fromisoformat(text).astimezone(UTC).timestamp()


def percentile(values: Iterable[float], share: float) -> float:
    """The nearest-rank percentile (``share`` in 0..1) of ``values``; NaN when empty."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]
