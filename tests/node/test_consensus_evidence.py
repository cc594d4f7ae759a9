"""Evidence in the consensus engine: valid(v) of a block with evidence (its face in the engine, the rest
through a real application), the bounded pending pool, proposers putting pending evidence in their
blocks, and double_sign_check_height."""

from __future__ import annotations

import dataclasses

import pytest

from node.blocks import Evidence, Proposal, Vote, make_evidence, sign_vote
from node.consensus import Broadcast, Consensus, Decide
from node.consensus.evidence_pool import (
    MAX_PENDING_EVIDENCE,
    MAX_PENDING_EVIDENCE_BYTES,
    MAX_PENDING_PER_VALIDATOR,
    EvidencePool,
)
from node.errors import InvalidMessage
from tests.consensus_harness import MempoolHost, get_key
from tests.helpers import ADDR, CHAIN_ID, KEYS, make_app, make_genesis, run_block
from tests.node.test_consensus_rules import NOW, TIMEOUTS, Rig, own, own_vote

X, Y = "56" * 32, "78" * 32


def vote(name: str, height: int, block_id: str | None, *, round: int = 0, type: str = "prevote", **kw) -> Vote:
    return sign_vote(kw.pop("key", KEYS[name]), kw.pop("chain_id", CHAIN_ID), type, height, round, block_id, NOW)


def evidence(name: str, height: int, *, round: int = 0, type: str = "prevote") -> Evidence:
    """`name` voted nil and X at (height, round, type)."""
    return make_evidence(
        vote(name, height, None, round=round, type=type), vote(name, height, X, round=round, type=type)
    )


# -- valid(v): the engine and a real application ---------------------------------------------------


def app_rig() -> tuple[Rig, object]:
    """A non-validating engine at height 5 over a real application at height 4: a, b, c, d validate,
    evidence is at most 2 blocks old, and c's double sign at height 3 was committed in block 4."""
    genesis = make_genesis({n: 10 for n in "abcd"}, {n: 1000 for n in "abcde"}, max_evidence_age_blocks=2)
    app = make_app(genesis)
    run_block(app)
    run_block(app)
    run_block(app)
    committed = [evidence("c", 3).to_json()]
    app.process_proposal(4, [], committed)
    app.finalize_block(4, [], committed)
    app.commit()
    rig = Rig(None, height=5)
    rig.engine.host = MempoolHost(app)
    return rig, app


def _wrong_signer() -> Evidence:
    """Votes that name a but are signed with b's key."""
    a, b = (dataclasses.replace(vote("b", 4, i), validator=ADDR["a"]) for i in (None, X))
    return make_evidence(a, b)


def _other_chain() -> Evidence:
    """A double sign for another chain id."""
    return make_evidence(vote("a", 4, None, chain_id="x"), vote("a", 4, X, chain_id="x"))


# (case, the block's evidence, the fault valid(v) reports — or InvalidMessage when the engine refuses
# the proposal as malformed before judging it)
CASES = [
    ("valid", lambda: (evidence("a", 4),), None),
    ("valid, two offences", lambda: (evidence("a", 3), evidence("b", 4, type="precommit")), None),
    ("wrong signer", lambda: (_wrong_signer(),), "not signed by its validator"),
    (
        "bad signature",
        lambda: (Evidence(vote("a", 4, None), dataclasses.replace(vote("a", 4, X), signature=b"\1" * 64)),),
        "not signed by its validator",
    ),
    ("signed for another chain", lambda: (_other_chain(),), "not signed by its validator"),
    ("same block id", lambda: (Evidence(vote("a", 4, X), vote("a", 4, X)),), InvalidMessage),
    ("different heights", lambda: (Evidence(vote("a", 3, None), vote("a", 4, X)),), InvalidMessage),
    ("different rounds", lambda: (Evidence(vote("a", 4, None), vote("a", 4, X, round=1)),), InvalidMessage),
    ("not in canonical order", lambda: (Evidence(vote("a", 4, X), vote("a", 4, None)),), InvalidMessage),
    ("too old", lambda: (evidence("a", 2),), "older than 2 blocks"),
    ("committed before", lambda: (evidence("c", 3),), "already committed"),
    ("one offence twice in the block", lambda: (evidence("a", 4), evidence("a", 4)), "one offence twice"),
    ("from the block's height", lambda: (evidence("a", 5),), "not from a height before 5"),
    ("not a validator", lambda: (evidence("e", 4),), "no tokens bonded"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "build", "fault"), CASES, ids=[c[0] for c in CASES])
def test_valid_v_judges_a_blocks_evidence(case, build, fault):
    rig, _ = app_rig()
    block = rig.block(0, evidence=build())
    proposal = rig.proposal(0, block)
    if fault is InvalidMessage:
        with pytest.raises(InvalidMessage):
            rig.engine.on_message(proposal, NOW)
        assert rig.engine.get_known_block(block.id) is None
        return
    rig.engine.on_message(proposal, NOW)
    got = rig.engine.get_block_fault(block)
    assert (got is None) if fault is None else (got is not None and fault in got), got


