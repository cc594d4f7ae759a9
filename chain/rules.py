"""The state transition rules of uoc, in the style of ethereum/consensus-specs.

`is_*` are predicates, `compute_*` are pure, `get_*` read state and `process_*` change it. Every
rule is a small function; invalid input raises `InvalidTx` (transactions) or `InvalidGenesis`.

State layout (space / key -> canonical JSON value):

- `meta/chain_id`, `meta/height`, `meta/params`, `meta/supply`
- `meta/fees` -> {"pool": fees not yet paid out, "epoch": fees the current epoch's txs paid}
- `acct/<address>`   -> {"balance", "sequence", "pubkey"}
- `val/<address>`    -> {"stake", "pending_stake"}: stake in force this epoch, stake from the next
- `vchg/<address>`   -> true: a validator whose pending stake changed this epoch (applied at the boundary)
- `ubd/<address>|<release:012d>` -> {"amount", "height"}: stake unbonded at the boundary `height`, held
  (and slashable for offences up to `height`) until the end of block `release` = height +
  max_evidence_age_blocks, when no evidence of those offences can be committed any more
- `ubq/<release:012d>/<address>` -> 1: the unbonding entries released at the end of that block
- `vrank/<2^63-1-stake:019d>/<address>` -> stake: every stake in force, most first, ties by address
- `epval/<address>`  -> power: the validator set of the current epoch (the first max_validators of `vrank`)
- `epoch/current`    -> {"index", "price", "total_power", "validators", "start_height", "ballot"}
- `vote/<address>`   -> {"price", "denom", "price_ngonka", "height", "epoch"}
- `hist/<epoch:012d>` -> the epoch record of SPEC §3
- `meta/next_proposal_id`, `meta/gov_escrow` (deposits held), `meta/burned`, `meta/registry_version`
- `gov/<id:012d>`    -> a governance proposal (content, status, heights, total deposit, final tally)
- `dep/<id:012d>/<address>` -> ngonka deposited and still held
- `gvote/<id:012d>/<address>` -> vote option, while the proposal is in its voting period
- `gopen/<address>`  -> how many of its proposals are in their deposit or voting period
- `gq/<height:012d>/<id:012d>` -> id: a proposal whose deposit or voting period ends at that height
- `model/<id>`       -> the registry: every registered model, changes applied when they pass
- `amodel/<id>`      -> the models active in the current epoch (with their units)
- `mchg/<id>`        -> models changed this epoch, activated at the boundary
- `mlog/<version:012d>` -> the registry change log
- `mver/<model>|<version:012d>` -> units per token after that change (0: removed): each model's changes, by version
- `jail/<address>`   -> {"jailed", "jailed_until", "slashes", "slashed"}: a validator ever jailed (double sign, misses)
- `evid/<height:012d>/<address>/<round>/<type>` -> {"height"}: a committed double sign (the block it was committed in),
  kept while evidence of that offence height is still admissible (max_evidence_age_blocks), then pruned
- `miss/<address>`   -> {"window", "missed", "counted", "jails"}: price-vote misses (with miss_window > 0)
- `pcommit/<epoch:012d>/<address>` -> {"hash", "height"}: a price commit (vote_mode commit_reveal) not yet
  revealed; those of epoch e are revealed during e+1 and dropped at its end
- `pchg/<id:012d>`   -> {name: value}: the params of a passed ParamChange, applied at the epoch boundary
- usage (escrow, settlements, their indexes and totals): see `chain.usage`
- dynamic per-model prices (`pricing_mode` dynamic or hybrid): see `chain.dynamic`
- the reference index (its config, members, tiers, records and reconstitutions): see `chain.index`
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fractions import Fraction
from types import MappingProxyType
from typing import Any, NamedTuple

import numpy as np

from .crypto import compute_address
from .epochs import is_epoch_end
from .errors import InvalidBlock, InvalidEvidence, InvalidGenesis, InvalidTx
from .evidence import DoubleSign, is_signed_double_sign
from .gas import MAX_GAS_LIMIT, GasMeter, compute_gas_price, compute_intrinsic_gas, compute_min_fee
from .governance import Tally, compute_tally, compute_tally_outcome
from .market import compute_decimal_text, compute_log2_fixed
from .median import (
    INT64_LIMIT,
    Ballot,
    compute_ballot_shape,
    compute_column,
    compute_exact_sum,
    compute_voting_entries,
    weighted_quantiles,
)
from .money import MAX_NGONKA
from .params import Params, compute_changed_params, compute_fraction, compute_params_of_text
from .store import State
from .tx import (
    Msg,
    MsgBond,
    MsgCommitPrice,
    MsgDeposit,
    MsgRevealPrice,
    MsgSend,
    MsgSubmitPriceProposal,
    MsgSubmitProposal,
    MsgUnbond,
    MsgUnjail,
    MsgVote,
    ParamChange,
    RemoveModel,
    Tx,
    compute_price_commit_hash,
)

PROPOSAL_STATUSES = ("deposit_period", "voting_period", "passed", "rejected", "failed", "dropped")

# --------------------------------------------------------------------------------------------
# Pure helpers
# --------------------------------------------------------------------------------------------


def compute_escrow(stake: int, pending_stake: int) -> int:
    """Tokens held for a validator: the larger of its current and its next stake."""
    return max(stake, pending_stake)


def compute_index_key(index: int) -> str:
    """The sortable state key of an epoch, a proposal id (also the prefix of the proposal's deposits
    and votes), a height or a registry version."""
    return f"{index:012d}"


def compute_rank_key(stake: int, address: str) -> str:
    """The key of a validator in the stake index: the most stake sorts first, then the lower address."""
    return f"{MAX_NGONKA - 1 - stake:019d}/{address}"


def is_valid_next_stake(params: Params, pending_stake: int) -> bool:
    """True if a next-epoch stake is 0 (leaving) or at least min_self_bond."""
    return pending_stake == 0 or pending_stake >= params.min_self_bond


def compute_price_per_token(units_of_compute_per_token: int, unit_price: int) -> int:
    """The ngonka a client pays per token of a model (SPEC §3)."""
    return units_of_compute_per_token * unit_price


# --------------------------------------------------------------------------------------------
# Getters
# --------------------------------------------------------------------------------------------


def get_params(state: State) -> Params:
    """The chain params."""
    text = state.get_raw("meta", "params")
    assert text is not None, "the state has no params: genesis has not run"
    return compute_params_of_text(text)


def get_chain_id(state: State) -> str:
    """The chain id."""
    chain_id: str = state.get("meta", "chain_id")
    return chain_id


def get_height(state: State) -> int:
    """The height of the last block applied to this state (0 at genesis)."""
    return state.get("meta", "height") or 0


EMPTY_ACCOUNT: Mapping[str, Any] = MappingProxyType({"balance": 0, "sequence": 0, "pubkey": None})


def get_account(state: State, address: str) -> Mapping[str, Any]:
    """An account, or an empty one."""
    return state.get("acct", address) or EMPTY_ACCOUNT


def get_validator(state: State, address: str) -> dict[str, int]:
    """A validator's stake record, or a zero one."""
    return state.get("val", address) or {"stake": 0, "pending_stake": 0}


def get_current_epoch(state: State) -> dict[str, Any]:
    """The current epoch: index, price, total power, validator count, start height, ballot."""
    epoch: dict[str, Any] = state.get("epoch", "current")
    return epoch


def get_epoch_power(state: State, address: str) -> int:
    """The power of `address` in the current epoch's validator set (0 if not a validator)."""
    return state.get("epval", address) or 0


def get_validator_set(state: State) -> list[tuple[str, int]]:
    """The current epoch's validators and powers, sorted by address."""
    return state.iterate("epval")


def get_top_stakes(state: State, count: int) -> list[tuple[str, int]]:
    """The `count` validators with the most stake in force (ties: lower address), from the stake index."""
    return [(key.split("/", 1)[1], stake) for key, stake in state.iterate("vrank", limit=count)]


