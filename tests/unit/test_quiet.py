"""The worker's log under a fault: one line per cause per window, the repeats counted."""

from __future__ import annotations

import logging
import sys

from closedloop.streams.kafka.quiet import OncePerWindow, quieten


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def record(name: str, msg: str, *args: object, level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


def test_repeats_of_a_cause_wait_for_the_window_and_are_counted_on_the_next_line() -> None:
    clock = Clock()
    limit = OncePerWindow(10, clock)
    connect = "Unable connect to node with id %s: %s"
    # given the first failure at 0 s: it is logged
    first = record("aiokafka.conn", connect, 1, "refused")
    assert limit.filter(first)
    # when the same failure repeats 4,000 times over the next 9.9 s (other arguments too)
    for n in range(4_000):
        clock.now = n * 9.9 / 4_000
        assert not limit.filter(record("aiokafka.conn", connect, n % 3, "refused"))
    # then at 10 s one line again, saying how many were held back
    clock.now = 10.0
    again = record("aiokafka.conn", connect, 1, "refused")
    assert limit.filter(again)
    assert again.getMessage() == (
        "Unable connect to node with id 1: refused [4000 more like this in the last 10 s "
        "held back]")


def test_causes_are_the_logger_and_the_template() -> None:
    limit = OncePerWindow(10, Clock())
    assert limit.filter(record("aiokafka.conn", "Unable connect to node %s", 1))
    assert limit.filter(record("aiokafka.client", "Unable connect to node %s", 1))  # logger
    assert limit.filter(record("aiokafka.conn", "Failed fetch from %s", 1))  # template
    assert not limit.filter(record("aiokafka.conn", "Failed fetch from %s", 2))


def test_client_info_is_limited_but_the_workers_own_info_and_debug_pass() -> None:
    limit = OncePerWindow(10, Clock())
    found = "Discovered coordinator %s for transactional id %s"
    assert limit.filter(record("aiokafka.producer", found, 1, "t", level=logging.INFO))
    assert not limit.filter(record("aiokafka.producer", found, 1, "t", level=logging.INFO))
    for _ in range(3):
        assert limit.filter(record("closedloop.worker", "Worker ready", level=logging.INFO))
        assert limit.filter(record("aiokafka.conn", "sending %s", 1, level=logging.DEBUG))


def test_a_client_traceback_is_cut_to_its_last_exception_on_the_line() -> None:
    limit = OncePerWindow(10, Clock())
    try:
        raise ConnectionError("Connection at 127.0.0.1:19500 closed")
    except ConnectionError:
        failed = logging.LogRecord("aiokafka.producer.sender", logging.ERROR, __file__, 1,
                                   "Unexpected error in sender routine", (), sys.exc_info())
    assert limit.filter(failed)
    assert failed.exc_info is None
    assert logging.Formatter().format(failed) == (
        "Unexpected error in sender routine (ConnectionError: Connection at 127.0.0.1:19500 "
        "closed)")


def test_a_record_gets_one_verdict_however_many_handlers_the_filter_sits_on() -> None:
    limit = OncePerWindow(10, Clock())
    shown: list[list[str]] = [[], []]

    class Keep(logging.Handler):
        def __init__(self, into: list[str]) -> None:
            super().__init__()
            self.into = into
            self.addFilter(limit)

        def emit(self, rec: logging.LogRecord) -> None:
            self.into.append(rec.getMessage())

    logger = logging.getLogger("aiokafka.test_quiet")
    handlers = [Keep(shown[0]), Keep(shown[1])]
    for handler in handlers:
        logger.addHandler(handler)
    try:
        for _ in range(5):
            logger.error("broker %s down", 1)
    finally:
        for handler in handlers:
            logger.removeHandler(handler)
    assert shown == [["broker 1 down"], ["broker 1 down"]]


def test_quieten_puts_one_filter_on_each_root_handler_once() -> None:
    root = logging.getLogger()
    handler = logging.NullHandler()
    root.addHandler(handler)
    first = None
    try:
        first = quieten()
        quieten()
        assert [f for f in handler.filters if isinstance(f, OncePerWindow)] == [first]
    finally:
        root.removeHandler(handler)
        # pytest's own capture handlers sit on the root logger too, for the whole session:
        # left there, the filter would hold back the repeated warnings later tests look for
        for other in root.handlers:
            if first is not None:
                other.removeFilter(first)
