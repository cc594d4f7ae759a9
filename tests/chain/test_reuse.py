"""One execution per transaction (`Application._apply`, `State.is_unchanged`, `State.apply_execution`): a
block applies the record of a transaction's admission when every entry it read has the same text,
else runs its rules again; the result is the same as running every transaction in the block, byte
for byte, whatever was admitted, in whatever order, with whatever blocks in between."""

from __future__ import annotations

import copy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chain.app import EXECUTION_CACHE_BYTES, Application
from chain.gas import GAS_PER_CREDIT, GasMeter
from chain.store import EXECUTION_ENTRY_BYTES, Execution, MemoryStore, State
from chain.tx import (
    MsgDispute,
    MsgFundEscrow,
    MsgRefund,
    MsgSend,
    MsgSettleUsage,
    MsgSubmitPriceProposal,
    MsgSubmitProposal,
    MsgVote,
    Receipt,
    RegisterModel,
    Tokens,
    sign_receipt,
)
from tests.helpers import ADDR, CHAIN_ID, KEYS, make_app, make_genesis, run_block, run_until, seq, signed

EPOCH = 6
PARAMS = dict(
    min_deposit=100,
    max_deposit_period=4,
    voting_period=4,
    epoch_length=EPOCH,
    protocol_fee_bps=250,
    fee_min=3,
    dispute_window=3,
    dispute_resolution_window=4,
    escrow_withdraw_delay=4,
)
VALIDATORS = "abc"
REQUESTERS = "df"
PROVIDERS = "eg"
NAMES = "abcdefg"


def build_base(**params) -> Application:
    """A chain at height 6 with model m1 active: a, b, c validators; d and f requesters with funded
    escrows, e and g providers (PARAMS, changed by `params`)."""
    balances = {"a": 1000, "b": 1000, "c": 1000, "d": 10**7, "e": 1000, "f": 10**7, "g": 1000}
    app = make_app(make_genesis({"a": 50, "b": 30, "c": 20}, balances, **{**PARAMS, **params}))
    run_block(app, [signed("e", 0, MsgSubmitProposal(RegisterModel("m1", 2), 100))])
    run_block(app, [signed("a", 0, MsgVote(1, "yes")), signed("b", 0, MsgVote(1, "yes"))])
    run_block(app, [signed("d", 0, MsgFundEscrow(10**6)), signed("f", 0, MsgFundEscrow(10**6))])
    run_until(app, EPOCH)  # the epoch boundary activates m1
    assert [m["id"] for m in app.query_all("models")] == ["m1"]
    return app


BASE = build_base()
DYNAMIC = build_base(pricing_mode="dynamic")  # settlements also count their model's tokens (`dblock`)


