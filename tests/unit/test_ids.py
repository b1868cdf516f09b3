"""Ids made of hex digits never look like a raw mobile number (contract v1.1 §2)."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timedelta, timezone

from closedloop.schemas.decode import validate_event
from closedloop.schemas.events import Action
from closedloop.schemas.identifiers import contains_raw
from closedloop.schemas.ids import alert_id, spell_digit_runs
from closedloop.streams.cli.alert_action import action_event

RUN = re.compile(r"[0-9]{11}")


def _plain_alert_id(kind: str, subject: str, due: int) -> str:
    return "al-" + hashlib.sha256(f"{kind}\x1f{subject}\x1f{due}".encode()).hexdigest()[:32]


def _dues_with_a_run(count: int) -> list[int]:
    """Due instants whose plain alert id (unlocated, person-0001) holds 11 digits in a row."""
    found = [due for due in range(1_662_422_400, 1_662_422_400 + 200_000)
             if RUN.search(_plain_alert_id("unlocated", "person-0001", due))]
    assert len(found) >= count
    return found[:count]


class TestSpellDigitRuns:
    def test_a_run_of_eleven_digits_is_spelt_and_shorter_runs_are_kept(self) -> None:
        # 0-9 are spelt g-p: 13812345678 -> hjohijklmno; a 10-digit run stays
        assert spell_digit_runs("ab13812345678cd0123456789") == "abhjohijklmnocd0123456789"
        assert spell_digit_runs("al-1234567890") == "al-1234567890"

    def test_only_digits_at_or_after_start_change(self) -> None:
        # a run spanning a prefix: only the part from ``start`` on is spelt
        assert spell_digit_runs("p12345678901", start=5) == "p1234lmnopgh"


class TestAlertIds:
    def test_an_alert_id_whose_digest_holds_a_mobile_shaped_run_is_spelt(self) -> None:
        for due in _dues_with_a_run(3):
            ident = alert_id("unlocated", "person-0001", due)
            # then no run of 11 digits, and an operator's action naming it is accepted
            assert not RUN.search(ident) and not contains_raw(ident)
            action = validate_event("action", {
                "event_id": "act-1", "occurred_at": "2022-09-06T12:00:00+08:00",
                "alert_id": ident, "subject": "person-0001", "action": "ack",
                "operator_id": "op-017",
            })
            assert isinstance(action, Action), action

    def test_other_alert_ids_keep_the_value_earlier_versions_gave_them(self) -> None:
        due = 1_662_430_000
        assert not RUN.search(_plain_alert_id("test_missed", "person-0002", due))
        assert alert_id("test_missed", "person-0002", due) == _plain_alert_id(
            "test_missed", "person-0002", due)


def test_an_operator_action_never_gets_an_event_id_that_looks_like_a_mobile() -> None:
    # about 1 random hex event id in 390 would, and the action would be refused
    now = datetime(2022, 9, 6, 12, 0, tzinfo=timezone(timedelta(hours=8)))
    ids = [action_event("al-1", "person-0001", "ack", "op-017", None, now)["event_id"]
           for _ in range(4000)]
    assert not [ident for ident in ids if RUN.search(ident)]
