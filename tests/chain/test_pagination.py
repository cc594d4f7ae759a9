"""Pagination of list queries (chain/queries.py): key-range reads in `State`, pages that walk the whole
list forwards and backwards, filters with bounded work, and the opaque page key."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.encoding import canonical_json
from chain.errors import ChainError
from chain.queries import (
    MAX_PAGE_KEY_TEXT,
    MAX_PAGE_LIMIT,
    MAX_PAGE_SCAN,
    PAGE_KEY_PATTERN,
    PageKeyKind,
    PageRequest,
    decode_page_key,
    encode_page_key,
    read_page,
)
from chain.store import CommitInfo, MemoryStore, State, compute_prefix_end
from tests.helpers import make_app, make_genesis, run_until

KEYS = st.text(alphabet="ab/0é", min_size=1, max_size=4)


def make_state(committed: dict[str, int], pending: dict[str, int | None]) -> State:
    """A State of space "s" over a MemoryStore holding `committed`, with `pending` writes (None deletes)."""
    store = MemoryStore()
    store.write_block(CommitInfo(1, "", b""), [("s", k, canonical_json(v)) for k, v in committed.items()])
    store.write_block(CommitInfo(1, "", b""), [("t", "x", "1")])  # another space is never read
    state = State(store, 2)
    for key, value in pending.items():
        if value is None:
            state.delete("s", key)
        else:
            state.set("s", key, value)
    return state


def walk(state: State, limit: int, reverse: bool, **kwargs: Any) -> tuple[list[tuple[str, Any]], int]:
    """Every page of space "s" concatenated, and how many pages it took."""
    items: list[tuple[str, Any]] = []
    key, pages = None, 0
    while True:
        page = read_page(state, "s", PageRequest(key, limit, reverse), item=lambda k, v: (k, v), **kwargs)
        assert len(page.items) <= limit
        items += page.items
        pages += 1
        if page.next_key is None:
            return items, pages
        key = page.next_key


@settings(max_examples=200, deadline=None)
@given(
    committed=st.dictionaries(KEYS, st.integers(0, 9), max_size=12),
    pending=st.dictionaries(KEYS, st.none() | st.integers(0, 9), max_size=6),
    limit=st.integers(1, 5),
    reverse=st.booleans(),
)
def test_pages_concatenated_are_the_whole_space_in_order(committed, pending, limit, reverse):
    live = {**committed, **pending}
    expected = sorted(((k, v) for k, v in live.items() if v is not None), reverse=reverse)
    items, pages = walk(make_state(committed, pending), limit, reverse)
    assert items == expected
    assert pages == max(1, -(-len(expected) // limit))  # no empty page at the end


@settings(max_examples=100, deadline=None)
@given(
    committed=st.dictionaries(KEYS, st.integers(0, 9), max_size=12),
    limit=st.integers(1, 5),
    reverse=st.booleans(),
    prefix=st.sampled_from(["a", "a/", "b0", "é"]),
)
def test_a_prefix_range_pages_through_exactly_its_keys(committed, limit, reverse, prefix):
    expected = sorted(((k, v) for k, v in committed.items() if k.startswith(prefix)), reverse=reverse)
    items, _ = walk(make_state(committed, {}), limit, reverse, start=prefix, end=compute_prefix_end(prefix))
    assert items == expected


class CountingStore(MemoryStore):
    """A MemoryStore that counts the entries its range reads hand out."""

    def __init__(self) -> None:
        super().__init__()
        self.read = 0

    def iterate(self, space, start="", end=None, reverse=False):
        for row in super().iterate(space, start, end, reverse):
            self.read += 1
            yield row


def test_a_filtered_page_reads_at_most_max_page_scan_entries_and_the_walk_finds_every_match():
    store = CountingStore()
    count = 3 * MAX_PAGE_SCAN + 7
    store.write_block(CommitInfo(1, "", b""), [("s", f"{i:012d}", str(i)) for i in range(count)])
    state = State(store, 2)
    keep = lambda v: v % 500 == 0  # noqa: E731 - a rare status among many entries
    key, found, reads = None, [], []
    while True:
        store.read = 0
        page = read_page(state, "s", PageRequest(key, 10), keep=keep)
        reads.append(store.read)
        found += page.items
        if page.next_key is None:
            break
        key = page.next_key
    assert found == [i for i in range(count) if i % 500 == 0]
    assert max(reads) <= MAX_PAGE_SCAN + 1


def test_an_unfiltered_page_reads_limit_plus_one_entries():
    store = CountingStore()
    store.write_block(CommitInfo(1, "", b""), [("s", f"{i:012d}", str(i)) for i in range(5000)])
    page = read_page(State(store, 2), "s", PageRequest(None, 7, True))
    assert page.items == list(range(4999, 4992, -1)) and store.read == 8


@given(st.text(min_size=1, max_size=40))
def test_page_keys_round_trip(key):
    assert decode_page_key(encode_page_key(key)) == key


@pytest.mark.parametrize(
    "text",
    ["", "!!", "MDA=", "MDA ", " MDA", "M", "A" * 600, "MDB", "MB", "Pz8/"],
    ids=[
        "empty",
        "not-base64",
        "padded",
        "trailing-space",
        "leading-space",
        "one-char",
        "too-long",
        "non-canonical-3",
        "non-canonical-2",
        "std",
    ],
)
def test_bad_page_keys_are_refused(text):
    assert decode_page_key(text) is None


@given(st.from_regex(PAGE_KEY_PATTERN, fullmatch=True).filter(lambda t: 0 < len(t) <= MAX_PAGE_KEY_TEXT))
def test_every_page_key_the_schema_allows_is_a_position_in_the_key_space(text):
    """What the OpenAPI document promises is what the query takes: bytes that are not UTF-8 read as U+FFFD."""
    key = decode_page_key(text)
    assert key is not None and PageKeyKind().check(text, "pagination.key") == text


def test_a_page_key_of_bytes_that_are_not_utf8_reads_them_as_replacement_characters():
    assert decode_page_key("_-8") == "\ufffd\ufffd"


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"pagination.limit": 0}, "pagination.limit must be an integer from 1 to"),
        ({"pagination.limit": MAX_PAGE_LIMIT + 1}, "pagination.limit must be an integer from 1 to"),
        ({"pagination.limit": True}, "pagination.limit must be an integer"),
        ({"pagination.key": "%%"}, "pagination.key is not a next_key"),
        ({"pagination.reverse": "yes"}, "pagination.reverse must be true or false"),
    ],
)
def test_out_of_range_pagination_is_a_one_line_bad_query(params, words):
    app = make_app(make_genesis({"a": 50, "b": 30}))
    with pytest.raises(ChainError) as info:
        app.query("validators", **params)
    assert info.value.code == "bad_query" and words in str(info.value) and "\n" not in str(info.value)


def test_history_pages_respect_the_epoch_range():
    app = make_app(make_genesis({"a": 50}, epoch_length=1))
    run_until(app, 30)
    whole = app.query_all("history", from_epoch=3, to_epoch=25)
    assert [r["epoch"] for r in whole] == list(range(3, 26))
    first = app.query("history", from_epoch=3, to_epoch=25, **{"pagination.limit": 5, "pagination.reverse": True})
    assert [r["epoch"] for r in first["epochs"]] == [25, 24, 23, 22, 21]
    rest = app.query_all("history", from_epoch=3, to_epoch=25, **{"pagination.key": first["pagination"]["next_key"]})
    assert [r["epoch"] for r in rest] == list(range(20, 26))  # a reverse key followed forwards starts there
