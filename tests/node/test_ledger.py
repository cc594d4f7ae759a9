"""node.ledger on a real home and SQLite file: validator sets are stored once per change (and at
checkpoints), any kept height's set (priorities included) is the same after a restart, and older sets
are pruned by `[storage] validator_set_retention`."""

from __future__ import annotations

import json

import pytest

import node.ledger
from chain.crypto import PrivateKey
from chain.tx import MsgBond, compute_tx_bytes, decode_tx, sign_tx
from node.blocks import (
    Block,
    Commit,
    Evidence,
    Header,
    compute_commit_hash,
    compute_evidence_hash,
    compute_txs_hash,
    make_evidence,
    sign_vote,
)
from node.config import load_home, write_json
from node.errors import SyncError
from node.ledger import open_ledger
from tests.node.netutil import make_homes

EPOCH_LENGTH = 4
HEIGHTS = 30
OTHERS = [PrivateKey.from_name(f"ledger-other-{i}").address for i in range(2)]


def make_home(tmp_path, **config):
    """One signing validator (stake 1,000 of 1,150) and two silent ones, so priorities really rotate."""
    (path,) = make_homes(tmp_path, 1, **config)
    genesis = json.loads((path / "genesis.json").read_text())
    genesis["params"]["epoch_length"] = EPOCH_LENGTH
    genesis["validators"] += [{"address": a, "stake": s} for a, s in zip(OTHERS, (100, 50))]
    genesis["accounts"][0]["balance"] = 10**9
    write_json(path / "genesis.json", genesis)
    return load_home(path)


def run_chain(ledger, key, heights: int, evidence: dict[int, tuple[Evidence, ...]] | None = None) -> dict[int, dict]:
    """Apply `heights` blocks signed by `key`, bonding 1 more in every other epoch (a set change at
    every other boundary) and carrying `evidence[height]`; return each height's validator set as
    consensus saw it."""
    chain_id, seen, last, sequence = ledger.chain_id, {}, None, 0
    for height in range(1, heights + 1):
        vset = ledger.get_validator_set(height)
        seen[height] = vset.to_json()
        txs: tuple[bytes, ...] = ()
        if height % (2 * EPOCH_LENGTH) == 1:
            txs = (sign_tx(key, chain_id, sequence, [MsgBond(amount=1)]),)
            sequence += 1
        header = Header(
            chain_id=chain_id,
            height=height,
            time_ms=1_000 * height,
            last_block_id=last[0].id if last else "",
            last_commit_hash=compute_commit_hash(last[1] if last else None),
            txs_hash=compute_txs_hash(txs),
            app_hash=ledger.app.app_hash,
            validators_hash=vset.hash,
            proposer=vset.proposer(0),
            evidence_hash=compute_evidence_hash(carried := (evidence or {}).get(height, ())),
        )
        block = Block(header, txs, last[1] if last else None, carried)
        commit = Commit(height, 0, block.id, (sign_vote(key, chain_id, "precommit", height, 0, block.id, 0),))
        ledger.apply(block, commit)
        last = (block, commit)
    seen[heights + 1] = ledger.get_validator_set(heights + 1).to_json()
    return seen


def test_sets_are_stored_at_changes_and_checkpoints_and_every_height_reads_the_same_after_a_restart(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(node.ledger, "VALIDATOR_SET_CHECKPOINT", 7)
    home = make_home(tmp_path)
    with open_ledger(home) as ledger:
        seen = run_chain(ledger, home.validator_key, HEIGHTS)
        heights = ledger.store.get_validator_set_heights()
    powers = {h: [v["power"] for v in doc["validators"]] for h, doc in seen.items()}
    changes = {h for h in range(2, HEIGHTS + 2) if powers[h] != powers[h - 1]}
    assert changes == {EPOCH_LENGTH + 1, 3 * EPOCH_LENGTH + 1, 5 * EPOCH_LENGTH + 1, 7 * EPOCH_LENGTH + 1}
    assert heights == sorted({1} | changes | {h for h in range(1, HEIGHTS + 2) if h % 7 == 0})
    with open_ledger(home) as reopened:  # a restart: nothing cached, every set from the rows
        for height in sorted(seen, reverse=True):  # backwards: no set is stepped from a cached neighbour
            reopened._sets.clear()
            assert reopened.get_validator_set(height).to_json() == seen[height], height


def test_sets_older_than_the_retention_are_pruned_and_the_kept_heights_still_read_the_same(tmp_path):
    home = make_home(tmp_path, validator_set_retention=10)
    with open_ledger(home) as ledger:
        seen = run_chain(ledger, home.validator_key, HEIGHTS)
        heights = ledger.store.get_validator_set_heights()
    tip = HEIGHTS + 1
    assert 1 < heights[0] <= tip - 10 < heights[1]  # the row in force at the oldest kept height, then later ones
    with open_ledger(home) as reopened:
        for height in range(tip - 10, tip + 1):
            reopened._sets.clear()
            assert reopened.get_validator_set(height).to_json() == seen[height], height
        reopened._sets.clear()
        with pytest.raises(SyncError, match="no validator set"):
            reopened.get_validator_set(heights[0] - 1)


def test_evidence_a_block_commits_is_stored_with_it_on_a_node_no_gossip_reached(tmp_path):
    home = make_home(tmp_path)
    cheat = PrivateKey.from_name("ledger-other-0")
    chain_id = home.genesis["chain_id"]
    double_sign = make_evidence(
        sign_vote(cheat, chain_id, "prevote", 2, 0, "ab" * 32, 0),
        sign_vote(cheat, chain_id, "prevote", 2, 0, "cd" * 32, 0),
    )
    with open_ledger(home) as ledger:
        assert ledger.store.count_evidence() == 0
        run_chain(ledger, home.validator_key, 3, evidence={3: (double_sign,)})
        assert ledger.store.get_evidence() == [double_sign.to_json()]
        assert ledger.app.query(f"validator/{cheat.address}")["jailed"]


def test_the_counting_admit_counts_verified_signatures_good_or_bad_but_not_undecodable_bytes():
    key = PrivateKey.from_name("ledger-counter")
    good = sign_tx(key, "uoc-test", 0, [MsgBond(amount=1)])
    tx = decode_tx(good)
    forged = compute_tx_bytes(tx.sign_bytes, tx.pubkey, key.sign(b"another message"))
    admit = node.ledger.CountingAdmit()
    results = admit([good, forged, b"not a tx"])
    assert [getattr(r, "code", "ok") for r in results] == ["ok", "bad_signature", "malformed"]
    assert admit.verified == 2
