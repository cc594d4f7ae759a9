"""Usage (`chain.usage`): the escrow, settling signed receipts at the epoch's price, the protocol fee,
disputes and refunds; bad input of every kind rejected with its rule named and nothing moved."""

from __future__ import annotations

import base64
import copy
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chain.errors import ChainError
from chain.gas import GAS_PER_MESSAGE
from chain.tx import (
    MsgDispute,
    MsgFundEscrow,
    MsgRefund,
    MsgSend,
    MsgSettleUsage,
    MsgSubmitProposal,
    MsgVote,
    MsgWithdrawEscrow,
    Receipt,
    RefundSettlement,
    RegisterModel,
    Tokens,
    decode_tx,
    sign_receipt,
    sign_tx,
)
from chain.usage import compute_protocol_fee
from tests.helpers import (
    ADDR,
    CHAIN_ID,
    KEYS,
    balance,
    make_app,
    make_genesis,
    run_block,
    run_until,
    sign_body,
    store_snapshot,
    supply_parts,
)

UNITS = 2
PRICE = 100  # the default unit price: a token of model "m1" costs UNITS × PRICE
PPT = UNITS * PRICE
PARAMS = dict(
    min_deposit=100,
    max_deposit_period=4,
    voting_period=4,
    epoch_length=10,
    protocol_fee_bps=250,
    fee_min=3,
    dispute_window=5,
    dispute_resolution_window=12,
    escrow_withdraw_delay=4,
)


def body(name: str, sequence: int, messages: list) -> dict:
    return {
        "chain_id": CHAIN_ID,
        "sender": ADDR[name],
        "sequence": sequence,
        "fee": 0,
        "gas_limit": 10**6,
        "messages": messages,
    }


def build_base(**params):
    """A chain at height 10 with model m1 active: d and f are requesters, e and g providers (PARAMS,
    changed by `params`)."""
    balances = {"a": 1000, "b": 1000, "c": 1000, "d": 10**7, "e": 1000, "f": 10**7, "g": 1000}
    app = make_app(make_genesis({"a": 50, "b": 30, "c": 20}, balances, **{**PARAMS, **params}))
    nxt = {n: 0 for n in "abcdefg"}

    def tx(name, *msgs):
        raw = sign_body(KEYS[name], body(name, nxt[name], [m.to_json() for m in msgs]))
        nxt[name] += 1
        return raw

    run_block(app, [tx("e", MsgSubmitProposal(RegisterModel("m1", UNITS), 100))])
    run_block(app, [tx("a", MsgVote(1, "yes")), tx("b", MsgVote(1, "yes"))])
    run_block(app, [tx("d", MsgFundEscrow(10**6)), tx("f", MsgFundEscrow(10**6))])
    run_until(app, 10)  # the epoch boundary activates m1
    assert [m["id"] for m in app.query_all("models")] == ["m1"]
    return app, nxt


BASE = build_base()


class Chain:
    """A fresh copy of the base chain and its senders' next sequences."""

    def __init__(self, base=None) -> None:
        self.app, self.nxt = copy.deepcopy(BASE if base is None else base)

    def tx(self, name: str, *msgs) -> bytes:
        return self.raw(name, [m.to_json() for m in msgs])

    def raw(self, name: str, messages: list) -> bytes:
        raw = sign_body(KEYS[name], body(name, self.nxt[name], messages))
        return raw

    def run(self, *raws: bytes):
        """Run one block; advance the sequences of the senders whose tx applied; the results."""
        result = run_block(self.app, list(raws), expect_ok=False)
        for raw, r in zip(raws, result.tx_results):
            if r.ok:
                sender = json.loads(raw)["body"]["sender"]
                name = next(n for n, a in ADDR.items() if a == sender)
                self.nxt[name] += 1
        return result.tx_results

    def ok(self, *raws: bytes) -> None:
        results = self.run(*raws)
        assert all(r.ok for r in results), [(r.code, r.log) for r in results]