def get_price_vote(state: State, address: str) -> dict[str, Any] | None:
    """The price vote in force for `address`, if it ever voted."""
    vote: dict[str, Any] | None = state.get("vote", address)
    return vote


def get_epoch_record(state: State, epoch: int) -> dict[str, Any] | None:
    """The history record of an epoch."""
    record: dict[str, Any] | None = state.get("hist", compute_index_key(epoch))
    return record


def get_registry_version(state: State) -> int:
    """The model registry's version counter (0 until governance changes it)."""
    return state.get("meta", "registry_version") or 0


def get_proposal(state: State, proposal_id: int) -> dict[str, Any]:
    """A governance proposal, or InvalidTx(code="unknown_proposal")."""
    proposal: dict[str, Any] | None = state.get("gov", compute_index_key(proposal_id))
    if proposal is None:
        raise InvalidTx(f"proposal {proposal_id} does not exist", code="unknown_proposal")
    return proposal


def get_proposal_in(state: State, proposal_id: int, status: str, what: str) -> dict[str, Any]:
    """A proposal that is in `status`, or InvalidTx(code="not_in_<status>") saying `what` it takes."""
    proposal = get_proposal(state, proposal_id)
    if proposal["status"] != status:
        raise InvalidTx(
            f"proposal {proposal_id} is in status {proposal['status']}; {what} are taken only in {status}",
            code=f"not_in_{status}",
        )
    return proposal


def get_open_proposals(state: State, proposer: str) -> int:
    """How many proposals of `proposer` are in their deposit or voting period."""
    return state.get("gopen", proposer) or 0


def get_entries_of_proposal(state: State, space: str, proposal_id: int) -> list[tuple[str, Any]]:
    """The (address, value) deposits or votes of one proposal, in address order."""
    return state.iterate_prefix(space, compute_index_key(proposal_id) + "/")


def get_tally(state: State, proposal_id: int) -> Tally:
    """The live tally of a proposal's votes over the current epoch's validator powers."""
    return compute_tally(get_entries_of_proposal(state, "gvote", proposal_id), dict(get_validator_set(state)))


def get_active_models(state: State) -> list[dict[str, Any]]:
    """The models active in the current epoch with their price per token, by id."""
    price = get_current_epoch(state)["price"]
    return [
        {**model, "price_per_token": compute_price_per_token(model["units_of_compute_per_token"], price)}
        for _, model in state.iterate("amodel")
    ]


def is_validator_or_pending(state: State, address: str) -> bool:
    """True if `address` validates this epoch or has stake pending for the next one."""
    return get_epoch_power(state, address) > 0 or get_validator(state, address)["pending_stake"] > 0


# --------------------------------------------------------------------------------------------
# Transactions
# --------------------------------------------------------------------------------------------


def process_tx(state: State, tx: Tx, *, simulate: bool = False) -> int:
    """Apply a transaction atomically and return the gas it used, or raise InvalidTx and change nothing.

    Its signature is not checked here: `tx.decode_and_verify` (the application's `admit`) did, once.

    With `simulate`, its gas limit and the fee minimum do not apply (to estimate its gas); the caller
    discards the state."""
    if tx.chain_id != get_chain_id(state):
        raise InvalidTx(f"chain_id is {tx.chain_id!r}, this chain is {get_chain_id(state)!r}", code="wrong_chain_id")
    if compute_address(tx.pubkey) != tx.sender:
        raise InvalidTx(f"pubkey does not belong to sender {tx.sender}", code="pubkey_mismatch")
    account = get_account(state, tx.sender)
    if tx.sequence != account["sequence"]:
        raise InvalidTx(f"sequence is {tx.sequence}, account expects {account['sequence']}", code="wrong_sequence")
    if not simulate:
        check_fee(get_params(state), tx)
    meter = GasMeter(MAX_GAS_LIMIT if simulate else tx.gas_limit)
    meter.consume(compute_intrinsic_gas([m.TYPE for m in tx.messages], len(tx.raw)), "the tx's bytes and messages")
    state.begin()
    state.meter = meter
    state.tx_hash = tx.hash
    try:
        process_fee_payment(state, tx.sender, account, tx.fee, tx.pubkey.hex())
        for msg in tx.messages:
            process_message(state, tx.sender, msg)
    except BaseException:
        state.meter = None
        state.discard()
        raise
    state.meter = None
    state.keep()
    return meter.used


def check_fee(params: Params, tx: Tx) -> None:
    """Raise InvalidTx(code="insufficient_fee") unless the fee pays the gas limit at min_gas_price."""
    least = compute_min_fee(tx.gas_limit, compute_gas_price(params.min_gas_price))
    if tx.fee < least:
        raise InvalidTx(
            f"fee is {tx.fee} ngonka; a gas limit of {tx.gas_limit} at min_gas_price {params.min_gas_price} "
            f"needs at least {least}",
            code="insufficient_fee",
        )


def get_fees(state: State) -> dict[str, int]:
    """The fee pool (fees not yet paid out) and the fees the current epoch's transactions paid."""
    fees: dict[str, int] | None = state.get("meta", "fees")
    return fees or {"pool": 0, "epoch": 0}


def process_fee_payment(state: State, sender: str, account: Mapping[str, Any], fee: int, pubkey: str) -> None:
    """Take the fee from the sender's balance into the fee pool and the epoch's fees, with the
    sequence increment (one account write)."""
    if account["balance"] < fee:
        raise InvalidTx(
            f"insufficient funds for the fee: {sender} has {account['balance']} ngonka, the fee is {fee}",
            code="insufficient_funds",
        )
    state.set(
        "acct",
        sender,
        {**account, "balance": account["balance"] - fee, "sequence": account["sequence"] + 1, "pubkey": pubkey},
    )
    if fee:
        process_counter_add(state, "fees", fee)


def process_message(state: State, sender: str, msg: Msg) -> None:
    """Dispatch a message to its rule."""
    handler = MESSAGE_RULES.get(type(msg))
    if handler is None:
        raise InvalidTx(f"{msg.TYPE} has no rule in this state machine", code="unknown_message")
    handler(state, sender, msg)


def process_balance_change(state: State, address: str, delta: int) -> None:
    """Add `delta` (may be negative) to a balance; refuse to overdraw. A credit reads nothing
    (`State.credit`): a transaction paying an account others pay too stays reusable in any order."""
    if delta > 0:
        state.credit("acct", address, "balance", delta, EMPTY_ACCOUNT)
        return
    account = get_account(state, address)
    if account["balance"] + delta < 0:
        raise InvalidTx(
            f"insufficient funds: {address} has {account['balance']} ngonka, needs {-delta}",
            code="insufficient_funds",
        )
    state.set("acct", address, {**account, "balance": account["balance"] + delta})


def process_msg_send(state: State, sender: str, msg: MsgSend) -> None:
    """Move `amount` from the sender to `to`."""
    process_balance_change(state, sender, -msg.amount)
    process_balance_change(state, msg.to, msg.amount)


def process_set_pending_stake(state: State, address: str, pending_stake: int) -> None:
    """Set the stake that takes effect at the next boundary, settling the escrow difference now."""
    validator = get_validator(state, address)
    before = compute_escrow(validator["stake"], validator["pending_stake"])
    after = compute_escrow(validator["stake"], pending_stake)
    if after >= MAX_NGONKA:
        raise InvalidTx("stake would overflow 2^63 ngonka", code="amount_overflow")
    params = get_params(state)
    if not is_valid_next_stake(params, pending_stake):
        raise InvalidTx(
            f"next-epoch stake would be {pending_stake} ngonka, below min_self_bond {params.min_self_bond} "
            "(unbond all of it to leave)",
            code="below_min_self_bond",
        )
    process_balance_change(state, address, before - after)
    state.set("val", address, {**validator, "pending_stake": pending_stake})
    state.set("vchg", address, True)


