"""Memory levels off: a node's state machine on its SQLite store holds no more after 3,000 blocks than after 1,500.

The regression test for the soak's finding (docs/benchmarks.md, Soak): process-wide caches that
were bounded but too large to fill within ten minutes made a node's RSS grow 11 % over the last half
of a 10-minute soak.
"""

from __future__ import annotations

import tracemalloc

from chain.tx import MsgSubmitPriceProposal
from node.store import SqliteStore
from tests.helpers import make_app, make_genesis, run_block, signed

VOTERS = "abcd"


def run_vote_blocks(app, first: int, count: int) -> None:
    """`count` blocks from `first`, each with a new price vote from every voter (new state values each block)."""
    for height in range(first, first + count):
        price = 1000 + height
        run_block(app, [signed(v, height - 1, MsgSubmitPriceProposal(price, "ngonka", price)) for v in VOTERS])


def test_memory_held_does_not_grow_from_the_1500th_to_the_3000th_block(tmp_path):
    app = make_app(make_genesis(dict.fromkeys(VOTERS, 10), epoch_length=5), SqliteStore(tmp_path / "node.db"))
    tracemalloc.start()
    try:
        run_vote_blocks(app, 1, 1500)
        held_at_1500 = tracemalloc.get_traced_memory()[0]
        run_vote_blocks(app, 1501, 1500)
        held_at_3000 = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert app.height == 3000
    assert held_at_3000 - held_at_1500 < 1 << 20, f"{(held_at_3000 - held_at_1500) / 2**20:.1f} MiB more"
