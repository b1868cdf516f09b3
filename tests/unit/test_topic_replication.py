"""How many replicas must hold a record before the worker's topics acknowledge it."""

from __future__ import annotations

from closedloop.streams.kafka.topics import min_insync_replicas


def test_a_majority_from_three_replicas_on_else_one() -> None:
    # one replica, or two (where 2 would stop every write while either broker restarts)
    assert [min_insync_replicas(r) for r in (1, 2)] == [1, 1]
    # 3 -> 2: one broker may be down; 5 -> 3: two may
    assert [min_insync_replicas(r) for r in (3, 4, 5)] == [2, 3, 3]
