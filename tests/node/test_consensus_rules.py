"""The Tendermint rules of CONSENSUS.md, one engine driven by hand-made signed messages.

Four validators a, b, c, d of power 10 (P = 40, +2/3 = three of them) unless a test says otherwise.
The engine under test is validator "a"; proposer(1, r) for r = 0, 1, 2, 3 is b, c, a, d.
"""

from __future__ import annotations

import dataclasses
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.tx import MsgSend
from node.blocks import (
    Block,
    Commit,
    Header,
    Proposal,
    Vote,
    compute_commit_hash,
    compute_evidence_hash,
    compute_txs_hash,
    sign_proposal,
    sign_vote,
)
from node.consensus import (
    Broadcast,
    Consensus,
    Decide,
    FetchBlock,
    Persist,
    RecordEvidence,
    ScheduleTimeout,
    SignState,
    Timeout,
    Timeouts,
    ValidatorSet,
    compute_block_time,
    compute_joiner_priority,
    compute_median_time,
    is_one_third,
    is_quorum,
    verify_commit,
)
from node.errors import DoubleSignRefused, InvalidCommit, InvalidMessage
from tests.consensus_harness import MempoolHost, get_key
from tests.helpers import ADDR, CHAIN_ID, KEYS, make_app, make_genesis, signed

APP_HASH = "aa" * 32
NOW = 10_000
NAME = {address: name for name, address in ADDR.items()}
TIMEOUTS = Timeouts()


class FakeHost:
    """A host whose mempool and application verdict the test sets."""

    def __init__(self) -> None:
        self.txs: list[bytes] = []
        self.fault: str | None = None
        self.validated: list[str] = []
        self.invalid_evidence: set[str] = set()  # keys select_evidence reports as never committable

    def select_evidence(self, height: int, pending: tuple) -> tuple[list, list]:
        included = [e for e in pending if e.key not in self.invalid_evidence]
        return included, [e for e in pending if e.key in self.invalid_evidence]

    def reap_txs(self, height: int, evidence: tuple = ()) -> list[bytes]:
        return list(self.txs)

    def validate_block(self, block: Block) -> str | None:
        self.validated.append(block.id)
        return self.fault


class Rig:
    """One engine at height 1 (or 2, with a last commit) and helpers to feed it signed messages."""

    def __init__(
        self,
        me: str | None = "a",
        powers: dict[str, int] | None = None,
        *,
        height: int = 1,
        restored: SignState | None = None,
        start: bool = True,
    ) -> None:
        self.powers = powers or {n: 10 for n in "abcd"}
        self.vset = ValidatorSet.from_powers([(ADDR[n], p) for n, p in self.powers.items()])
        self.host = FakeHost()
        self.engine = Consensus(chain_id=CHAIN_ID, signer=KEYS[me] if me else None, host=self.host, timeouts=TIMEOUTS)
        self.height = height
        self.last_block_id = "" if height == 1 else "12" * 32
        self.last_commit = None if height == 1 else self.commit_for(height - 1, 0, self.last_block_id, "abc")
        self.restored = restored
        self.start_actions = self.start() if start else []

    def start(self) -> list:
        """Start the engine at the rig's height (its actions)."""
        return self.engine.start_height(
            height=self.height,
            validator_set=self.vset,
            last_commit=self.last_commit,
            last_block_id=self.last_block_id,
            last_time_ms=5_000,
            app_hash=APP_HASH,
            now_ms=NOW,
            restored=self.restored,
            last_validator_set=self.vset,
        )

    def proposer(self, round: int) -> str:
        return NAME[self.vset.proposer(round)]

    def commit_for(self, height: int, round: int, block_id: str, names: str) -> Commit:
        votes = [sign_vote(KEYS[n], CHAIN_ID, "precommit", height, round, block_id, NOW) for n in names]
        return Commit(height, round, block_id, tuple(sorted(votes, key=lambda v: v.validator)))

    def block(self, round: int = 0, *, txs: tuple[bytes, ...] = (), evidence: tuple = (), **changes) -> Block:
        """A valid block proposed at `round` (header fields may be overridden)."""
        fields = dict(
            chain_id=CHAIN_ID,
            height=self.height,
            time_ms=5_000 if self.height == 1 else NOW,  # BFT time: genesis time, else the last commit's median
            last_block_id=self.last_block_id,
            last_commit_hash=compute_commit_hash(self.last_commit),
            txs_hash=compute_txs_hash(txs),
            app_hash=APP_HASH,
            validators_hash=self.vset.hash,
            proposer=ADDR[self.proposer(round)],
            evidence_hash=compute_evidence_hash(evidence),
        )
        fields.update(changes)
        return Block(Header(**fields), txs, self.last_commit, evidence)

    def proposal(self, round: int = 0, block: Block | None = None, pol_round: int = -1, by: str | None = None):
        block = block if block is not None else self.block(round)
        return sign_proposal(KEYS[by or self.proposer(round)], CHAIN_ID, self.height, round, pol_round, block, NOW)

    def vote(self, name: str, type: str, round: int, block_id: str | None, **kw) -> Vote:
        height = kw.pop("height", self.height)
        return sign_vote(KEYS[name], kw.pop("chain_id", CHAIN_ID), type, height, round, block_id, NOW)

    def send(self, *msgs, now: int = NOW) -> list:
        actions = []
        for msg in msgs:
            actions += self.engine.on_message(msg, now)
        return actions

    def votes(self, names: str, type: str, round: int, block_id: str | None) -> list:
        return self.send(*(self.vote(n, type, round, block_id) for n in names))

    def timeout(self, step: str, round: int | None = None) -> list:
        return self.engine.on_timeout(Timeout(self.height, self.engine.round if round is None else round, step), NOW)


def own(actions: list, kind: type = Vote) -> list:
    """Our broadcast messages of one kind."""
    return [a.message for a in actions if isinstance(a, Broadcast) and isinstance(a.message, kind)]


def own_vote(actions: list, type: str) -> Vote | None:
    votes = [v for v in own(actions) if v.type == type]
    assert len(votes) <= 1
    return votes[0] if votes else None


def timeouts_of(actions: list) -> list[tuple[str, int, int]]:
    return [(a.timeout.step, a.timeout.round, a.delay_ms) for a in actions if isinstance(a, ScheduleTimeout)]


def assert_persisted_before_broadcast(actions: list) -> None:
    """Every Broadcast of our own message follows a Persist that records it."""
    persisted: SignState | None = None
    for action in actions:
        if isinstance(action, Persist):
            persisted = action.sign_state
        elif isinstance(action, Broadcast):
            msg = action.message
            step = msg.type if isinstance(msg, Vote) else "propose"
            block_id = msg.block_id if isinstance(msg, Vote) else msg.block.id
            assert persisted is not None
            record = persisted.get_signed(step)
            assert record is not None and (record.height, record.round, record.block_id) == (
                msg.height,
                msg.round,
                block_id,
            )


# --------------------------------------------------------------------------------------------
# Quorum arithmetic and proposer selection
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "power,total,quorum,third",
    [(20, 30, False, True), (21, 30, True, True), (10, 30, False, False), (11, 30, False, True), (27, 40, True, True)],
)
def test_quorum_is_strictly_more_than_two_thirds_and_one_third_strictly_more_than_a_third(power, total, quorum, third):
    assert is_quorum(power, total) is quorum
    assert is_one_third(power, total) is third


