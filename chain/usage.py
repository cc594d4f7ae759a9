"""Usage: the requester's escrow, the settlement of signed receipts, disputes and refunds.

A requester funds an escrow (`MsgFundEscrow`); for each inference job it signs a receipt off chain
(`chain.tx.Receipt`, sign bytes `compute_receipt_sign_bytes`); the provider settles it
(`MsgSettleUsage`). The charge is `(tokens.in + tokens.out) × price_per_token` of the model at the
settling block's epoch; `fee = compute_protocol_fee(charged)` is held until the settlement's dispute
window ends and then enters the fee pool; `payout = charged − fee` goes to the provider at once. The
requester may dispute within `dispute_window` blocks (`MsgDispute`); the provider may refund while
the fee is still held (`MsgRefund`): the payout leaves its balance, the fee leaves the held fees,
and the whole charge returns to the escrow. A dispute is resolved by the provider's refund or a
passed `RefundSettlement` proposal within `dispute_resolution_window` blocks; otherwise it lapses:
the charge stands (status `settled` again, with `dispute_lapsed_height`) and the fee enters the pool,
so no fee is held for ever.

State layout (keys use `|` between parts: no address, model id, request id or attribution name
holds one):

- `escrow/<address>` -> {"amount", "withdrawal": null | {"amount", "height"}}
- `ewq/<height:012d>/<address>` -> amount: an escrow withdrawal paid out at the end of that block
- `usettle/<requester>|<request_id>` -> a settlement record (the key that makes request ids unique)
- `uprov/<provider>|<height:012d>|<requester>|<request_id>` -> 1: settlements by provider, oldest first
- `umodel/<model>|<height:012d>|<requester>|<request_id>` -> 1: settlements by model, oldest first
- `udq/<height:012d>/<requester>|<request_id>` -> 1: a settlement whose dispute window ends at that height
- `udr/<height:012d>/<requester>|<request_id>` -> 1: a disputed settlement whose resolution window ends
  at that height
- `uagg/<dimension>|<group>` -> [records, tokens_in, tokens_out, charged, payout, fee]: running totals
  of the settlements not refunded, for each dimension
  (`requester`, `provider`, `model`, `epoch`, and the five prefixes of the attribution chain
  `workforce`, `workforce/function`, … `workforce/function/intent/role/worker`)
- `meta/usage_fees_held` -> the fees of settlements still in their dispute window (or disputed)
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from . import dynamic, rules
from .crypto import verify_signature
from .errors import InvalidTx
from .money import MAX_NGONKA
from .params import Params
from .store import State
from .tx import (
    ATTRIBUTION_FIELDS,
    MsgDispute,
    MsgFundEscrow,
    MsgRefund,
    MsgSettleUsage,
    MsgWithdrawEscrow,
    Receipt,
    Tokens,
    compute_receipt_sign_bytes,
)

SETTLEMENT_STATUSES = ("settled", "disputed", "refunded")
ATTRIBUTION_DIMENSIONS = tuple("/".join(ATTRIBUTION_FIELDS[: n + 1]) for n in range(len(ATTRIBUTION_FIELDS)))
DIMENSIONS = ("requester", "provider", "model", "epoch", *ATTRIBUTION_DIMENSIONS)
TOTAL_FIELDS = ("records", "tokens_in", "tokens_out", "charged", "payout", "fee")
SIGNATURE_CACHE_SIZE = 8192  # receipt signatures verified (a mempool check and its block's run share one)


# --------------------------------------------------------------------------------------------
# Pure helpers
# --------------------------------------------------------------------------------------------


def compute_protocol_fee(charged: int, bps: int, fee_min: int) -> int:
    """The protocol fee of a charge: `min(max(floor(charged × bps / 10000), fee_min), charged)`."""
    return min(max(charged * bps // 10_000, fee_min), charged)


def compute_charge(tokens: Tokens, price_per_token: int) -> int:
    """What a job costs: `(tokens.in + tokens.out) × price_per_token`."""
    return (tokens.input + tokens.output) * price_per_token


def compute_settlement_key(requester: str, request_id: str) -> str:
    """The state key of a settlement: `<requester>|<request_id>`."""
    return f"{requester}|{request_id}"


def compute_index_entry_key(owner: str, height: int, requester: str, request_id: str) -> str:
    """The key of a settlement in a by-provider or by-model index: `<owner>|<height>|<requester>|<id>`."""
    return f"{owner}|{rules.compute_index_key(height)}|{compute_settlement_key(requester, request_id)}"


def compute_attribution_groups(attribution: tuple[str | None, ...]) -> list[tuple[str, str]]:
    """The (dimension, group) of each prefix of an attribution chain (a field not given is empty), or
    none if the receipt names no attribution at all."""
    if all(name is None for name in attribution):
        return []
    names = [name or "" for name in attribution]
    return [(ATTRIBUTION_DIMENSIONS[n], "/".join(names[: n + 1])) for n in range(len(names))]


def compute_groups(record: dict[str, Any]) -> list[tuple[str, str]]:
    """Every (dimension, group) whose totals a settlement counts in."""
    attribution = tuple(record["attribution"].get(name) for name in ATTRIBUTION_FIELDS)
    return [
        ("requester", record["requester"]),
        ("provider", record["provider"]),
        ("model", record["model"]),
        ("epoch", rules.compute_index_key(record["epoch"])),
        *compute_attribution_groups(attribution),
    ]


def compute_totals_delta(record: dict[str, Any]) -> list[int]:
    """What one settlement adds to each total, in TOTAL_FIELDS order."""
    tokens = record["tokens"]
    return [1, tokens["in"], tokens["out"], record["charged"], record["payout"], record["fee"]]


def compute_aggregate_key(dimension: str, group: str) -> str:
    """The state key of a group's totals: `<dimension>|<group>`."""
    return f"{dimension}|{group}"


