"""Replay-wide contract rules: the alert object, output order, --until, de-duplication, bad
input and privacy (CONTRACT.md §1, §2, §3, §5, §6)."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import jsonschema
import pytest
from helpers import (
    ALERT_FIELDS,
    DAY1,
    T0,
    action,
    alerts_of,
    assert_well_formed,
    at,
    cohort,
    followup,
    keys_of,
    lab,
    run,
    run_bytes,
    sampling,
    travel,
    v12_events,
)

from closedloop.schemas.identifiers import looks_raw
from closedloop.schemas.policy import policy_from_mapping

ALERT_KINDS = (
    "unlocated", "followup_overdue", "test_missed", "positive", "pool_positive",
    "retest_missed", "lab_sla_breached", "orphan_result", "identity_suspect",
)
RESIDENT_ID = "11010119900307123X"  # shaped like a PRC resident ID (fictitious)
MOBILE = "13912345678"  # shaped like a mobile number (fictitious)


def every_kind_city() -> list[dict[str, Any]]:
    """A small city in which every alert kind of CONTRACT.md §5 is raised at least once."""
    return [
        # unlocated + followup_overdue + test_missed (regimen)
        travel("traveller-1", T0, risk="medium"),
        travel("traveller-2", T0, risk="high"),
        followup("traveller-2", at(T0, hours=1), "located"),
        # test_missed (cohort)
        cohort("courier-01", at(T0, hours=-48), "courier"),
        # positive (single tube), identity_suspect (4 tubes in a day)
        sampling("resident-1", "tube-s1", at(T0, hours=1)),
        sampling("resident-1", "tube-s2", at(T0, hours=2)),
        sampling("resident-1", "tube-s3", at(T0, hours=3)),
        sampling("resident-1", "tube-s4", at(T0, hours=4)),
        lab("tube-s1", at(T0, hours=3), "positive"),
        # pool_positive + retest_missed, lab_sla_breached (no received for the pool)
        sampling("resident-2", "pool-1", at(T0, hours=1), pool_size=10),
        sampling("resident-3", "pool-1", at(T0, hours=1), pool_size=10),
        lab("pool-1", at(T0, hours=6), "positive"),
        # orphan_result
        lab("tube-orphan", at(T0, hours=2), "negative"),
    ]


class TestAlertObject:
    def test_every_kind_carries_the_contract_fields_with_the_right_nulls(self) -> None:
        # given a city raising every alert kind
        # when the clock runs three days
        alerts, *_ = run(every_kind_city(), until=at(T0, days=3))
        # then every kind appears, each with the contract's fields and nulls
        assert {a["kind"] for a in alerts} == set(ALERT_KINDS)
        assert_well_formed(alerts)
        assert all(set(a) == ALERT_FIELDS for a in alerts)

    def test_every_alert_validates_against_the_published_json_schema(self) -> None:
        # given a city raising every alert kind
        schema = json.loads(
            resources.files("closedloop.schemas").joinpath("jsonschema/alert.json").read_text()
        )
        # when the clock runs three days
        alerts, *_ = run(every_kind_city(), until=at(T0, days=3))
        # then each alert is valid against schemas/jsonschema/alert.json
        assert alerts
        for alert in alerts:
            jsonschema.validate(alert, schema)

    def test_alert_ids_depend_only_on_kind_subject_and_due(self) -> None:
        # given the same lapse in two different surroundings
        # when both are replayed past 11:00
        alone, *_ = run([travel("traveller-1", T0)], until=at(T0, hours=3))
        crowded, *_ = run(every_kind_city(), until=at(T0, hours=3))
        # then traveller-1's unlocated has the same id in both
        [mine] = [a for a in alone if a["kind"] == "unlocated"]
        [same] = [a for a in crowded if a["kind"] == "unlocated" and a["subject"] == "traveller-1"]
        assert mine["alert_id"] == same["alert_id"]

    def test_two_requirements_lapsing_together_give_one_alert(self) -> None:
        # given a regimen test day and a cold-chain test both due 09-07 00:00
        events = [
            cohort("traveller-1", DAY1, "cold_chain"),
            travel("traveller-1", T0, risk="inside_province"),
        ]
        # when the clock reaches 09-07 00:00
        alerts, *_ = run(events, until=at(DAY1, days=1))
        # then one test_missed for (kind, subject, due_at)
        assert keys_of(alerts_of(alerts, "test_missed")) == [
            ("test_missed", "traveller-1", at(DAY1, days=1))
        ]

    def test_an_operator_action_is_accepted_and_changes_no_alert(self) -> None:
        # given an unlocated alert due 11:00, resolved by an operator at 11:10
        # when the clock passes 11:00
        alerts, *_ = run([travel("traveller-1", T0)], until=at(T0, hours=3))
        # then the action is applied and the alert is unchanged
        [alert] = alerts
        handled = [
            travel("traveller-1", T0),
            action(alert["alert_id"], "traveller-1", at(T0, hours=2, minutes=10), "resolve"),
        ]
        again, _, letters, stats = run(handled, until=at(T0, hours=3))
        assert again == alerts and letters == []
        assert stats["applied:action"] == 1


class TestOutputOrder:
    def test_alerts_are_written_sorted_by_raised_at_then_alert_id(self) -> None:
        # given a city raising every alert kind
        # when replayed in one flush
        alerts, *_ = run(every_kind_city(), until=at(T0, days=3))
        order = [(a["raised_at"], a["alert_id"]) for a in alerts]
        # then the alert lines are sorted by (raised_at, alert_id)
        assert len(order) > 10
        assert order == sorted(order)

    def test_raised_at_sorts_as_an_instant_across_a_summer_time_change(self) -> None:
        # given a Berlin policy, and two pushes whose unlocated alerts are raised either side
        # of the night summer time ends (02:30+02:00 is 00:30Z, 02:15+01:00 is 01:15Z)
        berlin = policy_from_mapping({"timezone": "Europe/Berlin"})
        events = [travel("traveller-b", "2022-10-29T22:30:00Z", risk="outside_province"),
                  travel("traveller-c", "2022-10-29T23:15:00Z", risk="outside_province")]
        alerts, *_ = run(events, until="2022-10-30T03:00:00+01:00", pol=berlin)
        # then the earlier instant comes first, though its text sorts after
        assert [(a["subject"], a["raised_at"]) for a in alerts] == [
            ("traveller-b", "2022-10-30T02:30:00+02:00"),
            ("traveller-c", "2022-10-30T02:15:00+01:00")]

    def test_same_input_gives_the_same_bytes(self) -> None:
        # given a city raising every alert kind
        # when replayed twice
        first = run_bytes(every_kind_city(), until=at(T0, days=3))
        second = run_bytes(every_kind_city(), until=at(T0, days=3))
        # then byte-identical alerts and reports
        assert first.alerts == second.alerts and first.reports == second.reports

    def test_an_alert_is_never_emitted_twice_over_a_long_run(self) -> None:
        # given a city raising every alert kind
        # when the clock runs 20 days
        alerts, *_ = run(every_kind_city(), until=at(T0, days=20))
        keys = keys_of(alerts)
        # then no (kind, subject, due_at) twice
        assert len(keys) == len(set(keys))


class TestUntil:
    def test_until_fires_everything_due_at_or_before_t_and_nothing_after(self) -> None:
        # given four deadlines at 11:00:00 and one at 11:00:01
        t = at(T0, hours=2)
        events = [
            cohort("cold-0001", at(t, hours=-24)),  # cohort test due 11:00
            sampling("resident-9", "tube-9", at(t, hours=-4)),  # transport due 11:00
            lab("tube-orphan", at(t, hours=-24), "negative"),  # orphan check due 11:00
            travel("traveller-1", T0),  # unlocated due 11:00
            travel("traveller-2", at(T0, seconds=1)),  # unlocated due 11:00:01
        ]
        # when --until 11:00:00
        alerts, *_ = run(events, until=t)
        # then the four 11:00 deadlines fired, the 11:00:01 one did not
        assert sorted(keys_of(alerts)) == sorted([
            ("test_missed", "cold-0001", t),
            ("lab_sla_breached", "tube-9", t),
            ("orphan_result", "tube-orphan", t),
            ("unlocated", "traveller-1", t),
        ])

    def test_without_until_the_clock_stays_at_the_watermark(self) -> None:
        # given a push at 09:00 and a last event at 11:04:59: clock 10:59:59
        events = [travel("traveller-1", T0), travel("traveller-2", at(T0, hours=2, seconds=299))]
        # when replayed without --until
        alerts, *_ = run(events)
        # then the 11:00 deadline has not fired
        assert alerts == []

    def test_until_earlier_than_the_watermark_does_not_move_the_clock_back(self) -> None:
        # given a push at 09:00 and the watermark at 11:55 (an event at 12:00)
        events = [travel("traveller-1", T0), travel("traveller-2", at(T0, hours=3))]
        # when --until 09:00
        alerts, *_ = run(events, until=T0)
        # then traveller-1's 11:00 deadline has fired all the same
        assert [a["subject"] for a in alerts] == ["traveller-1"]


class TestDeduplication:
    def test_a_second_event_with_the_same_id_on_the_same_topic_is_ignored(self) -> None:
        # given located (id dup-1) then a "released" that reuses dup-1 on the same topic
        events = [
            travel("traveller-1", T0, risk="high"),
            followup("traveller-1", at(T0, minutes=30), "located", event_id="dup-1"),
            followup("traveller-1", at(T0, hours=1), "released", event_id="dup-1"),
        ]
        # when two days pass
        alerts, _, _, stats = run(events, until=at(T0, days=2))
        # then the release was never applied: the follow-up still lapses
        assert stats["duplicates_ignored"] == 1
        assert [a["due_at"] for a in alerts_of(alerts, "followup_overdue")] == [
            at(T0, hours=24, minutes=30)
        ]

    def test_the_same_event_id_on_another_topic_is_not_a_duplicate(self) -> None:
        # given a sampling that reuses the followup's event id
        events = [
            travel("traveller-1", T0, risk="inside_province"),
            followup("traveller-1", at(T0, minutes=30), "located", event_id="shared-1"),
            sampling("traveller-1", "tube-1", at(T0, hours=1), event_id="shared-1"),
            lab("tube-1", at(T0, hours=2), "negative", event_id="shared-1"),
        ]
        # when the clock reaches the end of day 1 (09-07 00:00)
        alerts, _, _, stats = run(events, until=at(DAY1, days=1))
        # then the sampling counted (no test_missed for day 1) and nothing was ignored
        assert stats["duplicates_ignored"] == 0
        assert stats["applied:sampling"] == 1 and stats["applied:lab"] == 1
        assert alerts == []

    def test_an_exact_resend_changes_nothing(self) -> None:
        # given a city and four of its events re-sent at the end of the file
        events = every_kind_city()
        resent = [*events, *events[2:6]]
        # when both replayed
        once = run_bytes(events, until=at(T0, days=3))
        twice = run_bytes(resent, until=at(T0, days=3))
        # then same alerts and reports, four duplicates counted
        assert twice.alerts == once.alerts and twice.reports == once.reports
        assert twice.stats["duplicates_ignored"] == 4

    def test_a_duplicate_late_in_the_file_is_still_ignored(self) -> None:
        # given a positive report, 30 h of other traffic, then the same report re-sent
        report = lab("tube-1", at(T0, hours=3), "positive")
        events = [
            sampling("resident-1", "tube-1", T0),
            report,
            travel("traveller-1", at(T0, hours=30)),
            report,
        ]
        # when the clock passes 16:00 the next day
        alerts, _, _, stats = run(events, until=at(T0, hours=31))
        # then one positive, one duplicate counted
        assert stats["duplicates_ignored"] == 1
        assert len(alerts_of(alerts, "positive")) == 1


    def test_an_input_no_stage_reads_yet_is_counted_and_de_duplicated_not_rejected(
            self) -> None:
        # given a v1.2 inspection record, sent twice (no loop reads the topic yet)
        record = {"topic": "inspection", "value": v12_events("p:000000000001")["inspection"]}
        # when replayed
        _, _, dead_letters, stats = run([record, record])
        # then it is applied (to no stage), its resend ignored, and nothing dead-lettered
        assert dead_letters == []
        assert stats["applied:inspection"] == 1 and stats["duplicates_ignored"] == 1


class TestBadInput:
    @pytest.mark.parametrize(
        ("line", "reason"),
        [
            (b"{not json", "not_json"),
            (b"[1, 2]", "not_object"),
            (b'{"topic": "weather", "value": {}}', "unknown_topic"),
            (b'{"value": {}}', "bad_envelope"),
            (b'{"topic": "travel", "value": 3}', "not_object"),
            (json.dumps(travel("traveller-x", "2022-09-06T09:00:00")), "naive_timestamp"),
            (json.dumps(travel("traveller-x", T0, risk="extreme")), "unknown_enum"),
            (json.dumps(sampling("resident-x", "tube-x", T0, pool_size=0)), "invalid_value"),
            (json.dumps({"topic": "followup", "value": {"event_id": "e", "occurred_at": T0,
                                                       "kind": "visit"}}), "missing_field"),
            (json.dumps(lab("tube-x", T0, status="reported")), "missing_field"),
            (json.dumps(cohort("worker-x0", T0, "pilots")), "unknown_cohort"),
            (json.dumps(travel(MOBILE, T0)), "raw_identifier"),
        ],
    )
    def test_a_bad_line_becomes_a_dead_letter_and_the_run_goes_on(
        self, line: bytes | str, reason: str
    ) -> None:
        # given a valid push, the bad line (line 2), and another valid push
        events = [travel("traveller-1", T0), line, travel("traveller-2", T0)]
        # when the clock passes 11:00
        alerts, _, letters, _ = run(events, until=at(T0, hours=3))
        # then one dead letter naming line 2 and the reason; both pushes lapsed
        [letter] = letters
        assert (letter["reason"], letter["line"]) == (reason, 2)
        assert letter["message"]
        assert sorted(a["subject"] for a in alerts) == ["traveller-1", "traveller-2"]


class TestPrivacy:
    @pytest.mark.parametrize("raw", [RESIDENT_ID, MOBILE])
    def test_a_raw_person_id_is_rejected_and_redacted_in_the_dead_letter(self, raw: str) -> None:
        # given a push and a followup whose person_id is a raw identifier
        events = [travel(raw, T0), followup(raw, at(T0, hours=1), "located")]
        # when replayed
        alerts, reports, letters, _ = run(events, until=at(T0, days=2))
        # then two raw_identifier dead letters with the identifier redacted, nothing else
        assert alerts == [] and reports == []
        assert [d["reason"] for d in letters] == ["raw_identifier", "raw_identifier"]
        assert all(raw not in json.dumps(d) and "[redacted]" in d["original"] for d in letters)

    @pytest.mark.parametrize(
        "event",
        [
            pytest.param(travel("traveller-1", T0, district=MOBILE), id="travel.district"),
            pytest.param(sampling("resident-5", "tube-5", T0, district=RESIDENT_ID),
                         id="sampling.district"),
            pytest.param(sampling("resident-4", MOBILE, T0), id="sampling.tube_id"),
            pytest.param(sampling("resident-6", "tube-6", T0, site=MOBILE, lat=31.0, lon=121.0),
                         id="sampling.site_id"),
            pytest.param(lab("tube-8", at(T0, hours=1), "positive", lab_id=RESIDENT_ID),
                         id="lab.lab_id"),
            pytest.param(lab(RESIDENT_ID, at(T0, hours=1), "negative"), id="lab.tube_id"),
            pytest.param(cohort("courier-01", T0, district=MOBILE), id="cohort.district"),
            pytest.param(travel("traveller-1", T0, origin=RESIDENT_ID), id="travel.origin"),
            pytest.param(followup("traveller-1", T0, "visit", worker_id=MOBILE),
                         id="followup.worker_id"),
            pytest.param(sampling("resident-5", "tube-5", T0, reason=MOBILE),
                         id="sampling.reason"),
            pytest.param(sampling("resident-5", "tube-5", T0, event_id=RESIDENT_ID),
                         id="sampling.event_id"),
            pytest.param(action("al-0", "resident-8", T0, note=f"called {MOBILE}"),
                         id="action.note"),
            pytest.param(action("al-0", MOBILE, T0), id="action.subject"),
            pytest.param(action("al-0", "resident-8", T0, operator_id=RESIDENT_ID),
                         id="action.operator_id"),
        ],
    )
    def test_a_raw_identifier_in_any_field_reaches_no_output(self, event: dict[str, Any]) -> None:
        # given an event carrying a raw identifier in a field that outputs may copy, and
        # what it takes to make the loops speak about it (a swab for tube-8, a far-away
        # second swab for resident-6)
        events = [
            sampling("resident-8", "tube-8", T0),
            event,
            sampling("resident-6", "tube-7", at(T0, minutes=1), site="site-x", lat=39.9,
                     lon=116.4),
        ]
        # when the run goes on for days
        alerts, reports, letters, _ = run(events, until=at(T0, days=4))
        # then the identifier appears in no alert, report or dead letter
        outputs = [*alerts, *reports, *letters]
        assert alerts
        for record in outputs:
            text = json.dumps(record, ensure_ascii=False)
            assert RESIDENT_ID not in text and MOBILE not in text, record
            assert not any(looks_raw(v) for v in _strings(record)), record


def _strings(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [s for value in node.values() for s in _strings(value)]
    if isinstance(node, list):
        return [s for value in node for s in _strings(value)]
    return [node] if isinstance(node, str) else []