def test_exactly_two_thirds_of_precommits_do_not_commit():
    rig = Rig(powers={"a": 10, "b": 10, "c": 10})
    block = rig.block(0)
    rig.send(rig.proposal(0, block))
    actions = rig.votes("bc", "precommit", 0, block.id)
    assert not any(isinstance(a, Decide) for a in actions) and rig.engine.decided is None


def test_proposer_selection_is_proportional_to_power_over_many_heights():
    powers = {"a": 1, "b": 2, "c": 3, "d": 4}
    vset = ValidatorSet.from_powers([(ADDR[n], p) for n, p in powers.items()])
    counts: Counter[str] = Counter()
    for _ in range(1000):
        counts[NAME[vset.proposer(0)]] += 1
        vset = vset.next_height(list(vset.powers), commit_round=0)
    assert counts == {n: 100 * p for n, p in powers.items()}


@settings(max_examples=40, deadline=None, derandomize=True)
@given(st.lists(st.integers(1, 40), min_size=1, max_size=7))
def test_over_p_heights_each_validator_proposes_exactly_its_power_times_and_rounds_follow_the_same_order(stakes):
    vset = ValidatorSet.from_powers([(get_key(f"v{i}").address, p) for i, p in enumerate(stakes)])
    start = vset
    counts: Counter[str] = Counter()
    for _ in range(vset.total_power):
        counts[vset.proposer(0)] += 1
        vset = vset.next_height(list(vset.powers), commit_round=0)
    assert counts == dict(vset.powers)
    assert [start.proposer(r) for r in range(5)] == [_advance(start, r).proposer(0) for r in range(5)]


def test_proposer_of_later_rounds_continues_the_round_robin_and_ties_go_to_the_smaller_address():
    vset = ValidatorSet.from_powers([(ADDR[n], 10) for n in "abcd"])
    first = sorted(ADDR[n] for n in "abcd")[0]
    assert vset.proposer(0) == first
    assert sorted(vset.proposer(r) for r in range(4)) == sorted(ADDR[n] for n in "abcd")
    assert [vset.proposer(r) for r in range(4)] == [vset.proposer(r) for r in range(4, 8)]


def test_a_joining_validator_starts_at_minus_one_and_an_eighth_of_the_total_power():
    assert compute_joiner_priority(80) == -90
    vset = ValidatorSet.from_powers([(ADDR[n], 10) for n in "abc"])
    grown = vset.next_height([(ADDR[n], 10) for n in "abcd"], commit_round=0)
    prios = dict(grown.priorities)
    # after height 1's step: proposer b at 10 − 30 = −20, a and c at 10; d joins at −1.125·40 = −45;
    # then all are centred by the mean −45/4 → −11 (toward zero)
    assert prios == {ADDR["b"]: -9, ADDR["a"]: 21, ADDR["c"]: 21, ADDR["d"]: -34}
    assert abs(sum(prios.values())) < len(prios)  # centred
    first_turn = next(h for h in range(1, 50) if _advance(grown, h).proposer(0) == ADDR["d"])
    assert first_turn >= 3  # the joiner waits its turn instead of proposing at once


def _advance(vset: ValidatorSet, heights: int) -> ValidatorSet:
    for _ in range(heights):
        vset = vset.next_height(list(vset.powers), commit_round=0)
    return vset


def test_priorities_stay_centred_and_within_twice_the_total_power_with_skewed_powers():
    vset = ValidatorSet.from_powers([(ADDR["a"], 1), (ADDR["b"], 1_000_000)])
    for h in range(200):
        vset = vset.next_height([(ADDR["a"], 1), (ADDR["b"], 1_000_000 if h < 100 else 3)], commit_round=0)
        prios = [p for _, p in vset.priorities]
        assert abs(sum(prios)) < len(prios)
        assert max(prios) - min(prios) <= 2 * vset.total_power


def test_validator_set_round_trips_through_json_and_its_hash_ignores_priorities():
    vset = _advance(ValidatorSet.from_powers([(ADDR[n], p) for n, p in zip("abc", (1, 2, 3))]), 5)
    assert ValidatorSet.from_json(vset.to_json()) == vset
    assert vset.hash == ValidatorSet.from_powers(list(vset.powers)).hash
    assert vset.hash != ValidatorSet.from_powers([(ADDR["a"], 9)]).hash


# --------------------------------------------------------------------------------------------
# verify_commit
# --------------------------------------------------------------------------------------------

BLOCK_ID = "34" * 32


def _commit(precommits: list[Vote], block_id: str = BLOCK_ID) -> Commit:
    return Commit(3, 1, block_id, tuple(precommits))


def _pc(name: str, block_id: str | None = BLOCK_ID, **kw) -> Vote:
    return sign_vote(
        KEYS[name], kw.get("chain_id", CHAIN_ID), kw.get("type", "precommit"), kw.get("height", 3), kw.get("round", 1),
        block_id, NOW,
    )  # fmt: skip


VSET4 = ValidatorSet.from_powers([(ADDR[n], 10) for n in "abcd"])


def test_verify_commit_accepts_three_of_four_valid_precommits():
    verify_commit(CHAIN_ID, _commit([_pc("a"), _pc("b"), _pc("c")]), VSET4)


@pytest.mark.parametrize(
    "precommits",
    [
        [_pc("a"), _pc("b")],
        [_pc("a"), _pc("a"), _pc("b")],
        [_pc("a"), _pc("b"), dataclasses.replace(_pc("c"), signature=_pc("d").signature)],
        [_pc("a"), _pc("b"), _pc("c", chain_id="other-chain")],
        [_pc("a"), _pc("b"), _pc("c", "56" * 32)],
        [_pc("a"), _pc("b"), _pc("c", None)],
        [_pc("a"), _pc("b"), _pc("c", type="prevote")],
        [_pc("a"), _pc("b"), _pc("c", round=2)],
        [_pc("a"), _pc("b"), _pc("c", height=4)],
        [_pc("a"), _pc("b"), _pc("e")],
        [_pc("a"), _pc("b"), dataclasses.replace(_pc("c"), validator=ADDR["d"])],
        [],
    ],
    ids=[
        "missing-power",
        "duplicate-signer-counted-once",
        "bad-signature",
        "signed-for-another-chain",
        "wrong-block-id",
        "nil-precommit",
        "prevote-not-precommit",
        "wrong-round",
        "wrong-height",
        "signer-not-in-set",
        "pubkey-not-the-validators",
        "empty",
    ],
)
def test_verify_commit_rejects(precommits):
    with pytest.raises(InvalidCommit):
        verify_commit(CHAIN_ID, _commit(precommits), VSET4)


# --------------------------------------------------------------------------------------------
# StartRound and proposing
# --------------------------------------------------------------------------------------------


def test_start_round_as_a_non_proposer_schedules_timeout_propose():
    rig = Rig("a")
    assert (rig.engine.height, rig.engine.round, rig.engine.step) == (1, 0, "propose")
    assert timeouts_of(rig.start_actions) == [("propose", 0, TIMEOUTS.propose_ms)]
    assert own(rig.start_actions, Proposal) == []