def settle(provider: str, requester: str, request_id: str, tokens: int, expires_at: int) -> MsgSettleUsage:
    receipt = Receipt(
        request_id=request_id,
        requester=ADDR[requester],
        provider=ADDR[provider],
        model="m1",
        tokens=Tokens(tokens, tokens // 2),
        price_ceiling=10**6,
        expires_at=expires_at,
    )
    return MsgSettleUsage(receipt, sign_receipt(KEYS[requester], CHAIN_ID, receipt))


def fresh(base: Application = BASE) -> Application:
    """A copy of a base chain, its counters at 0."""
    app = copy.deepcopy(base)
    app.executions = app.reused = 0
    return app


def outcome(results) -> list[tuple[str, str, str, int]]:
    return [(r.hash, r.code, r.log, r.gas_used) for r in results]


# --- the differential property ---------------------------------------------------------------------

ACTION = st.one_of(
    st.tuples(st.just("send"), st.sampled_from(NAMES), st.sampled_from(NAMES), st.integers(1, 1500)),
    st.tuples(
        st.just("settle"),
        st.sampled_from(PROVIDERS),
        st.sampled_from(REQUESTERS),
        st.integers(0, 5),  # request ids repeat: duplicates fail
        st.integers(1, 400),
        st.integers(-1, 3),  # expires_at relative to the next height: some expire in between
    ),
    st.tuples(st.just("vote"), st.sampled_from(VALIDATORS), st.integers(50, 150)),
    st.tuples(st.just("refund"), st.sampled_from(PROVIDERS), st.sampled_from(REQUESTERS), st.integers(0, 5)),
    st.tuples(st.just("dispute"), st.sampled_from(REQUESTERS), st.integers(0, 5)),
)
ROUND = st.fixed_dictionaries(
    {
        "actions": st.lists(st.tuples(ACTION, st.integers(0, 20), st.booleans()), min_size=1, max_size=7),
        "gap": st.integers(0, 3),  # empty blocks between admission and the block (epoch boundaries too)
        "shuffle": st.booleans(),  # else the block keeps the admitted order
        "order": st.permutations(range(7)),
        "take": st.integers(0, 7),
        "proposal": st.booleans(),  # process_proposal first, finalize_block going on from its state
        "again": st.booleans(),  # admit the block's own order once more (a re-check)
    }
)


def build_txs(app: Application, actions, round_no: int) -> list[bytes]:
    """The actions as signed txs at the senders' committed sequences (each sender's txs numbered in turn;
    `bad` ones skip a sequence), the fees given."""
    nxt = {n: seq(app, n) for n in NAMES}
    height = app.height + 1
    raws = []
    for action, fee, bad in actions:
        kind = action[0]
        if kind == "send":
            sender, msg = action[1], MsgSend(ADDR[action[2]], action[3])
        elif kind == "settle":
            sender = action[1]
            msg = settle(action[1], action[2], f"r{action[3]}", action[4], height + action[5])
        elif kind == "vote":
            sender, msg = action[1], MsgSubmitPriceProposal(action[2], "ngonka")
        elif kind == "refund":
            sender, msg = action[1], MsgRefund(ADDR[action[2]], f"r{action[3]}")
        else:
            sender, msg = action[1], MsgDispute(f"r{action[2]}")
        sequence = nxt[sender] + (1 if bad and fee % 5 == 0 else 0)
        nxt[sender] += 1
        raws.append(signed(sender, sequence, msg, fee=fee))
    return raws


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rounds=st.lists(ROUND, min_size=1, max_size=5), dynamic=st.booleans())
def test_a_node_that_admitted_the_txs_gives_the_same_results_and_app_hashes_as_one_that_did_not(rounds, dynamic):
    base = DYNAMIC if dynamic else BASE
    reusing, running = fresh(base), fresh(base)
    for number, spec in enumerate(rounds):
        raws = build_txs(running, spec["actions"], number)
        reusing.check_txs(raws)
        for _ in range(spec["gap"]):
            assert run_block(reusing, expect_ok=False).app_hash == run_block(running, expect_ok=False).app_hash
        order = spec["order"] if spec["shuffle"] else range(7)
        block = [raws[i] for i in order[: spec["take"]] if i < len(raws)]
        if spec["again"]:
            reusing.check_txs(block)
        height = running.height + 1
        if spec["proposal"]:
            assert outcome(reusing.process_proposal(height, block)) == outcome(running.process_proposal(height, block))
        mine, theirs = reusing.finalize_block(height, block), running.finalize_block(height, block)
        assert outcome(mine.tx_results) == outcome(theirs.tx_results)
        assert mine.app_hash == theirs.app_hash
        assert reusing.commit() == running.commit()
    assert running.reused == 0
    assert sorted(reusing.store.entries()) == sorted(running.store.entries())


# --- reuse and re-execution ------------------------------------------------------------------------


def test_a_block_equal_to_the_admitted_sequence_applies_every_admission_without_running_its_rules():
    app, other = fresh(), fresh()
    h = app.height + 1
    block = [
        signed("e", seq(app, "e"), settle("e", "d", "x1", 100, h), fee=7),
        signed("g", seq(app, "g"), settle("g", "d", "x2", 50, h), fee=3),
        signed("d", seq(app, "d"), MsgSend(ADDR["e"], 10), fee=5),
        signed("e", seq(app, "e") + 1, settle("e", "f", "x3", 80, h + 2), fee=1),
    ]
    assert all(r.ok for r in app.check_txs(block))
    assert (app.executions, app.reused) == (4, 0)
    result = run_block(app, block)
    assert (app.executions, app.reused) == (4, 4)
    assert len(app.execution_cache) == 0  # committed: their records are gone
    assert outcome(result.tx_results) == outcome(run_block(other, block).tx_results)
    assert app.app_hash == other.app_hash