def process_msg_bond(state: State, sender: str, msg: MsgBond) -> None:
    """Raise the sender's next-epoch stake; the tokens leave its balance now."""
    process_set_pending_stake(state, sender, get_validator(state, sender)["pending_stake"] + msg.amount)


def process_msg_unbond(state: State, sender: str, msg: MsgUnbond) -> None:
    """Lower the sender's next-epoch stake; tokens in force return at the boundary."""
    pending = get_validator(state, sender)["pending_stake"]
    if msg.amount > pending:
        raise InvalidTx(f"cannot unbond {msg.amount} ngonka: next-epoch stake is {pending}", code="insufficient_stake")
    process_set_pending_stake(state, sender, pending - msg.amount)


def check_vote_mode(state: State, mode: str, msg_type: str) -> None:
    """Raise InvalidTx(code="wrong_vote_mode") unless the chain's vote_mode is `mode`."""
    current = get_params(state).vote_mode
    if current != mode:
        how = "MsgCommitPrice, then MsgRevealPrice" if current == "commit_reveal" else "MsgSubmitPriceProposal"
        raise InvalidTx(f"{msg_type} is refused: vote_mode is {current}; vote with {how}", code="wrong_vote_mode")


def check_voter(state: State, sender: str) -> None:
    """Raise InvalidTx(code="not_validator") unless the sender validates or has stake pending."""
    if not is_validator_or_pending(state, sender):
        raise InvalidTx(f"{sender} is not a validator and has no pending stake", code="not_validator")


def process_price_vote(state: State, sender: str, price: int, denom: str, price_ngonka: int) -> None:
    """Put the sender's price vote in force, cast in the current epoch; it stays until replaced."""
    state.set(
        "vote",
        sender,
        {
            "price": price,
            "denom": denom,
            "price_ngonka": price_ngonka,
            "height": get_height(state),
            "epoch": get_current_epoch(state)["index"],
        },
    )


def process_msg_submit_price_proposal(state: State, sender: str, msg: MsgSubmitPriceProposal) -> None:
    """In vote_mode open: record the sender's price vote; it stays in force until replaced."""
    check_vote_mode(state, "open", msg.TYPE)
    check_voter(state, sender)
    process_price_vote(state, sender, msg.price, msg.denom, msg.price_ngonka)


def compute_commit_key(epoch: int, address: str) -> str:
    """The state key of a validator's price commit of `epoch`: `<epoch>/<address>` (an epoch's commits
    are one key range)."""
    return f"{compute_index_key(epoch)}/{address}"


def get_price_commit(state: State, epoch: int, address: str) -> dict[str, Any] | None:
    """The price commit `address` made in `epoch` and has not revealed, if any."""
    if epoch < 0:
        return None
    commit: dict[str, Any] | None = state.get("pcommit", compute_commit_key(epoch, address))
    return commit


def process_msg_commit_price(state: State, sender: str, msg: MsgCommitPrice) -> None:
    """In vote_mode commit_reveal: store the sender's price commit of this epoch (one per epoch)."""
    check_vote_mode(state, "commit_reveal", msg.TYPE)
    check_voter(state, sender)
    epoch = get_current_epoch(state)["index"]
    if get_price_commit(state, epoch, sender) is not None:
        raise InvalidTx(f"{sender} already committed a price in epoch {epoch}", code="duplicate_price_commit")
    state.set("pcommit", compute_commit_key(epoch, sender), {"hash": msg.hash, "height": get_height(state)})


def process_msg_reveal_price(state: State, sender: str, msg: MsgRevealPrice) -> None:
    """In vote_mode commit_reveal: check the reveal against the sender's commit of the previous epoch;
    if it matches, the commit is spent and the price is the sender's vote, cast in this epoch."""
    check_vote_mode(state, "commit_reveal", msg.TYPE)
    epoch = get_current_epoch(state)["index"]
    commit = get_price_commit(state, epoch - 1, sender)
    if commit is None:
        raise InvalidTx(
            f"{sender} has no unrevealed price commit of epoch {epoch - 1} (a reveal in epoch {epoch} "
            "opens the commit of the epoch before)",
            code="no_price_commit",
        )
    if compute_price_commit_hash(msg.salt, msg.price, msg.denom, sender) != commit["hash"]:
        raise InvalidTx(
            f"the reveal ({msg.price} {msg.denom} with its salt) does not hash to {sender}'s commit {commit['hash']} "
            f"of epoch {epoch - 1}",
            code="reveal_mismatch",
        )
    state.delete("pcommit", compute_commit_key(epoch - 1, sender))
    process_price_vote(state, sender, msg.price, msg.denom, msg.price_ngonka)


# --------------------------------------------------------------------------------------------
# Governance (SPEC §4)
# --------------------------------------------------------------------------------------------


def process_gov_counter(state: State, name: str, delta: int) -> int:
    """Add `delta` to a governance counter in `meta` and return the new value."""
    value = (state.get("meta", name) or 0) + delta
    state.set("meta", name, value)
    return value


def process_counter_add(state: State, name: str, delta: int) -> None:
    """Add `delta` to a counter no transaction reads ("fees": the fee pool and the epoch's fees; else a
    counter of `meta`): inside a transaction as a delta of the State, which the block's end writes once
    (`process_counter_deltas`), so that transactions do not read it; outside one at once."""
    if state.meter is None:  # no transaction runs
        process_counter_deltas(state, {name: delta})
    else:
        state.add_delta(name, delta)


def process_counter_deltas(state: State, deltas: dict[str, int]) -> None:
    """Add counter deltas to their counters, by name."""
    for name, delta in sorted(deltas.items()):
        if name == "fees":
            fees = get_fees(state)
            state.set("meta", "fees", {"pool": fees["pool"] + delta, "epoch": fees["epoch"] + delta})
        else:
            process_gov_counter(state, name, delta)


def compute_queue_key(height: int, proposal_id: int) -> str:
    """The state key of a proposal in the queue of block `height`: `<height>/<id>`."""
    return f"{compute_index_key(height)}/{compute_index_key(proposal_id)}"


def process_open_proposals_change(state: State, proposer: str, delta: int) -> None:
    """Count a proposal of `proposer` opening (+1) or ending (-1); the entry goes when it reaches 0."""
    count = get_open_proposals(state, proposer) + delta
    if count:
        state.set("gopen", proposer, count)
    else:
        state.delete("gopen", proposer)


def process_queue_add(state: State, height: int, proposal_id: int) -> None:
    """Queue a proposal for the end of block `height`."""
    state.set("gq", compute_queue_key(height, proposal_id), proposal_id)


def process_queue_remove(state: State, height: int, proposal_id: int) -> None:
    """Take a proposal out of the queue of block `height`."""
    state.delete("gq", compute_queue_key(height, proposal_id))


def process_deposit(state: State, proposal: dict[str, Any], depositor: str, amount: int) -> dict[str, Any]:
    """Move `amount` from the depositor into the governance escrow; start voting at min_deposit."""
    process_balance_change(state, depositor, -amount)
    process_gov_counter(state, "gov_escrow", amount)
    key = f"{compute_index_key(proposal['id'])}/{depositor}"
    state.set("dep", key, (state.get("dep", key) or 0) + amount)
    proposal = {**proposal, "total_deposit": proposal["total_deposit"] + amount}
    params = get_params(state)
    if proposal["status"] == "deposit_period" and proposal["total_deposit"] >= params.min_deposit:
        height = get_height(state)
        process_queue_remove(state, proposal["deposit_end_height"], proposal["id"])
        proposal = {
            **proposal,
            "status": "voting_period",
            "voting_start_height": height,
            "voting_end_height": height + params.voting_period,
        }
        process_queue_add(state, proposal["voting_end_height"], proposal["id"])
    state.set("gov", compute_index_key(proposal["id"]), proposal)
    return proposal