def test_start_round_as_the_proposer_proposes_a_new_block_from_the_mempool_and_prevotes_it():
    rig = Rig("b", start=False)
    rig.host.txs = [b"tx-1", b"tx-2"]
    actions = rig.engine.start_height(
        height=1, validator_set=rig.vset, last_commit=None, last_block_id="", last_time_ms=NOW + 50,
        app_hash=APP_HASH, now_ms=NOW,
    )  # fmt: skip
    [proposal] = own(actions, Proposal)
    header = proposal.block.header
    assert (proposal.height, proposal.round, proposal.pol_round) == (1, 0, -1)
    assert proposal.block.txs == (b"tx-1", b"tx-2") and header.txs_hash == compute_txs_hash([b"tx-1", b"tx-2"])
    assert header.time_ms == NOW + 50  # BFT time: the genesis time at height 1, whatever the clock
    assert (header.app_hash, header.validators_hash, header.proposer) == (APP_HASH, rig.vset.hash, ADDR["b"])
    assert proposal.is_signed_by_proposer(CHAIN_ID)
    assert own_vote(actions, "prevote").block_id == proposal.block.id
    assert_persisted_before_broadcast(actions)


def test_the_proposer_re_proposes_its_valid_value_with_its_valid_round():
    rig = Rig("a")  # a proposes round 2
    block = rig.block(0)
    rig.send(rig.proposal(0, block))
    rig.votes("bcd", "prevote", 0, block.id)  # polka at round 0: a locks and sets validValue
    assert rig.engine.sign_state.valid_round == 0
    rig.votes("bcd", "precommit", 1, None)  # +1/3 at round 1 -> skip there; +2/3 precommits -> timeout
    actions = rig.timeout("precommit", 1)
    [proposal] = own(actions, Proposal)
    assert (proposal.round, proposal.pol_round, proposal.block.id) == (2, 0, block.id)


def _re_proposal(actions: list) -> Broadcast:
    [broadcast] = [a for a in actions if isinstance(a, Broadcast) and isinstance(a.message, Proposal)]
    return broadcast


def test_a_re_proposal_carries_its_proof_of_lock_and_a_validator_that_missed_the_round_prevotes_it():
    """Regression (a chaos run halted): nobody re-sends an old round's votes, so a validator that missed round
    0 could never accept a re-proposal of its polka's block without the prevotes travelling with it."""
    locker = Rig("a")  # a proposes round 2
    block = locker.block(0)
    locker.send(locker.proposal(0, block))  # a prevotes it
    locker.votes("bd", "prevote", 0, block.id)  # with b and d: a polka; a locks
    assert [v.validator for v in locker.engine.sign_state.valid_votes] == sorted(ADDR[n] for n in "abd")
    _at_round(locker, 1)
    locker.timeout("propose")
    locker.timeout("prevote")
    broadcast = _re_proposal(locker.timeout("precommit"))
    assert (broadcast.message.round, broadcast.message.pol_round) == (2, 0)
    assert {(v.type, v.round, v.block_id) for v in broadcast.proof} == {("prevote", 0, block.id)}
    lagger = Rig("c")  # saw nothing of round 0
    _at_round(lagger, 2)
    assert own_vote(lagger.send(broadcast.message), "prevote") is None  # the proposal alone: rule 2 waits
    assert own_vote(lagger.send(*broadcast.proof), "prevote").block_id == block.id


def test_after_a_restart_the_re_proposal_still_carries_the_proof_of_lock_kept_in_the_sign_state():
    base = Rig("a")
    block = base.block(0)
    proof = tuple(base.vote(n, "prevote", 0, block.id) for n in "abd")
    state = SignState(1, (), 0, block, 0, block, proof).with_signed(1, 2, "prevote", None)
    restarted = Rig("a", restored=state)  # resumes at round 2, where a proposes
    broadcast = _re_proposal(restarted.start_actions)
    assert broadcast.message.pol_round == 0 and broadcast.proof == proof
    assert_persisted_before_broadcast(restarted.start_actions)


# --------------------------------------------------------------------------------------------
# Rule 1: PROPOSAL(h, r, v, −1)
# --------------------------------------------------------------------------------------------


def _locked_state(rig: Rig, round: int, block: Block) -> SignState:
    return SignState(height=1, locked_round=round, locked_block=block, valid_round=round, valid_block=block)


@pytest.mark.parametrize(
    "change,host_fault",
    [
        ({}, None),
        ({"chain_id": "other"}, None),
        ({"height": 2}, None),
        ({"last_block_id": "12" * 32}, None),
        ({"time_ms": 5_001}, None),
        ({"app_hash": "bb" * 32}, None),
        ({"validators_hash": "00" * 32}, None),
        ({"proposer": ADDR["c"]}, None),
        ({"proposer": ADDR["e"]}, None),
        ({}, "tx 1 rejected: bad sequence"),
    ],
    ids=[
        "valid",
        "wrong-chain-id",
        "wrong-height",
        "wrong-last-block",
        "time-not-the-bft-time",
        "wrong-app-hash",
        "wrong-validators-hash",
        "proposer-not-of-this-round",
        "proposer-not-a-validator",
        "application-rejects",
    ],
)
def test_rule_1_prevotes_a_valid_proposal_and_nil_for_an_invalid_one(change, host_fault):
    rig = Rig("a")
    rig.host.fault = host_fault
    block = rig.block(0, **change)
    if change.get("height") == 2:
        block = dataclasses.replace(block, header=dataclasses.replace(block.header, height=1, time_ms=4_000))
    actions = rig.send(rig.proposal(0, block))
    vote = own_vote(actions, "prevote")
    expected = block.id if not change and host_fault is None else None
    assert vote is not None and vote.block_id == expected and vote.round == 0
    assert rig.engine.step == "prevote"
    assert_persisted_before_broadcast(actions)


@pytest.mark.parametrize("count,valid", [(2, True), (3, False)], ids=["fits-max-block-txs", "over-max-block-txs"])
def test_rule_1_prevotes_nil_for_a_block_over_the_genesis_max_block_txs(count, valid):
    """Regression: validity checked the hard-coded 20,000 txs, not the params (here max_block_txs = 2)."""
    rig = Rig("a")
    app = make_app(make_genesis({n: 10 for n in "abcd"}, max_block_txs=2))
    rig.engine.host = MempoolHost(app)
    block = rig.block(0, txs=tuple(signed("a", i, MsgSend(ADDR["b"], 1)) for i in range(count)))
    vote = own_vote(rig.send(rig.proposal(0, block)), "prevote")
    assert vote is not None and vote.block_id == (block.id if valid else None)


def test_rule_1_at_height_2_requires_a_last_commit_with_two_thirds_of_the_previous_set():
    rig = Rig("a", height=2)
    good = rig.block(0)
    assert own_vote(rig.send(rig.proposal(0, good)), "prevote").block_id == good.id
    rig = Rig("a", height=2)
    weak = rig.commit_for(1, 0, rig.last_block_id, "ab")
    block = rig.block(0, last_commit_hash=compute_commit_hash(weak))
    block = dataclasses.replace(block, last_commit=weak)
    assert own_vote(rig.send(rig.proposal(0, block)), "prevote").block_id is None


