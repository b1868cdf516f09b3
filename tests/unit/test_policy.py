"""The policy: the shipped defaults are CONTRACT.md §4's bracketed values, and every kind of
bad policy stops with a PolicyError that names the key (or the file) at fault."""

from __future__ import annotations

import copy
import re
import tomllib
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from closedloop.schemas.policy import (
    Policy,
    PolicyError,
    default_policy,
    default_policy_text,
    load_policy,
    policy_from_mapping,
)

HOUR = 3600
MINUTE = 60


def default_data() -> dict[str, Any]:
    """The default policy as parsed TOML, to break one key at a time."""
    return copy.deepcopy(tomllib.loads(default_policy_text()))


class TestDefaults:
    policy = default_policy()

    def test_time(self) -> None:
        assert self.policy.timezone == "Asia/Shanghai"
        assert self.policy.zone.key == "Asia/Shanghai"
        assert self.policy.allowed_lateness == 5 * MINUTE
        assert self.policy.max_clock_skew == 15 * MINUTE  # contract v1.1
        assert self.policy.daily_cutoff == 22 * HOUR  # 22:00 local

    def test_travel_push(self) -> None:
        assert self.policy.locate_within == 2 * HOUR
        assert self.policy.followup_every == 24 * HOUR

    def test_regimens(self) -> None:
        regimens = {
            risk: (r.mode, r.days, r.test_days) for risk, r in self.policy.regimens.items()
        }
        assert regimens == {
            "high": ("centralized_quarantine", 7, (1, 2, 3, 5, 7)),
            "medium": ("home_quarantine", 7, (1, 4, 7)),
            "outside_province": ("health_monitoring", 3, (1, 2, 3)),
            "inside_province": ("health_monitoring", 3, (1, 3)),
        }

    def test_lab(self) -> None:
        assert self.policy.received_within == 4 * HOUR
        assert self.policy.reported_within == 12 * HOUR
        assert self.policy.retest_within == 6 * HOUR
        assert self.policy.orphan_after == 24 * HOUR

    def test_identity(self) -> None:
        assert self.policy.max_speed_kmh == 120.0
        assert self.policy.max_samples_per_day == 3

    def test_cohort_cadence(self) -> None:
        assert dict(self.policy.cohorts) == {
            "cold_chain": 24 * HOUR,
            "medical": 24 * HOUR,
            "courier": 48 * HOUR,
            "construction": 48 * HOUR,
            "truck_driver": 48 * HOUR,
            "school_staff": 48 * HOUR,
            "elderly_care": 48 * HOUR,
        }

    def test_escalation(self) -> None:
        assert self.policy.escalate_after == 2 * HOUR

    def test_data_entry(self) -> None:  # contract v1.2
        assert dict(self.policy.entry_within) == {
            "sampling": 2 * HOUR, "lab": 2 * HOUR, "followup": 4 * HOUR,
            "checkpoint": HOUR, "clinic": 4 * HOUR, "travel": 2 * HOUR,
            "population": 24 * HOUR, "cohort": 24 * HOUR, "area": 2 * HOUR, "round": HOUR,
            "inspection": 24 * HOUR,
        }
        assert self.policy.late_entries_min == 10
        assert self.policy.late_share == Fraction(1, 5)  # exactly, not the float 0.2
        assert self.policy.lab_silent_after == 3 * HOUR

    def test_supervision(self) -> None:  # contract v1.2
        assert dict(self.policy.rectify_within) == {
            "critical": 24 * HOUR, "major": 72 * HOUR, "minor": 168 * HOUR}
        assert self.policy.recheck_within == 168 * HOUR
        assert self.policy.repeat_window == 90 * 24 * HOUR
        assert self.policy.inspection_orphan_after == 24 * HOUR

    def test_no_file_means_the_defaults(self) -> None:
        assert load_policy(None) == self.policy

    def test_the_shipped_file_loads_from_disk(self, tmp_path: Path) -> None:
        path = tmp_path / "policy.toml"
        path.write_text(default_policy_text(), "utf-8")
        assert load_policy(path) == self.policy


def test_a_city_can_change_a_value(tmp_path: Path) -> None:
    text = default_policy_text().replace('locate_within = "2h"', 'locate_within = "90m"')
    path = tmp_path / "city.toml"
    path.write_text(text, "utf-8")
    policy = load_policy(path)
    assert isinstance(policy, Policy)
    assert policy.locate_within == 90 * MINUTE