def test_a_tx_whose_read_changed_between_admission_and_block_runs_its_rules_again():
    app, other = fresh(), fresh()
    admitted = signed("d", seq(app, "d"), MsgSend(ADDR["e"], 10), fee=5)
    assert app.check_tx(admitted).ok
    credit = signed("a", seq(app, "a"), MsgSend(ADDR["d"], 3))  # changes d's account, which `admitted` read
    result = run_block(app, [credit, admitted])
    assert (app.executions, app.reused) == (3, 0)  # the admission, then both txs of the block
    assert outcome(result.tx_results) == outcome(run_block(other, [credit, admitted]).tx_results)
    assert app.app_hash == other.app_hash


def test_txs_of_other_senders_in_between_do_not_stop_the_reuse_the_fee_pool_is_not_read():
    app, other = fresh(), fresh()
    first = signed("d", seq(app, "d"), MsgSend(ADDR["e"], 10), fee=5)
    second = signed("f", seq(app, "f"), MsgSend(ADDR["g"], 10), fee=9)
    assert app.check_tx(second).ok
    pool = app.query("fees")["pool"]
    result = run_block(app, [first, second])  # `first` was not admitted: it runs, and pays into the pool first
    assert (app.executions, app.reused) == (2, 1)
    assert outcome(result.tx_results) == outcome(run_block(other, [first, second]).tx_results)
    assert app.app_hash == other.app_hash
    assert app.query("fees")["pool"] == pool + 14


def test_an_epoch_boundary_between_admission_and_block_gives_the_same_results():
    app, other = fresh(), fresh()
    run_until(app, 2 * EPOCH - 1)
    run_until(other, 2 * EPOCH - 1)
    h = app.height + 1
    block = [signed("e", seq(app, "e"), settle("e", "d", "y1", 100, h + 5), fee=4)]
    assert app.check_txs(block)[0].ok
    run_block(app), run_block(other)  # the epoch's last block: epoch/current changes
    assert outcome(run_block(app, block).tx_results) == outcome(run_block(other, block).tx_results)
    assert app.app_hash == other.app_hash
    assert app.reused == 0  # its reads of the height and the epoch changed: it ran again


def test_a_failed_admission_records_nothing():
    app = fresh()
    raw = signed("b", seq(app, "b"), MsgSend(ADDR["a"], 10**9))
    assert app.check_tx(raw).code == "insufficient_funds"
    assert len(app.execution_cache) == 0


def test_a_tx_that_read_a_key_range_is_not_recorded_for_reuse():
    state = State(BASE.store, BASE.height + 1, BASE._lthash)
    execution = state.start_recording()
    state.begin()
    state.iterate("acct", limit=1)
    state.keep()
    state.stop_recording()
    assert not execution.reusable


def test_a_recording_holds_the_reads_from_below_the_transaction_and_its_writes():
    state = State(BASE.store, BASE.height + 1, BASE._lthash)
    account = state.get_raw("acct", ADDR["a"])
    execution = state.start_recording()
    state.begin()
    state.get_raw("acct", ADDR["a"])
    state.set("acct", ADDR["a"], {"balance": 1})
    state.get_raw("acct", ADDR["a"])  # its own write: not an input
    state.get_raw("acct", "nobody")
    state.add_delta("fees", 4)
    state.keep()
    assert execution.reads == {("acct", ADDR["a"]): account, ("acct", "nobody"): None}
    assert execution.writes == {("acct", ADDR["a"]): '{"balance":1}'}
    assert execution.deltas == {"fees": 4}
    # the texts it holds, and per entry (2 reads, 1 write, 1 delta, the record) EXECUTION_ENTRY_BYTES
    assert execution.compute_size() == len(account) + len('{"balance":1}') + 5 * EXECUTION_ENTRY_BYTES