@pytest.mark.parametrize("same_block,expect_block", [(True, True), (False, False)], ids=["locked-on-v", "locked-other"])
def test_rule_1_a_locked_validator_prevotes_only_its_locked_value(same_block, expect_block):
    base = Rig("a")
    locked = base.block(0)
    other = base.block(1, txs=(b"other",))
    rig = Rig("a", restored=_locked_state(base, 0, locked if same_block else other))
    proposal_block = locked if same_block else rig.block(0)
    vote = own_vote(rig.send(rig.proposal(0, proposal_block)), "prevote")
    assert vote.block_id == (proposal_block.id if expect_block else None)


# --------------------------------------------------------------------------------------------
# Rule 2: PROPOSAL(h, r, v, vr) with +2/3 PREVOTE(h, vr, id(v))
# --------------------------------------------------------------------------------------------


def _at_round(rig: Rig, round: int) -> None:
    """Move the engine to `round` through precommit timeouts (nil votes)."""
    while rig.engine.round < round:
        rig.timeout("propose")
        rig.timeout("prevote")
        rig.timeout("precommit")


@pytest.mark.parametrize(
    "locked_round,locked_is_v,expect_v",
    [(-1, False, True), (0, False, True), (1, False, True), (2, False, False), (2, True, True)],
    ids=["unlocked", "locked-before-vr-on-other", "locked-at-vr-on-other", "locked-after-vr-on-other", "locked-on-v"],
)
def test_rule_2_a_proof_of_lock_unlocks_only_a_lock_not_newer_than_its_round(locked_round, locked_is_v, expect_v):
    base = Rig("a")
    v = base.block(1)  # proposed by c at round 1, re-proposed by d at round 3 with vr = 1
    other = base.block(0)
    state = None
    if locked_round >= 0:
        state = SignState(height=1, locked_round=locked_round, locked_block=v if locked_is_v else other)
    rig = Rig("a", restored=state)
    _at_round(rig, 3)
    rig.votes("bcd", "prevote", 1, v.id)
    actions = rig.send(rig.proposal(3, v, pol_round=1))
    assert own_vote(actions, "prevote").block_id == (v.id if expect_v else None)


def test_rule_2_waits_for_the_proof_of_lock_then_timeout_propose_prevotes_nil():
    rig = Rig("a")
    _at_round(rig, 1)
    v = rig.block(0)
    actions = rig.send(rig.proposal(1, v, pol_round=0))
    assert own_vote(actions, "prevote") is None and rig.engine.step == "propose"
    assert own_vote(rig.timeout("propose"), "prevote").block_id is None


def test_rule_2_fires_when_the_proof_of_lock_arrives_after_the_proposal():
    rig = Rig("a")
    _at_round(rig, 1)
    v = rig.block(0)
    rig.send(rig.proposal(1, v, pol_round=0))
    actions = rig.votes("bcd", "prevote", 0, v.id)
    assert own_vote(actions, "prevote").block_id == v.id


# --------------------------------------------------------------------------------------------
# Rules 3–6
# --------------------------------------------------------------------------------------------


def test_rule_3_any_two_thirds_of_prevotes_schedule_timeout_prevote_once():
    rig = Rig("a")
    block = rig.block(0)
    rig.send(rig.proposal(0, block))  # a prevotes block
    actions = rig.send(rig.vote("b", "prevote", 0, None), rig.vote("c", "prevote", 0, "56" * 32))
    assert timeouts_of(actions) == [("prevote", 0, TIMEOUTS.prevote_ms)]
    assert timeouts_of(rig.send(rig.vote("d", "prevote", 0, None))) == []


def test_rule_4_a_polka_locks_and_precommits_the_block_and_sets_the_valid_value():
    rig = Rig("a")
    block = rig.block(0)
    rig.send(rig.proposal(0, block))
    actions = rig.votes("bc", "prevote", 0, block.id)
    vote = own_vote(actions, "precommit")
    assert vote.block_id == block.id and rig.engine.step == "precommit"
    state = rig.engine.sign_state
    assert (state.locked_round, state.locked_block, state.valid_round, state.valid_block) == (0, block, 0, block)
    persist = [a for a in actions if isinstance(a, Persist)][-1]
    assert persist.sign_state.locked_block == block  # the lock is durable before the precommit leaves
    assert_persisted_before_broadcast(actions)


def test_rule_4_after_precommitting_nil_only_updates_the_valid_value_and_persists_it():
    rig = Rig("a")
    block = rig.block(0)
    rig.send(rig.proposal(0, block))
    rig.send(rig.vote("b", "prevote", 0, None), rig.vote("c", "prevote", 0, block.id))
    assert own_vote(rig.timeout("prevote"), "precommit").block_id is None
    actions = rig.votes("d", "prevote", 0, block.id)
    assert own(actions) == [] and [type(a) for a in actions] == [Persist]
    state = rig.engine.sign_state
    assert (state.locked_round, state.valid_round, state.valid_block) == (-1, 0, block)


def test_rule_4_needs_the_proposal_a_polka_without_it_does_not_lock():
    rig = Rig("a")
    block = rig.block(0)
    rig.timeout("propose")
    actions = rig.votes("bcd", "prevote", 0, block.id)
    assert own_vote(actions, "precommit") is None and rig.engine.sign_state.locked_round == -1


def test_rule_5_two_thirds_of_nil_prevotes_precommit_nil():
    rig = Rig("a")
    rig.timeout("propose")
    actions = rig.votes("bc", "prevote", 0, None)
    assert own_vote(actions, "precommit").block_id is None and rig.engine.step == "precommit"


def test_rule_6_any_two_thirds_of_precommits_schedule_timeout_precommit_once():
    rig = Rig("a")
    actions = rig.send(rig.vote("b", "precommit", 0, None), rig.vote("c", "precommit", 0, "56" * 32))
    actions += rig.send(rig.vote("d", "precommit", 0, None))
    assert timeouts_of(actions) == [("precommit", 0, TIMEOUTS.precommit_ms)]


# --------------------------------------------------------------------------------------------
# Rule 7: commit
# --------------------------------------------------------------------------------------------


def test_rule_7_commits_a_valid_block_with_two_thirds_of_precommits_of_any_round():
    rig = Rig("a")
    _at_round(rig, 2)
    block = rig.block(0)
    rig.send(rig.proposal(0, block))
    actions = rig.votes("bcd", "precommit", 0, block.id)
    [decide] = [a for a in actions if isinstance(a, Decide)]
    assert decide.block == block and (decide.commit.height, decide.commit.round) == (1, 0)
    assert [v.validator for v in decide.commit.precommits] == sorted(ADDR[n] for n in "bcd")
    verify_commit(CHAIN_ID, decide.commit, rig.vset)
    assert rig.engine.step == "commit" and rig.engine.decided == block
    assert rig.send(rig.vote("d", "prevote", 2, None)) == []  # a decided height ignores further messages


def test_rule_7_fetches_a_missing_block_once_and_commits_it_when_it_arrives():
    rig = Rig("a")
    block = rig.block(0)
    actions = rig.votes("bcd", "precommit", 0, block.id)
    assert [a for a in actions if isinstance(a, FetchBlock)] == [FetchBlock(1, block.id)]
    assert rig.engine.on_block(rig.block(0, txs=(b"other",)), NOW) == []  # not the block asked for
    [decide] = rig.engine.on_block(block, NOW)
    assert isinstance(decide, Decide) and decide.block == block