def process_msg_submit_proposal(state: State, sender: str, msg: MsgSubmitProposal) -> None:
    """Open a proposal in its deposit period (or straight in voting) with the initial deposit."""
    params = get_params(state)
    if isinstance(msg.content, ParamChange):
        error = compute_param_change_error(state, dict(msg.content.changes))
        if error is not None:
            raise InvalidTx(error, code="invalid_param_change")
    check = CONTENT_CHECKS.get(msg.content.TYPE)
    if check is not None:
        check(state, msg.content)
    if msg.initial_deposit < params.min_initial_deposit:
        raise InvalidTx(
            f"initial_deposit is {msg.initial_deposit} ngonka, below min_initial_deposit {params.min_initial_deposit}",
            code="below_min_initial_deposit",
        )
    if get_open_proposals(state, sender) >= params.max_open_proposals_per_account:
        raise InvalidTx(
            f"{sender} already has {params.max_open_proposals_per_account} open proposals "
            "(max_open_proposals_per_account); wait for one to end",
            code="too_many_open_proposals",
        )
    process_open_proposals_change(state, sender, 1)
    proposal_id = state.get("meta", "next_proposal_id") or 1
    state.set("meta", "next_proposal_id", proposal_id + 1)
    height = get_height(state)
    proposal = {
        "id": proposal_id,
        "proposer": sender,
        "content": msg.content.to_json(),
        "status": "deposit_period",
        "submit_height": height,
        "submit_epoch": get_current_epoch(state)["index"],
        "deposit_end_height": height + get_params(state).max_deposit_period,
        "voting_start_height": None,
        "voting_end_height": None,
        "total_deposit": 0,
        "final_tally": None,
        "result": None,
        "burned": False,
    }
    process_queue_add(state, proposal["deposit_end_height"], proposal_id)
    process_deposit(state, proposal, sender, msg.initial_deposit)


def process_msg_deposit(state: State, sender: str, msg: MsgDeposit) -> None:
    """Add to the deposit of a proposal in its deposit period."""
    proposal = get_proposal_in(state, msg.proposal_id, "deposit_period", "deposits")
    process_deposit(state, proposal, sender, msg.amount)


def process_msg_vote(state: State, sender: str, msg: MsgVote) -> None:
    """Record a validator's vote on a proposal in its voting period (replacing an earlier one)."""
    get_proposal_in(state, msg.proposal_id, "voting_period", "votes")
    if get_epoch_power(state, sender) == 0:
        raise InvalidTx(f"{sender} is not a validator of the current epoch", code="not_validator")
    state.set("gvote", f"{compute_index_key(msg.proposal_id)}/{sender}", msg.option)


def process_deposits_settlement(state: State, proposal_id: int, *, burn: bool) -> None:
    """Refund (or burn) every deposit held for a proposal and empty its escrow."""
    total = 0
    for depositor, amount in get_entries_of_proposal(state, "dep", proposal_id):
        state.delete("dep", f"{compute_index_key(proposal_id)}/{depositor}")
        total += amount
        if not burn:
            process_balance_change(state, depositor, amount)
    process_gov_counter(state, "gov_escrow", -total)
    if burn:
        process_gov_counter(state, "burned", total)
        process_gov_counter(state, "supply", -total)


def process_proposal_queue(state: State) -> None:
    """End the deposit or voting period of every proposal queued for this block."""
    height = get_height(state)
    for _, proposal_id in state.iterate_prefix("gq", compute_index_key(height) + "/"):
        state.delete("gq", compute_queue_key(height, proposal_id))
        proposal = get_proposal(state, proposal_id)
        if proposal["status"] == "deposit_period":
            burn = get_params(state).burn_proposal_deposit_prevote
            process_deposits_settlement(state, proposal_id, burn=burn)
            result = "deposit period ended below min_deposit" + (": deposits burned" if burn else "")
            proposal = {**proposal, "status": "dropped", "result": result, "burned": burn}
        else:
            proposal = process_voting_end(state, proposal)
        process_open_proposals_change(state, proposal["proposer"], -1)
        state.set("gov", compute_index_key(proposal_id), proposal)


def process_voting_end(state: State, proposal: dict[str, Any]) -> dict[str, Any]:
    """Tally a proposal at its voting end, settle its deposits, apply it if it passed."""
    proposal_id = proposal["id"]
    votes = get_entries_of_proposal(state, "gvote", proposal_id)
    tally = compute_tally(votes, dict(get_validator_set(state)))
    outcome = compute_tally_outcome(tally, get_params(state))
    for voter, _ in votes:
        state.delete("gvote", f"{compute_index_key(proposal_id)}/{voter}")
    process_deposits_settlement(state, proposal_id, burn=outcome.burn)
    status, result = ("passed" if outcome.passed else "rejected"), outcome.reason
    if outcome.passed:
        error = process_content(state, proposal_id, proposal["content"])
        if error is not None:
            status, result = "failed", error
    return {**proposal, "status": status, "result": result, "final_tally": tally.to_json(), "burned": outcome.burn}


def process_content(state: State, proposal_id: int, content: dict[str, Any]) -> str | None:
    """Apply passed content atomically (a ParamChange to the next epoch's params, a kind another module
    registered in `CONTENT_RULES` by its rule, a model change to the registry); return why it cannot
    apply, or None."""
    if content["@type"] == ParamChange.TYPE:
        return process_param_change(state, proposal_id, content["changes"])
    rule = CONTENT_RULES.get(content["@type"])
    if rule is not None:
        result: str | None = rule(state, proposal_id, content)
        return result
    return process_model_change(state, proposal_id, content)


def get_pending_params(state: State) -> Params:
    """The params as they will be from the next epoch: the current ones with the passed ParamChanges."""
    params = get_params(state)
    for _, changes in state.iterate("pchg"):
        params = compute_changed_params(params, changes, "ParamChange.changes")
    return params


def compute_param_change_error(state: State, changes: dict[str, Any]) -> str | None:
    """Why `changes` cannot apply over the params of the next epoch (each change checked as genesis
    checks it, the result consistent), or None."""
    try:
        compute_changed_params(get_pending_params(state), changes, "ParamChange.changes")
    except InvalidGenesis as exc:
        return str(exc)
    return None


def process_param_change(state: State, proposal_id: int, changes: dict[str, Any]) -> str | None:
    """Queue a passed ParamChange for the epoch boundary; return why it cannot apply, or None."""
    error = compute_param_change_error(state, changes)
    if error is None:
        state.set("pchg", compute_index_key(proposal_id), changes)
    return error


def process_model_change(state: State, proposal_id: int, content: dict[str, Any]) -> str | None:
    """Apply a passed RegisterModel or RemoveModel to the registry; return why it cannot, or None."""
    model_id = content["id"]
    before = state.get("model", model_id)
    if content["@type"] == RemoveModel.TYPE:
        if before is None:
            return f"model {model_id!r} is not registered"
        state.delete("model", model_id)
        after = None
    else:
        after = {k: v for k, v in content.items() if k != "@type"}
        state.set("model", model_id, after)
    version = process_gov_counter(state, "registry_version", 1)
    state.set("mchg", model_id, version)
    state.set(
        "mlog",
        compute_index_key(version),
        {
            "version": version,
            "epoch": get_current_epoch(state)["index"] + 1,
            "height": get_height(state),
            "proposal_id": proposal_id,
            "kind": "remove_model" if after is None else ("update_model" if before else "register_model"),
            "model": model_id,
            "units_before": before["units_of_compute_per_token"] if before else None,
            "units_after": after["units_of_compute_per_token"] if after else None,
        },
    )
    state.set("mver", compute_model_version_key(model_id, version), after["units_of_compute_per_token"] if after else 0)
    return None


def compute_model_version_key(model_id: str, version: int) -> str:
    """The key of a model's change at a registry version ("|" sorts after every character of a model id)."""
    return f"{model_id}|{compute_index_key(version)}"