def receipt(request_id="r1", requester="d", provider="e", **fields) -> Receipt:
    values = dict(
        request_id=request_id,
        requester=ADDR[requester],
        provider=ADDR[provider],
        model="m1",
        tokens=Tokens(1000, 500),
        price_ceiling=10**6,
        expires_at=1000,
    )
    return Receipt(**{**values, **fields})


def settle(r: Receipt, signer: str = "d") -> MsgSettleUsage:
    return MsgSettleUsage(r, sign_receipt(KEYS[signer], CHAIN_ID, r))


def money(app) -> dict:
    """Everything that can move: balances, escrows, the fee pool and the held fees."""
    snap = store_snapshot(app.store)
    return {
        k: v
        for k, v in snap.items()
        if k[0] in ("acct", "escrow") or k in (("meta", "fees"), ("meta", "usage_fees_held"))
    }


def escrow(app, name: str) -> int:
    return app.query(f"escrow/{ADDR[name]}")["amount"]["amount"]


def settlement(app, name: str, request_id: str) -> dict:
    return app.query(f"settlement/{request_id}", requester=ADDR[name])


# --- the fee function ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("charged", "bps", "fee_min", "fee"),
    [
        (10_000, 250, 0, 250),  # 2.5 %
        (10_001, 250, 0, 250),  # floor
        (100, 250, 3, 3),  # the minimum
        (2, 250, 3, 2),  # never more than the charge
        (0, 250, 3, 0),
        (10_000, 0, 0, 0),
        (10_000, 10_000, 0, 10_000),
        (2**63 - 1, 10_000, 0, 2**63 - 1),
    ],
)
def test_the_protocol_fee_is_the_floored_share_at_least_fee_min_and_at_most_the_charge(charged, bps, fee_min, fee):
    assert compute_protocol_fee(charged, bps, fee_min) == fee


# --- settling ----------------------------------------------------------------------------------


def test_a_settlement_charges_tokens_times_the_epoch_price_pays_the_provider_and_holds_the_fee():
    c = Chain()
    e_before, d_escrow = balance(c.app, "e"), escrow(c.app, "d")
    c.ok(c.tx("e", settle(receipt(workforce="w1", function="f1", worker="k1"))))
    charged = 1500 * PPT
    fee = charged * 250 // 10_000
    s = settlement(c.app, "d", "r1")
    assert (s["amountCharged"], s["providerPayout"], s["exchangeFee"]) == (
        {"amount": charged, "currency": "NGONKA"},
        {"amount": charged - fee, "currency": "NGONKA"},
        {"amount": fee, "currency": "NGONKA"},
    )
    assert s["status"] == "settled" and s["epoch"] == 1 and s["height"] == 11
    assert s["price_record"] == {"epoch": 1, "unit_of_compute_price": PRICE, "units_per_token": UNITS}
    assert s["attribution"] == {"workforce": "w1", "function": "f1", "worker": "k1"}
    assert len(s["tx_hash"]) == 64
    assert balance(c.app, "e") == e_before + charged - fee
    assert escrow(c.app, "d") == d_escrow - charged
    assert c.app.query("fees")["pool"] == 0  # held during the dispute window


def test_the_fee_enters_the_pool_when_the_dispute_window_ends():
    c = Chain()
    c.ok(c.tx("e", settle(receipt())))
    fee = 1500 * PPT * 250 // 10_000
    run_until(c.app, 11 + 4)
    assert c.app.query("fees")["epoch"] == 0
    run_block(c.app)  # height 16 = 11 + dispute_window: the window's last block
    assert c.app.query("fees")["epoch"] == fee
    assert settlement(c.app, "d", "r1")["fee_released"] is True


