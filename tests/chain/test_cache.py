"""chain.cache.ByteBoundedCache, and the caches built on it or bounded by entry size: the verify cache
of the Application and the decode cache."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import chain.app
from chain.cache import ENTRY_OVERHEAD, ByteBoundedCache
from chain.encoding import (
    DECODE_CACHE,
    DECODE_CACHE_BYTES,
    DECODE_CACHE_MAX_TEXT,
    DECODED_BYTES_PER_CHAR,
    canonical_json,
    decode_canonical,
)
from chain.store import MemoryStore, State
from chain.tx import MsgSend
from tests.helpers import ADDR, make_app, make_genesis, signed


def test_the_least_recently_used_entries_go_when_the_bytes_exceed_the_bound():
    cache: ByteBoundedCache[str, int] = ByteBoundedCache(3 * (100 + ENTRY_OVERHEAD))
    for key in "abc":
        cache.put(key, ord(key), 100)
    assert cache.get("a") == ord("a")  # "a" is now the most recent: "b" goes first
    cache.put("d", 4, 100)
    assert ("b" in cache, "a" in cache, "c" in cache, "d" in cache) == (False, True, True, True)
    assert cache.bytes == 3 * (100 + ENTRY_OVERHEAD)


def test_an_entry_larger_than_the_bound_is_not_kept_and_evicts_nothing():
    cache: ByteBoundedCache[str, int] = ByteBoundedCache(1000)
    cache.put("a", 1, 10)
    cache.put("huge", 2, 1000)
    assert "huge" not in cache and cache.get("a") == 1


@given(st.lists(st.tuples(st.sampled_from(["put", "pop"]), st.integers(0, 9), st.integers(0, 500)), max_size=60))
def test_the_counted_bytes_are_the_sum_of_the_kept_entries_and_never_exceed_the_bound(ops):
    cache: ByteBoundedCache[int, int] = ByteBoundedCache(1500)
    sizes: dict[int, int] = {}
    for op, key, size in ops:
        if op == "put":
            cache.put(key, size, size)
            sizes[key] = size
        else:
            cache.pop(key)
    kept = {key: sizes[key] for key in range(10) if key in cache}
    assert cache.bytes == sum(size + ENTRY_OVERHEAD for size in kept.values()) <= 1500
    assert all(cache.get(key) == size for key, size in kept.items())


@given(
    st.lists(st.integers(0, 300), max_size=30),
    st.integers(0, 3000),
)
def test_resizing_keeps_the_most_recent_entries_that_fit_the_new_bound(sizes, bound):
    cache: ByteBoundedCache[int, int] = ByteBoundedCache(3000)
    for key, size in enumerate(sizes):
        cache.put(key, size, size)
    before = [key for key in range(len(sizes)) if key in cache]
    cache.resize(bound)
    after = [key for key in range(len(sizes)) if key in cache]
    assert cache.max_bytes == bound and cache.bytes == sum(sizes[k] + ENTRY_OVERHEAD for k in after) <= bound
    assert after == before[len(before) - len(after) :]  # the oldest went first
    fitting = 0  # and no more went than needed
    for key in reversed(before):
        if fitting + sizes[key] + ENTRY_OVERHEAD > bound:
            break
        fitting += sizes[key] + ENTRY_OVERHEAD
    assert cache.bytes == fitting


def test_the_verify_cache_is_bounded_in_bytes_and_an_evicted_tx_is_verified_again_in_its_block(monkeypatch):
    """Regression: the cache was bounded by count (100,000 txs of up to 64 KiB: ~13 GB)."""
    monkeypatch.setattr(chain.app, "ADMITTED_CACHE_BYTES", 64 * 1024)
    app = make_app(make_genesis({"a": 100}, balances={"b": 10**9}))
    big = [signed("b", i, *[MsgSend(ADDR["c"], 1)] * 32) for i in range(40)]  # ~40 × 5 KiB
    assert all(r.ok for r in app.check_txs(big))
    kept = [raw for raw in big if raw in app.verify_cache]
    assert 0 < len(kept) < len(big) and app.verify_cache.bytes <= 64 * 1024
    assert sum(chain.app.compute_admitted_size(app.verify_cache.get(raw)) for raw in kept) <= 64 * 1024
    result = app.finalize_block(1, big)  # the evicted ones are decoded and verified again
    assert all(r.ok for r in result.tx_results)


@pytest.mark.parametrize(
    ("size", "cached"), [(DECODE_CACHE_MAX_TEXT - 2, True), (DECODE_CACHE_MAX_TEXT - 1, False)], ids=["fits", "over"]
)
def test_only_short_texts_enter_the_decode_cache(size, cached):
    text = canonical_json("x" * size)  # two quotes around `size` characters
    DECODE_CACHE.clear()
    assert decode_canonical(text) == "x" * size
    assert (len(DECODE_CACHE) == 1) is cached
    assert DECODE_CACHE.bytes == (DECODED_BYTES_PER_CHAR * len(text) + ENTRY_OVERHEAD if cached else 0)


def test_the_decode_cache_is_bounded_in_bytes_not_entries():
    """Regression (issue 22): it was an lru_cache of 4,096 entries."""
    DECODE_CACHE.clear()
    for i in range(3 * DECODE_CACHE_BYTES // (DECODED_BYTES_PER_CHAR * 100)):
        decode_canonical(canonical_json({"n": i, "pad": "x" * 80}))
    assert 0 < DECODE_CACHE.bytes <= DECODE_CACHE_BYTES and DECODE_CACHE.evicted > 0
    DECODE_CACHE.clear()


def test_a_bulk_read_uses_the_decode_cache_but_does_not_enter_it():
    """The epoch boundary reads each validator's vote once: kept, N votes would evict the hot entries."""
    state = State(MemoryStore(), 1)
    state.set("vote", "a", {"price_ngonka": 7})
    state.set("vote", "b", {"price_ngonka": 9})
    DECODE_CACHE.clear()
    assert state.get("vote", "a", keep=False) == {"price_ngonka": 7} and len(DECODE_CACHE) == 0
    assert state.get("vote", "b") == {"price_ngonka": 9} and len(DECODE_CACHE) == 1
    assert state.get("vote", "b", keep=False) is state.get("vote", "b")  # a hit is shared either way
    DECODE_CACHE.clear()
