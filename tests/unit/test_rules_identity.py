"""Identity misuse (CONTRACT.md §4): impossible travel between sites, too many tubes a day."""

from __future__ import annotations

import math
from typing import Any

from helpers import DAY1, DAY2, T0, alerts_of, at, run, sampling

PERSON = "resident-0001"
# Two testing sites ~ 85 km apart (Shanghai People's Square, Suzhou Guanqian Street)
SHANGHAI = (31.2304, 121.4737)
SUZHOU = (31.3089, 120.6187)


def _km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance on a sphere of the IUGG mean Earth radius."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    half = (math.sin((lat2 - lat1) / 2) ** 2
            + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2)
    return 2 * 6371.0088 * math.asin(math.sqrt(half))


def _swab(tube: str, when: str, site: tuple[float, float] | None = None, name: str = "site-a",
          person: str = PERSON) -> dict[str, Any]:
    lat, lon = site if site is not None else (None, None)
    return sampling(person, tube, when, site=name, lat=lat, lon=lon)


def _suspects(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return alerts_of(alerts, "identity_suspect")


class TestImpossibleTravel:
    """Two sites whose distance over the elapsed time implies more than 120 km/h."""

    def _pair(self, seconds_apart: int) -> list[dict[str, Any]]:
        return [
            _swab("tube-sh", T0, SHANGHAI, "site-shanghai"),
            _swab("tube-sz", at(T0, seconds=seconds_apart), SUZHOU, "site-suzhou"),
        ]

    def test_just_slower_than_120_kmh_is_plausible(self) -> None:
        # given the two swabs far enough apart in time that the speed is < 120 km/h
        seconds = math.ceil(_km(SHANGHAI, SUZHOU) / 120 * 3600)
        # when the day ends
        alerts, *_ = run(self._pair(seconds), until=at(T0, days=1))
        # then no identity_suspect
        assert _suspects(alerts) == []

    def test_just_faster_than_120_kmh_is_suspect(self) -> None:
        # given one second less: the implied speed just exceeds 120 km/h
        seconds = math.ceil(_km(SHANGHAI, SUZHOU) / 120 * 3600) - 1
        # when the day ends
        alerts, *_ = run(self._pair(seconds), until=at(T0, days=1))
        # then one alert, due at the second swab (the instant the misuse became visible)
        [alert] = _suspects(alerts)
        assert alert["due_at"] == alert["raised_at"] == at(T0, seconds=seconds)
        assert (alert["subject"], alert["person_id"], alert["tube_id"]) == (PERSON, PERSON, None)
        assert alert["district"] == "district-a"
        assert alert["details"]["date"] == T0[:10]
        assert alert["details"]["sites"] == ["site-shanghai", "site-suzhou"]

    def test_either_arrival_order_gives_the_same_alert(self) -> None:
        # given swabs 85 km apart, 10 min apart (09:00, 09:10)
        events = self._pair(600)  # 85 km in 10 minutes
        # when replayed in both arrival orders
        forward, *_ = run(events, until=at(T0, days=1))
        backward, *_ = run(events[::-1], until=at(T0, days=1))
        # then one identical alert
        assert forward == backward and len(_suspects(forward)) == 1

    def test_the_same_site_twice_is_not_travel(self) -> None:
        # given two swabs at the same site, 09:00 and 09:01
        events = [
            _swab("tube-1", T0, SHANGHAI, "site-shanghai"),
            _swab("tube-2", at(T0, minutes=1), SHANGHAI, "site-shanghai"),
        ]
        # when the day ends
        alerts, *_ = run(events, until=at(T0, days=1))
        # then no identity_suspect
        assert _suspects(alerts) == []

    def test_sites_without_coordinates_are_not_compared(self) -> None:
        # given two sites without coordinates, 09:00 and 09:01
        events = [
            _swab("tube-1", T0, None, "site-shanghai"),
            _swab("tube-2", at(T0, minutes=1), None, "site-suzhou"),
        ]
        # when the day ends
        alerts, *_ = run(events, until=at(T0, days=1))
        # then nothing can be computed, nothing is raised
        assert _suspects(alerts) == []

    def test_different_people_at_distant_sites_are_not_suspect(self) -> None:
        # given two persons swabbed 85 km apart one minute apart
        events = [
            _swab("tube-1", T0, SHANGHAI, "site-shanghai"),
            _swab("tube-2", at(T0, minutes=1), SUZHOU, "site-suzhou", person="resident-0002"),
        ]
        # when the day ends
        alerts, *_ = run(events, until=at(T0, days=1))
        # then no identity_suspect
        assert _suspects(alerts) == []


class TestTooManyTubes:
    """More than 3 tubes in one local day."""

    def test_three_tubes_in_a_day_are_allowed(self) -> None:
        # given tubes at 09:00, 10:00, 11:00
        events = [_swab(f"tube-{i}", at(T0, hours=i)) for i in range(3)]
        # when two days pass
        alerts, *_ = run(events, until=at(T0, days=2))
        # then three is within max_samples_per_day
        assert _suspects(alerts) == []

    def test_a_fourth_tube_in_a_local_day_is_suspect(self) -> None:
        # given tubes at 00:00:00, 06:00, 12:00 and 23:59:59 local (two UTC dates)
        times = [DAY1, at(DAY1, hours=6), at(DAY1, hours=12), at(DAY2, seconds=-1)]
        events = [_swab(f"tube-{i}", when) for i, when in enumerate(times)]
        # when the day ends
        alerts, *_ = run(events, until=at(DAY2, days=1))
        # then one alert, due at the fourth tube
        [alert] = _suspects(alerts)
        assert alert["due_at"] == at(DAY2, seconds=-1)
        assert alert["details"]["date"] == DAY1[:10]

    def test_four_tubes_across_local_midnight_are_two_days(self) -> None:
        # given tubes at 20:00, 22:00, 23:59:59 on 09-06 and 00:00:00 on 09-07
        times = [at(DAY1, hours=20), at(DAY1, hours=22), at(DAY2, seconds=-1), DAY2]
        events = [_swab(f"tube-{i}", when) for i, when in enumerate(times)]
        # when the next day ends
        alerts, *_ = run(events, until=at(DAY2, days=1))
        # then no local day holds more than 3
        assert _suspects(alerts) == []

    def test_the_count_is_as_of_the_fourth_tube_however_late_the_check_fires(self) -> None:
        # given tubes at 09:00..12:00 and a fifth at 12:02, in time order
        times = [at(T0, hours=i) for i in range(4)] + [at(T0, hours=3, minutes=2)]
        events = [_swab(f"tube-{i}", when) for i, when in enumerate(times)]
        # when the check fires after the fifth arrived (nothing moved the clock past 12:00
        # before it), or before it (another person's tube at 12:06 moved the clock first)
        other = _swab("tube-other", at(T0, hours=3, minutes=6), person="p:000000000777")
        check_late, *_ = run(events, until=at(DAY2, days=1))
        check_early, *_ = run([*events[:4], other, *events[4:]], until=at(DAY2, days=1))
        # then both count the day's tubes up to the alert's due_at, the fourth: 4
        for alerts in (check_late, check_early):
            [alert] = _suspects(alerts)
            assert alert["due_at"] == at(T0, hours=3)
            assert alert["details"]["samples_that_day"] == 4

    def test_the_check_fires_at_the_fourth_tube_not_before(self) -> None:
        # given tubes at 09:00, 10:00, 11:00, 12:00
        events = [_swab(f"tube-{i}", at(T0, hours=i)) for i in range(4)]
        # when the clock stops at 11:59:59, then at 12:00:00
        before, *_ = run(events, until=at(T0, hours=3, seconds=-1))
        on_time, *_ = run(events, until=at(T0, hours=3))
        # then the alert is due at the fourth tube, 12:00
        assert _suspects(before) == []
        assert [a["due_at"] for a in _suspects(on_time)] == [at(T0, hours=3)]


class TestOneSuspectPerPersonPerDay:
    def test_many_violations_in_a_day_raise_one_alert(self) -> None:
        # given six tubes and impossible travel on the same local day
        events = [_swab(f"tube-{i}", at(T0, hours=i)) for i in range(6)]
        events += [
            _swab("tube-sh", at(T0, hours=7), SHANGHAI, "site-shanghai"),
            _swab("tube-sz", at(T0, hours=7, minutes=5), SUZHOU, "site-suzhou"),
        ]
        # when two days pass
        alerts, *_ = run(events, until=at(T0, days=2))
        # then a single alert for that day, at the earliest violation (the 4th tube)
        assert [a["due_at"] for a in _suspects(alerts)] == [at(T0, hours=3)]

    def test_violations_on_two_days_raise_one_alert_each(self) -> None:
        # given four tubes on 09-06 and four on 09-07
        day1 = [_swab(f"tube-a{i}", at(T0, hours=i)) for i in range(4)]
        day2 = [_swab(f"tube-b{i}", at(T0, days=1, hours=i)) for i in range(4)]
        # when three days pass
        alerts, *_ = run(day1 + day2, until=at(T0, days=3))
        # then one alert per local day
        assert [a["details"]["date"] for a in _suspects(alerts)] == ["2022-09-06", "2022-09-07"]