def test_a_block_whose_evidence_does_not_match_its_header_is_malformed():
    rig, _ = app_rig()
    block = rig.block(0, evidence=(evidence("a", 4),))
    swapped = dataclasses.replace(block, evidence=(evidence("b", 4),))
    with pytest.raises(InvalidMessage, match="evidence hash"):
        rig.engine.on_message(rig.proposal(0, swapped), NOW)


# -- the pending pool ------------------------------------------------------------------------------


def test_the_pool_keeps_one_piece_per_offence_oldest_first_and_forgets_committed_and_old_ones():
    pool = EvidencePool()
    late, early, other = evidence("a", 7), evidence("b", 3), evidence("a", 7, type="precommit")
    assert pool.add(late) and pool.add(early) and pool.add(other)
    again = make_evidence(vote("a", 7, X), vote("a", 7, Y))  # the same offence, another pair
    assert not pool.add(again) and not pool.add(late)
    assert pool.pending() == (early, *sorted((late, other), key=lambda e: e.key))
    assert pool.bytes == late.size + early.size + other.size
    pool.remove([late])
    pool.prune(4)
    assert pool.pending() == (other,) and pool.bytes == other.size


def test_an_equivocators_offences_piled_up_during_a_partition_are_all_kept():
    """Regression: seen in the byzantine runs, offences at heights 9 and 10 were pending while a partition
    stopped commits, and the pool (4 per validator) dropped the round-0 pair of height 11 on arrival."""
    pool = EvidencePool()
    offences = [(h, r, t) for h in (9, 10, 11) for r in (0, 1) for t in ("prevote", "precommit")]
    assert all(pool.add(evidence("a", h, round=r, type=t)) for h, r, t in offences)
    assert len(pool) == 12


def test_the_pool_is_bounded_per_validator_in_count_and_in_bytes():
    pool = EvidencePool()
    assert all(pool.add(evidence("a", h)) for h in range(1, MAX_PENDING_PER_VALIDATOR + 1))
    assert not pool.add(evidence("a", 99))  # one validator cannot fill the pool
    pool = EvidencePool()
    i = 0
    while len(pool) < MAX_PENDING_EVIDENCE:
        key = get_key(f"v{i // MAX_PENDING_PER_VALIDATOR}")
        piece = make_evidence(
            sign_vote(key, CHAIN_ID, "prevote", 1 + i, 0, None, NOW),
            sign_vote(key, CHAIN_ID, "prevote", 1 + i, 0, X, NOW),
        )
        assert pool.add(piece)
        i += 1
    assert not pool.add(evidence("b", 1)) and len(pool) == MAX_PENDING_EVIDENCE
    assert pool.bytes <= MAX_PENDING_EVIDENCE_BYTES


# -- proposers -------------------------------------------------------------------------------------


def test_a_proposer_puts_the_pending_evidence_the_host_selects_in_its_block_and_drops_what_it_refuses():
    proposer = Rig(None, height=2, start=False).proposer(0)
    rig = Rig(proposer, height=2, start=False)
    kept, refused = evidence("b", 1), evidence("c", 1)
    rig.host.invalid_evidence = {refused.key}
    assert rig.engine.add_evidence(kept) and rig.engine.add_evidence(refused)
    actions = rig.engine.start_height(
        height=2,
        validator_set=rig.vset,
        last_commit=rig.last_commit,
        last_block_id=rig.last_block_id,
        last_time_ms=5_000,
        app_hash="aa" * 32,
        now_ms=NOW,
        last_validator_set=rig.vset,
    )
    (proposal,) = own(actions, Proposal)
    assert proposal.block.evidence == (kept,) and rig.engine.get_block_fault(proposal.block) is None
    assert rig.engine.evidence == (kept,)  # pending until a block commits it
    rig.engine.remove_evidence([kept])
    assert rig.engine.evidence == ()


def test_a_double_sign_enters_the_pool_once_and_a_full_share_of_one_validator_stops_there():
    rig = Rig("a")
    for round in range(MAX_PENDING_PER_VALIDATOR + 2):
        rig.send(vote("b", 1, X, round=round), vote("b", 1, Y, round=round))
    assert len(rig.engine.evidence) == MAX_PENDING_PER_VALIDATOR


# -- double_sign_check_height ----------------------------------------------------------------------


def test_an_engine_watching_after_a_lost_sign_state_signs_nothing_until_it_has_seen_n_heights_decided():
    rig = Rig("a", start=False)
    rig.engine = Consensus(
        chain_id=CHAIN_ID, signer=KEYS["a"], host=rig.host, timeouts=TIMEOUTS, double_sign_check_height=1
    )
    actions = rig.engine.start_height(
        height=1,
        validator_set=rig.vset,
        last_commit=None,
        last_block_id="",
        last_time_ms=5_000,
        app_hash="aa" * 32,
        now_ms=NOW,
    )
    block = rig.block(0)
    actions += rig.send(rig.proposal(0, block))
    actions += rig.votes("bcd", "prevote", 0, block.id)
    actions += rig.timeout("propose")
    assert not [a for a in actions if isinstance(a, Broadcast)]  # no proposal, no prevote, no precommit
    assert rig.engine.sign_state.signed == ()
    actions = rig.votes("bcd", "precommit", 0, block.id)
    assert any(isinstance(a, Decide) for a in actions) and rig.engine.heights_to_watch == 0
    assert own_vote(actions, "prevote") is None