def break_key(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    """The default data with the key at ``path`` set to ``value`` (``...`` deletes it)."""
    data = default_data()
    node = data
    for part in path[:-1]:
        node = node[part]
    if value is ...:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return data


BAD: list[tuple[str, tuple[str, ...], Any, str]] = [
    ("duration-words", ("travel", "locate_within"), "2 hours", "travel.locate_within"),
    ("duration-bare-number", ("lab", "retest_within"), 6, "lab.retest_within"),
    ("duration-zero", ("allowed_lateness",), "0m", "allowed_lateness"),
    ("clock-skew-bare-number", ("max_clock_skew",), 900, "max_clock_skew"),
    ("duration-fraction-of-second", ("lab", "orphan_after"), "0.5s", "lab.orphan_after"),
    ("unknown-top-key", ("lateness",), "5m", "lateness"),
    ("unknown-nested-key", ("lab", "result_within"), "12h", "lab.result_within"),
    ("unknown-regimen-key", ("travel", "regimens", "high", "tests"), [1],
     "travel.regimens.high.tests"),
    ("unknown-risk", ("travel", "regimens", "low"), {"days": 1}, "travel.regimens.low"),
    ("unknown-timezone", ("timezone",), "Mars/Olympus_Mons", "timezone"),
    ("timezone-path", ("timezone",), "../etc/passwd", "timezone"),
    ("test-day-past-the-end", ("travel", "regimens", "medium", "test_days"), [1, 4, 8],
     "travel.regimens.medium.test_days"),
    ("test-day-zero", ("travel", "regimens", "high", "test_days"), [0, 1],
     "travel.regimens.high.test_days"),
    ("regimen-days-zero", ("travel", "regimens", "inside_province", "days"), 0,
     "travel.regimens.inside_province.days"),
    ("cutoff-24h", ("daily_cutoff",), "24:00", "daily_cutoff"),
    ("cutoff-minutes", ("daily_cutoff",), "22:60", "daily_cutoff"),
    ("cutoff-words", ("daily_cutoff",), "10pm", "daily_cutoff"),
    ("cohort-zero-hours", ("cohorts", "courier"), 0, "cohorts.courier"),
    ("cohort-negative-hours", ("cohorts", "medical"), -24, "cohorts.medical"),
    ("cohort-fractional-hours", ("cohorts", "medical"), 1.5, "cohorts.medical"),
    ("cohort-bad-name", ("cohorts", "Cold Chain"), 24, "cohorts.Cold Chain"),
    ("speed-zero", ("identity", "max_speed_kmh"), 0, "identity.max_speed_kmh"),
    ("samples-not-int", ("identity", "max_samples_per_day"), "3", "identity.max_samples_per_day"),
    ("table-not-table", ("lab",), "4h", "lab"),
    ("escalation-bare-number", ("escalation", "after"), 2, "escalation.after"),
    ("escalation-unknown-key", ("escalation", "level3_after"), "4h", "escalation.level3_after"),
    # numbers out of range, which passed and then switched a check off or crashed a run
    ("speed-nan", ("identity", "max_speed_kmh"), float("nan"), "identity.max_speed_kmh"),
    ("speed-inf", ("identity", "max_speed_kmh"), float("inf"), "identity.max_speed_kmh"),
    ("speed-minus-inf", ("identity", "max_speed_kmh"), float("-inf"), "identity.max_speed_kmh"),
    ("speed-negative", ("identity", "max_speed_kmh"), -120, "identity.max_speed_kmh"),
    ("speed-absurd", ("identity", "max_speed_kmh"), 1e300, "identity.max_speed_kmh"),
    ("samples-huge", ("identity", "max_samples_per_day"), 2**63 - 1,
     "identity.max_samples_per_day"),
    ("regimen-days-huge", ("travel", "regimens", "high", "days"), 9000000000000000000,
     "travel.regimens.high.days"),
    ("regimen-days-367", ("travel", "regimens", "high", "days"), 367,
     "travel.regimens.high.days"),
    ("cohort-hours-huge", ("cohorts", "courier"), 9000000000000000000, "cohorts.courier"),
    ("duration-367d", ("state_retention",), "367d", "state_retention"),
    ("duration-huge", ("dedup_retention",), "9000000000000000000d", "dedup_retention"),
    ("duration-400-digits", ("allowed_lateness",), "1" * 400 + "s", "allowed_lateness"),
    ("duration-full-width", ("allowed_lateness",), "\uff15m", "allowed_lateness"),
    ("followup-every-second", ("travel", "followup_every"), "1s", "travel.followup_every"),
    ("followup-every-59m", ("travel", "followup_every"), "59m", "travel.followup_every"),
    ("timezone-directory", ("timezone",), "America", "timezone"),
    ("timezone-not-string", ("timezone",), 8, "timezone"),
    ("timezone-nul", ("timezone",), "Asia/\x00Shanghai", "timezone"),
    ("mode-newline", ("travel", "regimens", "high", "mode"), "home\nquarantine",
     "travel.regimens.high.mode"),
    ("mode-raw-identifier", ("travel", "regimens", "high", "mode"), "call 13812345678",
     "travel.regimens.high.mode"),
    ("cohort-name-trailing-newline", ("cohorts", "courier\n"), 48, "cohorts.courier\\u000a"),
    # contract v1.2
    ("entry-within-bare-number", ("entry_within", "sampling"), 2, "entry_within.sampling"),
    ("entry-within-of-actions", ("entry_within", "action"), "1h", "entry_within.action"),
    ("entry-within-367d", ("entry_within", "population"), "367d", "entry_within.population"),
    ("entry-within-not-table", ("entry_within",), "2h", "entry_within"),
    ("late-share-zero", ("entry", "late_share"), 0, "entry.late_share"),
    ("late-share-above-one", ("entry", "late_share"), 1.5, "entry.late_share"),
    ("late-share-percent", ("entry", "late_share"), 20, "entry.late_share"),
    ("late-share-text", ("entry", "late_share"), "0.2", "entry.late_share"),
    ("late-share-nan", ("entry", "late_share"), float("nan"), "entry.late_share"),
    ("late-share-bool", ("entry", "late_share"), True, "entry.late_share"),
    ("late-entries-min-zero", ("entry", "late_entries_min"), 0, "entry.late_entries_min"),
    ("late-entries-min-fraction", ("entry", "late_entries_min"), 2.5,
     "entry.late_entries_min"),
    ("late-entries-min-huge", ("entry", "late_entries_min"), 2**63 - 1,
     "entry.late_entries_min"),
    ("lab-silent-after-zero", ("entry", "lab_silent_after"), "0s", "entry.lab_silent_after"),
    ("entry-unknown-key", ("entry", "late_within"), "2h", "entry.late_within"),
    ("rectify-within-unknown-severity", ("rectify_within", "severe"), "1h",
     "rectify_within.severe"),
    ("rectify-within-words", ("rectify_within", "critical"), "one day",
     "rectify_within.critical"),
    ("recheck-within-bare-number", ("supervision", "recheck_within"), 168,
     "supervision.recheck_within"),
    ("repeat-window-367d", ("supervision", "repeat_window"), "367d",
     "supervision.repeat_window"),
    ("supervision-unknown-key", ("supervision", "rectify_within"), "1h",
     "supervision.rectify_within"),
]


@pytest.mark.parametrize(
    ("path", "value", "key"), [case[1:] for case in BAD], ids=[case[0] for case in BAD]
)
def test_bad_policy_names_the_key(path: tuple[str, ...], value: Any, key: str) -> None:
    with pytest.raises(PolicyError) as raised:
        policy_from_mapping(break_key(path, value))
    assert str(raised.value).startswith(f"{key}:")


@pytest.mark.parametrize(("written", "share"), [
    (0.2, Fraction(1, 5)), (0.3, Fraction(3, 10)), (1, Fraction(1)), (0.05, Fraction(1, 20)),
])
def test_late_share_is_the_fraction_its_decimal_says(written: float, share: Fraction) -> None:
    # compared exactly (CONTRACT.md §4): 3 late of 10 is at 0.3, whatever binary floats say
    policy = policy_from_mapping(break_key(("entry", "late_share"), written))
    assert policy.late_share == share


def test_the_contract_states_the_v12_defaults_the_policy_ships() -> None:
    # CONTRACT.md §4 (v1.2) writes each default in brackets after its key; the shipped file
    # and the Policy must say the same
    text = (Path(__file__).resolve().parents[2] / "schemas" / "CONTRACT.md").read_text("utf-8")
    v12 = " ".join(text[text.index("**Data entry"):text.index("**Daily closure**")].split())
    policy = default_policy()

    def bracket(key: str) -> str:
        return re.search(rf"`{key}`[^\[]*\[([^\]]+)\]", v12).group(1)  # type: ignore[union-attr]

    def seconds(spoken: str) -> int:
        number, unit = spoken.split()
        return int(number) * {"h": HOUR, "d": 24 * HOUR}[unit]

    assert policy.late_entries_min == int(bracket("late_entries_min"))
    assert policy.late_share == Fraction(bracket("late_share"))
    assert policy.lab_silent_after == seconds(bracket("lab_silent_after"))
    assert policy.recheck_within == seconds(bracket("recheck_within"))
    assert policy.repeat_window == seconds(bracket("repeat_window"))
    assert policy.inspection_orphan_after == seconds(bracket("orphan_after"))
    for table, key in ((policy.entry_within, "entry_within"),
                       (policy.rectify_within, "rectify_within")):
        listed = re.findall(r"(\w+) (\d+ [hd])", bracket(key))
        assert {name: seconds(value) for name, value in listed} == dict(table)


def test_bad_value_in_a_file_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "city.toml"
    path.write_text(default_policy_text().replace('"22:00"', '"25:00"'), "utf-8")
    with pytest.raises(PolicyError, match=r"^daily_cutoff: '25:00'"):
        load_policy(path)


def test_unreadable_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(PolicyError) as raised:
        load_policy(path)
    assert "cannot read policy file" in str(raised.value)
    assert str(path) in str(raised.value)


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text('timezone = "Asia/Shanghai"\n[travel\nlocate_within = "2h"\n', "utf-8")
    with pytest.raises(PolicyError) as raised:
        load_policy(path)
    assert str(raised.value).startswith(f"{path}: not valid TOML")


def test_policy_error_is_a_value_error() -> None:
    # Callers that only know ValueError still stop on a bad policy.
    with pytest.raises(ValueError, match="timezone"):
        policy_from_mapping(break_key(("timezone",), "Nowhere/Nothing"))


def test_a_partial_policy_keeps_every_default_it_does_not_name(tmp_path: Path) -> None:
    # A city changes what it decides; everything else stays as CONTRACT.md §4 says.
    path = tmp_path / "city.toml"
    path.write_text('allowed_lateness = "1s"\n[travel.regimens.medium]\ndays = 5\n'
                    'test_days = [1, 5]\n[cohorts]\nport_worker = 72\n')
    policy = load_policy(path)
    defaults = default_policy()
    assert policy.allowed_lateness == 1
    assert policy.regimens["medium"].days == 5
    assert policy.regimens["medium"].test_days == (1, 5)
    assert policy.regimens["high"] == defaults.regimens["high"]
    assert policy.cohorts["port_worker"] == 72 * 3600
    assert policy.cohorts["cold_chain"] == defaults.cohorts["cold_chain"]
    assert policy.locate_within == defaults.locate_within


RAW = "13812345678"
FULL_WIDTH_RAW = "".join(chr(0xFF10 + int(d)) for d in RAW)


@pytest.mark.parametrize(
    "data",
    [
        {"cohorts": {RAW: 24}},
        {"cohorts": {f"c{RAW}": 24}},
        {"identity": {FULL_WIDTH_RAW: 1}},
        {f"+86{RAW}": "x"},
        {"timezone": f"Asia/{RAW}"},
        {"travel": {"regimens": {"high": {"days": 7, "mode": RAW}}}},
    ],
    ids=["cohort-key", "cohort-key-glued", "full-width-key", "top-key", "timezone", "mode"],
)
def test_a_raw_identifier_in_a_policy_is_never_repeated(data: dict[str, Any]) -> None:
    with pytest.raises(PolicyError) as raised:
        policy_from_mapping(data)
    message = str(raised.value)
    assert "[redacted]" in message or "raw resident ID" in message
    assert RAW not in message and FULL_WIDTH_RAW not in message


def test_a_non_utf8_policy_file_is_a_policy_error(tmp_path: Path) -> None:
    path = tmp_path / "gbk.toml"
    path.write_bytes('timezone = "上海"\n'.encode("gbk"))
    with pytest.raises(PolicyError, match=r"gbk.toml: not UTF-8 \(byte 12\)"):
        load_policy(path)


def test_deeply_nested_toml_is_a_policy_error(tmp_path: Path) -> None:
    path = tmp_path / "deep.toml"
    path.write_text("a = " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(PolicyError, match="nested too deeply"):
        load_policy(path)


def test_a_policy_error_is_one_short_line() -> None:
    # A key of a thousand characters, with line breaks and a bidi override in it.
    key = "x\n\u202e" * 400
    with pytest.raises(PolicyError) as raised:
        policy_from_mapping({key: 1})
    message = str(raised.value)
    assert message.isprintable() and len(message) <= 300


def test_the_largest_numbers_allowed_still_make_a_policy() -> None:
    data = break_key(("travel", "regimens", "high", "days"), 366)
    data["identity"] = {"max_speed_kmh": 10_000, "max_samples_per_day": 1_000}
    data["cohorts"]["courier"] = 366 * 24
    for key in ("allowed_lateness", "max_clock_skew", "dedup_retention", "state_retention"):
        data[key] = "366d"
    policy = policy_from_mapping(data)
    assert policy.regimens["high"].days == 366
    assert policy.state_retention == 366 * 86400
    assert policy.max_speed_kmh == 10_000.0
