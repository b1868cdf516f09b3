"""Long-lived dicts copied tight once keys that came and went left them sparse."""

from __future__ import annotations

import sys

from closedloop.streams.engine.deadlines import DeadlineIndex
from closedloop.streams.engine.tight import SPARSE, tightened


def test_a_dict_left_sparse_by_deletions_is_copied_tight_with_its_order() -> None:
    table = {1_700_000_000 + n: f"k{n}" for n in range(60_000)}
    for n in range(54_000):
        del table[1_700_000_000 + n]
    assert sys.getsizeof(table) > SPARSE * len(table)
    tight = tightened(table)
    assert tight is not table and list(tight.items()) == list(table.items())
    assert sys.getsizeof(tight) <= SPARSE * len(tight)
    assert tightened(tight) is tight  # tight already: kept as it is


def test_a_dict_that_only_grew_is_kept() -> None:
    table = {f"p:{n:012d}": n for n in range(21_846)}  # just past a resize: 3 slots a key
    assert tightened(table) is table


def test_a_compacted_deadline_index_answers_as_before() -> None:
    index = DeadlineIndex()
    for n in range(40_000):
        index.schedule(f"k{n}", 1_000 + n)
    fired = index.pop_due(1_000 + 35_000)
    live_before, at_before = index._live, index._at
    index.compact()
    assert index._live is not live_before and index._at is not at_before
    index.schedule("k0", 50_000)
    index.schedule("k39999", 900)  # earlier than its due: indexed again
    assert len(fired) == 35_001 and len(index) == 5_000
    assert index.pop_due(2**62) == ["k39999", *(f"k{n}" for n in range(35_001, 39_999)), "k0"]
