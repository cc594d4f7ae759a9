"""The app hash's LtHash16 (`chain.store`): an entry's lanes are the BLAKE3 XOF of its unambiguous
bytes; the hash of a state is pinned (a change of the XOF, the lanes or the layout changes every
chain's app hash and must be deliberate); a state hashed incrementally equals it hashed from scratch."""

from __future__ import annotations

import pytest
from blake3 import blake3
from hypothesis import given
from hypothesis import strategies as st

from chain.store import (
    LANES_BATCH,
    LTHASH_BYTES,
    LtHash,
    MemoryStore,
    State,
    compute_entry_data,
    compute_entry_lanes,
    compute_lthash,
)


def test_an_entrys_lanes_are_the_blake3_xof_of_its_bytes():
    data = compute_entry_data("acct", "uoc1x", '{"balance":1}')
    assert data == b"uoc/lthash/v1" + b"\x00\x00\x00\x04acct" + b"\x00\x00\x00\x05uoc1x" + b'{"balance":1}'
    assert compute_entry_lanes("acct", "uoc1x", '{"balance":1}') == blake3(data).digest(LTHASH_BYTES)


def test_the_app_hash_of_a_small_state_is_pinned():
    entries = [("acct", "a", '{"balance":1}'), ("meta", "height", "7"), ("vote", "b", '{"price":100}')]
    assert compute_lthash(entries).app_hash() == PINNED


PINNED = "4a8a3355e24b5122311e31eebd3ad07c60b5baaf7c4286390f1250e668c51a92"

ENTRY = st.tuples(st.sampled_from(["acct", "meta", "vote"]), st.text(max_size=8), st.text(max_size=20))


@given(st.lists(ENTRY, max_size=12, unique_by=lambda e: e[:2]), st.lists(ENTRY, max_size=12, unique_by=lambda e: e[:2]))
def test_a_state_changed_incrementally_hashes_as_the_same_state_from_scratch(before, changes):
    state = {(s, k): v for s, k, v in before}
    acc = compute_lthash(before)
    added, removed = [], []
    for space, key, value in changes:
        old = state.get((space, key))
        if old is not None:
            removed.append(compute_entry_lanes(space, key, old))
        added.append(compute_entry_lanes(space, key, value))
        state[(space, key)] = value
    acc.update(added, removed)
    assert acc.to_bytes() == compute_lthash((s, k, v) for (s, k), v in state.items()).to_bytes()
    assert LtHash(acc.to_bytes()).app_hash() == acc.app_hash()


@pytest.mark.parametrize("entries", [10, LANES_BATCH + 1])
def test_a_blocks_commit_hashes_as_its_entries_from_scratch(entries):
    """Kept from the lanes cache's tests (a block of more entries than one vectorised step sums)."""
    state = State(MemoryStore(), 1)
    for i in range(entries):
        state.set("s", f"{i:06d}", i)
    info, changes = state.compute_commit()
    assert len(changes) == entries
    assert info.app_hash == compute_lthash((s, k, v) for s, k, v in changes if v is not None).app_hash()
