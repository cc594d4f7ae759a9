"""Fees and gas (`chain.gas`, `chain.rules.process_tx`, `process_fee_distribution`): the fee minimum,
the gas meter, the fee pool and its payment to the validators at the epoch boundary."""

from __future__ import annotations

import json
from collections import defaultdict
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chain.gas import (
    GAS_PER_MESSAGE,
    GAS_PER_READ,
    GAS_PER_TX,
    GAS_PER_TX_BYTE,
    GAS_PER_WRITE,
    GasMeter,
    compute_adjusted_gas,
    compute_gas_estimate,
    compute_gas_price,
    compute_intrinsic_gas,
    compute_min_fee,
    describe_gas_price,
)
from chain.rules import compute_fee_shares
from chain.tx import (
    DEFAULT_GAS_PRICE,
    MESSAGE_TYPES,
    MsgBond,
    MsgDeposit,
    MsgSend,
    MsgSubmitPriceProposal,
    MsgSubmitProposal,
    MsgUnbond,
    MsgVote,
    RegisterModel,
    decode_tx,
    sign_tx,
)
from tests.helpers import (
    ADDR,
    KEYS,
    balance,
    make_app,
    make_genesis,
    run_block,
    run_until,
    seq,
    signed,
    store_snapshot,
    supply_parts,
)

PRICE = DEFAULT_GAS_PRICE  # ngonka per gas in these tests: the default, "0.01"
RICH = 10**9


def fee_app(**params):
    """Validators a, b, c (50, 30, 20) with RICH balances, d and e too, f with 1,500; min_gas_price
    PRICE; epochs of 4."""
    balances = {**{n: RICH for n in "abcde"}, "f": 1_500}
    return make_app(make_genesis({"a": 50, "b": 30, "c": 20}, balances, epoch_length=4, min_gas_price=PRICE, **params))


def least_fee(gas_limit: int, price: str = PRICE) -> int:
    return compute_min_fee(gas_limit, Fraction(price))


def paid(name: str, sequence: int, *msgs, gas_limit: int = 100_000) -> bytes:
    """A tx that pays exactly the least fee for its gas limit."""
    return signed(name, sequence, *msgs, gas_limit=gas_limit, fee=least_fee(gas_limit))


def fee_pool(app) -> int:
    return app.query("fees")["pool"]


def assert_refused_everywhere(app, raw: bytes, code: str, reason: str) -> None:
    """`raw` is refused with `code` by check_tx, process_proposal and a block, and changes nothing
    but the height."""
    before = store_snapshot(app.store)
    checked = app.check_tx(raw)
    assert (checked.code, reason in checked.log) == (code, True), checked
    assert "\n" not in checked.log
    proposed = app.process_proposal(app.height + 1, [raw])
    assert [r.code for r in proposed] == [code]
    result = run_block(app, [raw], expect_ok=False)
    assert [r.code for r in result.tx_results] == [code]
    after = store_snapshot(app.store)
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    assert changed == {("meta", "height")}


# --- the fee minimum and the gas limit -------------------------------------------------------

# (case, tx from a at sequence 0, the code, words of the reason)
REFUSALS = [
    (
        "fee one below the minimum",
        lambda: signed("a", 0, MsgSend(ADDR["e"], 1), gas_limit=100_000, fee=999),
        "insufficient_fee",
        "needs at least 1000",
    ),
    ("no fee", lambda: signed("a", 0, MsgSend(ADDR["e"], 1), gas_limit=100_000, fee=0), "insufficient_fee", "fee is 0"),
    (
        "gas limit below the intrinsic gas",
        lambda: paid("a", 0, MsgSend(ADDR["e"], 1), gas_limit=GAS_PER_TX),
        "out_of_gas",
        "over the limit of 2000",
    ),
    ("gas limit below the use", lambda: paid("a", 0, MsgSend(ADDR["e"], 1), gas_limit=7_000), "out_of_gas", "a state"),
    (
        "fee above the balance",
        lambda: signed("f", 0, MsgSend(ADDR["e"], 1), gas_limit=100_000, fee=2_000),
        "insufficient_funds",
        "the fee is 2000",
    ),
]


