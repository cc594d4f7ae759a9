"""chain.store: the order a block's changes are hashed and written in."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from chain.store import compute_sorted_entries

ENTRIES = st.tuples(st.sampled_from(["acct", "usettle", "uagg", "meta"]), st.text(max_size=12))


@given(st.dictionaries(ENTRIES, st.none()))
def test_compute_sorted_entries_orders_as_sorting_the_pairs(entries: dict[tuple[str, str], None]) -> None:
    assert compute_sorted_entries(entries) == sorted(entries)