@lru_cache(maxsize=SIGNATURE_CACHE_SIZE)
def is_valid_receipt_signature(pubkey: bytes, signature: bytes, sign_bytes: bytes) -> bool:
    """True if `signature` is the requester's ed25519 signature of a receipt's sign bytes (cached: pure)."""
    return verify_signature(pubkey, signature, sign_bytes)


# --------------------------------------------------------------------------------------------
# Getters
# --------------------------------------------------------------------------------------------


def get_escrow(state: State, address: str) -> dict[str, Any]:
    """An account's escrow, or an empty one."""
    return state.get("escrow", address) or {"amount": 0, "withdrawal": None}


def get_settlement(state: State, requester: str, request_id: str) -> dict[str, Any] | None:
    """A settlement by its requester and request id."""
    record: dict[str, Any] | None = state.get("usettle", compute_settlement_key(requester, request_id))
    return record


def get_known_settlement(state: State, requester: str, request_id: str) -> dict[str, Any]:
    """A settlement, or InvalidTx(code="unknown_settlement")."""
    record = get_settlement(state, requester, request_id)
    if record is None:
        raise InvalidTx(f"{requester} has no settlement with request id {request_id!r}", code="unknown_settlement")
    return record


def get_active_model(state: State, model_id: str) -> dict[str, Any]:
    """A model active this epoch, or InvalidTx(code="inactive_model")."""
    model: dict[str, Any] | None = state.get("amodel", model_id)
    if model is None:
        raise InvalidTx(f"model {model_id!r} is not active in this epoch", code="inactive_model")
    return model


def get_fees_held(state: State) -> int:
    """The fees of settlements whose dispute window is open (or that are disputed)."""
    return state.get("meta", "usage_fees_held") or 0


# --------------------------------------------------------------------------------------------
# Escrow
# --------------------------------------------------------------------------------------------


def process_escrow_set(state: State, address: str, escrow: dict[str, Any]) -> None:
    """Write an escrow (an empty one with no pending withdrawal is deleted)."""
    if escrow["amount"] == 0 and escrow["withdrawal"] is None:
        state.delete("escrow", address)
    else:
        state.set("escrow", address, escrow)


def process_msg_fund_escrow(state: State, sender: str, msg: MsgFundEscrow) -> None:
    """Move `amount` from the sender's balance into its escrow."""
    escrow = get_escrow(state, sender)
    if escrow["amount"] + msg.amount >= MAX_NGONKA:
        raise InvalidTx("escrow would overflow 2^63 ngonka", code="amount_overflow")
    rules.process_balance_change(state, sender, -msg.amount)
    process_escrow_set(state, sender, {**escrow, "amount": escrow["amount"] + msg.amount})