def test_a_dispute_within_the_window_keeps_the_fee_held_and_a_refund_reverses_exactly_what_moved():
    c = Chain()
    e_before, d_escrow = balance(c.app, "e"), escrow(c.app, "d")
    c.ok(c.tx("e", settle(receipt())))
    c.ok(c.tx("d", MsgDispute("r1")))
    run_until(c.app, 20)
    assert settlement(c.app, "d", "r1")["status"] == "disputed"
    assert c.app.query("fees")["pool"] == 0 and c.app.query("fees")["epoch"] == 0
    c.ok(c.tx("e", MsgRefund(ADDR["d"], "r1")))
    assert (escrow(c.app, "d"), balance(c.app, "e")) == (d_escrow, e_before)
    assert supply_parts(c.app.store)[0] == supply_parts(c.app.store)[1]
    s = settlement(c.app, "d", "r1")
    assert (s["status"], s["refunded_height"]) == ("refunded", c.app.height)
    assert c.app.query("usage_totals", group_by="provider")["covered"] == 0


def test_an_unresolved_dispute_lapses_after_the_resolution_window_and_its_fee_enters_the_pool():
    c = Chain()
    c.ok(c.tx("e", settle(receipt())))  # height 11
    c.ok(c.tx("d", MsgDispute("r1")))  # height 12: resolution window to 12 + 12
    fee = 1500 * PPT * 250 // 10_000
    run_until(c.app, 23)
    assert settlement(c.app, "d", "r1")["status"] == "disputed" and c.app.query("fees")["held"] == fee
    run_block(c.app)  # height 24: the window's last block
    s = settlement(c.app, "d", "r1")
    assert (s["status"], s["dispute_lapsed_height"], s["fee_released"]) == ("settled", 24, True)
    assert (c.app.query("fees")["held"], c.app.query("fees")["pool"]) == (0, fee)
    assert supply_parts(c.app.store)[0] == supply_parts(c.app.store)[1]
    before = (escrow(c.app, "d"), balance(c.app, "e"))
    (refund,) = c.run(c.tx("e", MsgRefund(ADDR["d"], "r1")))
    (again,) = c.run(c.tx("d", MsgDispute("r1")))
    assert (refund.code, again.code) == ("refund_window_passed", "already_disputed")
    proposal = pass_proposal(c, RefundSettlement(ADDR["d"], "r1"))
    assert proposal["status"] == "failed" and "disputed ones only" in proposal["result"]
    assert (escrow(c.app, "d"), balance(c.app, "e")) == before


def test_a_dispute_that_lapses_before_its_dispute_window_ends_releases_the_fee_once():
    c = Chain(build_base(dispute_resolution_window=2))  # shorter than dispute_window (5)
    c.ok(c.tx("e", settle(receipt())))  # height 11: its window ends at 16
    c.ok(c.tx("d", MsgDispute("r1")))  # height 12: lapses at the end of 14
    fee = 1500 * PPT * 250 // 10_000
    run_until(c.app, 19)  # past its dispute window, before the epoch end pays the pool out
    s = settlement(c.app, "d", "r1")
    assert (s["status"], s["dispute_lapsed_height"]) == ("settled", 14)
    assert (c.app.query("fees")["held"], c.app.query("fees")["pool"]) == (0, fee)
    assert supply_parts(c.app.store)[0] == supply_parts(c.app.store)[1]


def test_a_settlement_refunded_in_its_own_block_never_counts_in_the_totals():
    c = Chain()
    c.ok(c.tx("e", settle(receipt("r1")), MsgRefund(ADDR["d"], "r1")))  # one tx, one block
    c.ok(c.tx("e", settle(receipt("r2"))))
    run_until(c.app, 20)
    assert settlement(c.app, "d", "r1")["status"] == "refunded" and escrow(c.app, "d") == 10**6 - 1500 * PPT
    totals = c.app.query("usage_totals", group_by="requester")
    assert totals["covered"] == 1 and totals["total"]["amount"]["amount"] == 1500 * PPT


