"""The mempool: check_tx admission, dedup, limits, order, re-check after commit, relay of admitted txs only."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chain.crypto import PrivateKey
from chain.tx import MsgSend, MsgSubmitPriceProposal, sign_tx
from node import mempool as mempool_module
from node.errors import FeeTooLow, MempoolError, MempoolFull, SenderQuotaExceeded, TxAlreadyKnown, TxRejected
from node.ledger import CountingAdmit
from node.mempool import Mempool
from tests.helpers import ADDR, NAMES, make_app, make_genesis, signed


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


def test_a_late_copy_of_a_committed_tx_is_refused_before_it_is_decoded_or_verified(app):
    """Regression: peers relay a tx while its block commits; each late copy cost a decode and an
    ed25519 verification before `wrong_sequence` (about a third of a node's verifications at load)."""
    app.admit = counting = CountingAdmit()
    pool = Mempool(app)
    raw = send("a", 0)
    pool.update(commit(app, [raw]))
    verified = counting.verified
    with pytest.raises(TxRejected, match="committed in a recent block") as info:
        pool.add(raw)
    assert info.value.code == "wrong_sequence" and counting.verified == verified and len(pool) == 0


def test_a_tx_a_proposal_carried_first_is_admitted_without_a_second_verification(app):
    app.admit = counting = CountingAdmit()
    raw = send("a", 0)
    assert [r.ok for r in app.process_proposal(app.height + 1, [raw])] == [True]
    assert counting.verified == 1
    pool = Mempool(app)
    assert pool.add(raw) in pool and counting.verified == 1  # from the verify cache


def test_a_tx_refused_by_its_checks_is_not_verified_again_when_it_comes_back(app):
    app.admit = counting = CountingAdmit()
    pool = Mempool(app)
    early = send("a", 1)
    with pytest.raises(TxRejected, match="sequence"):
        pool.add(early)  # its sender's sequence 0 has not arrived yet
    assert counting.verified == 1
    with pytest.raises(TxRejected, match="sequence"):
        pool.add(early)  # a client's retry, a peer's copy
    assert counting.verified == 1
    pool.add(send("a", 0))
    assert pool.add(early) in pool and counting.verified == 2  # its own verification was remembered


def test_neither_the_block_nor_the_re_check_after_its_commit_verifies_an_admitted_tx_again(app):
    app.admit = counting = CountingAdmit()
    pool = Mempool(app)
    first, second = send("a", 0), send("a", 1)
    pool.add(first)
    pool.add(second)
    assert counting.verified == 2
    assert all(r.ok for r in app.process_proposal(app.height + 1, [first]))
    pool.update(commit(app, [first]))  # finalize_block, commit, then the pool re-checks `second`
    assert len(pool) == 1
    assert counting.verified == 2
    with pytest.raises(TxRejected, match="committed in a recent block"):
        pool.add(first)
    assert counting.verified == 2


def test_the_committed_digests_are_bounded_and_a_forgotten_one_still_fails_in_the_state(app, monkeypatch):
    monkeypatch.setattr(mempool_module, "RECENT_COMMITTED", 2)
    pool = Mempool(app)
    txs = [send("a", 0), send("a", 1), send("a", 2)]
    pool.update(commit(app, txs))
    assert len(pool._committed) == 2
    with pytest.raises(TxRejected) as info:
        pool.add(txs[0])  # forgotten: decoded, verified and refused by the state
    assert info.value.code == "wrong_sequence" and "committed in a recent block" not in str(info.value)
    with pytest.raises(TxRejected, match="committed in a recent block"):
        pool.add(txs[2])


def test_only_admitted_txs_are_handed_to_relay_with_the_peer_they_came_from(app):
    relayed: list[tuple[list[bytes], str | None]] = []
    pool = Mempool(app, on_admit=lambda raws, origin: relayed.append((raws, origin)))
    good = send("a", 0)
    results = pool.add_batch([good, b"junk", good, send("a", 7)])
    assert isinstance(results[0], str)
    assert [type(r) for r in results[1:]] == [TxRejected, TxAlreadyKnown, TxRejected]
    pool.add_batch([send("a", 1)], origin="ab" * 20)
    assert relayed == [([good], None), ([send("a", 1)], "ab" * 20)]


# --- fees, lanes, quotas and eviction -------------------------------------------------------------

GAS = 100_000


def paying(name: str, seq: int, fee: int, msg=None, gas_limit: int = GAS) -> bytes:
    """A tx from `name` paying `fee` for GAS gas (fee per gas = fee / GAS)."""
    return signed(name, seq, msg or MsgSend(to=ADDR["e"], amount=1), fee=fee, gas_limit=gas_limit)


@pytest.fixture
def fee_app():
    """Validators a, b, c; accounts a..e rich; min_gas_price 0.01 (1,000 ngonka for GAS gas)."""
    balances = {n: 10**12 for n in "abcdefgh"}
    return make_app(make_genesis({"a": 50, "b": 30, "c": 20}, balances, epoch_length=100, min_gas_price="0.01"))


def test_reap_orders_senders_by_fee_per_gas_and_keeps_each_senders_sequence(fee_app):
    pool = Mempool(fee_app)
    d0, d1 = paying("d", 0, 1_000), paying("d", 1, 9_000)
    e0, f0, g0 = paying("e", 0, 3_000), paying("f", 0, 5_000), paying("g", 0, 2_000, gas_limit=GAS // 2)
    for raw in (d0, d1, e0, f0, g0):
        pool.add(raw)
    # g pays 2,000 for half the gas: 0.04 per gas, like f's 0.05 > e's 0.03 > d's head 0.01
    assert pool.reap(10, 10**9) == [f0, g0, e0, d0, d1]
    assert pool.reap(2, 10**9) == [f0, g0]


def test_a_validators_price_vote_and_own_txs_are_reaped_before_any_fee(fee_app):
    pool = Mempool(fee_app)
    rich = paying("d", 0, 10**6)
    vote = paying("b", 0, 1_000, MsgSubmitPriceProposal.of(300))  # b is a validator
    own = paying("a", 0, 1_000)
    pool.add(rich)
    pool.add(vote)
    pool.add(own, own=True)
    assert pool.reap(10, 10**9) == [vote, own, rich]


def test_a_sender_over_its_count_or_byte_quota_is_refused_and_others_still_enter(fee_app):
    pool = Mempool(fee_app, max_txs_per_sender=2)
    pool.add(paying("d", 0, 1_000))
    pool.add(paying("d", 1, 1_000))
    with pytest.raises(SenderQuotaExceeded, match="limit") as info:
        pool.add(paying("d", 2, 10**6))
    assert info.value.code == "sender_quota_exceeded"
    pool.add(paying("e", 0, 1_000))
    raw = paying("f", 0, 1_000)
    by_bytes = Mempool(fee_app, max_bytes_per_sender=len(raw) + 10)
    by_bytes.add(raw)
    with pytest.raises(SenderQuotaExceeded, match="bytes"):
        by_bytes.add(paying("f", 1, 1_000))
    assert len(pool) == 3 and len(by_bytes) == 1


def test_the_priority_lane_is_not_bound_by_the_sender_quota(fee_app):
    pool = Mempool(fee_app, max_txs_per_sender=1)
    for seq in range(3):
        pool.add(paying("a", seq, 1_000), own=True)
    assert len(pool) == 3


def test_a_full_pool_evicts_the_cheapest_for_a_tx_that_pays_more_per_gas(fee_app):
    pool = Mempool(fee_app, max_txs=3)
    cheap, mid, dear = paying("d", 0, 1_000), paying("e", 0, 2_000), paying("f", 0, 3_000)
    for raw in (cheap, mid, dear):
        pool.add(raw)
    better = paying("g", 0, 1_500)
    pool.add(better)
    assert len(pool) == 3 and pool.reap(10, 10**9) == [dear, mid, better]


def test_a_full_pool_refuses_a_tx_that_pays_no_more_than_the_cheapest_with_fee_too_low(fee_app):
    pool = Mempool(fee_app, max_txs=2)
    pool.add(paying("d", 0, 2_000))
    pool.add(paying("e", 0, 3_000))
    with pytest.raises(FeeTooLow, match="pay more per gas") as info:
        pool.add(paying("f", 0, 2_000))
    assert info.value.code == "fee_too_low" and isinstance(info.value, MempoolFull)
    assert len(pool) == 2


def test_eviction_takes_a_senders_last_tx_so_no_sender_is_left_with_a_gap(fee_app):
    pool = Mempool(fee_app, max_txs=3)
    d0, d1, e0 = paying("d", 0, 1_000), paying("d", 1, 5_000), paying("e", 0, 2_000)
    for raw in (d0, d1, e0):
        pool.add(raw)
    pool.add(paying("f", 0, 3_000))  # d0 pays least but d1 follows it: e0 is the cheapest tail
    assert pool.reap(10, 10**9)[-2:] == [d0, d1]
    assert e0 not in pool.reap(10, 10**9)


def test_a_validators_price_vote_enters_a_pool_full_of_better_paying_spam(fee_app):
    pool = Mempool(fee_app, max_txs=3)
    for name in "def":
        pool.add(paying(name, 0, 10**6))
    vote = paying("c", 0, 1_000, MsgSubmitPriceProposal.of(300))
    pool.add(vote)
    assert len(pool) == 3 and pool.reap(1, 10**9) == [vote]


def test_a_node_min_gas_price_refuses_what_the_chain_would_take(fee_app):
    pool = Mempool(fee_app, min_gas_price=Fraction(5, 100))
    with pytest.raises(TxRejected, match="this node admits") as info:
        pool.add(paying("d", 0, 4_999))
    assert info.value.code == "insufficient_fee"
    pool.add(paying("d", 0, 5_000))
    assert len(pool) == 1


@pytest.mark.parametrize(
    "mangle",
    [
        lambda raw: raw + b" ",
        lambda raw: json.dumps(json.loads(raw), indent=1, sort_keys=True).encode(),
        lambda raw: raw.replace(b'{"body":{', b'{"body":{"sequence":7,', 1),
        lambda raw: raw.replace(b'"denom":"ngonka"', b'"denom":"ngonk\\u0061"', 1),
    ],
    ids=["trailing-space", "indented", "duplicate-key", "escaped-letter"],
)
def test_non_canonical_bytes_are_refused_at_admission_with_a_clear_code(fee_app, mangle):
    pool = Mempool(fee_app)
    raw = paying("d", 0, 1_000)
    with pytest.raises(TxRejected, match="canonical") as info:
        pool.add(mangle(raw))
    assert info.value.code == "non_canonical" and len(pool) == 0
    pool.add(raw)


def test_the_proposer_drops_a_reaped_tx_that_depends_on_one_reaped_after_it(fee_app):
    pool = Mempool(fee_app)
    newcomer = PrivateKey.from_name("newcomer", salt="uoc-tests")
    fund = paying("d", 0, 1_000, MsgSend(to=newcomer.address, amount=10**6))
    spend = sign_tx(newcomer, "uoc-test", 0, [MsgSend(to=ADDR["e"], amount=1)], gas_limit=GAS, fee=50_000)
    pool.add(fund)
    pool.add(spend)
    reaped = pool.reap(10, 10**9)
    assert reaped == [spend, fund]  # the spender pays more per gas, but its money is in `fund`
    block = fee_app.prepare_proposal(fee_app.height + 1, reaped)
    assert block == [fund]
    assert all(r.ok for r in fee_app.process_proposal(fee_app.height + 1, block))
    result = fee_app.finalize_block(fee_app.height + 1, block)
    assert [r.ok for r in result.tx_results] == [True]


# (sender, fee in units of the least fee, own)
ADDS = st.lists(st.tuples(st.sampled_from("abcdefgh"), st.integers(1, 6), st.booleans()), max_size=40)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ADDS)
def test_any_admissions_keep_the_limits_and_gap_free_senders_and_reap_a_valid_block(fee_app, adds):
    app = make_app(make_genesis({"a": 50, "b": 30, "c": 20}, {n: 10**12 for n in NAMES}, min_gas_price="0.01"))
    pool = Mempool(app, max_txs=8, max_txs_per_sender=3)
    nxt = dict.fromkeys(NAMES, 0)
    for name, times, own in adds:
        try:
            pool.add(paying(name, nxt[name], 1_000 * times), own=own and name == "a")
            nxt[name] += 1
        except MempoolError:
            nxt[name] = app.query(f"account/{ADDR[name]}")["sequence"] + pool.count_of(ADDR[name])
    assert len(pool) <= 8
    block = pool.reap(100, 10**9)
    assert len(block) == len(pool)
    results = app.process_proposal(app.height + 1, block)
    assert all(r.ok for r in results), [(r.code, r.log) for r in results if not r.ok]  # no sender has a gap


def test_a_sender_whose_tx_was_evicted_is_refused_until_the_next_commit_so_no_gap_enters(fee_app):
    pool = Mempool(fee_app, max_txs=2)
    evicted = paying("d", 0, 1_000)
    pool.add(evicted)
    pool.add(paying("e", 0, 3_000))
    pool.add(paying("f", 0, 2_000))  # evicts d's tx
    assert evicted not in pool.reap(10, 10**9)
    with pytest.raises(MempoolFull, match="evicted"):
        pool.add(paying("d", 1, 10**6))  # would follow the evicted sequence 0: a gap
    pool.update(commit(fee_app, pool.reap(10, 10**9)))
    pool.add(paying("d", 0, 10**6))  # after the commit the check state no longer holds it