def compute_withdrawal_queue_key(height: int, address: str) -> str:
    """The key of a withdrawal paid out at the end of block `height`."""
    return f"{rules.compute_index_key(height)}/{address}"


def process_msg_withdraw_escrow(state: State, sender: str, msg: MsgWithdrawEscrow) -> None:
    """Queue the payout of `amount` of the sender's escrow escrow_withdraw_delay blocks from now
    (replacing a pending withdrawal); the escrow stays chargeable until then."""
    escrow = get_escrow(state, sender)
    if msg.amount > escrow["amount"]:
        raise InvalidTx(
            f"cannot withdraw {msg.amount} ngonka: {sender}'s escrow holds {escrow['amount']}",
            code="insufficient_escrow",
        )
    if escrow["withdrawal"] is not None:
        state.delete("ewq", compute_withdrawal_queue_key(escrow["withdrawal"]["height"], sender))
    height = rules.get_height(state) + rules.get_params(state).escrow_withdraw_delay
    state.set("ewq", compute_withdrawal_queue_key(height, sender), msg.amount)
    process_escrow_set(state, sender, {**escrow, "withdrawal": {"amount": msg.amount, "height": height}})


def process_escrow_withdrawals(state: State) -> None:
    """Pay out the withdrawals due at this height: each the lesser of its amount and the escrow left."""
    prefix = rules.compute_index_key(rules.get_height(state)) + "/"
    for address, amount in state.iterate_prefix("ewq", prefix):
        state.delete("ewq", prefix + address)
        escrow = get_escrow(state, address)
        paid = min(amount, escrow["amount"])
        rules.process_balance_change(state, address, paid)
        process_escrow_set(state, address, {"amount": escrow["amount"] - paid, "withdrawal": None})


# --------------------------------------------------------------------------------------------
# Settlement
# --------------------------------------------------------------------------------------------


def check_receipt_provider(sender: str, receipt: Receipt) -> None:
    """Raise InvalidTx(code="not_receipt_provider") unless the sender is the receipt's provider."""
    if receipt.provider != sender:
        raise InvalidTx(
            f"the receipt names provider {receipt.provider}; only it may settle it, not {sender}",
            code="not_receipt_provider",
        )


def check_receipt_expiry(state: State, receipt: Receipt) -> None:
    """Raise InvalidTx(code="receipt_expired") past the receipt's expires_at height."""
    height = rules.get_height(state)
    if height > receipt.expires_at:
        raise InvalidTx(f"the receipt expired at height {receipt.expires_at}; this is {height}", code="receipt_expired")


def check_request_id_new(state: State, receipt: Receipt) -> None:
    """Raise InvalidTx(code="duplicate_request_id") if the requester already settled this request id."""
    if get_settlement(state, receipt.requester, receipt.request_id) is not None:
        raise InvalidTx(
            f"{receipt.requester} already has a settlement with request id {receipt.request_id!r}",
            code="duplicate_request_id",
        )


def check_requester_signature(state: State, receipt: Receipt, signature: bytes) -> None:
    """Raise InvalidTx(code="bad_requester_signature") unless the requester (an account whose key the
    chain knows: it funded its escrow) signed the receipt's sign bytes."""
    pubkey = rules.get_account(state, receipt.requester)["pubkey"]
    sign_bytes = compute_receipt_sign_bytes(rules.get_chain_id(state), receipt)
    if pubkey is None or not is_valid_receipt_signature(bytes.fromhex(pubkey), signature, sign_bytes):
        raise InvalidTx(
            f"requester_signature is not {receipt.requester}'s signature of the receipt's sign bytes",
            code="bad_requester_signature",
        )


def check_ceiling(charged: int, ceiling: int) -> None:
    """Raise InvalidTx(code="over_ceiling") if the charge is above the receipt's price ceiling."""
    if charged > ceiling:
        raise InvalidTx(
            f"the charge is {charged} ngonka, above the receipt's price_ceiling of {ceiling}", code="over_ceiling"
        )