def get_model_units_at(state: State, model_id: str, version: int) -> tuple[int, int] | None:
    """The (registry version, units per token) of the last change of a model at or before `version`
    (units 0: removed), or None if it had none by then: one key range read of at most one entry."""
    start, end = f"{model_id}|", compute_model_version_key(model_id, version + 1)
    for key, units in state.iterate("mver", start, end, reverse=True, limit=1):
        return int(key.rsplit("|", 1)[1]), units
    return None


# --------------------------------------------------------------------------------------------
# Double signs: evidence, jail and slashing
# --------------------------------------------------------------------------------------------


def get_jail(state: State, address: str) -> dict[str, Any]:
    """A validator's punishment record: whether it is jailed, until when, and its slashes so far."""
    return state.get("jail", address) or {"jailed": False, "jailed_until": 0, "slashes": 0, "slashed": 0}


def is_jailed(state: State, address: str) -> bool:
    """True if `address` is jailed (it leaves the validator set at the next epoch boundary)."""
    return bool(get_jail(state, address)["jailed"])


def is_committed_evidence(state: State, evidence: DoubleSign) -> bool:
    """True if evidence of this offence was already committed."""
    return state.get("evid", evidence.key) is not None


def compute_slash_amount(held: int, fraction: str) -> int:
    """The ngonka slashed from `held` bonded tokens: floor(held × fraction)."""
    return int(held * compute_fraction(fraction))


def is_evidence_too_old(max_age_blocks: int, height: int, offence_height: int) -> bool:
    """True if evidence of an offence at `offence_height` is past max_evidence_age_blocks in a block at `height`."""
    return height - offence_height > max_age_blocks


def check_evidence(state: State, evidence: DoubleSign) -> None:
    """Raise InvalidEvidence unless the (signature-checked) evidence may be committed in this block:
    from an earlier height within max_evidence_age_blocks, not committed before, by a validator with
    bonded tokens."""
    height, age = get_height(state), get_params(state).max_evidence_age_blocks
    if evidence.height >= height:
        raise InvalidEvidence(f"evidence of height {evidence.height} in block {height}", code="evidence_from_future")
    if is_evidence_too_old(age, height, evidence.height):
        raise InvalidEvidence(
            f"evidence of height {evidence.height} is older than {age} blocks at height {height}",
            code="evidence_too_old",
        )
    if is_committed_evidence(state, evidence):
        raise InvalidEvidence(f"evidence {evidence.key} was already committed", code="duplicate_evidence")
    if state.get("val", evidence.validator) is None and not get_unbondings(state, evidence.validator, evidence.height):
        raise InvalidEvidence(
            f"{evidence.validator} has no tokens bonded at height {evidence.height} left to slash", code="not_validator"
        )


def process_slash(state: State, address: str, fraction: str, offence_height: int | None = None) -> int:
    """Burn `fraction` of the tokens held for a validator (from both its stake and its pending stake,
    so the escrow drops by exactly that) and, for an offence at `offence_height`, of each of its
    unbonding entries still bonded then; take it out of the stake index while it is jailed (so the
    next boundary's selection leaves it out); return the amount."""
    validator = get_validator(state, address)
    stake, pending = validator["stake"], validator["pending_stake"]
    amount = compute_slash_amount(compute_escrow(stake, pending), fraction)
    if stake > 0:
        state.delete("vrank", compute_rank_key(stake, address))
    if stake or pending:
        state.set("val", address, {"stake": max(stake - amount, 0), "pending_stake": max(pending - amount, 0)})
    if offence_height is not None:
        amount += process_unbonding_slash(state, address, fraction, offence_height)
    process_gov_counter(state, "burned", amount)
    process_gov_counter(state, "supply", -amount)
    return amount


def process_unbonding_slash(state: State, address: str, fraction: str, offence_height: int) -> int:
    """Cut `fraction` of each unbonding entry of a validator that was still bonded at `offence_height`
    (unbonded at a boundary at or after it); return the total cut."""
    cut = 0
    for key, record in get_unbondings(state, address, since=offence_height):
        part = compute_slash_amount(record["amount"], fraction)
        if part:
            state.set("ubd", key, {**record, "amount": record["amount"] - part})
            cut += part
    return cut


def process_evidence(state: State, evidence: DoubleSign, *, signature_verified: bool = False) -> None:
    """Check a double sign and record it; jail and slash its validator unless it is jailed already.
    InvalidEvidence (and nothing changes) if the evidence is not valid."""
    if not signature_verified and not is_signed_double_sign(get_chain_id(state), evidence):
        raise InvalidEvidence(f"evidence {evidence.key}: a vote is not signed by its validator", code="bad_signature")
    check_evidence(state, evidence)
    height = get_height(state)
    state.set("evid", evidence.key, {"height": height})
    if is_jailed(state, evidence.validator):
        return  # one punishment per jailing: its other offences until then are recorded, not slashed again
    process_jail(state, evidence.validator, get_params(state).slash_fraction_double_sign, evidence.height)


def process_jail(state: State, address: str, fraction: str, offence_height: int | None = None) -> None:
    """Jail a validator until height + jail_blocks and slash `fraction` of its bonded tokens (and, for
    an offence at `offence_height`, of its unbonding entries bonded then; a punishment counted in
    `slashes`, even when the fraction is "0"); it leaves the set at the next epoch boundary."""
    record = get_jail(state, address)
    amount = process_slash(state, address, fraction, offence_height)
    state.set(
        "jail",
        address,
        {
            "jailed": True,
            "jailed_until": get_height(state) + get_params(state).jail_blocks,
            "slashes": record["slashes"] + 1,
            "slashed": record["slashed"] + amount,
        },
    )


def process_evidence_pruning(state: State) -> None:
    """Forget the committed offences of the height that leaves the evidence age with this block: evidence
    of it is refused as too old from the next block on, so its record no longer prevents a duplicate."""
    offence_height = get_height(state) - get_params(state).max_evidence_age_blocks
    if offence_height < 1:
        return
    prefix = compute_index_key(offence_height) + "/"
    for key, _ in state.iterate_prefix("evid", prefix):
        state.delete("evid", prefix + key)


def process_block_evidence(state: State, evidence: Sequence[DoubleSign]) -> None:
    """Process a block's evidence in order (a piece repeated in one block is a duplicate)."""
    for piece in evidence:
        process_evidence(state, piece)


def process_msg_unjail(state: State, sender: str, msg: MsgUnjail) -> None:
    """Release a jailed validator once jail_blocks have passed; it rejoins at the next boundary."""
    record = get_jail(state, sender)
    if not record["jailed"]:
        raise InvalidTx(f"{sender} is not jailed", code="not_jailed")
    height = get_height(state)
    if height < record["jailed_until"]:
        raise InvalidTx(
            f"{sender} is jailed until height {record['jailed_until']}, this is height {height}", code="still_jailed"
        )
    state.set("jail", sender, {**record, "jailed": False})
    stake = get_validator(state, sender)["stake"]
    if stake > 0:
        state.set("vrank", compute_rank_key(stake, sender), stake)  # back in the selection at the next boundary


MESSAGE_RULES: dict[type[Msg], Any] = {
    MsgSend: process_msg_send,
    MsgBond: process_msg_bond,
    MsgUnbond: process_msg_unbond,
    MsgSubmitPriceProposal: process_msg_submit_price_proposal,
    MsgCommitPrice: process_msg_commit_price,
    MsgRevealPrice: process_msg_reveal_price,
    MsgSubmitProposal: process_msg_submit_proposal,
    MsgDeposit: process_msg_deposit,
    MsgVote: process_msg_vote,
    MsgUnjail: process_msg_unjail,
}  # the core's; chain.machine.compose adds the messages of the modules built on this one (chain.usage)
# the rules of the modules built on this one, put here by chain.machine.compose (chain.app calls it), in its order:
BLOCK_END_RULES: list[Any] = []  # end-of-block rules, after the core's and before the epoch
CONTENT_RULES: dict[str, Any] = {}  # @type -> the rule applying a passed governance content of a module
CONTENT_CHECKS: dict[str, Any] = {}  # @type -> the submit-time check of a module's governance content
EPOCH_RULES: list[Any] = []  # epoch-transition rules, after model activation and before the epoch record