def pass_proposal(c: Chain, content) -> dict:
    """Submit `content` from f with the full deposit, vote yes with a and b, run to its voting end."""
    c.ok(c.tx("f", MsgSubmitProposal(content, 100)))
    pid = c.app.query_all("proposals")[-1]["id"]
    c.ok(c.tx("a", MsgVote(pid, "yes")), c.tx("b", MsgVote(pid, "yes")))
    run_until(c.app, c.app.query(f"proposal/{pid}")["voting_end_height"])
    return c.app.query(f"proposal/{pid}")


def test_a_passed_refund_proposal_refunds_a_disputed_settlement_exactly():
    c = Chain()
    e_before, d_escrow = balance(c.app, "e"), escrow(c.app, "d")
    c.ok(c.tx("e", settle(receipt())))
    c.ok(c.tx("d", MsgDispute("r1")))
    proposal = pass_proposal(c, RefundSettlement(ADDR["d"], "r1"))
    assert proposal["status"] == "passed", proposal["result"]
    s = settlement(c.app, "d", "r1")
    assert (s["status"], s["refunded_by"]) == ("refunded", f"proposal {proposal['id']}")
    assert (escrow(c.app, "d"), balance(c.app, "e")) == (d_escrow, e_before)
    assert supply_parts(c.app.store)[0] == supply_parts(c.app.store)[1]


def test_a_refund_proposal_for_a_settlement_not_disputed_fails_and_moves_nothing():
    c = Chain()
    c.ok(c.tx("e", settle(receipt())))
    run_until(c.app, 17)  # its dispute window is over: the fee is in the pool
    before = (escrow(c.app, "d"), balance(c.app, "e"))
    proposal = pass_proposal(c, RefundSettlement(ADDR["d"], "r1"))
    assert proposal["status"] == "failed" and "disputed ones only" in proposal["result"]
    assert (escrow(c.app, "d"), balance(c.app, "e")) == before
    assert settlement(c.app, "d", "r1")["status"] == "settled"


def test_a_withdrawal_is_paid_after_the_delay_and_the_escrow_stays_chargeable_until_then():
    c = Chain()
    d_balance = balance(c.app, "d")
    c.ok(c.tx("d", MsgWithdrawEscrow(10**6)))  # height 11: paid at the end of height 15
    c.ok(c.tx("e", settle(receipt())))
    run_until(c.app, 14)
    assert balance(c.app, "d") == d_balance
    run_block(c.app)
    assert balance(c.app, "d") == d_balance + 10**6 - 1500 * PPT
    assert c.app.query(f"escrow/{ADDR['d']}") == {
        "address": ADDR["d"],
        "amount": {"amount": 0, "currency": "NGONKA"},
        "withdrawal": None,
    }