def process_escrow_charge(state: State, requester: str, charged: int) -> None:
    """Take `charged` from the requester's escrow; InvalidTx(code="insufficient_escrow") if it holds less."""
    escrow = get_escrow(state, requester)
    if escrow["amount"] < charged:
        raise InvalidTx(
            f"{requester}'s escrow holds {escrow['amount']} ngonka, the charge is {charged}",
            code="insufficient_escrow",
        )
    process_escrow_set(state, requester, {**escrow, "amount": escrow["amount"] - charged})


def process_totals_deltas(state: State, deltas: dict[str, list[int]]) -> None:
    """Add summed deltas to the totals of their groups (a group left with no record is deleted)."""
    for key in sorted(deltas):
        stored = state.get("uagg", key)
        updated = [total + d for total, d in zip(stored or [0] * len(TOTAL_FIELDS), deltas[key])]
        if updated[0] == 0:
            state.delete("uagg", key)
        else:
            state.set("uagg", key, updated)


def compute_totals_deltas(records: list[dict[str, Any]], sign: int) -> dict[str, list[int]]:
    """The summed deltas (`sign` = 1: added, -1: taken away) of settlements, by group key."""
    by_key: dict[str, list[list[int]]] = {}
    for record in records:
        delta = compute_totals_delta(record)
        for dimension, group in compute_groups(record):
            by_key.setdefault(compute_aggregate_key(dimension, group), []).append(delta)
    return {key: [sign * sum(column) for column in zip(*deltas)] for key, deltas in by_key.items()}


def process_block_totals(state: State) -> None:
    """Add the block's settlements to the running totals, one read and write per group they touch
    (not per settlement): they are the `udq` entries due at height + dispute_window, written by this
    block (a settlement refunded in its own block has lost its entry)."""
    prefix = rules.compute_index_key(rules.get_height(state) + rules.get_params(state).dispute_window) + "/"
    # read once, at the block's end: kept out of the decode cache (they would evict the hot entries)
    records = [state.get("usettle", key, keep=False) for key, _ in state.iterate_prefix("udq", prefix)]
    settled = [record for record in records if record["status"] != "refunded"]
    process_totals_deltas(state, compute_totals_deltas(settled, 1))


def compute_price_record(params: Params, epoch: dict[str, Any], units: int) -> dict[str, Any]:
    """What a settlement's price came from: the epoch's unit price and the model's units per token, and
    outside pricing_mode "voted" the mode (its price per token is then the model's dynamic price of
    the block, not units × unit price)."""
    record = {"epoch": epoch["index"], "unit_of_compute_price": epoch["price"], "units_per_token": units}
    if params.pricing_mode != "voted":
        record["pricing_mode"] = params.pricing_mode
    return record


def compute_settlement(
    receipt: Receipt,
    params: Params,
    epoch: dict[str, Any],
    units: int,
    height: int,
    tx_hash: str,
    price_per_token: int | None = None,
) -> dict[str, Any]:
    """The settlement record of a receipt at `price_per_token` (default: units × the epoch's unit
    price; the ceiling checked)."""
    if price_per_token is None:
        price_per_token = rules.compute_price_per_token(units, epoch["price"])
    charged = compute_charge(receipt.tokens, price_per_token)
    if charged >= MAX_NGONKA:
        raise InvalidTx(f"the charge of {receipt.request_id!r} overflows 2^63 ngonka", code="amount_overflow")
    check_ceiling(charged, receipt.price_ceiling)
    fee = compute_protocol_fee(charged, params.protocol_fee_bps, params.fee_min)
    return {
        "request_id": receipt.request_id,
        "requester": receipt.requester,
        "provider": receipt.provider,
        "model": receipt.model,
        "tokens": {"in": receipt.tokens.input, "out": receipt.tokens.output},
        "price_per_token": price_per_token,
        "charged": charged,
        "payout": charged - fee,
        "fee": fee,
        "status": "settled",
        "epoch": epoch["index"],
        "price_record": compute_price_record(params, epoch, units),
        "height": height,
        "tx_hash": tx_hash,
        "dispute_until": height + params.dispute_window,
        "fee_released": False,
        "attribution": {n: v for n, v in zip(ATTRIBUTION_FIELDS, receipt.attribution) if v is not None},
    }


