"""The policy: CONTRACT.md §4's tunables, loaded from TOML and validated at start.

A bad policy stops the program with :class:`PolicyError`, whose message names the key and
the problem; the engine only ever sees a valid, frozen :class:`Policy`. Every number is
bounded (``BOUNDS``): a policy is a file an operator edits by hand, and a NaN speed or a
regimen of 9e18 days must stop at load, not silently switch a check off or crash a run later.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from importlib import resources
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from closedloop.schemas.identifiers import contains_raw, redact_text
from closedloop.schemas.text import one_line, text_problem

__all__ = ["Policy", "PolicyError", "Regimen", "default_policy", "load_policy", "parse_duration"]

RISKS: Final = ("high", "medium", "outside_province", "inside_province")
_DURATION = re.compile(r"[ \t]*([0-9]{1,12}(?:\.[0-9]{1,6})?)[ \t]*([smhd])[ \t]*")
_UNIT: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_COHORT_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
DAY: Final = 86400
MAX_DAYS: Final = 366  # as CONTRACT.md §1 bounds event times: nothing a loop waits on is longer
BOUNDS: Final = {
    "duration": (1, MAX_DAYS * DAY),  # seconds
    # a repeating deadline: "1s" raised a follow-up alert every second of a regimen
    "cadence": (3600, MAX_DAYS * DAY),
    "days": (1, MAX_DAYS),  # a regimen
    "hours": (1, MAX_DAYS * 24),  # a cohort's test_every
    "max_speed_kmh": (1, 10_000),  # walking pace .. faster than anyone travels between sites
    "max_samples_per_day": (1, 1_000),
    "progress": (60, MAX_DAYS * DAY),  # a round's progress reports: at most one a minute
    "late_entries_min": (1, 1_000_000),  # records of one source in a day
}
FACILITY_KINDS: Final = ("hospital", "clinic", "pharmacy")
_SENTINEL_DEFAULTS: Final = {"hospital": 7200, "clinic": 7200, "pharmacy": 86400}
# v1.2: how long after its event a record of each topic may be entered (an action has none:
# an operator's record is not a report of something that happened elsewhere)
ENTRY_TOPICS: Final = ("sampling", "lab", "followup", "checkpoint", "clinic", "travel",
                       "population", "cohort", "area", "round", "inspection")
_ENTRY_DEFAULTS: Final = {"sampling": 7200, "lab": 7200, "followup": 4 * 3600,
                          "checkpoint": 3600, "clinic": 4 * 3600, "travel": 7200,
                          "population": DAY, "cohort": DAY, "area": 7200, "round": 3600,
                          "inspection": DAY}
SEVERITIES: Final = ("critical", "major", "minor")
_RECTIFY_DEFAULTS: Final = {"critical": DAY, "major": 3 * DAY, "minor": 7 * DAY}
_TOP_KEYS: Final = {"timezone", "allowed_lateness", "max_clock_skew", "daily_cutoff",
                    "dedup_retention", "state_retention", "travel", "lab", "identity", "cohorts",
                    "escalation", "checkpoint", "sentinel_test_within", "rounds",
                    "entry_within", "entry", "rectify_within", "supervision"}


class PolicyError(ValueError):
    """A policy file that cannot be used; the message names the key.

    The message is one line, at most a few hundred characters, with every raw identifier
    ``[redacted]``: a key or value of the file may hold anything, and the message goes to a
    terminal or a log.
    """

    def __init__(self, message: str) -> None:
        super().__init__(one_line(redact_text(message)))


@dataclass(frozen=True, slots=True)
class Regimen:
    """What a risk level asks: ``days`` of control, tests on ``test_days`` (day 1 = arrival)."""

    mode: str
    days: int
    test_days: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Policy:
    """Validated policy; durations in whole seconds."""

    timezone: str
    allowed_lateness: int
    daily_cutoff: int  # seconds after local midnight
    dedup_retention: int
    state_retention: int
    locate_within: int
    followup_every: int
    regimens: Mapping[str, Regimen]
    received_within: int
    reported_within: int
    retest_within: int
    orphan_after: int
    max_speed_kmh: float
    max_samples_per_day: int
    cohorts: Mapping[str, int]  # cohort name -> test_every in seconds
    escalate_after: int = 7200  # an unhandled alert escalates after this, and again after 2x
    max_clock_skew: int = 900  # an occurred_at later than receipt + this is implausible
    proof_valid: int = 48 * 3600  # v1.1 checkpoint: a negative test this old still counts
    landing_test_within: int = 2 * 3600  # v1.1 checkpoint: 落地即检
    sentinel_test_within: Mapping[str, int] = field(
        default_factory=lambda: dict(_SENTINEL_DEFAULTS))  # v1.1, per facility kind
    catchup_within: int = 24 * 3600  # v1.1 rounds: 补采 after the close
    round_progress_every: int = 3600  # v1.1 rounds: progress reports while open
    entry_within: Mapping[str, int] = field(
        default_factory=lambda: dict(_ENTRY_DEFAULTS))  # v1.2, per topic: later is late
    late_entries_min: int = 10  # v1.2: a source's records in a day before it is judged
    late_share: Fraction = Fraction(1, 5)  # v1.2: late / entries at or above it alerts
    lab_silent_after: int = 3 * 3600  # v1.2: a lab this long without a report, tubes waiting
    rectify_within: Mapping[str, int] = field(
        default_factory=lambda: dict(_RECTIFY_DEFAULTS))  # v1.2, per finding severity
    recheck_within: int = 7 * DAY  # v1.2: 回头看 after the rectification
    repeat_window: int = 90 * DAY  # v1.2: 屡督屡犯, a unit's findings kept this long
    inspection_orphan_after: int = DAY  # v1.2: a record whose finding never came

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def parse_duration(value: object, key: str, bound: str = "duration") -> int:
    """``"2h"`` -> 7200, within ``BOUNDS[bound]``. Plain numbers are refused: a unit avoids
    hour/second mix-ups."""
    if not isinstance(value, str):
        raise PolicyError(f"{key}: expected a duration such as \"2h\" or \"30m\", got {value!r}")
    match = _DURATION.fullmatch(value)
    if match is None:
        raise PolicyError(f"{key}: {value!r} is not a duration (a number and one of s, m, h, d)")
    seconds = Decimal(match.group(1)) * _UNIT[match.group(2)]  # exact, never inf
    if seconds != int(seconds) or seconds <= 0:
        raise PolicyError(f"{key}: {value!r} must be a positive whole number of seconds")
    low, high = BOUNDS[bound]
    if seconds > high:
        raise PolicyError(f"{key}: {value!r} is longer than {MAX_DAYS} days")
    if seconds < low:
        raise PolicyError(f"{key}: {value!r} is shorter than {low // 3600} h")
    return int(seconds)


def _table(data: Mapping[str, Any], key: str, prefix: str = "") -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, Mapping):
        raise PolicyError(f"{prefix}{key}: expected a table, got {type(value).__name__}")
    return value


def _positive_int(value: object, key: str, bound: str) -> int:
    """A whole number within ``BOUNDS[bound]``."""
    low, high = BOUNDS[bound]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise PolicyError(f"{key}: expected a whole number from {low} to {high}, got {value!r}")
    return value


def _positive_number(value: object, key: str, bound: str) -> float:
    """A finite number within ``BOUNDS[bound]``: NaN compares false with everything, so
    ``value <= 0`` alone let it through and it then turned the check it tunes off."""
    low, high = BOUNDS[bound]
    if (isinstance(value, bool) or not isinstance(value, int | float)
            or not math.isfinite(value) or not low <= value <= high):
        raise PolicyError(f"{key}: expected a number from {low} to {high}, got {value!r}")
    return float(value)


def _share(value: object, key: str) -> Fraction:
    """A share in (0, 1] as the exact fraction its decimal says (``0.2`` is 1/5), so that
    late / entries compares with it exactly (CONTRACT.md §4), not through a binary float."""
    if (isinstance(value, bool) or not isinstance(value, int | float)
            or not math.isfinite(value) or not 0 < value <= 1):
        raise PolicyError(f"{key}: expected a share above 0 and at most 1 (0.2 = 20%), "
                          f"got {value!r}")
    return Fraction(Decimal(repr(value)))


def _durations(table: Mapping[str, Any], key: str, defaults: Mapping[str, int]
               ) -> dict[str, int]:
    """A table of durations, one per name of ``defaults`` (each defaulting to it)."""
    return {name: parse_duration(table.get(name, f"{seconds}s"), f"{key}.{name}")
            for name, seconds in defaults.items()}


def _name(value: object, key: str) -> str:
    """A name the engine will show (a regimen's mode): printable, no raw identifier."""
    if not isinstance(value, str):
        raise PolicyError(f"{key}: expected a string")
    problem = text_problem(value)
    if problem is None and len(value) > 64:
        problem = "is longer than 64 characters"
    if problem is None and contains_raw(value):
        problem = "holds a raw resident ID or mobile number"
    if problem is not None:
        raise PolicyError(f"{key}: the name {problem}")
    return value


def _cutoff(value: object) -> int:
    if not isinstance(value, str) or not re.fullmatch(r"[0-9]{2}:[0-9]{2}", value):
        raise PolicyError(f"daily_cutoff: expected local time \"HH:MM\", got {value!r}")
    hours, minutes = int(value[:2]), int(value[3:])
    if hours > 23 or minutes > 59:
        raise PolicyError(f"daily_cutoff: {value!r} is not a time of day")
    return hours * 3600 + minutes * 60


def _regimen(risk: str, raw: object) -> Regimen:
    key = f"travel.regimens.{risk}"
    if not isinstance(raw, Mapping):
        raise PolicyError(f"{key}: expected a table")
    days = _positive_int(raw.get("days"), f"{key}.days", "days")
    test_days = raw.get("test_days", [])
    if not isinstance(test_days, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) for d in test_days
    ):
        raise PolicyError(f"{key}.test_days: expected a list of day numbers")
    for day in test_days:
        if not 1 <= day <= days:
            raise PolicyError(f"{key}.test_days: day {day} is outside days 1..{days}")
    mode = _name(raw.get("mode", risk), f"{key}.mode")
    _reject_unknown(raw, {"mode", "days", "test_days"}, key + ".")
    return Regimen(mode=mode, days=days, test_days=tuple(sorted(set(test_days))))


