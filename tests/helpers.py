"""Shared helpers for the chain and node tests: deterministic keys, genesis, signing, blocks, invariants."""

from __future__ import annotations

import base64
import json
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from chain.app import Application, BlockResult
from chain.crypto import PrivateKey
from chain.store import MemoryStore
from chain.tx import Msg, compute_sign_bytes, sign_tx

CHAIN_ID = "uoc-test"
NAMES = "abcdefgh"
KEYS: dict[str, PrivateKey] = {name: PrivateKey.from_name(name, salt="uoc-tests") for name in NAMES}
ADDR: dict[str, str] = {name: key.address for name, key in KEYS.items()}


def make_genesis(
    stakes: dict[str, int],
    balances: dict[str, int] | None = None,
    *,
    chain_id: str = CHAIN_ID,
    **params: Any,
) -> dict[str, Any]:
    """A genesis with the named validators' stakes and the named accounts' balances.

    Its `min_gas_price` is "0" unless given, so that the rule tests count balances to the ngonka with
    fee-free transactions (`signed`); the fee tests set a price and pay (`signed_with_fee`)."""
    if balances is None:
        balances = {name: 1000 for name in NAMES[:5]}
    return {
        "chain_id": chain_id,
        "params": {"min_gas_price": "0", **params},
        "accounts": [{"address": ADDR[n], "balance": b} for n, b in balances.items()],
        "validators": [{"address": ADDR[n], "stake": s} for n, s in stakes.items()],
    }


def make_app(genesis: dict[str, Any], store: Any = None) -> Application:
    """An Application on `store` (a fresh MemoryStore by default) with `genesis` committed."""
    app = Application(store if store is not None else MemoryStore())
    app.init_chain(genesis)
    return app


def signed(
    name: str, sequence: int, *msgs: Msg, chain_id: str = CHAIN_ID, fee: int = 0, gas_limit: int | None = None
) -> bytes:
    """A transaction from the named key's account: by default fee-free (for `make_genesis`'s
    min_gas_price "0") with the gas table's upper bound as its gas limit."""
    return sign_tx(KEYS[name], chain_id, sequence, list(msgs), fee=fee, gas_limit=gas_limit)


def encode_tx(body: Any, pubkey: bytes, signature: bytes) -> bytes:
    """The wire form of SPEC §2 / chain.tx: compact JSON, sorted keys, base64 pubkey and signature.

    Written out here (not taken from chain.tx) so malformed bodies, e.g. with floats, can be encoded.
    """
    doc = {"body": body, "pubkey": base64.b64encode(pubkey).decode(), "signature": base64.b64encode(signature).decode()}
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def sign_body(key: PrivateKey, body: dict[str, Any]) -> bytes:
    """Sign an arbitrary (possibly malformed) JSON body with `key` and encode it."""
    return encode_tx(body, key.pubkey, key.sign(compute_sign_bytes(body)))


class Wallets:
    """Hands out consecutive sequences per sender (every tx built here is expected to succeed)."""

    def __init__(self) -> None:
        self.next: dict[str, int] = defaultdict(int)

    def tx(self, name: str, *msgs: Msg) -> bytes:
        raw = signed(name, self.next[name], *msgs)
        self.next[name] += 1
        return raw


def seq(app: Application, name: str) -> int:
    """The committed sequence of the named account."""
    return app.query("account/" + ADDR[name])["sequence"]


def balance(app: Application, name: str) -> int:
    """The committed balance of the named account."""
    return app.query("account/" + ADDR[name])["balance"]


def run_block(app: Application, txs: Iterable[bytes] = (), *, expect_ok: bool = True) -> BlockResult:
    """Finalize and commit the next block; by default require every transaction to succeed."""
    result = app.finalize_block(app.height + 1, list(txs))
    if expect_ok:
        bad = [(r.code, r.log) for r in result.tx_results if not r.ok]
        assert not bad, f"unexpected rejections at height {result.height}: {bad}"
    app.commit()
    return result


def run_until(app: Application, height: int) -> None:
    """Commit empty blocks until the app is at `height`."""
    while app.height < height:
        run_block(app)


def store_snapshot(store: Any) -> dict[tuple[str, str], str]:
    """Every committed (space, key) -> canonical value of a store."""
    return {(space, key): value for space, key, value in store.entries()}


def supply_parts(store: Any) -> tuple[int, int]:
    """(meta supply, sum of balances + escrowed stake max(stake, pending_stake) + governance escrow
    + fee pool + usage escrows + usage fees held + unbonding entries)."""
    snap = store_snapshot(store)
    supply = json.loads(snap[("meta", "supply")])
    held = (
        json.loads(snap.get(("meta", "gov_escrow"), "0"))
        + json.loads(snap.get(("meta", "fees"), '{"pool":0}'))["pool"]
        + json.loads(snap.get(("meta", "usage_fees_held"), "0"))
    )
    for (space, _), value in snap.items():
        record = json.loads(value)
        if space == "acct":
            held += record["balance"]
        elif space == "val":
            held += max(record["stake"], record["pending_stake"])
        elif space in ("escrow", "ubd"):
            held += record["amount"]
    return supply, held


def validators(app: Application) -> dict[str, int]:
    """The current epoch's validator powers by address."""
    return {v["address"]: v["power"] for v in app.query_all("validators")}


# the params of a genesis that names none (chain.params.Params defaults), spelled out
DEFAULT_PARAMS: dict = {
    "epoch_length": 10,
    "default_unit_of_compute_price": 100,
    "min_deposit": 25_000_000,
    "max_deposit_period": 20,
    "voting_period": 20,
    "quorum": "0.334",
    "threshold": "0.5",
    "veto_threshold": "0.334",
    "burn_vote_veto": True,
    "max_block_txs": 20_000,
    "max_block_bytes": 16 * 1024 * 1024,
    "max_block_evidence": 50,
    "max_evidence_age_blocks": 1000,
    "slash_fraction_double_sign": "0.05",
    "jail_blocks": 100,
    "min_self_bond": 1,
    "max_validators": 100,
    "min_initial_deposit": 1,
    "max_open_proposals_per_account": 16,
    "burn_proposal_deposit_prevote": True,
    "min_gas_price": "0.01",
    "vote_reward_share": "0",
    "reward_band": "0.01",
    "miss_window": 0,
    "min_valid_per_window": 0,
    "slash_fraction_miss": "0",
    "vote_mode": "open",
    "protocol_fee_bps": 0,
    "fee_min": 0,
    "dispute_window": 100,
    "dispute_resolution_window": 100,
    "escrow_withdraw_delay": 100,
    "pricing_mode": "voted",
    "utilization_window": 10,
    "utilization_band_low": "0.4",
    "utilization_band_high": "0.6",
    "price_elasticity": "0.02",
    "dynamic_price_floor": 1,
    "hybrid_band": "0.2",
    "power_per_nonce": 1,
    "default_throughput_per_nonce": 1,
    "min_participation": "0",
    "max_change_per_epoch": "0",
    "stale_epochs": 0,
}