def test_rule_7_does_not_commit_an_invalid_block_even_with_two_thirds_of_precommits():
    rig = Rig("a")
    rig.host.fault = "tx rejected"
    block = rig.block(0)
    rig.send(rig.proposal(0, block))
    actions = rig.votes("bcd", "precommit", 0, block.id)
    assert not any(isinstance(a, Decide) for a in actions)


def test_on_commit_decides_a_block_whose_commit_verifies_and_rejects_a_commit_without_two_thirds():
    rig = Rig("a")
    block = rig.block(0)
    weak = rig.commit_for(1, 0, block.id, "bc")
    with pytest.raises(InvalidMessage):
        rig.engine.on_commit(block, weak, NOW)
    with pytest.raises(InvalidMessage):
        rig.engine.on_commit(rig.block(0, txs=(b"other",)), rig.commit_for(1, 0, block.id, "bcd"), NOW)
    assert rig.engine.decided is None
    [decide] = rig.engine.on_commit(block, rig.commit_for(1, 3, block.id, "bcd"), NOW)
    assert isinstance(decide, Decide) and decide.block == block and rig.engine.step == "commit"


def test_a_non_validator_follows_and_decides_without_signing():
    rig = Rig(None)
    block = rig.block(0)
    actions = rig.send(rig.proposal(0, block))
    actions += rig.votes("bcd", "prevote", 0, block.id) + rig.votes("bcd", "precommit", 0, block.id)
    assert own(actions) == [] and own(actions, Proposal) == []
    assert rig.engine.decided == block


# --------------------------------------------------------------------------------------------
# Rule 8 and the timeouts
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("names,skips", [("b", False), ("bc", True)], ids=["exactly-one-third", "more-than-one-third"])
def test_rule_8_messages_from_more_than_a_third_at_a_higher_round_start_that_round(names, skips):
    rig = Rig("a", powers={"a": 10, "b": 10, "c": 10})
    actions = rig.votes(names, "prevote", 5, None)
    assert rig.engine.round == (5 if skips else 0)
    if skips and rig.proposer(5) == "a":
        assert [p.round for p in own(actions, Proposal)] == [5]
    elif skips:
        assert ("propose", 5, TIMEOUTS.propose_ms + 5 * TIMEOUTS.propose_delta_ms) in timeouts_of(actions)


@pytest.mark.parametrize(
    "step,round,expect",
    [
        ("propose", 0, 100 + 10 * 0),
        ("propose", 3, 100 + 10 * 3),
        ("prevote", 2, 20 + 5 * 2),
        ("precommit", 4, 30 + 7 * 4),
        ("commit", 9, 1000),
    ],
)
def test_timeouts_grow_linearly_with_the_round(step, round, expect):
    timeouts = Timeouts(
        propose_ms=100, propose_delta_ms=10, prevote_ms=20, prevote_delta_ms=5, precommit_ms=30, precommit_delta_ms=7,
        commit_ms=1000,
    )  # fmt: skip
    assert timeouts.get_delay(step, round) == expect


def test_timeout_propose_prevotes_nil_only_while_still_at_that_height_round_and_step():
    rig = Rig("a")
    assert rig.engine.on_timeout(Timeout(1, 1, "propose"), NOW) == []
    assert rig.engine.on_timeout(Timeout(2, 0, "propose"), NOW) == []
    assert own_vote(rig.timeout("propose", 0), "prevote").block_id is None
    assert rig.timeout("propose", 0) == []  # the step moved on


def test_timeout_prevote_precommits_nil_and_timeout_precommit_starts_the_next_round():
    rig = Rig("a")
    rig.timeout("propose")
    assert rig.timeout("precommit", 1) == []
    assert own_vote(rig.timeout("prevote"), "precommit").block_id is None
    actions = rig.timeout("precommit")
    assert rig.engine.round == 1 and rig.engine.step == "propose"
    assert timeouts_of(actions) == [("propose", 1, TIMEOUTS.propose_ms + TIMEOUTS.propose_delta_ms)]


# --------------------------------------------------------------------------------------------
# Never sign twice differently
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "height,round,step,block_id,refused",
    [
        (5, 2, "prevote", "aa" * 32, False),
        (5, 2, "prevote", "bb" * 32, True),
        (5, 2, "prevote", None, True),
        (5, 1, "prevote", "aa" * 32, True),
        (4, 9, "prevote", "aa" * 32, True),
        (5, 3, "prevote", "bb" * 32, False),
        (5, 2, "precommit", "bb" * 32, False),
    ],
    ids=[
        "same-block",
        "other-block",
        "nil-after-block",
        "earlier-round",
        "earlier-height",
        "later-round",
        "other-step",
    ],
)
def test_sign_state_refuses_a_conflicting_or_earlier_signature(height, round, step, block_id, refused):
    state = SignState().with_signed(5, 2, "prevote", "aa" * 32)
    if refused:
        with pytest.raises(DoubleSignRefused):
            state.check_sign(height, round, step, block_id)
    else:
        state.check_sign(height, round, step, block_id)


def test_sign_state_round_trips_through_json():
    rig = Rig("a")
    block = rig.block(0)
    proof = tuple(rig.vote(n, "prevote", 2, block.id) for n in "abc")
    state = (
        SignState(3, (), 1, block, 2, block, proof)
        .with_signed(3, 2, "prevote", None)
        .with_signed(3, 2, "propose", "a" * 64)
    )
    assert SignState.from_json(state.to_json()) == state
    legacy = {k: v for k, v in state.to_json().items() if k != "valid_votes"}  # written before proofs were kept
    assert SignState.from_json(legacy).valid_votes == ()
    with pytest.raises(InvalidMessage):
        SignState.from_json({"height": "3"})


def test_after_a_restart_the_engine_casts_again_the_prevote_it_signed_and_never_one_for_another_block():
    rig = Rig("a")
    first = rig.block(0)
    actions = rig.send(rig.proposal(0, first))
    persisted = [a.sign_state for a in actions if isinstance(a, Persist)][-1]
    restarted = Rig("a", restored=persisted)  # the process crashed and restarted at height 1
    assert restarted.engine.round == 0
    second = restarted.block(0, txs=(b"second",))  # a byzantine proposer's second block for round 0
    actions = restarted.send(restarted.proposal(0, second))
    assert own_vote(actions, "prevote").block_id == first.id and restarted.engine.step == "prevote"
    again = Rig("a", restored=persisted)
    assert own_vote(again.send(again.proposal(0, first)), "prevote").block_id == first.id  # same vote is fine


def test_a_validator_restarted_after_prevoting_a_block_nobody_received_lets_the_round_end():
    """The halt of a byzantine run (1 of 4, seed 2): with the fourth validator jailed, the three left
    need each other's votes to leave a round. One of them proposed and prevoted its block, and was
    killed before either left its process. Restarted without the block, its engine wanted to prevote
    nil at timeout_propose and the sign state refused it, so the others never saw three prevotes of
    round 0 and waited forever. It now casts its signed prevote again, and the round goes on."""
    powers = {"a": 10, "b": 10, "c": 10}
    me = Rig(None, powers).proposer(0)
    others = "".join(n for n in "abc" if n != me)
    actions = Rig(me, powers).start_actions
    signed = own_vote(actions, "prevote")
    assert signed is not None and signed.block_id is not None  # the proposer prevotes its own block at once
    persisted = [a.sign_state for a in actions if isinstance(a, Persist)][-1]
    restarted = Rig(me, powers, restored=persisted, start=False)  # the block and the prevote were lost
    restarted.host.txs = [b"came after the restart"]  # so the block it would make now is another one
    assert own(restarted.start(), Proposal) == []  # it never signs a second block for round 0
    actions = restarted.timeout("propose", 0)
    assert own_vote(actions, "prevote").block_id == signed.block_id
    actions = restarted.votes(others, "prevote", 0, None)
    assert ("prevote", 0) in [(step, round) for step, round, _ in timeouts_of(actions)]
    actions = restarted.timeout("prevote", 0)
    assert own_vote(actions, "precommit").block_id is None
    actions += restarted.votes(others, "precommit", 0, None)
    actions += restarted.timeout("precommit", 0)
    assert restarted.engine.round == 1


