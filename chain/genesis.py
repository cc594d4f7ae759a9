"""The genesis rule: check a genesis document and write the state of height 0 (params, accounts,
validators, epoch 0 and its record). Invalid input raises `InvalidGenesis` and writes nothing that
survives (the caller discards the state)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from .crypto import is_valid_address
from .errors import InvalidGenesis
from .money import MAX_NGONKA, is_int
from .params import Params
from .rules import (
    compute_genesis_ballot,
    compute_rank_key,
    get_validator_set,
    process_epoch_record,
    process_validator_selection,
)
from .store import State

CHAIN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # what a chain id may be: it is signed, logged and shown


def _genesis_int(value: Any, where: str, minimum: int) -> int:
    """An integer genesis field ≥ minimum and < 2^63."""
    if not is_int(value) or not minimum <= value < MAX_NGONKA:
        raise InvalidGenesis(f"{where} must be an integer ≥ {minimum} and < 2^63, got {value!r}")
    return value


def _genesis_address(value: Any, where: str) -> str:
    """A bech32 address in genesis."""
    if not is_valid_address(value):
        raise InvalidGenesis(f"{where} must be a bech32 'uoc1…' address, got {value!r}")
    return value


def process_genesis(state: State, genesis: Any) -> None:
    """Write the genesis state: params, accounts, validators, epoch 0 and its record."""
    if not isinstance(genesis, dict):
        raise InvalidGenesis("genesis must be a JSON object")
    unknown = sorted(k for k in genesis if k not in ("chain_id", "genesis_time", "params", "accounts", "validators"))
    if unknown:
        raise InvalidGenesis(f"genesis has unknown field(s): {', '.join(unknown)}")
    chain_id = genesis.get("chain_id")
    if not isinstance(chain_id, str) or not CHAIN_ID.fullmatch(chain_id):
        raise InvalidGenesis(
            "genesis.chain_id must be 1 to 64 letters, digits, '.', '_' or '-', the first a letter or a digit, "
            f"got {str(chain_id)[:80]!r}"
        )
    params = Params.from_json(genesis.get("params", {}))
    state.set("meta", "chain_id", chain_id)
    state.set("meta", "params", params.to_state_json())
    state.set("meta", "height", 0)
    supply = 0
    for where, address, entry in _genesis_entries(state, genesis, "accounts", "acct", ("address", "balance")):
        balance = _genesis_int(entry.get("balance", 0), f"{where}.balance", 0)
        state.set("acct", address, {"balance": balance, "sequence": 0, "pubkey": None})
        supply += balance
    for where, address, entry in _genesis_entries(state, genesis, "validators", "val", ("address", "stake")):
        stake = _genesis_int(entry.get("stake"), f"{where}.stake", params.min_self_bond)
        state.set("val", address, {"stake": stake, "pending_stake": stake})
        state.set("vrank", compute_rank_key(stake, address), stake)
        supply += stake
    if supply >= MAX_NGONKA:
        raise InvalidGenesis("the total supply of genesis must be < 2^63 ngonka")
    state.set("meta", "supply", supply)
    process_validator_selection(state)
    validators = get_validator_set(state)
    state.set(
        "epoch",
        "current",
        {
            "index": 0,
            "price": params.default_unit_of_compute_price,
            "total_power": sum(power for _, power in validators),
            "validators": len(validators),
            "start_height": 1,
            "ballot": compute_genesis_ballot(len(validators), sum(power for _, power in validators)),
        },
    )
    process_epoch_record(state)


def _genesis_entries(
    state: State, genesis: dict[str, Any], name: str, space: str, allowed: tuple[str, ...]
) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """The (where, address, entry) of each entry of a genesis list, checked for unknown fields, a
    valid address and an address not already in `space`."""
    entries = genesis.get(name, [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise InvalidGenesis(f"genesis.{name} must be a list of objects")
    for i, entry in enumerate(entries):
        where = f"genesis.{name}[{i}]"
        unknown = sorted(k for k in entry if k not in allowed)
        if unknown:
            raise InvalidGenesis(f"{where} has unknown field(s): {', '.join(unknown)}; allowed: {', '.join(allowed)}")
        address = _genesis_address(entry.get("address"), f"{where}.address")
        if state.get(space, address) is not None:
            raise InvalidGenesis(f"{where}.address {address} appears twice")
        yield where, address, entry
