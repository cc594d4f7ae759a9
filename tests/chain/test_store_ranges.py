"""chain.store.State range scans: a merge of the store's key range with the overlay's writes in it."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import node.store
from chain.store import CommitInfo, MemoryStore, State, compute_prefix_end
from node.store import SqliteStore

KEYS = st.text(alphabet="ab/0\u00e9", max_size=3)
VALUES = st.integers(0, 9)
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("set"), st.sampled_from(["s", "t"]), KEYS, VALUES),
        st.tuples(st.just("delete"), st.sampled_from(["s", "t"]), KEYS, st.none()),
        st.tuples(st.sampled_from(["begin", "keep", "discard", "scan"]), st.none(), st.none(), st.none()),
    ),
    max_size=30,
)


def apply_ops(state: State, ops, universe: set[str]) -> None:
    """Run writes, layer operations and whole-space scans (each checked) on a state; unmatched
    keep/discard are skipped. A scan sorts the written keys: later writes keep them sorted."""
    for op, space, key, value in ops:
        if op == "set":
            state.set(space, key, value)
        elif op == "delete":
            state.delete(space, key)
        elif op == "begin":
            state.begin()
        elif op == "scan":
            assert state.iterate("s") == expected_range(state, universe, "", None, False, None)
        elif len(state.layers) > 1:
            getattr(state, op)()


def expected_range(state: State, universe: set[str], start: str, end: str | None, reverse: bool, limit):
    """The reference: every key of the universe read point by point through the layers, filtered and sorted."""
    rows = [
        (k, state.get("s", k)) for k in sorted(universe, reverse=reverse) if start <= k and (end is None or k < end)
    ]
    rows = [(k, v) for k, v in rows if v is not None]
    return rows if limit is None else rows[:limit]


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
@settings(max_examples=150, deadline=None)
@given(
    committed=st.dictionaries(KEYS, VALUES, max_size=12),
    ops=OPS,
    start=KEYS,
    end=st.none() | KEYS,
    reverse=st.booleans(),
    limit=st.none() | st.integers(0, 6),
)
def test_range_iteration_equals_filtering_the_merged_space(kind, committed, ops, start, end, reverse, limit):
    with tempfile.TemporaryDirectory() as tmp:
        store = MemoryStore() if kind == "memory" else SqliteStore(Path(tmp) / "s.db")
        store.write_block(CommitInfo(0, "h", bytes(2048)), [("s", k, str(v)) for k, v in committed.items()])
        state = State(store, 1)
        universe = set(committed) | {key for _, space, key, _ in ops if space == "s"}
        apply_ops(state, ops, universe)
        got = state.iterate("s", start, end, reverse=reverse, limit=limit)
        assert got == expected_range(state, universe, start, end, reverse, limit)


def test_sqlite_range_scan_crosses_page_boundaries_in_both_directions(tmp_path, monkeypatch):
    monkeypatch.setattr(node.store, "ITERATE_PAGE", 3)
    store = SqliteStore(tmp_path / "s.db")
    keys = [f"{i:03d}" for i in range(10)]
    store.write_block(CommitInfo(0, "h", bytes(2048)), [("s", k, "1") for k in keys] + [("t", "005", "2")])
    assert [k for k, _ in store.iterate("s", "002", "009")] == keys[2:9]
    assert [k for k, _ in store.iterate("s", "002", "009", reverse=True)] == keys[2:9][::-1]
    assert [k for k, _ in store.iterate("s")] == keys


@pytest.mark.parametrize(
    ("prefix", "end"),
    [("", None), ("a", "b"), ("000000000001/", "0000000000010"), ("a\U0010ffff", "b"), ("\U0010ffff", None)],
)
def test_prefix_end_is_the_least_key_above_the_prefix(prefix, end):
    assert compute_prefix_end(prefix) == end


def test_prefix_iteration_takes_only_the_keys_under_the_prefix_and_strips_it():
    store = MemoryStore()
    store.write_block(
        CommitInfo(0, "h", bytes(2048)),
        [("dep", "000000000001/x", "1"), ("dep", "000000000001/y", "2"), ("dep", "0000000000010/z", "3")],
    )
    state = State(store, 1)
    state.set("dep", "000000000001/w", 4)
    state.delete("dep", "000000000001/y")
    state.set("dep", "000000000002/a", 5)
    assert state.iterate_prefix("dep", "000000000001/") == [("w", 4), ("x", 1)]