def test_after_a_restart_the_lock_is_kept_and_the_engine_resumes_at_its_last_signed_round():
    rig = Rig("a")
    _at_round(rig, 1)
    block = rig.block(1)
    rig.send(rig.proposal(1, block))
    actions = rig.votes("bcd", "prevote", 1, block.id)
    persisted = [a.sign_state for a in actions if isinstance(a, Persist)][-1]
    restarted = Rig("a", restored=persisted)
    assert restarted.engine.round == 1 and restarted.engine.sign_state.locked_block == block
    _at_round(restarted, 3)
    other = restarted.block(3)
    assert own_vote(restarted.send(restarted.proposal(3, other)), "prevote").block_id is None


# --------------------------------------------------------------------------------------------
# Evidence and bad input
# --------------------------------------------------------------------------------------------


def test_a_double_sign_is_recorded_once_as_evidence_and_does_not_crash_the_engine():
    rig = Rig("a")
    x, y, z = "56" * 32, "78" * 32, "9a" * 32
    actions = rig.send(rig.vote("b", "prevote", 0, x), rig.vote("b", "prevote", 0, y))
    actions += rig.send(rig.vote("b", "prevote", 0, z), rig.vote("b", "prevote", 0, y))
    evidence = [a.evidence for a in actions if isinstance(a, RecordEvidence)]
    assert len(evidence) == 1 and rig.engine.evidence == tuple(evidence)
    assert {evidence[0].vote_a.block_id, evidence[0].vote_b.block_id} == {x, y}
    rig.send(rig.vote("b", "precommit", 0, x), rig.vote("b", "precommit", 0, None))
    assert len(rig.engine.evidence) == 2  # another offence: (h, r, precommit)


def test_an_equivocator_counts_for_each_block_it_signed_so_a_commit_it_joined_is_seen():
    rig = Rig("a")
    block = rig.block(0)
    rig.send(rig.proposal(0, block))
    rig.send(rig.vote("d", "precommit", 0, None))  # d told us nil ...
    actions = rig.votes("bcd", "precommit", 0, block.id)  # ... and the others block: the commit is real
    assert any(isinstance(a, Decide) for a in actions) and rig.engine.evidence


def _bad_messages():
    rig = Rig("a", start=False)
    block = rig.block(0)
    good = rig.vote("b", "prevote", 0, None)
    return [
        ("non-validator-vote", rig.vote("e", "prevote", 0, None)),
        ("bad-signature", dataclasses.replace(good, signature=rig.vote("c", "prevote", 0, None).signature)),
        ("wrong-chain-id", rig.vote("b", "prevote", 0, None, chain_id="another-chain")),
        ("pubkey-of-another-key", dataclasses.replace(good, pubkey=KEYS["c"].pubkey)),
        ("absurd-round", rig.vote("b", "prevote", 10_000, None)),
        ("proposal-from-non-proposer", rig.proposal(0, block, by="c")),
        ("proposal-absurd-round", sign_proposal(KEYS["b"], CHAIN_ID, 1, 10_000, -1, block, NOW)),
        ("bad-proposal-signature", dataclasses.replace(rig.proposal(0, block), timestamp_ms=1)),
        ("malformed-vote", dataclasses.replace(good, type="vote")),
        ("not-a-message", "hello"),
        ("negative-round", dataclasses.replace(good, round=-1)),
    ]  # fmt: skip


@pytest.mark.parametrize("name,msg", _bad_messages(), ids=[n for n, _ in _bad_messages()])
def test_bad_input_is_rejected_with_invalid_message_and_changes_nothing(name, msg):
    rig = Rig("a")
    before = (rig.engine.round, rig.engine.step, rig.engine.sign_state)
    with pytest.raises(InvalidMessage):
        rig.engine.on_message(msg, NOW)
    assert (rig.engine.round, rig.engine.step, rig.engine.sign_state) == before
    assert rig.engine.evidence == ()


def test_a_message_for_a_past_height_is_ignored():
    rig = Rig("a", height=2)
    assert rig.engine.on_message(rig.vote("b", "prevote", 0, None, height=1), NOW) == []


def test_messages_for_a_near_future_height_are_buffered_and_replayed_when_it_starts():
    rig = Rig("a")
    block = rig.block(0)
    rig.send(rig.proposal(0, block))
    rig.votes("bcd", "prevote", 0, block.id)
    decided = rig.votes("bcd", "precommit", 0, block.id)
    [decide] = [a for a in decided if isinstance(a, Decide)]
    early = [rig.vote(n, "precommit", 0, None, height=2) for n in "bcd"]
    assert rig.send(*early) == []
    assert rig.send(rig.vote("b", "prevote", 0, None, height=9)) == []  # too far ahead: dropped
    with pytest.raises(InvalidMessage):
        rig.send(dataclasses.replace(early[0], signature=early[1].signature))  # still checked when buffered
    actions = rig.engine.start_height(
        height=2, validator_set=rig.vset, last_commit=decide.commit, last_block_id=block.id,
        last_time_ms=block.header.time_ms, app_hash=APP_HASH, now_ms=NOW,
    )  # fmt: skip
    assert ("precommit", 0, TIMEOUTS.precommit_ms) in timeouts_of(actions)  # rule 6 on the replayed precommits


_field_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**64), 2**64),
    st.text(max_size=70),
    st.binary(max_size=70),
    st.sampled_from(["prevote", "precommit", ADDR["b"], "ab" * 32, b"\0" * 32, b"\0" * 64]),
)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    field=st.sampled_from(["type", "height", "round", "block_id", "timestamp_ms", "validator", "pubkey", "signature"]),
    value=_field_values,
)
def test_any_mutated_vote_is_rejected_with_invalid_message_or_ignored_never_another_error(field, value):
    rig = Rig("a")
    vote = dataclasses.replace(rig.vote("b", "prevote", 0, None), **{field: value})
    try:
        result = rig.engine.on_message(vote, NOW)
    except InvalidMessage:
        return
    assert isinstance(result, list)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(
    field=st.sampled_from(["height", "round", "pol_round", "timestamp_ms", "proposer", "pubkey", "signature", "block"]),
    value=_field_values,
)
def test_any_mutated_proposal_is_rejected_with_invalid_message_or_ignored_never_another_error(field, value):
    rig = Rig("a")
    proposal = dataclasses.replace(rig.proposal(0), **{field: value})
    try:
        result = rig.engine.on_message(proposal, NOW)
    except InvalidMessage:
        return
    assert isinstance(result, list)