def recorded(run) -> tuple[State, Execution]:
    """A State over BASE and the record of one transaction layer that `run(state)` fills."""
    state = State(BASE.store, BASE.height + 1, BASE._lthash)
    execution = state.start_recording()
    state.begin()
    run(state)
    state.keep()
    state.stop_recording()
    return state, execution


ABSENT = {"balance": 0, "sequence": 0, "pubkey": None}


def balance(state: State, name: str) -> int:
    return state.get("acct", ADDR[name])["balance"]


def test_a_credit_is_recorded_as_its_increment_and_applied_to_what_the_entry_holds_then():
    _, execution = recorded(
        lambda s: (s.credit("acct", ADDR["e"], "balance", 7, ABSENT), s.credit("acct", ADDR["e"], "balance", 3, ABSENT))
    )
    assert execution.reads == {}
    assert execution.credits == {("acct", ADDR["e"]): ("balance", 10, ABSENT)}
    later = State(BASE.store, BASE.height + 1, BASE._lthash)
    later.set("acct", ADDR["e"], {**later.get("acct", ADDR["e"]), "balance": 555})  # another tx paid e first
    assert later.is_unchanged(execution.reads)
    later.apply_execution(execution)
    assert balance(later, "e") == 565


def test_a_credit_to_an_absent_entry_creates_it_from_the_absent_value():
    state, execution = recorded(lambda s: s.credit("acct", "nobody", "balance", 4, ABSENT))
    assert execution.credits == {("acct", "nobody"): ("balance", 4, ABSENT)}
    assert state.get("acct", "nobody") == {**ABSENT, "balance": 4}


@pytest.mark.parametrize(
    "then",
    [
        pytest.param(lambda s: s.get_raw("acct", ADDR["e"]), id="read"),
        pytest.param(lambda s: s.set("acct", ADDR["e"], {"balance": 1}), id="overwritten"),
        pytest.param(lambda s: s.delete("acct", ADDR["e"]), id="deleted"),
    ],
)
def test_a_credited_entry_the_transaction_then_reads_or_writes_becomes_an_input(then):
    base = BASE.store.get("acct", ADDR["e"])
    _, execution = recorded(lambda s: (s.credit("acct", ADDR["e"], "balance", 7, ABSENT), then(s)))
    assert execution.credits == {}
    assert execution.reads == {("acct", ADDR["e"]): base}
    later = State(BASE.store, BASE.height + 1, BASE._lthash)
    later.set("acct", ADDR["e"], {**later.get("acct", ADDR["e"]), "balance": 555})
    assert not later.is_unchanged(execution.reads)  # its rules run again


def test_a_credit_to_an_entry_the_transaction_read_before_is_an_ordinary_write():
    base = BASE.store.get("acct", ADDR["e"])
    _, execution = recorded(lambda s: (s.get_raw("acct", ADDR["e"]), s.credit("acct", ADDR["e"], "balance", 7, ABSENT)))
    assert execution.credits == {}
    assert execution.reads == {("acct", ADDR["e"]): base}
    assert ("acct", ADDR["e"]) in execution.writes


def test_a_credit_costs_the_same_gas_whatever_the_entry_holds():
    def gas(value) -> int:
        state = State(BASE.store, BASE.height + 1, BASE._lthash)
        if value is not None:
            state.set("acct", "x", value)
        state.meter = GasMeter(10**9)
        state.credit("acct", "x", "balance", 1, ABSENT)
        return state.meter.used

    assert gas(None) == gas({"balance": 1}) == gas({"balance": 10**18, "pubkey": "ab" * 32, "sequence": 10**6})
    assert gas(None) == GAS_PER_CREDIT


def test_txs_paying_one_account_are_applied_from_their_records_in_any_order():
    app, other = fresh(), fresh()
    payers = "abcdfg"
    txs = [signed(n, seq(app, n), MsgSend(ADDR["e"], 10 + i), fee=1 + i) for i, n in enumerate(payers)]
    assert all(r.ok for r in app.check_txs(txs))
    block = list(reversed(txs))  # another node's order: every tx finds e's account changed
    result = run_block(app, block)
    assert (app.executions, app.reused) == (len(txs), len(txs))
    assert outcome(result.tx_results) == outcome(run_block(other, block).tx_results)
    assert app.app_hash == other.app_hash
    assert app.query("account/" + ADDR["e"])["balance"] == other.query("account/" + ADDR["e"])["balance"]