def test_lists_by_requester_provider_and_model_and_totals_by_attribution_prefix():
    c = Chain()
    c.ok(
        c.tx("e", settle(receipt("r1", workforce="w1", function="f1"))),
        c.tx("g", settle(receipt("r2", provider="g", workforce="w1", function="f2"))),
    )
    c.ok(c.tx("e", settle(receipt("r3", requester="f", tokens=Tokens(10, 0)), signer="f")))
    app = c.app
    assert [s["request_id"] for s in app.query_all("settlements", requester=ADDR["d"])] == ["r1", "r2"]
    assert [s["request_id"] for s in app.query_all("settlements", provider=ADDR["e"])] == ["r1", "r3"]
    assert [s["request_id"] for s in app.query_all("settlements", model="m1")] == ["r1", "r2", "r3"]
    by_workforce = app.query("usage_totals", group_by="workforce")
    assert [(g["group"], g["records"]) for g in by_workforce["groups"]] == [("w1", 2)]
    by_function = app.query("usage_totals", group_by="workforce/function", prefix="w1/")
    assert [(g["group"], g["tokens"]["output"]) for g in by_function["groups"]] == [("w1/f1", 500), ("w1/f2", 500)]
    assert by_function["covered"] == 2
    by_epoch = app.query("usage_epoch_totals", from_epoch=0, to_epoch=5)
    assert by_epoch["covered"] == 3 and by_epoch["groups"][0]["amount"]["amount"] == 3010 * PPT
    assert app.query("usage_totals", group_by="epoch")["groups"] == by_epoch["groups"]
    assert app.query("usage_epoch_totals", from_epoch=10**6)["covered"] == 0
    with pytest.raises(ChainError, match=r"from_epoch \(5\) is after to_epoch \(1\)"):
        app.query("usage_epoch_totals", from_epoch=5, to_epoch=1)  # as every other range of epochs


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"requester": "d", "model": "m1"}, ["r1", "r2"]),
        ({"provider": "e", "requester": "d"}, ["r1"]),
        ({"provider": "e", "requester": "f", "model": "m1"}, ["r3"]),
        ({"provider": "g", "requester": "f"}, []),
        ({"model": "m2", "requester": "d"}, []),
    ],
)
def test_settlement_filters_combine(filters, expected):
    c = Chain()
    c.ok(
        c.tx("e", settle(receipt("r1"))),
        c.tx("g", settle(receipt("r2", provider="g"))),
    )
    c.ok(c.tx("e", settle(receipt("r3", requester="f", tokens=Tokens(10, 0)), signer="f")))
    args = {k: ADDR[v] if k != "model" else v for k, v in filters.items()}
    assert [s["request_id"] for s in c.app.query_all("settlements", **args)] == expected
    assert [r["envelope_id"] for r in c.app.query_all("cost_records", **args)] == expected


def test_the_offline_gas_estimate_covers_the_worst_case_of_every_usage_message():
    c = Chain()
    full = dict(workforce="w" * 64, function="f" * 64, intent="i" * 64, role="r" * 64, worker="k" * 64)
    steps = [
        ("d", MsgFundEscrow(5)),
        ("d", MsgWithdrawEscrow(7)),
        ("d", MsgWithdrawEscrow(9)),  # replaces the pending one
        ("e", settle(receipt("q" * 128, **full))),
        ("d", MsgDispute("q" * 128)),
        ("e", MsgRefund(ADDR["d"], "q" * 128)),
    ]
    for name, msg in steps:
        raw = sign_tx(KEYS[name], CHAIN_ID, c.nxt[name], [msg], fee=0)  # the estimate as the gas limit
        result = c.app.simulate(raw)
        assert result.ok, (msg.TYPE, result)
        assert result.gas_used <= decode_tx(raw).gas_limit, msg.TYPE
        c.ok(raw)


def test_a_settlement_costs_more_gas_than_a_send_for_its_second_signature_and_its_entries():
    c = Chain()
    raw = sign_tx(KEYS["e"], CHAIN_ID, c.nxt["e"], [settle(receipt())], fee=0)
    send = sign_tx(KEYS["e"], CHAIN_ID, c.nxt["e"], [MsgSend(ADDR["d"], 1)], fee=0)
    assert c.app.simulate(raw).gas_used - c.app.simulate(send).gas_used > GAS_PER_MESSAGE["MsgSettleUsage"]


# --- bad input ---------------------------------------------------------------------------------------


def wire_receipt(**changes) -> dict:
    doc = receipt().to_json()
    doc.update(changes)
    return doc


def settle_json(doc: dict, signature: bytes | None = None) -> dict:
    sig = signature if signature is not None else bytes(64)
    return {"@type": "MsgSettleUsage", "receipt": doc, "requester_signature": base64.b64encode(sig).decode()}


def bad_wire(**changes):
    """A settlement whose receipt is changed on the wire (signed with a zero signature)."""
    return lambda c: [c.raw("e", [settle_json(wire_receipt(**changes))])]


