"""A small city in the ledger for the console's tests: Chinese district names, two weeks of
daily reports, alerts of every state and level, a testing round with its catch-up list, and
three accounts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Final

from sqlalchemy import Engine

from closedloop.schemas.ids import alert_id
from closedloop.schemas.outputs import (
    Alert,
    DailyReport,
    DeadLetter,
    FindingStatus,
    FindingStep,
    PersonStatus,
    RoundReport,
    RoundRow,
    UnitStatus,
)
from closedloop.streams.console import accounts
from closedloop.streams.ledger import store

PUDONG: Final = "浦东新区"
XUHUI: Final = "徐汇区"
JINGAN: Final = "静安区"
HUANGPU: Final = "黄浦区"
DISTRICTS: Final = (PUDONG, XUHUI, JINGAN, HUANGPU)
PASSWORD: Final = "a-long-test-password"
ROUND: Final = "round-0907"
LATEST: Final = date(2022, 9, 8)
CLOSE: Final = datetime(2022, 9, 7, 10, 0, tzinfo=UTC)  # 18:00 in Shanghai
NOW: Final = datetime(2022, 9, 8, 14, 0, tzinfo=UTC)  # 22:00 in Shanghai: the ledger's clock

ACCOUNTS: Final = (
    ("city-op", "operator", None),
    ("pd-op", "operator", [PUDONG]),
    ("viewer-1", "viewer", None),
)

KINDS: Final = ("positive", "followup_overdue", "test_missed", "unlocated", "lab_sla_breached",
                "pool_positive", "identity_suspect", "retest_missed")


def _alert(kind: str, subject: str, district: str | None, due: datetime,
           details: dict[str, object] | None = None) -> Alert:
    return Alert(alert_id=alert_id(kind, subject, int(due.timestamp())), kind=kind,  # type: ignore[arg-type]
                 subject=subject, person_id=None if subject.startswith("tb-") else subject,
                 tube_id=subject if subject.startswith("tb-") else None, district=district,
                 due_at=due.isoformat(), raised_at=due.isoformat(), details=details or {})


@dataclass(frozen=True)
class City:
    pudong_positive: Alert  # open, in 浦东新区: the one the tests acknowledge
    xuhui_positive: Alert  # open, in 徐汇区: another district's, for 浦东新区's account
    orphan: Alert  # no district: city level only
    missed: list[Alert]  # the round's round_missed alerts
    alerts: list[Alert]
    unit: str  # a supervised venue of 浦东新区: a finding closed after a failed recheck, one open
    xuhui_unit: str  # a site of 徐汇区 with an open critical finding


def _finding(finding_id: str, district: str, severity: str, found: datetime,
             *steps: tuple[str, datetime, str | None]) -> FindingStatus:
    closed = [at for record, at, result in steps if record == "recheck"]
    last = [result for record, _, result in steps if record == "recheck"]
    return FindingStatus(
        finding_id=finding_id, unit_kind="venue", district=district, category="venue_code",
        severity=severity, found_at=found.isoformat(),
        closed_at=closed[-1].isoformat() if last and last[-1] == "pass" else None,
        steps=[FindingStep(record=record, at=at.isoformat(), result=result)  # type: ignore[arg-type]
               for record, at, result in steps])


def _units() -> list[UnitStatus]:
    """Supervised units (v1.2): 浦东新区 has 2 open findings (1 major, 1 minor) and 1 closed,
    徐汇区 1 open critical and 2 open major."""
    day = timedelta(days=1)
    venue = UnitStatus(unit_id="venue-pd-01", updated_at=NOW.isoformat(), findings=[
        _finding("f-pd-1", PUDONG, "major", NOW - 6 * day,
                 ("rectified", NOW - 5 * day, None), ("recheck", NOW - 4 * day, "fail"),
                 ("rectified", NOW - 3 * day, None), ("recheck", NOW - 2 * day, "pass")),
        _finding("f-pd-2", PUDONG, "major", NOW - 2 * day, ("rectified", NOW - day, None)),
        _finding("f-pd-3", PUDONG, "minor", NOW - day)])
    site = UnitStatus(unit_id="site-xh-01", updated_at=NOW.isoformat(), findings=[
        _finding("f-xh-1", XUHUI, "critical", NOW - 3 * day),
        _finding("f-xh-2", XUHUI, "major", NOW - 2 * day),
        _finding("f-xh-3", XUHUI, "major", NOW - day)])
    return [venue, site]


def fill(engine: Engine) -> City:
    """Fill a migrated ledger with the city and its accounts."""
    pudong_positive = _alert("positive", "p:pd000001", PUDONG, NOW - timedelta(hours=1))
    xuhui_positive = _alert("positive", "p:xh000001", XUHUI, NOW - timedelta(hours=2))
    orphan = _alert("orphan_result", "tb-000777", None, NOW - timedelta(hours=3))
    others = []
    for n in range(48):  # a spread of kinds, districts and days
        kind = KINDS[n % len(KINDS)]
        district = DISTRICTS[n % len(DISTRICTS)]
        subject = f"tb-{n:06d}" if kind == "lab_sla_breached" else f"p:{n:08d}"
        others.append(_alert(kind, subject, district, NOW - timedelta(hours=5 * n + 4),
                             {"requirement": "travel"} if kind == "followup_overdue" else {}))
    missed = [_alert("round_missed", f"p:rm{n:06d}", DISTRICTS[n % 2], CLOSE,
                     {"rounds": [ROUND], "grid": f"网格-{n % 3 + 1:02d}" if n % 5 else None})
              for n in range(12)]
    every = [pudong_positive, xuhui_positive, orphan, *others, *missed]
    with engine.begin() as connection:
        store.add_alerts(connection, every)
        store.record_run(connection, command="replay", started_at=NOW, finished_at=NOW,
                         clock=NOW, events_read=len(every), ledger_actions=0)
        for alert, level in [(others[0], 2), (others[0], 3), (others[1], 2), (others[5], 2),
                             (xuhui_positive, 2)]:
            store.note_escalations(connection, [_alert(
                "escalated", alert.subject, alert.district,
                datetime.fromisoformat(alert.due_at) + timedelta(hours=2 * (level - 1)),
                {"alert_id": alert.alert_id, "alert_kind": alert.kind, "level": level})])
        for alert in others[30:44]:
            store.apply_action(connection, store.ActionRecord(
                event_id=f"act-{alert.alert_id}", alert_id=alert.alert_id,
                subject=alert.subject, action="resolve", operator_id="city-op",
                acted_at=NOW, effective_at=NOW, via="ledger", note="handled"))
        store.upsert_reports(connection, [
            DailyReport(district=district, date=(LATEST - timedelta(days=back)).isoformat(),
                        pushed=40 + back, located=38 + back % 3,
                        under_control=120 - back, tests_missed=back % 4,
                        followup_overdue_open=(3 * i + back * (i + 1)) % 11, positives=back % 2,
                        findings_new=(i + back) % 3 if i < 2 else 0,
                        findings_open=3 - i if i < 2 else 0,
                        rectifications_overdue=1 if i == 1 and back == 0 else 0)
            for i, district in enumerate(DISTRICTS) for back in range(14)
            if not (district == HUANGPU and back == 4)])  # 黄浦区 sent no report that day

        def row(district: str, in_scope: int, sampled: int, caught_up: int = 0) -> RoundRow:
            return RoundRow(district=district, in_scope=in_scope, sampled=sampled,
                            missed=in_scope - sampled, caught_up=caught_up, not_on_roster=1,
                            catchup_median_hours=None)

        reports = [RoundReport(round_id=ROUND, stage="progress",
                               as_of=(CLOSE - timedelta(hours=h)).isoformat(),
                               rows=[row(PUDONG, 200, 190 - 18 * h), row(XUHUI, 180, 174 - 15 * h)])
                   for h in range(1, 10)]
        reports.append(RoundReport(round_id=ROUND, stage="close", as_of=CLOSE.isoformat(),
                                   rows=[row(PUDONG, 200, 194), row(XUHUI, 180, 174)]))
        store.upsert_round_reports(connection, reports)
        # two of the missed were sampled after the close: the system closes them
        sampled = (CLOSE + timedelta(hours=3)).isoformat()
        store.put_person_states(connection, {alert.subject: PersonStatus(
            person_id=alert.subject, district=alert.district, updated_at=sampled,
            under_control=False, push=None, cohorts=[], open_requirements=[],
            last_sampled_at=sampled, last_result=None, samplings=[sampled])
            for alert in missed[:2]})
        store.close_caught_up(connection, [alert.subject for alert in missed[:2]], 24 * 3600)
        store.add_dead_letters(connection, [DeadLetter(
            reason="bad_field", message="district is not a string", topic="followup",
            partition=None, offset=None, line=17,
            original='{"person_id": "p:pd000001", "district": 5}',
            original_encoding="utf-8")], NOW)
        store.put_unit_statuses(connection, _units())
        for name, role, districts in ACCOUNTS:
            accounts.add(connection, name, role, PASSWORD, districts, now=NOW)
    return City(pudong_positive, xuhui_positive, orphan, missed, every, "venue-pd-01",
                "site-xh-01")
