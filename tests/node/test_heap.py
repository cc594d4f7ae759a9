"""node.heap: the collector's settings while the chain runs, restored after."""

from __future__ import annotations

import gc
import multiprocessing
import weakref

import pytest

from node.heap import YOUNG_SCAN_ALLOCATIONS, frozen_for_fork, settled_heap


def test_settled_heap_freezes_the_objects_alive_at_its_start_and_scans_the_young_less_often() -> None:
    before = gc.get_threshold()
    alive = [{"entry": i} for i in range(100)]
    with settled_heap():
        assert gc.get_freeze_count() >= len(alive)
        assert gc.get_threshold()[0] == YOUNG_SCAN_ALLOCATIONS
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == before


def test_settled_heap_restores_the_collector_when_its_block_raises() -> None:
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), settled_heap():
        raise RuntimeError("the run failed")
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == before


class Cycle:
    """An object that refers to itself: only the collector frees it."""

    def __init__(self) -> None:
        self.me = self


def test_a_cycle_frozen_during_the_block_is_collected_once_it_dies_after_it() -> None:
    cycle = Cycle()
    with settled_heap():
        ref = weakref.ref(cycle)
    del cycle
    gc.collect()
    assert ref() is None  # unfrozen: a full collection reaches it again (frozen, it would leak)


def report_freeze_count(queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    """In a forked child: how many objects it inherited frozen."""
    queue.put(gc.get_freeze_count())


def test_a_child_forked_in_frozen_for_fork_inherits_the_heap_frozen_and_the_parent_unfreezes() -> None:
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    with frozen_for_fork():
        child = context.Process(target=report_freeze_count, args=(queue,))
        child.start()
    child.join(timeout=30)
    assert queue.get(timeout=30) > 1000  # the interpreter's own objects at least
    assert gc.get_freeze_count() == 0