BAD_INPUT = [
    ("wrong requester signature", lambda c: [c.tx("e", settle(receipt(), signer="f"))], "bad_requester_signature"),
    (
        "missing requester signature",
        lambda c: [c.raw("e", [{"@type": "MsgSettleUsage", "receipt": receipt().to_json()}])],
        "malformed",
    ),
    (
        "requester with no key on chain",
        lambda c: [c.tx("e", settle(receipt(requester="h"), "h"))],
        "bad_requester_signature",
    ),
    ("unknown model", lambda c: [c.tx("e", settle(receipt(model="m9")))], "inactive_model"),
    ("charge above the ceiling", lambda c: [c.tx("e", settle(receipt(price_ceiling=1500 * PPT - 1)))], "over_ceiling"),
    ("expired receipt", lambda c: [c.tx("e", settle(receipt(expires_at=10)))], "receipt_expired"),
    (
        "reused request id",
        lambda c: [c.tx("e", settle(receipt())), c.raw("g", [settle(receipt(provider="g")).to_json()])],
        "duplicate_request_id",
    ),
    (
        "escrow too small",
        lambda c: [c.tx("e", settle(receipt(tokens=Tokens(10**4, 0), price_ceiling=10**7)))],
        "insufficient_escrow",
    ),
    ("settled by another than the provider", lambda c: [c.tx("g", settle(receipt()))], "not_receipt_provider"),
    ("negative token count", bad_wire(tokens={"in": -1, "out": 5}), "invalid_tokens"),
    ("non-integer token count", bad_wire(tokens={"in": "12", "out": 5}), "invalid_tokens"),
    ("token count over 2^63", bad_wire(tokens={"in": 2**63, "out": 5}), "invalid_tokens"),
    ("tokens missing a direction", bad_wire(tokens={"in": 1}), "invalid_tokens"),
    ("attribution over its length", bad_wire(worker="k" * 65), "invalid_attribution"),
    ("attribution with a control character", bad_wire(role="ops\u0007"), "invalid_attribution"),
    ("attribution with a slash", bad_wire(workforce="a/b"), "invalid_attribution"),
    ("request id with a bar", bad_wire(request_id="a|b"), "invalid_request_id"),
    ("withdrawal above the escrow", lambda c: [c.tx("d", MsgWithdrawEscrow(10**6 + 1))], "insufficient_escrow"),
    ("dispute of an unknown settlement", lambda c: [c.tx("d", MsgDispute("nope"))], "unknown_settlement"),
    (
        "refund by someone else",
        lambda c: [c.tx("e", settle(receipt())), c.raw("g", [MsgRefund(ADDR["d"], "r1").to_json()])],
        "not_provider",
    ),
]


@pytest.mark.parametrize(("case", "make", "code"), BAD_INPUT, ids=[b[0] for b in BAD_INPUT])
def test_bad_input_is_rejected_with_its_rule_named_and_moves_nothing(case, make, code):
    c = Chain()
    raws = make(c)
    *setup, bad = raws
    if setup:
        c.ok(*setup)
    before = money(c.app)
    (result,) = c.run(bad)
    assert result.code == code, (case, result.log)
    assert result.log
    assert money(c.app) == before


def test_a_dispute_after_the_window_is_rejected_and_moves_nothing():
    c = Chain()
    c.ok(c.tx("e", settle(receipt())))
    run_until(c.app, 16)
    before = money(c.app)
    (result,) = c.run(c.tx("d", MsgDispute("r1")))
    assert result.code == "dispute_window_passed" and money(c.app) == before


def test_a_refund_after_the_fee_is_paid_out_is_rejected_and_moves_nothing():
    c = Chain()
    c.ok(c.tx("e", settle(receipt())))
    run_until(c.app, 16)
    before = money(c.app)
    (result,) = c.run(c.tx("e", MsgRefund(ADDR["d"], "r1")))
    assert result.code == "refund_window_passed" and money(c.app) == before


def test_a_receipt_signed_for_another_chain_does_not_verify():
    c = Chain()
    r = receipt()
    (result,) = c.run(c.tx("e", MsgSettleUsage(r, sign_receipt(KEYS["d"], "other-chain", r))))
    assert result.code == "bad_requester_signature"


# --- nothing created or lost ---------------------------------------------------------------------------