def process_settlement_indexes(state: State, record: dict[str, Any], *, add: bool) -> None:
    """Write (or delete) a settlement's entries in the by-provider and by-model indexes."""
    for space, owner in (("uprov", record["provider"]), ("umodel", record["model"])):
        key = compute_index_entry_key(owner, record["height"], record["requester"], record["request_id"])
        if add:
            state.set(space, key, 1)
        else:
            state.delete(space, key)


def compute_dispute_queue_key(record: dict[str, Any], height: int | None = None) -> str:
    """The key of a settlement in the queue of the block its dispute window ends with (or `height`)."""
    key = compute_settlement_key(record["requester"], record["request_id"])
    return f"{rules.compute_index_key(record['dispute_until'] if height is None else height)}/{key}"


def compute_resolution_queue_key(record: dict[str, Any]) -> str:
    """The key of a disputed settlement in the queue of the block its resolution window ends with."""
    return compute_dispute_queue_key(record, record["resolve_until"])


def process_msg_settle_usage(state: State, sender: str, msg: MsgSettleUsage) -> None:
    """Settle a signed receipt: charge the requester's escrow at this epoch's price, pay the provider
    the charge less the protocol fee, hold the fee until the dispute window ends."""
    receipt = msg.receipt
    check_receipt_provider(sender, receipt)
    check_receipt_expiry(state, receipt)
    check_request_id_new(state, receipt)
    model = get_active_model(state, receipt.model)
    params = rules.get_params(state)
    height = rules.get_height(state)
    epoch = rules.get_current_epoch(state)
    price = dynamic.get_price_per_token(state, receipt.model, model)  # the voted price in voted mode
    record = compute_settlement(
        receipt, params, epoch, model["units_of_compute_per_token"], height, state.tx_hash, price
    )
    check_requester_signature(state, receipt, msg.requester_signature)
    process_escrow_charge(state, receipt.requester, record["charged"])
    if record["payout"]:
        rules.process_balance_change(state, sender, record["payout"])
    if record["fee"]:
        rules.process_counter_add(state, "usage_fees_held", record["fee"])
    state.set("usettle", compute_settlement_key(receipt.requester, receipt.request_id), record)
    process_settlement_indexes(state, record, add=True)
    state.set("udq", compute_dispute_queue_key(record), 1)  # the block's end adds it to the totals
    dynamic.process_settled_tokens(state, receipt.model, receipt.tokens.input + receipt.tokens.output)


def process_msg_dispute(state: State, sender: str, msg: MsgDispute) -> None:
    """Mark the sender's settlement disputed, within dispute_window blocks of it; its fee stays held."""
    record = get_known_settlement(state, sender, msg.request_id)
    if record["status"] != "settled":
        raise InvalidTx(f"settlement {msg.request_id!r} is {record['status']}", code=f"already_{record['status']}")
    if "dispute_lapsed_height" in record:
        raise InvalidTx(
            f"the dispute of {msg.request_id!r} lapsed at height {record['dispute_lapsed_height']}",
            code="already_disputed",
        )
    height = rules.get_height(state)
    if height > record["dispute_until"]:
        raise InvalidTx(
            f"the dispute window of {msg.request_id!r} ended at height {record['dispute_until']}; this is {height}",
            code="dispute_window_passed",
        )
    resolve_until = height + rules.get_params(state).dispute_resolution_window
    record = {**record, "status": "disputed", "disputed_height": height, "resolve_until": resolve_until}
    state.set("usettle", compute_settlement_key(sender, msg.request_id), record)
    state.set("udr", compute_resolution_queue_key(record), 1)


def process_msg_refund(state: State, sender: str, msg: MsgRefund) -> None:
    """The provider reverses a settlement whose fee is still held (in its dispute window, or disputed):
    the payout from its balance and the fee from the held fees go back to the requester's escrow."""
    record = get_known_settlement(state, msg.requester, msg.request_id)
    if record["provider"] != sender:
        raise InvalidTx(f"only the provider {record['provider']} may refund {msg.request_id!r}", code="not_provider")
    if record["status"] == "refunded":
        raise InvalidTx(f"settlement {msg.request_id!r} is refunded already", code="already_refunded")
    if record["fee_released"]:
        raise InvalidTx(
            f"the dispute window of {msg.request_id!r} ended at height {record['dispute_until']}: its fee is paid out",
            code="refund_window_passed",
        )
    process_refund(state, record, "provider")