# --------------------------------------------------------------------------------------------
# Blocks and epochs
# --------------------------------------------------------------------------------------------


def is_within_block_limits(params: Params, txs: Sequence[bytes], evidence: Sequence[DoubleSign] = ()) -> bool:
    """True if a block's transactions and evidence fit max_block_txs, max_block_evidence and
    max_block_bytes (the transactions' bytes and the evidence's JSON bytes together)."""
    size = sum(len(tx) for tx in txs) + sum(e.size for e in evidence)
    return (
        len(txs) <= params.max_block_txs
        and len(evidence) <= params.max_block_evidence
        and size <= params.max_block_bytes
    )


def check_block_limits(params: Params, txs: Sequence[bytes], evidence: Sequence[DoubleSign] = ()) -> None:
    """Raise InvalidBlock unless a block's transactions and evidence fit the block limits of the params."""
    if not is_within_block_limits(params, txs, evidence):
        size = sum(len(tx) for tx in txs) + sum(e.size for e in evidence)
        raise InvalidBlock(
            f"block of {len(txs)} txs, {len(evidence)} evidence and {size} bytes exceeds the params' limits "
            f"({params.max_block_txs} txs, {params.max_block_evidence} evidence, {params.max_block_bytes} bytes)",
            code="block_too_large",
        )


def process_block_start(state: State, height: int) -> None:
    """Advance the height before the block's transactions run."""
    state.set("meta", "height", height)


def process_block_end(state: State) -> None:
    """End the governance periods due at this height, release the unbonding entries due, forget the
    offences too old for evidence, run the block-end rules other modules registered
    (`BLOCK_END_RULES`: usage's withdrawals and dispute windows), then, at an epoch's last block, the
    epoch; first the block's transactions' counter deltas (the fee pool, the held usage fees)."""
    process_counter_deltas(state, state.take_deltas())
    process_proposal_queue(state)
    process_unbonding_releases(state)
    process_evidence_pruning(state)
    for rule in BLOCK_END_RULES:
        rule(state)
    if is_epoch_end(get_params(state), get_height(state)):
        process_epoch(state)


def process_epoch(state: State) -> None:
    """The epoch transition of SPEC §3, in order. The ending epoch's votes are read once, for its
    rewards, its misses and the price (no rule of the transition writes a vote)."""
    votes = get_ballot_votes(state)
    process_vote_rewards(state, votes)
    process_fee_distribution(state)
    process_vote_misses(state, votes)
    process_stake_changes(state)
    process_epoch_advance(state)
    process_unit_of_compute_price(state, votes)
    process_model_activation(state)
    process_epoch_module_rules(state)
    process_epoch_record(state)
    process_price_commit_expiry(state)
    process_param_changes(state)


def process_epoch_module_rules(state: State) -> None:
    """Run the epoch rules other modules registered (`EPOCH_RULES`: the reference index of chain.index)."""
    for rule in EPOCH_RULES:
        rule(state)


def process_price_commit_expiry(state: State) -> None:
    """Drop the commits of the epoch before the one just ended: their reveal epoch is over (one key
    range; a validator holds at most the commits of two epochs)."""
    ended = get_current_epoch(state)["index"] - 2  # the index advanced: the ended epoch is index - 1
    if ended < 0:
        return
    prefix = compute_index_key(ended) + "/"
    for key, _ in state.iterate_prefix("pcommit", prefix):
        state.delete("pcommit", prefix + key)


def process_param_changes(state: State) -> None:
    """Put the params of the ParamChanges passed during the ended epoch in force, by proposal id: the
    new epoch runs (and its ballot is tallied) under them."""
    changed = False
    params = get_params(state)
    for key, changes in state.iterate("pchg"):
        params = compute_changed_params(params, changes, "ParamChange.changes")
        state.delete("pchg", key)
        changed = True
    if changed:
        state.set("meta", "params", params.to_state_json())


class BallotVotes(NamedTuple):
    """The current epoch's validators in columns, by address: address, power, vote in force in
    ngonka (0: none; a vote is positive) and the epoch it was cast in (-1: none; empty if not loaded)."""

    addresses: list[str]
    powers: np.ndarray
    prices: np.ndarray
    epochs: Sequence[int] = ()


def compute_ballot_votes(rows: Sequence[tuple[str, int, int | None]]) -> BallotVotes:
    """The columns of (address, power, vote in force or None) rows."""
    return BallotVotes(
        [address for address, _, _ in rows],
        compute_column([power for _, power, _ in rows]),
        compute_column([0 if price is None else price for _, _, price in rows]),
    )


def get_ballot_votes(state: State, known: BallotVotes | None = None) -> BallotVotes:
    """Each validator of the current epoch with its power and vote in force, in columns, by address;
    the votes of `known`'s validators are taken from it, unread (the caller has written no vote since
    it read them: one state read per validator per epoch transition)."""
    seen = {} if known is None else dict(zip(known.addresses, zip(known.prices.tolist(), known.epochs)))
    addresses, powers, prices, epochs = [], [], [], []
    for address, power in get_validator_set(state):
        if address in seen:
            price, epoch = seen[address]
        else:  # one read per validator per epoch: it would only evict the hot entries from the decode cache
            vote = state.get("vote", address, keep=False)
            price, epoch = (vote["price_ngonka"], vote["epoch"]) if vote else (0, -1)
        addresses.append(address)
        powers.append(power)
        prices.append(price)
        epochs.append(epoch)
    return BallotVotes(addresses, compute_column(powers), compute_column(prices), epochs)


def compute_ballot_prices(votes: BallotVotes, current_price: int) -> Ballot:
    """The (price, power) ballot of the votes: a never-voter (price 0) counts at the current price."""
    prices = votes.prices
    if prices.dtype != np.int64 or current_price >= INT64_LIMIT:
        column = prices.astype(object)
        return Ballot(np.where(column > 0, column, current_price), votes.powers)
    filled = (prices == 0).astype(np.int64)  # price + current · (price == 0): never wraps, one term is 0
    filled *= current_price
    filled += prices
    return Ballot(filled, votes.powers)


def compute_min_vote(prices: np.ndarray) -> int:
    """The least positive price of a column holding one at least (0 marks a never-voter): for int64,
    the least of price − 1 read as unsigned, where a 0 becomes 2^64 − 1 and sorts last."""
    if prices.dtype == np.int64:
        return int((prices - 1).view(np.uint64).min()) + 1
    return int(min(price for price in prices.tolist() if price > 0))


def compute_band_of_ballot(ballot: Ballot, band: Fraction) -> tuple[Fraction, Fraction] | None:
    """The reward band [low, high] of a ballot in columns: the wider of its weighted interquartile
    range and the median × (1 ± band); None if no power voted."""
    quantiles = weighted_quantiles(ballot, [(1, 2), (1, 4), (3, 4)])
    if quantiles is None:
        return None
    median, low, high = quantiles
    return min(Fraction(low), median * (1 - band)), max(Fraction(high), median * (1 + band))


def compute_reward_band(pairs: list[tuple[int, int]], band: Fraction) -> tuple[Fraction, Fraction] | None:
    """The reward band of a (price, power) ballot (compute_band_of_ballot of its checked pairs)."""
    entries = compute_voting_entries(pairs)
    ballot = Ballot(compute_column([price for price, _ in entries]), compute_column([p for _, p in entries]))
    return compute_band_of_ballot(ballot, band)


