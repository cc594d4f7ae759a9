"""The cyclic collector's settings while a process runs the chain (a node, the in-process simulator),
and the frozen heap its forked helpers start from.

CPython's collector scans its youngest generation every 700 net container allocations and, every
hundred of those scans, may scan every tracked object. A node holds 100,000 and more of them that
live as long as it does (its imports, its ledger, its caches), and the chain allocates a dozen
containers per transaction (decoded values, records, layers), so those full scans of objects that
never die cost about a fifth of the chain's own work per settlement (docs/design.md, "The
collector"). While `settled_heap` runs, every object alive at its start is left out of the scans
(`gc.freeze`) and the youngest generation is scanned every YOUNG_SCAN_ALLOCATIONS allocations.
Nothing is leaked: at its end the frozen objects return to the oldest generation and are scanned
(and collected, if they became garbage) as before. The chain is deterministic whatever the collector
does: it only frees memory.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

YOUNG_SCAN_ALLOCATIONS = 10_000  # CPython's default is 700
OLDER_SCAN_EVERY = 10  # scans of the generation below per scan of the next (CPython's default)


@contextmanager
def frozen_for_fork() -> Iterator[None]:
    """Fork child processes inside this block: they inherit this process's heap frozen (CPython's advice
    for `gc.freeze`), so their collections never walk the objects they inherited and never copy those
    pages (copy-on-write) just to scan them; this process unfreezes at the end. Not inside `settled_heap`:
    this block's unfreeze would undo that block's freeze too."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@contextmanager
def settled_heap() -> Iterator[None]:
    """Freeze the objects alive now out of the collector's scans and scan the youngest generation
    less often, until the block ends; then restore both."""
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(YOUNG_SCAN_ALLOCATIONS, OLDER_SCAN_EVERY, OLDER_SCAN_EVERY)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


__all__ = ["YOUNG_SCAN_ALLOCATIONS", "frozen_for_fork", "settled_heap"]
