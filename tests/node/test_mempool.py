"""The mempool: check_tx admission, dedup, limits, order, re-check after commit, relay of admitted txs only."""

from __future__ import annotations

import pytest

from chain.tx import MsgSend, MsgSubmitPriceProposal
from node.errors import MempoolFull, TxAlreadyKnown, TxRejected
from node.mempool import Mempool
from tests.helpers import ADDR, make_app, make_genesis, signed


def send(name: str, seq: int, amount: int = 1, to: str = "e") -> bytes:
    """A signed MsgSend from `name`."""
    return signed(name, seq, MsgSend(to=ADDR[to], amount=amount))


@pytest.fixture
def app():
    return make_app(make_genesis({"a": 50, "b": 30, "c": 20}, epoch_length=100))


def commit(app, txs):
    """Finalize and commit a block of `txs`; return their hashes."""
    result = app.finalize_block(app.height + 1, list(txs))
    app.commit()
    return [r.hash for r in result.tx_results]


def test_admits_a_valid_tx_and_returns_its_hash(app):
    pool = Mempool(app)
    tx_hash = pool.add(send("a", 0))
    assert tx_hash in pool and len(pool) == 1 and pool.total_bytes == len(send("a", 0))


@pytest.mark.parametrize(
    "raw, code",
    [
        (b"not json", "malformed"),
        (signed("a", 5, MsgSend(to=ADDR["e"], amount=1)), "wrong_sequence"),
        (signed("a", 0, MsgSend(to=ADDR["e"], amount=10**6)), "insufficient_funds"),
        (signed("a", 0, MsgSend(to=ADDR["e"], amount=1), chain_id="other"), "wrong_chain_id"),
        (signed("e", 0, MsgSubmitPriceProposal.of(5)), "not_validator"),
    ],
)
def test_rejects_a_tx_that_fails_check_tx_with_its_code_and_keeps_nothing(app, raw, code):
    pool = Mempool(app)
    with pytest.raises(TxRejected) as info:
        pool.add(raw)
    assert info.value.code == code
    assert len(pool) == 0 and pool.total_bytes == 0


def test_deduplicates_by_hash(app):
    pool = Mempool(app)
    raw = send("a", 0)
    tx_hash = pool.add(raw)
    with pytest.raises(TxAlreadyKnown) as info:
        pool.add(raw)
    assert info.value.tx_hash == tx_hash and len(pool) == 1


def test_duplicates_inside_one_batch_are_admitted_once(app):
    pool = Mempool(app)
    raw = send("a", 0)
    first, second = pool.add_batch([raw, raw])
    assert isinstance(first, str) and isinstance(second, TxAlreadyKnown)


def test_count_limit_rejects_with_mempool_full(app):
    pool = Mempool(app, max_txs=2)
    pool.add(send("a", 0))
    pool.add(send("a", 1))
    with pytest.raises(MempoolFull, match="full"):
        pool.add(send("a", 2))
    assert len(pool) == 2


def test_byte_limit_rejects_with_mempool_full(app):
    raw = send("a", 0)
    pool = Mempool(app, max_bytes=len(raw) + 10)
    pool.add(raw)
    with pytest.raises(MempoolFull, match="full"):
        pool.add(send("b", 0))
    assert pool.total_bytes == len(raw)


def test_reap_returns_txs_in_sender_sequence_order_within_limits(app):
    pool = Mempool(app)
    txs = [send("a", 0), send("b", 0), send("a", 1), send("b", 1), send("a", 2)]
    for raw in txs:
        pool.add(raw)
    assert pool.reap(10, 10**9) == txs
    assert pool.reap(3, 10**9) == txs[:3]
    assert pool.reap(10, len(txs[0]) + len(txs[1])) == txs[:2]
    assert len(pool) == 5  # reaping does not remove


def test_out_of_order_sequence_is_rejected_until_the_gap_is_filled(app):
    pool = Mempool(app)
    with pytest.raises(TxRejected, match="sequence"):
        pool.add(send("a", 1))
    pool.add(send("a", 0))
    pool.add(send("a", 1))
    assert len(pool) == 2


def test_update_removes_committed_txs_and_keeps_the_rest_admissible(app):
    pool = Mempool(app)
    txs = [send("a", 0), send("a", 1), send("a", 2)]
    for raw in txs:
        pool.add(raw)
    hashes = commit(app, txs[:2])
    assert pool.update(hashes) == 0
    assert pool.reap(10, 10**9) == txs[2:]
    pool.add(send("a", 3))  # the check state was rebuilt on top of the pool after the commit
    assert len(pool) == 2


def test_update_drops_txs_that_became_invalid(app):
    pool = Mempool(app)
    pooled = send("a", 0, amount=600)
    pool.add(pooled)
    # a competing tx from the same sender (another node's mempool) is committed first
    commit(app, [send("a", 0, amount=500)])
    assert pool.update([]) == 1
    assert len(pool) == 0 and pool.total_bytes == 0


def test_replayed_committed_tx_is_rejected(app):
    pool = Mempool(app)
    raw = send("a", 0)
    pool.add(raw)
    pool.update(commit(app, [raw]))
    with pytest.raises(TxRejected) as info:
        pool.add(raw)
    assert info.value.code == "wrong_sequence"


def test_only_admitted_txs_are_handed_to_relay(app):
    relayed: list[list[bytes]] = []
    pool = Mempool(app, on_admit=relayed.append)
    good = send("a", 0)
    results = pool.add_batch([good, b"junk", good, send("a", 7)])
    assert isinstance(results[0], str)
    assert [type(r) for r in results[1:]] == [TxRejected, TxAlreadyKnown, TxRejected]
    assert relayed == [[good]]