def test_conflicting_proposals_the_first_drives_the_prevote_and_a_polka_for_the_second_still_locks_it():
    rig = Rig("a")
    first, second = rig.block(0), rig.block(0, txs=(b"second",))
    actions = rig.send(rig.proposal(0, first), rig.proposal(0, second))
    assert own_vote(actions, "prevote").block_id == first.id
    actions = rig.votes("bcd", "prevote", 0, second.id)
    assert own_vote(actions, "precommit").block_id == second.id
    assert rig.engine.sign_state.locked_block == second
    [decide] = [a for a in rig.votes("bcd", "precommit", 0, second.id) if isinstance(a, Decide)]
    assert decide.block == second


def test_a_byzantine_proposer_cannot_make_the_engine_keep_more_than_a_few_proposals_per_round():
    rig = Rig("a")
    blocks = [rig.block(0, txs=(bytes([i]),)) for i in range(6)]
    rig.send(*(rig.proposal(0, b) for b in blocks))
    assert sum(rig.engine.get_known_block(b.id) is not None for b in blocks) == 2


def test_the_future_height_buffer_is_capped_per_height(monkeypatch):
    import node.consensus.engine as consensus

    monkeypatch.setattr(consensus, "MAX_FUTURE_MESSAGES", 2)
    rig = Rig("a")
    block = rig.block(0)
    rig.send(rig.proposal(0, block))
    rig.votes("bcd", "prevote", 0, block.id)
    [decide] = [a for a in rig.votes("bcd", "precommit", 0, block.id) if isinstance(a, Decide)]
    rig.send(*(rig.vote(n, "precommit", 0, None, height=2) for n in "bc"))
    with pytest.raises(InvalidMessage, match="2 messages for height 2 are buffered already"):
        rig.send(rig.vote("d", "precommit", 0, None, height=2))  # the third is refused, so never marked seen
    actions = rig.engine.start_height(
        height=2, validator_set=rig.vset, last_commit=decide.commit, last_block_id=block.id,
        last_time_ms=block.header.time_ms, app_hash=APP_HASH, now_ms=NOW,
    )  # fmt: skip
    assert not [t for t in timeouts_of(actions) if t[0] == "precommit"]  # two of four precommits: no +2/3
    assert timeouts_of(rig.send(rig.vote("d", "precommit", 0, None, height=2)))[0][0] == "precommit"


@pytest.mark.parametrize(
    "signer, height, round, learned, refusal",
    [
        ("b", 2, 0, None, None),  # a member of the current set, h+1
        ("b", 3, 5, None, None),  # h+2, a later round
        ("e", 2, 0, None, "not a validator at height"),  # a stranger
        ("e", 3, 0, None, "not a validator at height"),
        ("e", 2, 0, 2, None),  # a joiner of the set learned for h+1 (the block before it was applied)
        ("e", 3, 0, 2, None),  # … and at h+2 (sets change only at epoch boundaries)
        ("e", 2, 0, 3, "not a validator at height"),  # a set learned for h+2 says nothing about h+1
        ("b", 2, 65, None, "implausible"),  # a round beyond MAX_ROUND_AHEAD
    ],
)
def test_the_future_buffer_holds_only_known_validators_messages(signer, height, round, learned, refusal):
    """Regression: messages for h+1 and h+2 were buffered from any key, at any round."""
    rig = Rig("a")
    if learned is not None:
        powers = [(ADDR[n], 10) for n in "abcde"]
        rig.engine.learn_validator_set(learned, ValidatorSet.from_powers(powers))
    vote = rig.vote(signer, "prevote", round, None, height=height)
    if refusal is None:
        assert rig.send(vote) == [] and rig.engine.future.count(height) == 1
    else:
        with pytest.raises(InvalidMessage, match=refusal):
            rig.send(vote)
        assert rig.engine.future.count(height) == 0


def test_the_future_buffer_keeps_a_few_messages_per_signer_round_and_type_and_a_byte_share_per_signer(monkeypatch):
    import node.consensus.engine as consensus

    monkeypatch.setattr(consensus, "MAX_FUTURE_SIGNER_BYTES", 3 * consensus.VOTE_BYTES)
    rig = Rig("a")
    ids = ["cd" * 32, "ef" * 32, "12" * 32]
    rig.send(*(rig.vote("b", "prevote", 0, i, height=2) for i in ids[:2]))
    with pytest.raises(InvalidMessage, match="2 messages of this signer, round and type"):
        rig.send(rig.vote("b", "prevote", 0, ids[2], height=2))
    rig.send(rig.vote("b", "precommit", 0, None, height=2))  # another type: its own slot, the share's last bytes
    with pytest.raises(InvalidMessage, match="share of the buffer"):
        rig.send(rig.vote("b", "precommit", 1, None, height=2))
    rig.send(rig.vote("c", "precommit", 1, None, height=2))  # another signer has its own share
    assert rig.engine.future.count(2) == 4 and rig.engine.future.get_bytes(2) == 4 * consensus.VOTE_BYTES
    rig.send(rig.vote("b", "prevote", 0, ids[0], height=2))  # a duplicate is no error and counts once
    assert rig.engine.future.count(2) == 4


def test_a_started_height_replays_its_buffer_and_forgets_lower_heights():
    rig = Rig("a")
    rig.send(rig.vote("b", "prevote", 0, None, height=2), rig.vote("c", "prevote", 0, None, height=3))
    assert rig.engine.future.pop(2) and rig.engine.future.count(2) == 0 and rig.engine.future.count(3) == 1
    assert rig.engine.future.pop(3) and rig.engine.future.get_bytes(3) == 0


@pytest.mark.parametrize("offset", [-1, 0, 1, 2], ids=["previous-height", "this-height", "next-height", "h+2"])
def test_a_badly_signed_vote_is_refused_whatever_its_height(offset):
    """The signature is checked before the height decides what happens to a message, so a peer's
    bad signature is an error whether the node has just moved on or not (a late vote for h-1 is
    otherwise ignored, and one for h+1 or h+2 buffered)."""
    rig = Rig("a", height=3)
    good = sign_vote(KEYS["b"], CHAIN_ID, "prevote", 3 + offset, 0, None, NOW)
    bad = dataclasses.replace(good, signature=bytes(64))
    with pytest.raises(InvalidMessage, match="bad signature"):
        rig.engine.on_message(bad, NOW)
    rig.engine.on_message(good, NOW)  # the same vote correctly signed is no error at that height


# -- BFT time (a block's time is the weighted median of its last commit's precommit times) ----------
@pytest.mark.parametrize("height", [1, 2])
def test_a_proposal_with_a_far_future_time_is_refused_so_the_next_height_stays_reachable(height):
    rig = Rig("a", height=height)
    block = rig.block(0, time_ms=2**63 - 1)  # the largest int64: no block could ever follow it
    vote = own_vote(rig.send(rig.proposal(0, block)), "prevote")
    assert vote is not None and vote.block_id is None
    assert "BFT time" in (rig.engine.get_block_fault(block) or "")


@pytest.mark.parametrize("time_ms", [0, 5_000, 5_001, NOW - 1, NOW + 1])
def test_a_proposal_with_a_past_equal_or_any_other_time_than_the_bft_time_is_refused(time_ms):
    rig = Rig("a", height=2)  # the previous block's time is 5_000; the last commit's precommits say NOW
    vote = own_vote(rig.send(rig.proposal(0, rig.block(0, time_ms=time_ms))), "prevote")
    assert vote is not None and vote.block_id is None
    good = Rig("a", height=2)
    assert own_vote(good.send(good.proposal(0)), "prevote").block_id == good.block(0).id  # time NOW: valid