def test_the_execution_cache_is_bounded_in_bytes():
    assert Application(MemoryStore()).execution_cache.max_bytes == EXECUTION_CACHE_BYTES == 64 * 1024 * 1024


# --- the check state and the fee deltas ------------------------------------------------------------


def test_admission_runs_at_the_height_of_the_next_block():
    app = fresh()
    h = app.height + 1
    assert app.simulate(signed("e", seq(app, "e"), settle("e", "d", "z1", 10, h))).ok
    expired = signed("e", seq(app, "e"), settle("e", "d", "z2", 10, h - 1))  # valid at the committed height only
    assert app.check_tx(expired).code == "receipt_expired"
    assert run_block(app, [expired], expect_ok=False).tx_results[0].code == "receipt_expired"


@pytest.mark.parametrize("fees", [(5,), (5, 9), (1, 2, 3)])
def test_the_fees_of_a_blocks_txs_reach_the_pool_and_the_epochs_fees_at_its_end(fees):
    app = fresh()
    before = app.query("fees")
    senders = "defg"
    block = [signed(n, seq(app, n), MsgSend(ADDR["a"], 1), fee=fee) for n, fee in zip(senders, fees)]
    failing = signed("b", seq(app, "b"), MsgSend(ADDR["a"], 10**9), fee=50)  # its fee goes with its layer
    results = run_block(app, [*block, failing], expect_ok=False).tx_results
    assert [r.ok for r in results] == [True] * len(fees) + [False]
    after = app.query("fees")
    assert (after["pool"], after["epoch"]) == (before["pool"] + sum(fees), before["epoch"] + sum(fees))


def test_the_fee_pools_size_does_not_change_a_txs_gas():
    app = fresh()
    raw = signed("d", seq(app, "d"), MsgSend(ADDR["e"], 10), fee=5)
    gas = app.simulate(raw).gas_used
    run_block(app, [signed("f", seq(app, "f"), MsgSend(ADDR["g"], 1), fee=10**6)])  # the pool grows 7 digits
    assert app.simulate(raw).gas_used == gas


def test_the_re_check_after_a_commit_applies_the_record_of_a_tx_whose_reads_are_unchanged():
    app, other = fresh(), fresh()
    first = signed("d", seq(app, "d"), MsgSend(ADDR["e"], 10), fee=5)
    second = signed("d", seq(app, "d") + 1, MsgSend(ADDR["g"], 10), fee=5)
    assert all(r.ok for r in app.check_txs([first, second]))
    run_block(app, [first])
    assert app.check_txs([second])[0].ok  # the mempool's re-check: the committed state is what it read
    assert (app.executions, app.reused) == (2, 2)
    run_block(app, [second])
    assert (app.executions, app.reused) == (2, 3)
    run_block(other, [first]), run_block(other, [second])
    assert app.app_hash == other.app_hash


def test_a_fee_paid_in_an_epochs_last_block_is_in_that_epochs_payout():
    app = fresh()
    run_until(app, 2 * EPOCH - 1)
    pool, epoch_fees = app.query("fees")["pool"], app.query("fees")["epoch"]
    before = {n: app.query("account/" + ADDR[n])["balance"] for n in VALIDATORS}
    result = run_block(app, [signed("d", seq(app, "d"), MsgSend(ADDR["e"], 1), fee=1_000)])
    assert result.epoch_ended
    paid = {n: app.query("account/" + ADDR[n])["balance"] - before[n] for n in VALIDATORS}
    assert sum(paid.values()) + app.query("fees")["pool"] == pool + 1_000
    assert paid == {"a": 500, "b": 300, "c": 200}
    assert app.query("fees")["epoch"] == 0
    (ended,) = [h for h in app.query_all("history") if h["epoch"] == result.epoch]
    assert ended["fees_collected"] == epoch_fees + 1_000
