"""The byzantine node of the chaos suite, without processes: its seeded attack plan, what it forges, and the
byzantine parts of the verdict (longest stall, /v1/status latency, equivocations held as evidence)."""

from __future__ import annotations

import json
import random
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chain.crypto import PrivateKey, verify_signature
from chain.errors import InvalidTx
from chain.tx import decode_tx
from devnet.adversary import (
    LIE_HEIGHT,
    PAD_BYTES,
    compute_junk_txs,
    compute_padded,
    compute_tampered_block,
    compute_twin_block,
    compute_twin_vote_block_id,
    encode_message,
)
from devnet.adversary_plan import (
    ATTACK_KINDS,
    FIRST_WINDOW_S,
    WINDOW_GAP_S,
    WINDOW_HOLD_S,
    compute_adversaries,
    compute_attack_plan,
    get_active_kinds,
    is_byzantine_count_allowed,
    parse_attack_kinds,
)
from devnet.chaos import RECOVERY_GRACE_S, FaultRecord, compute_fault_window, read_status_samples
from devnet.chaos_nodes import ChaosNode
from devnet.chaos_plan import Fault
from devnet.chaos_verdict import (
    EVIDENCE_MARGIN_BLOCKS,
    STALL_BOUND_S,
    compute_commit_times,
    compute_latency_stats,
    compute_longest_stall,
    compute_overlap_s,
    judge_equivocations,
    judge_liveness,
)
from node import codec
from node.blocks import Block, Header, check_block_hashes, compute_txs_hash, sign_proposal, sign_vote
from node.config import DB_FILE
from node.consensus.evidence_pool import MAX_PENDING_PER_VALIDATOR
from node.errors import InvalidMessage
from node.pb import types_pb2 as pb
from node.store import SqliteStore

KEY = PrivateKey.from_name("adversary-test", salt="uoc-tests")
CHAIN = "uoc-test"


def make_block(txs: tuple[bytes, ...]) -> Block:
    header = Header(CHAIN, 3, 1_000, "a" * 64, "", compute_txs_hash(txs), "b" * 64, "c" * 64, KEY.address)
    return Block(header, txs, None)


# -- the plan -----------------------------------------------------------------------------------
@given(seed=st.integers(0, 2**32), until=st.floats(30, 900), kinds=st.sets(st.sampled_from(ATTACK_KINDS), min_size=1))
def test_the_attack_plan_has_each_kind_once_per_round_in_windows_of_one_to_three_that_never_overlap(seed, until, kinds):
    chosen = tuple(k for k in ATTACK_KINDS if k in kinds)
    plan = compute_attack_plan(seed, until, chosen)
    assert plan == compute_attack_plan(seed, until, chosen)  # pure
    flat = [k for w in plan for k in w.kinds]
    for start in range(0, len(flat) - len(chosen) + 1, len(chosen)):  # every complete round
        assert sorted(flat[start : start + len(chosen)]) == sorted(chosen)
    for w in plan:
        assert 1 <= len(w.kinds) <= 3 and len(set(w.kinds)) == len(w.kinds) and set(w.kinds) <= set(chosen)
        assert WINDOW_HOLD_S[0] <= w.hold_s <= WINDOW_HOLD_S[1] and w.end_s <= until
    assert all(b.start_s - a.end_s >= WINDOW_GAP_S[0] - 0.1 for a, b in zip(plan, plan[1:]))
    assert not plan or plan[0].start_s == FIRST_WINDOW_S


def test_another_seed_gives_another_plan_and_a_long_run_holds_every_kind():
    assert compute_attack_plan(1, 300) != compute_attack_plan(2, 300)
    assert {k for w in compute_attack_plan(1, 120) for k in w.kinds} == set(ATTACK_KINDS)


def test_the_active_kinds_are_those_of_the_window_open_at_that_time():
    plan = compute_attack_plan(4, 120)
    first = plan[0]
    assert get_active_kinds(plan, first.start_s - 0.01) == frozenset()
    assert get_active_kinds(plan, first.start_s) == frozenset(first.kinds)
    assert get_active_kinds(plan, first.end_s) == frozenset()


@pytest.mark.parametrize(
    ("byzantine", "validators", "allowed"),
    [
        (0, 4, True),
        (1, 4, True),
        (2, 4, False),
        (1, 6, True),
        (2, 6, False),
        (2, 7, True),
        (3, 9, False),
        (-1, 4, False),
    ],
)
def test_fewer_than_a_third_of_the_validators_may_lie(byzantine, validators, allowed):
    assert is_byzantine_count_allowed(byzantine, validators) is allowed