OPS = st.one_of(  # few request ids and short gaps, so disputes and refunds meet their settlements
    st.tuples(st.just("settle"), st.sampled_from("df"), st.sampled_from("eg"), st.integers(0, 1), st.integers(0, 3000)),
    st.tuples(st.just("dispute"), st.sampled_from("df"), st.integers(0, 1)),
    st.tuples(st.just("refund"), st.sampled_from("eg"), st.sampled_from("df"), st.integers(0, 1)),
    st.tuples(st.just("fund"), st.sampled_from("df"), st.integers(1, 10**5)),
    st.tuples(st.just("withdraw"), st.sampled_from("df"), st.integers(1, 2 * 10**6)),
    st.tuples(st.just("blocks"), st.integers(1, 3)),
    st.tuples(st.just("dispute_last")),
    st.tuples(st.just("refund_last")),
)


def op_tx(c: Chain, op, last: list) -> bytes | None:
    """The tx of an op (None: run blocks); `last` holds the (requester, provider, id) of the op's settlement."""
    kind = op[0]
    if kind in ("dispute_last", "refund_last"):
        if not last:
            return None
        requester, provider, rid = last[-1]
        return (
            c.tx(requester, MsgDispute(rid))
            if kind == "dispute_last"
            else c.tx(provider, MsgRefund(ADDR[requester], rid))
        )
    if kind == "settle":
        _, requester, provider, rid, tokens = op
        last.append((requester, provider, f"r{rid}"))
        r = receipt(f"r{rid}", requester, provider, tokens=Tokens(tokens, 7), workforce="w", worker=f"k{tokens % 3}")
        return c.tx(provider, settle(r, requester))
    if kind == "dispute":
        return c.tx(op[1], MsgDispute(f"r{op[2]}"))
    if kind == "refund":
        return c.tx(op[1], MsgRefund(ADDR[op[2]], f"r{op[3]}"))
    if kind == "fund":
        return c.tx(op[1], MsgFundEscrow(op[2]))
    if kind == "withdraw":
        return c.tx(op[1], MsgWithdrawEscrow(op[2]))
    return None


SHORT_RESOLUTION_BASE = build_base(dispute_resolution_window=2)  # disputes lapse before their windows end


@pytest.mark.parametrize("base", [BASE, SHORT_RESOLUTION_BASE], ids=["resolution 12", "resolution 2"])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(OPS, min_size=1, max_size=25))
def test_settling_disputing_refunding_and_withdrawing_never_create_or_lose_money(base, ops):
    c = Chain(base)
    supply, held = supply_parts(c.app.store)
    assert supply == held
    last: list = []
    for op in ops:
        raw = op_tx(c, op, last)
        if raw is None:
            for _ in range(op[1] if op[0] == "blocks" else 1):
                run_block(c.app)
        else:
            c.run(raw)
        assert supply_parts(c.app.store) == (supply, supply)
        settlements = [s for name in "df" for s in c.app.query_all("settlements", requester=ADDR[name])]
        unreleased = [s for s in settlements if s["status"] != "refunded" and not s["fee_released"]]
        assert c.app.query("fees")["held"] == sum(s["exchangeFee"]["amount"] for s in unreleased)
    counted = []
    for name in "df":
        for s in c.app.query_all("settlements", requester=ADDR[name]):
            charged, payout, fee = (s[k]["amount"] for k in ("amountCharged", "providerPayout", "exchangeFee"))
            assert charged == payout + fee and payout >= 0 and fee >= 0
            if s["status"] != "refunded":
                counted.append(s)
    for dimension in ("requester", "provider", "epoch", "workforce/function/intent/role/worker"):
        totals = c.app.query("usage_totals", group_by=dimension)  # a few groups: one page holds them
        assert totals["covered"] == len(counted)
        assert totals["total"]["amount"]["amount"] == sum(s["amountCharged"]["amount"] for s in counted)
    assert c.app.app_hash == c.app.recompute_app_hash()