def _reject_unknown(data: Mapping[str, Any], known: set[str], prefix: str = "") -> None:
    unknown = sorted(set(data) - known)
    if unknown:
        raise PolicyError(f"{prefix}{unknown[0]}: unknown key (known: {', '.join(sorted(known))})")


def _merged(defaults: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` over ``defaults``, table by table: a policy file names only what it changes."""
    merged = dict(defaults)
    for key, value in data.items():
        base = merged.get(key)
        if isinstance(base, Mapping) and isinstance(value, Mapping):
            merged[key] = _merged(base, value)
        else:
            merged[key] = value
    return merged


def policy_from_mapping(data: Mapping[str, Any], *, complete: bool = False) -> Policy:
    """Validate a parsed TOML document; every problem names its key.

    A policy file states what a city changes; anything it leaves out keeps the default
    (``complete=True`` takes ``data`` as the whole policy, as the default file itself is).
    """
    if not complete:
        _reject_unknown(data, _TOP_KEYS)
        data = _merged(tomllib.loads(default_policy_text()), data)
    _reject_unknown(data, _TOP_KEYS)
    timezone = data.get("timezone", "Asia/Shanghai")
    if not isinstance(timezone, str):
        raise PolicyError(f"timezone: expected a time zone name such as \"Asia/Shanghai\", "
                          f"got {timezone!r}")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:  # "America" is a directory
        raise PolicyError(f"timezone: unknown time zone {timezone!r}") from exc
    travel = _table(data, "travel")
    _reject_unknown(travel, {"locate_within", "followup_every", "regimens"}, "travel.")
    regimens_raw = _table(travel, "regimens", "travel.")
    _reject_unknown(regimens_raw, set(RISKS), "travel.regimens.")
    missing = [risk for risk in RISKS if risk not in regimens_raw]
    if missing:
        raise PolicyError(f"travel.regimens.{missing[0]}: missing (every risk needs a regimen)")
    lab = _table(data, "lab")
    _reject_unknown(
        lab, {"received_within", "reported_within", "retest_within", "orphan_after"}, "lab."
    )
    identity = _table(data, "identity")
    _reject_unknown(identity, {"max_speed_kmh", "max_samples_per_day"}, "identity.")
    escalation = _table(data, "escalation")
    _reject_unknown(escalation, {"after"}, "escalation.")
    checkpoint = _table(data, "checkpoint")
    _reject_unknown(checkpoint, {"proof_valid", "landing_test_within"}, "checkpoint.")
    sentinel = _table(data, "sentinel_test_within")
    _reject_unknown(sentinel, set(FACILITY_KINDS), "sentinel_test_within.")
    rounds = _table(data, "rounds")
    _reject_unknown(rounds, {"catchup_within", "round_progress_every"}, "rounds.")
    entry_within = _table(data, "entry_within")
    _reject_unknown(entry_within, set(ENTRY_TOPICS), "entry_within.")
    entry = _table(data, "entry")
    _reject_unknown(entry, {"late_entries_min", "late_share", "lab_silent_after"}, "entry.")
    rectify_within = _table(data, "rectify_within")
    _reject_unknown(rectify_within, set(SEVERITIES), "rectify_within.")
    supervision = _table(data, "supervision")
    _reject_unknown(supervision, {"recheck_within", "repeat_window", "orphan_after"},
                    "supervision.")
    cohorts_raw = _table(data, "cohorts")
    cohorts: dict[str, int] = {}
    for name, hours in cohorts_raw.items():
        if not _COHORT_NAME.fullmatch(name):
            raise PolicyError(f"cohorts.{name}: a cohort name is lower-case letters, digits, _")
        if contains_raw(name):
            raise PolicyError(f"cohorts.{name}: a cohort name must not hold a raw identifier")
        cohorts[name] = _positive_int(hours, f"cohorts.{name}", "hours") * 3600
    return Policy(
        timezone=str(timezone),
        allowed_lateness=parse_duration(data.get("allowed_lateness", "5m"), "allowed_lateness"),
        max_clock_skew=parse_duration(data.get("max_clock_skew", "15m"), "max_clock_skew"),
        daily_cutoff=_cutoff(data.get("daily_cutoff", "22:00")),
        dedup_retention=parse_duration(data.get("dedup_retention", "72h"), "dedup_retention"),
        state_retention=parse_duration(data.get("state_retention", "8d"), "state_retention"),
        locate_within=parse_duration(travel.get("locate_within", "2h"), "travel.locate_within"),
        followup_every=parse_duration(
            travel.get("followup_every", "24h"), "travel.followup_every", "cadence"
        ),
        regimens={risk: _regimen(risk, regimens_raw[risk]) for risk in RISKS},
        received_within=parse_duration(lab.get("received_within", "4h"), "lab.received_within"),
        reported_within=parse_duration(lab.get("reported_within", "12h"), "lab.reported_within"),
        retest_within=parse_duration(lab.get("retest_within", "6h"), "lab.retest_within"),
        orphan_after=parse_duration(lab.get("orphan_after", "24h"), "lab.orphan_after"),
        max_speed_kmh=_positive_number(
            identity.get("max_speed_kmh", 120), "identity.max_speed_kmh", "max_speed_kmh"
        ),
        max_samples_per_day=_positive_int(
            identity.get("max_samples_per_day", 3), "identity.max_samples_per_day",
            "max_samples_per_day",
        ),
        cohorts=cohorts,
        escalate_after=parse_duration(escalation.get("after", "2h"), "escalation.after"),
        proof_valid=parse_duration(checkpoint.get("proof_valid", "48h"),
                                   "checkpoint.proof_valid"),
        landing_test_within=parse_duration(checkpoint.get("landing_test_within", "2h"),
                                           "checkpoint.landing_test_within"),
        sentinel_test_within=_durations(sentinel, "sentinel_test_within", _SENTINEL_DEFAULTS),
        catchup_within=parse_duration(rounds.get("catchup_within", "24h"),
                                      "rounds.catchup_within"),
        round_progress_every=parse_duration(rounds.get("round_progress_every", "1h"),
                                            "rounds.round_progress_every", "progress"),
        entry_within=_durations(entry_within, "entry_within", _ENTRY_DEFAULTS),
        late_entries_min=_positive_int(entry.get("late_entries_min", 10),
                                       "entry.late_entries_min", "late_entries_min"),
        late_share=_share(entry.get("late_share", 0.2), "entry.late_share"),
        lab_silent_after=parse_duration(entry.get("lab_silent_after", "3h"),
                                        "entry.lab_silent_after"),
        rectify_within=_durations(rectify_within, "rectify_within", _RECTIFY_DEFAULTS),
        recheck_within=parse_duration(supervision.get("recheck_within", "168h"),
                                      "supervision.recheck_within"),
        repeat_window=parse_duration(supervision.get("repeat_window", "90d"),
                                     "supervision.repeat_window"),
        inspection_orphan_after=parse_duration(supervision.get("orphan_after", "24h"),
                                               "supervision.orphan_after"),
    )


def default_policy_text() -> str:
    """The shipped default policy file (CONTRACT.md §4's bracketed values)."""
    return resources.files("closedloop.schemas").joinpath("policy.default.toml").read_text("utf-8")


def default_policy() -> Policy:
    return policy_from_mapping(tomllib.loads(default_policy_text()), complete=True)


def load_policy(path: str | Path | None) -> Policy:
    """Load and validate a TOML policy file; ``None`` gives the defaults."""
    if path is None:
        return default_policy()
    try:
        text = Path(path).read_text("utf-8")
    except OSError as exc:
        raise PolicyError(f"cannot read policy file {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise PolicyError(f"{path}: not UTF-8 (byte {exc.start}); a TOML file is UTF-8") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{path}: not valid TOML: {exc}") from exc
    except RecursionError as exc:  # tomllib recurses into nested arrays and inline tables
        raise PolicyError(f"{path}: not valid TOML: nested too deeply") from exc
    return policy_from_mapping(data)