@given(seed=st.integers(0, 2**32), validators=st.integers(4, 7), data=st.data())
def test_the_adversaries_are_distinct_seeded_validators(seed, validators, data):
    k = data.draw(st.integers(0, (validators - 1) // 3))
    chosen = compute_adversaries(seed, validators, k)
    assert chosen == compute_adversaries(seed, validators, k) and len(set(chosen)) == k
    assert list(chosen) == sorted(chosen) and all(0 <= i < validators for i in chosen)


@pytest.mark.parametrize(
    ("text", "kinds"),
    [("all", ATTACK_KINDS), ("withhold,equivocate", ("equivocate", "withhold")), (" pad ", ("pad",))],
)
def test_attack_kinds_parse_in_plan_order(text, kinds):
    assert parse_attack_kinds(text) == kinds


@pytest.mark.parametrize("text", ["", "bribe", "pad,bribe", ","])
def test_an_unknown_attack_kind_is_refused_by_name(text):
    with pytest.raises(ValueError, match="unknown attack kind"):
        parse_attack_kinds(text)


# -- what the adversary forges ------------------------------------------------------------------
def test_a_padded_message_parses_to_the_same_message_with_an_unknown_field():
    vote = sign_vote(KEY, CHAIN, "prevote", 3, 0, "d" * 64, 1_000)
    raw = encode_message(vote)
    padded = compute_padded(raw)
    assert len(padded) > len(raw) + PAD_BYTES
    parsed = codec.parse_pb(pb.ConsensusMessage, padded)
    assert codec.consensus_message_from_pb(parsed) == vote
    assert len(parsed.SerializeToString()) == len(padded)  # the parser keeps the unknown field
    assert encode_message(codec.consensus_message_from_pb(parsed)) == raw  # what an honest node relays


@pytest.mark.parametrize("block_id", ["d" * 64, None])
def test_a_twin_vote_conflicts_with_the_vote(block_id):
    vote = sign_vote(KEY, CHAIN, "precommit", 3, 1, block_id, 1_000)
    twin = compute_twin_vote_block_id(vote)
    assert twin != block_id and (twin is None) == (block_id is not None)


@pytest.mark.parametrize("txs", [(), (b"tx1",), (b"tx1", b"tx2")])
def test_a_twin_block_is_another_well_formed_block_and_a_tampered_one_lies_about_its_body(txs):
    block = make_block(txs)
    twin = compute_twin_block(block)
    assert twin.id != block.id and twin.txs != block.txs
    check_block_hashes(twin)
    tampered = compute_tampered_block(block)
    assert tampered.id == block.id and tampered.txs != block.txs
    with pytest.raises(InvalidMessage, match="txs do not match"):
        check_block_hashes(tampered)
    proposal = sign_proposal(KEY, CHAIN, 3, 0, -1, block, 1_000)
    raw = encode_message(replace(proposal, block=tampered))
    with pytest.raises(InvalidMessage):  # what an honest node answers INVALID_ARGUMENT to
        codec.consensus_message_from_pb(codec.parse_pb(pb.ConsensusMessage, raw))


def test_junk_txs_are_refused_at_decode_or_carry_a_signature_that_does_not_verify():
    junk = compute_junk_txs(random.Random(1), CHAIN, b"seed", 50)
    assert len(junk) == 50 and len(set(junk)) == 50
    decoded = 0
    for raw in junk:
        try:
            tx = decode_tx(raw)
        except InvalidTx:
            continue
        decoded += 1
        assert tx.chain_id == CHAIN and not verify_signature(tx.pubkey, tx.signature, tx.sign_bytes)
    assert decoded == 5  # one in JUNK_SIGNED_SHARE


def test_the_lie_is_a_height_no_chain_reaches_but_the_status_field_holds():
    assert 2**40 < LIE_HEIGHT < 2**63


# -- the verdict's byzantine parts --------------------------------------------------------------
@pytest.mark.parametrize(
    ("start", "end", "windows", "covered"),
    [
        (0, 10, [], 0),
        (0, 10, [(2, 4)], 2),
        (0, 10, [(2, 4), (3, 6)], 4),  # overlapping windows count once
        (0, 10, [(-5, 1), (9, 20)], 2),  # clipped to the span
        (5, 6, [(0, 4)], 0),
    ],
)
def test_the_overlap_is_the_part_of_a_span_the_union_of_windows_covers(start, end, windows, covered):
    assert compute_overlap_s(start, end, windows) == covered


@pytest.mark.parametrize(
    ("commits", "windows", "raw", "clean"),
    [
        (list(range(1, 20)), [], 1.0, 1.0),
        ([1, 2, 14, 15], [], 12.0, 12.0),  # a 12 s stall
        ([1, 2, 14, 15], [(3, 12)], 12.0, 5.0),  # 9 of the 12 s excused; 15 s to the end is 5 s
        ([1, 2], [], 18.0, 18.0),  # the stall to the end of the run counts
        ([], [(0, 20)], 20.0, 0.0),
    ],
)
def test_the_longest_stall_is_measured_and_crash_faults_of_honest_nodes_are_excused(commits, windows, raw, clean):
    assert compute_longest_stall(commits, 0.0, 20.0, windows) == (raw, clean)


def test_commit_times_are_when_the_highest_reported_height_went_up():
    samples = [
        (0.0, "n0", 0.01, 5),
        (0.2, "n1", 0.01, 5),
        (0.5, "n0", 0.01, 6),
        (0.6, "n1", 0.2, None),
        (0.9, "n1", 0.01, 6),
    ]
    assert compute_commit_times(samples) == [0.5]


def test_status_latency_reports_max_p99_and_the_samples_over_the_bound():
    samples = [(float(i), "n0", 0.01, 1) for i in range(99)] + [(99.0, "n1", 5.0, None)]
    stats = compute_latency_stats(samples)
    assert stats == {"count": 100, "max_s": 5.0, "p99_s": 5.0, "over_bound": 1, "failed": 1}


def test_liveness_fails_on_a_long_stall_or_a_slow_status_and_passes_otherwise():
    steady = [(t / 2, "n0", 0.02, int(t)) for t in range(80)]
    assert judge_liveness(steady, 0.0, 40.0, [])["problems"] == []
    stalled = [s for s in steady if not 10 <= s[0] <= 10 + STALL_BOUND_S + 1]
    assert "committed no block for" in judge_liveness(stalled, 0.0, 40.0, [])["problems"][0]
    assert judge_liveness(stalled, 0.0, 40.0, [(9.0, 22.0)])["problems"] == []
    slow = [*steady, (20.1, "n1", 1.5, 40)]
    problems = judge_liveness(slow, 0.0, 40.0, [])["problems"]
    assert len(problems) == 1 and "n1 1.50 s at 20 s" in problems[0]


def make_store_with_evidence(home: Path, offences: list[tuple[int, int, str]], *, jailed: bool = True) -> ChaosNode:
    """A node home whose store's state has committed a double sign of KEY at each (height, round, type), and
    (`jailed`) the jail record of KEY, as `chain.rules.process_evidence` leaves them."""
    (home / DB_FILE).parent.mkdir(parents=True)
    SqliteStore(home / DB_FILE).close()
    db = sqlite3.connect(home / DB_FILE)
    with db:
        for height, round_, type_ in offences:
            key = f"{height:012d}/{KEY.address}/{round_}/{type_}"
            db.execute("INSERT INTO state (space, key, value) VALUES ('evid', ?, ?)", (key, '{"height":9}'))
        if jailed:
            record = '{"jailed":true,"jailed_until":109,"slashed":5,"slashes":1}'
            db.execute("INSERT INTO state (space, key, value) VALUES ('jail', ?, ?)", (KEY.address, record))
    db.close()
    return ChaosNode(0, home, public="", admin="", token="", key=KEY)


def test_every_delivered_equivocation_must_be_committed_on_every_honest_node_and_its_validator_jailed(tmp_path):
    n0 = make_store_with_evidence(tmp_path / "n0", [(3, 0, "prevote"), (4, 1, "precommit")])
    n1 = make_store_with_evidence(tmp_path / "n1", [(3, 0, "prevote"), (4, 1, "precommit")])
    made = [
        {"validator": KEY.address, "height": h, "round": r, "type": t}
        for h, r, t in [(3, 0, "prevote"), (4, 1, "precommit"), (19, 0, "prevote")]
    ]
    verdict = judge_equivocations([n0, n1], made, final_height=20)  # height 19 is within the margin: not due
    assert verdict["problems"] == []
    assert verdict["equivocations"] == {
        "delivered": 3,
        "due": 2,
        "committed_on_every_honest_node": 2,
        "beyond_the_pool_cap": 0,
        "evidence_committed_per_honest_node": {"n0": 2, "n1": 2},
        "equivocators_jailed_and_slashed": [KEY.address],
        "margin_blocks": EVIDENCE_MARGIN_BLOCKS,
    }
    behind = make_store_with_evidence(tmp_path / "n2", [(3, 0, "prevote")], jailed=False)
    problems = judge_equivocations([n0, behind], made, final_height=20)["problems"]
    assert problems[0] == (
        f"equivocation {4:012d}/{KEY.address}/1/precommit is not committed as evidence on every honest node"
    )
    assert problems[1].startswith(f"n2: equivocator {KEY.address} was not jailed and slashed")


def test_offences_of_one_height_beyond_the_pools_cap_per_validator_need_not_be_committed(tmp_path):
    """Seen in a 1-of-4 run (with a bound of 4): more offences of one validator at one height than the
    engine's pool keeps pending (MAX_PENDING_PER_VALIDATOR); it drops the rest, by design."""
    offences = [(10, r, t) for r in range(MAX_PENDING_PER_VALIDATOR) for t in ("prevote", "precommit")]
    offences = offences[: MAX_PENDING_PER_VALIDATOR + 2]
    kept = offences[:MAX_PENDING_PER_VALIDATOR]
    nodes = [make_store_with_evidence(tmp_path / f"n{i}", kept) for i in range(2)]
    made = [{"validator": KEY.address, "height": h, "round": r, "type": t} for h, r, t in offences]
    verdict = judge_equivocations(nodes, made, final_height=30)
    assert verdict["problems"] == []
    counts = verdict["equivocations"]
    due = (counts["due"], counts["committed_on_every_honest_node"], counts["beyond_the_pool_cap"])
    assert due == (MAX_PENDING_PER_VALIDATOR + 2, MAX_PENDING_PER_VALIDATOR, 2)
    short = [make_store_with_evidence(tmp_path / f"m{i}", kept[:-1]) for i in range(2)]  # one fewer: not excused
    assert len(judge_equivocations(short, made, final_height=30)["problems"]) == 3


def test_a_crash_fault_excuses_a_stall_until_its_target_answers_again_plus_the_grace(tmp_path):
    nodes = [ChaosNode(i, tmp_path / f"n{i}", public="", admin="", token="", key=KEY) for i in range(2)]
    kill = FaultRecord(Fault("kill", (1,), 3.0), started_s=10.0, recovered_s=4.0, healed_s=13.0)
    pause = FaultRecord(Fault("pause", (0,), 5.0), started_s=30.0, recovered_s=1.0, healed_s=35.0)
    t0 = 1_000.0
    probe = [[t0 + 5.0, "n1", 0.01, 3], [t0 + 12.0, "n1", 5.0, None], [t0 + 16.5, "n1", 0.9, 4]]
    probe += [[t0 + 20.0, "n1", 0.02, 5], [t0 + 32.0, "n0", 2.0, 9], [t0 + 40.0, "n0", 0.01, 10]]
    probe += [[t0 + 29.9, "n0", 5.0, None], [t0 + 28.0, "n0", 0.05, 8]]  # in flight when the pause began; before it
    path = tmp_path / "probe.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in probe))
    samples = read_status_samples(path, t0, 60.0, [kill, pause], nodes)
    # n1 is held from the kill to the recovery (10 to 17 s), n0 by the pause (30 to 36 s), and so is a request
    # to n0 that began 0.1 s before the pause and timed out in it (seen in a 2-of-7 run)
    assert samples == [(5.0, "n1", 0.01, 3), (20.0, "n1", 0.02, 5), (28.0, "n0", 0.05, 8), (40.0, "n0", 0.01, 10)]
    assert kill.up_s == 16.5 and pause.up_s is None  # the restarted node's first answer
    assert compute_fault_window(kill, 60.0) == (10.0, 16.5 + RECOVERY_GRACE_S)
    assert compute_fault_window(pause, 60.0) == (30.0, 35.0 + RECOVERY_GRACE_S)
    assert compute_fault_window(FaultRecord(Fault("loss", (0,), 2.0), started_s=58.0), 60.0) == (58.0, 60.0)