def process_refund(state: State, record: dict[str, Any], by: str) -> None:
    """Reverse a settlement whose fee is still held: the payout from the provider's balance and the fee
    from the held fees go back to the requester's escrow; it leaves the totals; status refunded."""
    if record["payout"]:
        rules.process_balance_change(state, record["provider"], -record["payout"])
    if record["fee"]:
        rules.process_counter_add(state, "usage_fees_held", -record["fee"])
    escrow = get_escrow(state, record["requester"])
    process_escrow_set(state, record["requester"], {**escrow, "amount": escrow["amount"] + record["charged"]})
    state.delete("udq", compute_dispute_queue_key(record))  # no fee release, no totals at its block's end
    if record["status"] == "disputed":
        state.delete("udr", compute_resolution_queue_key(record))
    if record["height"] < rules.get_height(state):  # one of this block is not in the totals yet
        process_totals_deltas(state, compute_totals_deltas([record], -1))
    record = {**record, "status": "refunded", "refunded_height": rules.get_height(state), "refunded_by": by}
    state.set("usettle", compute_settlement_key(record["requester"], record["request_id"]), record)


def process_refund_proposal(state: State, proposal_id: int, content: dict[str, Any]) -> str | None:
    """Apply a passed RefundSettlement: refund a disputed settlement (as its provider would); return
    why it cannot apply (no such settlement, not disputed, the provider's balance short of the payout)."""
    record = get_settlement(state, content["requester"], content["request_id"])
    if record is None:
        return f"{content['requester']} has no settlement with request id {content['request_id']!r}"
    if record["status"] != "disputed":
        return f"settlement {content['request_id']!r} is {record['status']}; governance refunds disputed ones only"
    balance = rules.get_account(state, record["provider"])["balance"]
    if balance < record["payout"]:
        return f"the provider {record['provider']} holds {balance} ngonka, less than the payout {record['payout']}"
    process_refund(state, record, f"proposal {proposal_id}")
    return None


def process_dispute_windows(state: State) -> None:
    """At the end of each settlement's dispute window, move its held fee into the fee pool (and the
    epoch's fees) unless it is disputed; at the end of a dispute's resolution window, the dispute
    lapses (status settled again, the charge stands) and its fee moves the same way."""
    height = rules.get_height(state)
    prefix = rules.compute_index_key(height) + "/"
    for key, _ in state.iterate_prefix("udq", prefix):
        state.delete("udq", prefix + key)
        record = state.get("usettle", key)
        if record["status"] == "settled" and not record["fee_released"]:  # a lapsed dispute released it already
            process_fee_release(state, key, record)
    for key, _ in state.iterate_prefix("udr", prefix):
        state.delete("udr", prefix + key)
        record = state.get("usettle", key)  # disputed: a refund removes the entry
        process_fee_release(state, key, {**record, "status": "settled", "dispute_lapsed_height": height})


def process_fee_release(state: State, key: str, record: dict[str, Any]) -> None:
    """Mark a settlement's fee released and move it from the held fees into the fee pool."""
    state.set("usettle", key, {**record, "fee_released": True})
    if record["fee"]:
        rules.process_gov_counter(state, "usage_fees_held", -record["fee"])
        fees = rules.get_fees(state)
        state.set("meta", "fees", {"pool": fees["pool"] + record["fee"], "epoch": fees["epoch"] + record["fee"]})


def process_usage_block_end(state: State) -> None:
    """The usage work of a block's end: the block's settlements into the totals, the escrow
    withdrawals due, then the dispute windows ending."""
    process_block_totals(state)
    process_escrow_withdrawals(state)
    process_dispute_windows(state)


USAGE_RULES: dict[type[Any], Any] = {
    MsgFundEscrow: process_msg_fund_escrow,
    MsgWithdrawEscrow: process_msg_withdraw_escrow,
    MsgSettleUsage: process_msg_settle_usage,
    MsgDispute: process_msg_dispute,
    MsgRefund: process_msg_refund,
}
