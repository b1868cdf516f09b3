"""Whether the worker reaches Kafka: the probe's verdict, its reason and its duration."""

from __future__ import annotations

import asyncio

from closedloop.streams.kafka.reachability import Reachability, describe, watch


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_failed_probe_makes_the_cluster_unreachable_since_its_last_answer() -> None:
    clock = Clock()
    reach = Reachability(clock)
    assert reach.up and reach.reason() is None and reach.unreachable_seconds() == 0
    # the last answer at 100 s; probes fail from 102 s on
    clock.now = 102.0
    reach.failed("KafkaConnectionError: refused")
    clock.now = 130.0
    assert not reach.up
    assert reach.unreachable_seconds() == 30.0
    assert reach.reason() == "Kafka unreachable for 30 s: KafkaConnectionError: refused"
    # an answer at 131 s: reachable again, nothing to report
    clock.now = 131.0
    reach.answered()
    assert reach.up and reach.reason() is None and reach.unreachable_seconds() == 0


def test_watch_probes_until_stopped_and_records_each_verdict() -> None:
    reach = Reachability()
    verdicts: list[bool] = []
    answers = [ConnectionRefusedError("refused"), None, None]

    async def ask() -> object:
        verdicts.append(reach.up)  # what the previous probe left
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    asyncio.run(watch(ask, reach, lambda: not answers, every=0))
    verdicts.append(reach.up)
    # before the first probe, after the refusal, after each answer
    assert verdicts == [True, False, True, True]


def test_a_probe_without_an_answer_in_time_fails() -> None:
    reach = Reachability()
    probes: list[None] = []

    async def ask() -> object:
        probes.append(None)
        await asyncio.sleep(10)
        return None

    asyncio.run(watch(ask, reach, lambda: len(probes) > 0 and not reach.up, every=0,
                      timeout=0.01))
    assert not reach.up and reach.cause == "no answer within 0.01 s"


def test_a_failure_while_stopping_is_no_news_of_the_cluster() -> None:
    reach = Reachability()
    stopping: list[bool] = [False]

    async def ask() -> object:
        stopping[0] = True  # the worker stops and closes the client under the probe
        raise ConnectionError("closed")

    asyncio.run(watch(ask, reach, lambda: stopping[0], every=0))
    assert reach.up


def test_describe_names_the_error_once() -> None:
    class KafkaError(Exception):
        def __str__(self) -> str:
            return "KafkaError: Unable to get cluster metadata"

    assert describe(KafkaError()) == "KafkaError: Unable to get cluster metadata"
    assert describe(OSError("refused")) == "OSError: refused"
    assert describe(TimeoutError()) == "TimeoutError"