@pytest.mark.parametrize(("make", "code", "reason"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
def test_a_tx_that_underpays_its_fee_or_gas_is_refused_with_one_line_and_changes_nothing(make, code, reason):
    assert_refused_everywhere(fee_app(), make(), code, reason)


def test_the_fee_leaves_the_sender_into_the_pool_and_is_kept_whatever_gas_is_left():
    app = fee_app()
    raw = paid("d", 0, MsgSend(ADDR["e"], 5), gas_limit=100_000)
    result = run_block(app, [raw])
    assert result.tx_results[0].gas_used < 100_000
    assert balance(app, "d") == RICH - 5 - 1_000 and balance(app, "e") == RICH + 5
    assert fee_pool(app) == 1_000


def test_a_fee_over_the_minimum_is_accepted_and_all_of_it_is_paid():
    app = fee_app()
    run_block(app, [signed("d", 0, MsgSend(ADDR["e"], 5), gas_limit=100_000, fee=12_345)])
    assert balance(app, "d") == RICH - 5 - 12_345 and fee_pool(app) == 12_345


def test_gas_used_is_the_same_in_check_tx_simulate_process_proposal_and_finalize_block():
    app = fee_app()
    raw = paid("a", 0, MsgSubmitPriceProposal.of(700), gas_limit=100_000)
    simulated = app.simulate(raw).gas_used
    assert app.check_tx(raw).gas_used == simulated > 0
    assert app.process_proposal(app.height + 1, [raw])[0].gas_used == simulated
    assert app.finalize_block(app.height + 1, [raw]).tx_results[0].gas_used == simulated


def test_the_simulated_gas_as_the_limit_is_exactly_enough_and_one_less_runs_out():
    app = fee_app()

    def send(gas_limit: int) -> bytes:
        return signed("a", 0, MsgSend(ADDR["e"], 5), gas_limit=gas_limit, fee=10**6)

    assert len({len(send(g)) for g in (10_000, 99_999)}) == 1  # same width: same bytes, same gas
    used = app.simulate(send(99_999)).gas_used
    assert app.check_tx(send(used - 1)).code == "out_of_gas"
    assert app.check_tx(send(used)).ok


def test_gas_counts_the_table_intrinsic_part_and_each_read_and_write():
    app = fee_app()
    raw = paid("a", 0, MsgSend(ADDR["e"], 5))
    used = app.simulate(raw).gas_used
    intrinsic = compute_intrinsic_gas(["MsgSend"], len(decode_tx(raw).raw))
    assert intrinsic == GAS_PER_TX + GAS_PER_TX_BYTE * len(raw) + 500
    # the rest is state access: a send reads and writes the sender (sequence, fee, amount), the
    # recipient, the fee pool and the epoch's fees; at least 6 reads and 6 writes
    assert used - intrinsic >= 6 * GAS_PER_READ + 6 * GAS_PER_WRITE


# (message kind, a message that does the most state access of its kind)
def _worst_messages():
    model = RegisterModel(id="m" * 128, units_of_compute_per_token=7, hf_repo="r" * 200, validation_threshold="0.5")
    return [
        MsgSend(ADDR["e"], 1),
        MsgBond(10),
        MsgUnbond(10),
        MsgSubmitPriceProposal.of(500),
        MsgSubmitProposal(model, 25_000_000),  # reaches min_deposit: opens the voting period at once
        MsgDeposit(1, 5),
        MsgVote(2, "yes"),  # the proposal above
    ]


def test_every_message_kind_is_in_the_table_and_the_offline_estimate_covers_its_worst_case():
    # MsgUnjail needs a jailed sender (tests/chain/test_evidence.py): its rule reads and writes two entries;
    # MsgCommitPrice and MsgRevealPrice need vote_mode commit_reveal (tests/chain/test_commit_reveal.py);
    # the usage messages need an active model and an escrow: tests/chain/test_usage.py runs their worst cases
    usage = {"MsgFundEscrow", "MsgWithdrawEscrow", "MsgSettleUsage", "MsgDispute", "MsgRefund"}
    kinds = {type(m).TYPE for m in _worst_messages()} | {"MsgUnjail", "MsgCommitPrice", "MsgRevealPrice"} | usage
    assert kinds == set(MESSAGE_TYPES) == set(GAS_PER_MESSAGE)
    app = fee_app(min_deposit=25_000_000, max_deposit_period=20)
    run_block(
        app, [paid("a", 0, MsgSubmitProposal(RegisterModel(id="x", units_of_compute_per_token=1), 10), gas_limit=10**6)]
    )
    for sequence, msg in enumerate(_worst_messages(), start=seq(app, "a")):
        raw = signed("a", sequence, msg, fee=10**6)  # the estimate as the gas limit
        tx = decode_tx(raw)
        result = app.simulate(raw)
        assert result.ok, (msg.TYPE, result)
        assert result.gas_used <= tx.gas_limit, msg.TYPE
        assert app.check_tx(raw).ok, msg.TYPE


def test_the_offline_estimate_of_32_messages_is_within_the_max_gas_limit():
    assert compute_gas_estimate(["MsgSubmitProposal"] * 32, 64 * 1024) <= 10**9


@pytest.mark.parametrize(
    ("gas_limit", "price", "fee"),
    [
        (1, "0.01", 1),
        (100, "0.01", 1),
        (101, "0.01", 2),
        (100_000, "0.01", 1_000),
        (7, "0", 0),
        (3, "2.5", 8),
        (10**9, "1000000000", 10**18),
    ],
)
def test_the_least_fee_is_the_gas_limit_times_the_price_rounded_up(gas_limit, price, fee):
    assert compute_min_fee(gas_limit, Fraction(price)) == fee


@pytest.mark.parametrize(("used", "limit"), [(0, 0), (1, 2), (5, 6), (10_000, 12_000), (12_345, 14_814)])
def test_the_adjusted_gas_is_six_fifths_of_the_use_rounded_up(used, limit):
    assert compute_adjusted_gas(used) == limit


def test_the_meter_raises_out_of_gas_past_its_limit_and_not_at_it():
    meter = GasMeter(1_000)
    meter.consume(1_000, "all of it")
    with pytest.raises(Exception, match="out of gas") as info:
        meter.consume(1, "one more")
    assert info.value.code == "out_of_gas"


# --- the fee pool at the epoch boundary ------------------------------------------------------


@pytest.mark.parametrize(
    ("pool", "powers", "shares"),
    [
        (100, [50, 30, 20], [50, 30, 20]),
        (10, [50, 30, 20], [5, 3, 2]),
        (7, [50, 30, 20], [3, 2, 1]),  # 1 carried
        (1, [1, 1, 1], [0, 0, 0]),  # all carried
        (999, [1], [999]),
        (5, [], []),
    ],
)
def test_fee_shares_are_pool_times_power_over_total_rounded_down(pool, powers, shares):
    addresses = [f"v{i}" for i in range(len(powers))]
    assert compute_fee_shares(pool, list(zip(addresses, powers))) == list(zip(addresses, shares))


def test_the_fee_pool_is_paid_to_the_validators_by_power_at_the_boundary_and_the_remainder_carried():
    app = fee_app()
    run_block(app, [signed("d", 0, MsgSend(ADDR["e"], 1), gas_limit=100_000, fee=1_007)])
    assert fee_pool(app) == 1_007
    before = {n: balance(app, n) for n in "abc"}
    run_until(app, 4)  # the end of epoch 0
    assert {n: balance(app, n) - before[n] for n in "abc"} == {"a": 503, "b": 302, "c": 201}
    assert fee_pool(app) == 1
    assert app.query_all("history")[0]["fees_collected"] == 1_007
    assert app.query_all("history")[1]["fees_collected"] == 0
    run_block(app, [signed("d", 1, MsgSend(ADDR["e"], 1), gas_limit=100_000, fee=1_000)])
    run_until(app, 8)
    assert fee_pool(app) == 1  # 1,001 paid as 500, 300, 200: the carried ngonka is still there
    assert app.query_all("history")[1]["fees_collected"] == 1_000


# --- nothing is created or lost ----------------------------------------------------------------

OPS = st.one_of(
    st.tuples(st.just("send"), st.sampled_from("abcde"), st.sampled_from("abcde"), st.integers(1, 10**6)),
    st.tuples(st.just("bond"), st.sampled_from("abcde"), st.integers(1, 10**6)),
    st.tuples(st.just("unbond"), st.sampled_from("abc"), st.integers(1, 40)),
    st.tuples(st.just("vote"), st.sampled_from("abcde"), st.integers(1, 1000)),
    st.tuples(st.just("propose"), st.sampled_from("abcde"), st.integers(1, 30_000_000)),
)
FEES = st.tuples(st.integers(0, 3), st.integers(1_000, 120_000))  # (fee over or under the least, gas limit)


def _message(op):
    kind, name = op[0], op[1]
    if kind == "send":
        return name, MsgSend(ADDR[op[2]], op[3])
    if kind == "bond":
        return name, MsgBond(op[2])
    if kind == "unbond":
        return name, MsgUnbond(op[2])
    if kind == "vote":
        return name, MsgSubmitPriceProposal.of(op[2])
    return name, MsgSubmitProposal(RegisterModel(id="m", units_of_compute_per_token=3), op[2])


def total_money(store) -> int:
    """Every ngonka: balances, stake held, the governance escrow, the fee pool and what was burned."""
    supply, held = supply_parts(store)
    burned = json.loads(store_snapshot(store).get(("meta", "burned"), "0"))
    assert supply == held
    return held + burned


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(st.tuples(OPS, FEES), max_size=5), min_size=1, max_size=9))
def test_fees_never_create_or_lose_money_over_any_sequence_of_txs_and_blocks(blocks):
    app = make_app(
        make_genesis(
            {"a": 50, "b": 30, "c": 20},
            {n: 10**7 for n in "abcde"},
            epoch_length=3,
            min_gas_price="0.013",
            min_deposit=20_000_000,
            voting_period=2,
            max_deposit_period=2,
        )
    )
    total = total_money(app.store)
    nxt: dict[str, int] = defaultdict(int)
    collected = 0
    for txs in blocks:
        raws = []
        for op, (extra, gas_limit) in txs:
            name, msg = _message(op)
            fee = max(0, least_fee(gas_limit, "0.013") + extra - 1)  # one below the least, or up to 2 over
            raw = signed(name, nxt[name], msg, gas_limit=gas_limit, fee=fee)
            if app.check_tx(raw).ok:
                nxt[name] += 1
                raws.append(raw)
                collected += fee
        result = run_block(app, raws)  # everything admitted applies: a valid block
        assert all(r.gas_used <= decode_tx(raw).gas_limit for r, raw in zip(result.tx_results, raws))
        assert total_money(app.store) == total
        assert app.app_hash == app.recompute_app_hash()
    ended = [r["fees_collected"] for r in app.query_all("history")]
    assert sum(ended) + app.query("fees")["epoch"] == collected
    assert all(v >= 0 for v in (balance(app, n) for n in "abcde"))


def test_signing_without_a_fee_pays_the_least_fee_at_the_default_price_for_an_estimate_that_suffices():
    app = fee_app()  # PRICE is the default min_gas_price
    raw = sign_tx(KEYS["d"], "uoc-test", 0, [MsgSend(ADDR["e"], 1)])
    tx = decode_tx(raw)
    assert tx.fee == least_fee(tx.gas_limit) > 0
    assert 0 < app.simulate(raw).gas_used <= tx.gas_limit
    run_block(app, [raw])
    assert balance(app, "d") == RICH - 1 - tx.fee


@pytest.mark.parametrize(
    ("text", "shown"), [("0.01", "0.01"), ("0", "0"), ("5", "5"), ("12.50", "12.5"), ("0.000001", "0.000001")]
)
def test_a_gas_price_is_shown_as_the_decimal_string_it_reads_back_from(text, shown):
    assert describe_gas_price(compute_gas_price(text)) == shown
    assert compute_gas_price(shown) == compute_gas_price(text)


def test_a_gas_price_without_a_finite_decimal_is_shown_rounded_up():
    assert describe_gas_price(Fraction(1, 3)) == "0.333333333333333334"
    assert compute_gas_price(describe_gas_price(Fraction(1, 3))) > Fraction(1, 3)