def compute_in_band(prices: np.ndarray, band: tuple[Fraction, Fraction]) -> np.ndarray:
    """Which integer prices lie in the band, edges included: ceil(low) <= price <= floor(high), the
    bounds clipped to the int64 range for an int64 column (exact: every int64 price lies in it)."""
    low, high = -(-band[0].numerator // band[0].denominator), band[1].numerator // band[1].denominator
    if prices.dtype == np.int64:
        low, high = max(low, -INT64_LIMIT), min(high, INT64_LIMIT - 1)
        if low > high:
            return np.zeros(len(prices), dtype=bool)
    in_band: np.ndarray = (prices >= low) & (prices <= high)
    return in_band


def compute_vote_rewards(
    reward: int, votes: BallotVotes, current_price: int, band_fraction: Fraction
) -> list[tuple[str, int]]:
    """Each validator's share of `reward`: `reward × power // in-band power` for a validator with a
    vote in force inside the ballot's reward band, by address; nothing for the others."""
    band = compute_band_of_ballot(compute_ballot_prices(votes, current_price), band_fraction)
    if band is None:
        return []
    winners = np.flatnonzero((votes.prices > 0) & compute_in_band(votes.prices, band))
    powers = votes.powers[winners].tolist()
    return compute_fee_shares(reward, [(votes.addresses[i], powers[k]) for k, i in enumerate(winners.tolist())])


def process_vote_rewards(state: State, votes: BallotVotes | None = None) -> None:
    """Pay vote_reward_share of the ending epoch's fees from the pool to the validators whose vote in
    force lies in the reward band, in proportion to power; the remainder stays in the pool (and is
    paid by power in the fee distribution that follows)."""
    params = get_params(state)
    fees = get_fees(state)
    reward = int(fees["epoch"] * compute_fraction(params.vote_reward_share))
    if reward == 0:
        return
    shares = compute_vote_rewards(
        reward,
        get_ballot_votes(state) if votes is None else votes,
        get_current_epoch(state)["price"],
        compute_fraction(params.reward_band),
    )
    paid = 0
    for address, share in shares:
        if share:
            process_balance_change(state, address, share)
            paid += share
    if paid:
        state.set("meta", "fees", {**fees, "pool": fees["pool"] - paid})


def compute_fee_shares(pool: int, powers: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """Each validator's share of the fee pool, `pool × power // total power` (the rest stays)."""
    total = sum(power for _, power in powers)
    if total == 0:
        return []
    return [(address, pool * power // total) for address, power in powers]


def process_fee_distribution(state: State) -> None:
    """Record the ending epoch's fees and pay the fee pool to its validators in proportion to power;
    the remainder of the division stays in the pool for the next epoch."""
    fees = get_fees(state)
    if fees["epoch"]:
        key = compute_index_key(get_current_epoch(state)["index"])
        state.set("hist", key, {**state.get("hist", key), "fees_collected": fees["epoch"]})
    if fees["pool"] == 0:
        return
    paid = 0
    for address, share in compute_fee_shares(fees["pool"], get_validator_set(state)):
        if share:
            process_balance_change(state, address, share)
            paid += share
    state.set("meta", "fees", {"pool": fees["pool"] - paid, "epoch": 0})


def get_miss_record(state: State, address: str) -> dict[str, Any]:
    """A validator's price-vote record: its miss window (one character per epoch it validated, oldest
    first: "1" a fresh vote, "0" a miss), its misses and epochs counted ever, and its miss jails."""
    return state.get("miss", address) or {"window": "", "missed": 0, "counted": 0, "jails": 0}


def is_fresh_vote(vote_epoch: int, epoch: int) -> bool:
    """True if a vote in force was cast during `epoch` (the epoch now ending); -1: no vote in force."""
    return vote_epoch == epoch


def compute_miss_window(window: str, fresh: bool, size: int) -> str:
    """The window after one more epoch: its last `size` outcomes, oldest first."""
    return (window + ("1" if fresh else "0"))[-size:]


def is_over_miss_limit(params: Params, window: str) -> bool:
    """True if a window holds more misses than miss_window − min_valid_per_window allows."""
    return window.count("0") > params.miss_window - params.min_valid_per_window


def process_vote_misses(state: State, votes: BallotVotes | None = None) -> None:
    """With miss_window > 0: count each validator of the ending epoch's fresh vote or miss in its
    sliding window, and jail (slash_fraction_miss) those whose misses pass the limit, their windows
    reset; unless that would jail every validator left, which would leave the chain without a set."""
    params = get_params(state)
    if params.miss_window == 0:
        return
    epoch = get_current_epoch(state)["index"]
    votes = get_ballot_votes(state) if votes is None else votes
    assert len(votes.epochs) == len(votes.addresses), "the votes' epochs are not loaded (get_ballot_votes loads them)"
    records = {}
    for address, vote_epoch in zip(votes.addresses, votes.epochs):
        if is_jailed(state, address):
            continue  # it leaves the set at this boundary: its punishment is already running
        fresh = is_fresh_vote(vote_epoch, epoch)
        record = get_miss_record(state, address)
        records[address] = {
            **record,
            "window": compute_miss_window(record["window"], fresh, params.miss_window),
            "missed": record["missed"] + int(not fresh),
            "counted": record["counted"] + 1,
        }
    over = [address for address, record in records.items() if is_over_miss_limit(params, record["window"])]
    if len(over) < len(records):
        for address in over:
            process_jail(state, address, params.slash_fraction_miss)
            records[address] = {**records[address], "window": "", "jails": records[address]["jails"] + 1}
    for address, record in records.items():
        state.set("miss", address, record)


def process_stake_changes(state: State) -> None:
    """Apply the pending bonds and unbonds of the validators that changed (`vchg`) and snapshot the
    next epoch's validator set (`epval`): work that follows the changes, not the bonded accounts."""
    for address, _ in state.iterate("vchg"):
        state.delete("vchg", address)
        process_stake_change(state, address)
    process_validator_selection(state)


def process_stake_change(state: State, address: str) -> None:
    """Put a validator's pending stake in force: start the unbonding of an unbond, move it in the
    stake index."""
    validator = get_validator(state, address)
    stake, pending = validator["stake"], validator["pending_stake"]
    if stake > pending:
        process_unbonding_start(state, address, stake - pending)
    if stake > 0:
        state.delete("vrank", compute_rank_key(stake, address))
    if pending == 0:
        state.delete("val", address)
        return
    if stake != pending:
        state.set("val", address, {"stake": pending, "pending_stake": pending})
    if not is_jailed(state, address):  # a jailed validator stays out of the index until MsgUnjail
        state.set("vrank", compute_rank_key(pending, address), pending)


def compute_unbonding_key(address: str, release_height: int) -> str:
    """The key of a validator's unbonding entry released at the end of block `release_height`."""
    return f"{address}|{compute_index_key(release_height)}"


def get_unbondings(state: State, address: str, since: int = 0) -> list[tuple[str, dict[str, Any]]]:
    """A validator's unbonding entries (key, {"amount", "height"}) unbonded at a boundary at or after
    height `since`, by release height (at most max_evidence_age_blocks / epoch_length of them)."""
    return [
        (address + "|" + key, record)
        for key, record in state.iterate_prefix("ubd", address + "|")
        if record["height"] >= since
    ]


def process_unbonding_start(state: State, address: str, amount: int) -> None:
    """Hold `amount` ngonka of stake unbonded at this boundary until the end of block height +
    max_evidence_age_blocks: until then evidence of an offence it was bonded for may still slash it."""
    height = get_height(state)
    release = height + get_params(state).max_evidence_age_blocks
    state.set("ubd", compute_unbonding_key(address, release), {"amount": amount, "height": height})
    state.set("ubq", f"{compute_index_key(release)}/{address}", 1)


def process_unbonding_releases(state: State) -> None:
    """Pay the unbonding entries released at the end of this block back to their balances."""
    height = get_height(state)
    prefix = compute_index_key(height) + "/"
    for address, _ in state.iterate_prefix("ubq", prefix):
        state.delete("ubq", prefix + address)
        key = compute_unbonding_key(address, height)
        amount = state.get("ubd", key)["amount"]
        state.delete("ubd", key)
        if amount:
            process_balance_change(state, address, amount)


def process_validator_selection(state: State) -> None:
    """Give power to the max_validators with the most stake (ties: lower address); the rest keep their bond."""
    powers = dict(get_top_stakes(state, get_params(state).max_validators))
    current = dict(get_validator_set(state))
    for address in current:
        if address not in powers:
            state.delete("epval", address)
    for address, power in powers.items():
        if current.get(address) != power:
            state.set("epval", address, power)


def process_epoch_advance(state: State) -> None:
    """Enter the next epoch: its index, first height, and the size of its validator set."""
    epoch = get_current_epoch(state)
    powers = [power for _, power in get_validator_set(state)]
    state.set(
        "epoch",
        "current",
        {
            **epoch,
            "index": epoch["index"] + 1,
            "total_power": sum(powers),
            "validators": len(powers),
            "start_height": get_height(state) + 1,
        },
    )


def compute_ballot(votes: BallotVotes, current_price: int) -> tuple[int, dict[str, Any]]:
    """The next price (the ballot's median) and ballot summary, with the ballot's shape (Q1, median, Q3),
    from the votes in columns (a never-voter counts at the current price)."""
    shape = compute_ballot_shape(compute_ballot_prices(votes, current_price))
    voters = int(np.count_nonzero(votes.prices > 0))
    summary = {
        "voters": voters,
        "non_voters": len(votes.prices) - voters,
        "min_vote": compute_min_vote(votes.prices) if voters else None,
        "max_vote": int(votes.prices.max()) if voters else None,  # a never-voter's 0 is below every vote
        "q1": None if shape is None else shape[0],
        "median": None if shape is None else shape[1],
        "q3": None if shape is None else shape[2],
    }
    return (current_price if shape is None else shape[1]), summary


PRICE_STATUSES = ("ok", "low_participation", "capped", "stale")  # the record's status, lowest precedence first


def compute_fresh_power(votes: BallotVotes, epoch: int) -> int:
    """The power of the validators whose vote in force was cast during `epoch` (the one ending)."""
    fresh = np.fromiter(votes.epochs, np.int64, len(votes.epochs)) == epoch  # is_fresh_vote, on the column
    if votes.powers.dtype == np.int64:
        return compute_exact_sum(votes.powers[fresh])
    return sum(power for power, is_fresh in zip(votes.powers.tolist(), fresh.tolist()) if is_fresh)


def compute_participation(fresh_power: int, ballot_power: int) -> Fraction:
    """The share of the ballot's power with a fresh vote (0 for a ballot without power)."""
    return Fraction(fresh_power, ballot_power) if ballot_power else Fraction(0)


def compute_price_bounds(previous: int, cap: Fraction) -> tuple[int, int]:
    """The least and greatest price the next epoch may take under max_change_per_epoch `cap`:
    previous · (1 ∓ cap) rounded outward, at least 1 ngonka away from previous either way (a bound
    never absorbs: the smallest price can still move), and the lower one at least 1."""
    low = min(previous - 1, int(previous * (1 - cap) // 1))
    high = max(previous + 1, int(-(-previous * (1 + cap) // 1)))
    return max(1, low), high


def compute_capped_price(median: int, previous: int, cap: Fraction) -> int:
    """The ballot's median moved to the nearer bound of compute_price_bounds when it lies beyond it
    (cap 0: no cap, the median itself)."""
    if cap == 0:
        return median
    low, high = compute_price_bounds(previous, cap)
    return min(max(median, low), high)


def is_stale_price(params: Params, age_epochs: int) -> bool:
    """True if no fresh vote came for stale_epochs epochs or more (stale_epochs 0: never)."""
    return params.stale_epochs > 0 and age_epochs >= params.stale_epochs


def is_low_participation(params: Params, participation: Fraction) -> bool:
    """True if the share of power with a fresh vote is below min_participation."""
    return participation < compute_fraction(params.min_participation)


def compute_price_status(stale: bool, capped: bool, low_participation: bool) -> str:
    """The record's status: the first that holds of stale, capped, low_participation, else ok."""
    return "stale" if stale else "capped" if capped else "low_participation" if low_participation else "ok"


def compute_genesis_ballot(validators: int, total_power: int) -> dict[str, Any]:
    """The ballot summary of epoch 0, whose price is the genesis default: no vote, status ok, age 0."""
    return {
        "voters": 0,
        "non_voters": validators,
        "min_vote": None,
        "max_vote": None,
        "q1": None,
        "median": None,
        "q3": None,
        "fresh_power": 0,
        "ballot_power": total_power,
        "participation": "0",
        "last_fresh_epoch": 0,
        "status": "ok",
    }


def process_unit_of_compute_price(state: State, known: BallotVotes | None = None) -> None:
    """Set the epoch's price to the weighted median of the validators' votes in force (those of
    `known`'s validators taken from it, see get_ballot_votes), moved to the max_change_per_epoch bound
    when it lies beyond; record the ballot's shape, participation and status."""
    epoch = get_current_epoch(state)
    params = get_params(state)
    votes = get_ballot_votes(state, known)
    median, ballot = compute_ballot(votes, epoch["price"])
    price = compute_capped_price(median, epoch["price"], compute_fraction(params.max_change_per_epoch))
    fresh_power = compute_fresh_power(votes, epoch["index"] - 1)  # the index advanced: the ended epoch's votes
    ballot_power = int(compute_exact_sum(votes.powers)) if votes.powers.dtype == np.int64 else sum(votes.powers)
    participation = compute_participation(fresh_power, ballot_power)
    last_fresh = epoch["index"] if fresh_power else epoch["ballot"].get("last_fresh_epoch", 0)
    status = compute_price_status(
        is_stale_price(params, epoch["index"] - last_fresh),
        price != median,
        is_low_participation(params, participation),
    )
    ballot.update(
        fresh_power=fresh_power,
        ballot_power=ballot_power,
        participation=compute_decimal_text(participation),
        last_fresh_epoch=last_fresh,
        status=status,
    )
    state.set("epoch", "current", {**epoch, "price": price, "ballot": ballot})


def process_model_activation(state: State) -> None:
    """Make the registry changes that passed during the epoch active for the next one."""
    for model_id, _ in state.iterate("mchg"):
        model = state.get("model", model_id)
        if model is None:
            state.delete("amodel", model_id)
        else:
            state.set("amodel", model_id, model)
        state.delete("mchg", model_id)


def compute_running_sums(previous: dict[str, Any] | None, price: int) -> dict[str, str]:
    """The TWAP accumulators of a record after `previous`: the running sums, from epoch 0, of the prices
    and of their compute_log2_fixed, as decimal strings (they outgrow 2^53)."""
    price_sum = int(previous["price_cumulative"]) if previous else 0
    log2_sum = int(previous["log2_price_cumulative"]) if previous else 0
    return {
        "price_cumulative": str(price_sum + price),
        "log2_price_cumulative": str(log2_sum + compute_log2_fixed(price)),
    }


def process_epoch_record(state: State) -> None:
    """Append the current epoch's record to the history, with the TWAP accumulators."""
    epoch = get_current_epoch(state)
    previous = get_epoch_record(state, epoch["index"] - 1) if epoch["index"] else None
    state.set(
        "hist",
        compute_index_key(epoch["index"]),
        {
            "epoch": epoch["index"],
            "price": epoch["price"],
            "total_power": epoch["total_power"],
            **epoch["ballot"],
            "registry_version": get_registry_version(state),
            "fees_collected": 0,
            **compute_running_sums(previous, epoch["price"]),
        },
    )