def test_the_median_time_is_weighted_by_power_and_stays_between_the_honest_precommit_times():
    vset = ValidatorSet.from_powers([(ADDR[n], p) for n, p in {"a": 10, "b": 10, "c": 10, "d": 9}.items()])
    times = {"a": 1_000, "b": 2_000, "c": 3_000, "d": 2**63 - 1}  # d (under a third) lies far in the future
    votes = [sign_vote(KEYS[n], CHAIN_ID, "precommit", 1, 0, BLOCK_ID, t) for n, t in times.items()]
    assert compute_median_time(_commit(votes), vset) == 2_000
    times["d"] = 0  # or far in the past
    votes = [sign_vote(KEYS[n], CHAIN_ID, "precommit", 1, 0, BLOCK_ID, t) for n, t in times.items()]
    assert compute_median_time(_commit(votes), vset) == 2_000
    heavy = ValidatorSet.from_powers([(ADDR["a"], 50), (ADDR["b"], 10), (ADDR["c"], 10)])
    votes = [sign_vote(KEYS[n], CHAIN_ID, "precommit", 1, 0, BLOCK_ID, times[n]) for n in "abc"]
    assert compute_median_time(_commit(votes), heavy) == 1_000  # a holds more than half the power
    assert compute_block_time(None, None, 777) == 777  # height 1: the genesis time


def test_own_votes_are_timed_after_the_block_they_vote_for_even_when_the_clock_is_behind():
    rig = Rig("a", height=2)  # the block's BFT time is NOW; our clock says NOW - 3_000
    block = rig.block(0)
    actions = rig.engine.on_message(rig.proposal(0, block), NOW - 3_000)
    actions += rig.engine.on_message(rig.vote("b", "prevote", 0, block.id), NOW - 3_000)
    actions += rig.engine.on_message(rig.vote("c", "prevote", 0, block.id), NOW - 3_000)
    precommit = own_vote(actions, "precommit")
    assert precommit is not None and precommit.block_id == block.id and precommit.timestamp_ms == NOW + 1


# -- proposal poisoning: the body must match the header's hashes on receipt ----------------------
def _swapped_bodies(rig: Rig, block: Block) -> list[Block]:
    bodies = [dataclasses.replace(block, txs=(b"evil",)), dataclasses.replace(block, txs=())]
    if rig.last_commit is not None:
        other = rig.commit_for(rig.height - 1, 0, rig.last_block_id, "abd")  # another valid last commit
        bodies.append(dataclasses.replace(block, last_commit=other))
    return bodies


@pytest.mark.parametrize("height", [1, 2])
def test_a_proposal_with_a_swapped_body_is_invalid_input_and_the_honest_copy_after_it_is_decided(height):
    rig = Rig("a", height=height)
    honest = rig.block(0, txs=(b"tx-1", b"tx-2"))
    proposal = rig.proposal(0, honest)
    for body in _swapped_bodies(rig, honest):
        poisoned = dataclasses.replace(proposal, block=body)  # header and signature kept: the signature verifies
        assert poisoned.is_signed_by_proposer(CHAIN_ID)
        with pytest.raises(InvalidMessage, match="does not match|do not match"):
            rig.engine.check_message(poisoned)
        with pytest.raises(InvalidMessage):
            rig.send(poisoned)
        assert rig.engine.get_known_block(honest.id) is None  # not cached
        assert rig.engine.step == "propose"  # nothing happened
    vote = own_vote(rig.send(proposal), "prevote")
    assert vote is not None and vote.block_id == honest.id
    rig.votes("bc", "prevote", 0, honest.id)
    [decide] = [a for a in rig.votes("bcd", "precommit", 0, honest.id) if isinstance(a, Decide)]
    assert decide.block == honest and decide.block.txs == (b"tx-1", b"tx-2")


def test_a_fetched_or_synced_block_with_a_swapped_body_is_invalid_input():
    rig = Rig("a")
    honest = rig.block(0, txs=(b"tx-1",))
    rig.votes("bcd", "precommit", 0, honest.id)  # +2/3 for a block we never saw: fetched
    poisoned = dataclasses.replace(honest, txs=(b"evil",))
    with pytest.raises(InvalidMessage):
        rig.engine.on_block(poisoned, NOW)
    with pytest.raises(InvalidMessage):
        rig.engine.on_commit(poisoned, rig.commit_for(1, 0, honest.id, "bcd"), NOW)
    assert rig.engine.get_known_block(honest.id) is None
    [decide] = [a for a in rig.engine.on_block(honest, NOW) if isinstance(a, Decide)]
    assert decide.block == honest


def test_a_double_sign_that_arrives_after_the_decision_is_still_evidence():
    # Found by the byzantine chaos run: an equivocator's second precommit usually arrives after +2/3 of the
    # others decided the height, and the engine ignored every message once decided, so the double sign was lost.
    rig = Rig("a")
    block = rig.block(0)
    rig.send(rig.proposal(0, block))
    rig.send(rig.vote("d", "precommit", 0, None))  # d's twin: nil ...
    assert any(isinstance(a, Decide) for a in rig.votes("abc", "precommit", 0, block.id))
    late = rig.send(rig.vote("d", "precommit", 0, block.id))  # ... then its other precommit, after the decision
    evidence = [a.evidence for a in late if isinstance(a, RecordEvidence)]
    assert len(evidence) == 1 and evidence[0].key == f"{ADDR['d']}/1/0/precommit"
    assert not [a for a in late if not isinstance(a, RecordEvidence)]  # nothing else: no rule runs after a decision


@pytest.mark.parametrize("kind", ["prevote", "precommit"])
def test_a_late_vote_of_the_last_height_that_conflicts_with_one_we_hold_is_evidence(kind):
    """Regression (prevotes): seen in a byzantine chaos run, an equivocator's twin prevote reached a node
    before the decision and its other prevote after the next height started: it was dropped unseen."""
    rig = Rig("a")
    block = rig.block(0)
    rig.send(rig.proposal(0, block))
    rig.send(rig.vote("d", "precommit", 0, None))
    rig.votes("bc", "prevote", 0, block.id)
    decided = [a for a in rig.votes("bcd", "precommit", 0, block.id) if isinstance(a, Decide)]
    assert decided
    commit = decided[0].commit
    rig.engine.start_height(
        height=2,
        validator_set=rig.vset,
        last_commit=commit,
        last_block_id=block.id,
        last_time_ms=5_000,
        app_hash=APP_HASH,
        now_ms=NOW,
        last_validator_set=rig.vset,
    )
    assert rig.engine.on_message(rig.vote("b", kind, 0, block.id, height=1), NOW) == []  # a duplicate
    assert rig.engine.on_message(rig.vote("d", "prevote", 0, block.id, height=1), NOW) == []  # nothing to compare
    late = rig.engine.on_message(rig.vote("c", kind, 0, None, height=1), NOW)
    assert [a.evidence.key for a in late if isinstance(a, RecordEvidence)] == [f"{ADDR['c']}/1/0/{kind}"]
