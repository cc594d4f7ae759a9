"""Safety and liveness of the consensus engine in an in-process network (tests/consensus_harness.py).

Every scenario runs on a virtual clock with a seeded transport (delays, drops, duplicates,
reordering, partitions), real Applications on MemoryStores, and byzantine validators holding less
than a third of the power that equivocate and send conflicting proposals.
"""

from __future__ import annotations

import logging

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chain.tx import MsgBond, MsgSubmitPriceProposal
from node.consensus import verify_commit
from tests.consensus_harness import START_MS, Network, get_app_powers
from tests.helpers import ADDR, CHAIN_ID, signed

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(autouse=True)
def _quiet_consensus_log():
    """Byzantine runs log every double sign; keep the test output readable."""
    logger = logging.getLogger("uoc.consensus")
    level = logger.level
    logger.setLevel(logging.ERROR)
    yield
    logger.setLevel(level)


def assert_same_chain(net: Network, height: int) -> None:
    """Every honest node applied `height` blocks: the same blocks and the same app hash at every height."""
    net.check_safety()
    for node in net.honest:
        assert node.app.height >= height, f"{node.name} is at {node.app.height}"
    for h in range(1, height + 1):
        assert len({n.decided[h].id for n in net.honest}) == 1
        assert len({n.app_hashes[h] for n in net.honest}) == 1


def assert_commits_verify(net: Network) -> None:
    """Each decided commit, and each block's last commit, verifies against the set of its height."""
    for node in net.honest:
        for h, commit in node.commits.items():
            verify_commit(CHAIN_ID, commit, node.vsets[h])
            following = node.decided.get(h + 1)
            if following is not None:
                verify_commit(CHAIN_ID, following.last_commit, node.vsets[h])
                assert following.header.last_block_id == node.decided[h].id


scenarios = st.fixed_dictionaries(
    {
        "seed": st.integers(0, 2**32 - 1),
        "drop": st.sampled_from([0.0, 0.05, 0.2]),
        "dup": st.sampled_from([0.0, 0.2]),
        "max_delay": st.sampled_from([20, 150, 400]),
        "byzantine": st.sampled_from(["a", "b", "c", "d"]),
        "split": st.sampled_from(["ab|cd", "a|bcd", "abd|c", ""]),
        "heal_ms": st.integers(200, 3000),
    }
)


@settings(max_examples=16, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(scenario=scenarios)
def test_safety_and_liveness_with_an_equivocating_validator_lossy_links_and_a_healing_partition(scenario):
    net = Network(
        ["a", "b", "c", "d"],
        seed=scenario["seed"],
        drop=scenario["drop"],
        dup=scenario["dup"],
        delay_ms=(1, scenario["max_delay"]),
        byzantine={scenario["byzantine"]},
    )
    if scenario["split"]:
        left, right = scenario["split"].split("|")
        net.partition(left, right, start_ms=0, end_ms=scenario["heal_ms"])
    net.run(until_height=4, max_ms=120_000)
    assert_same_chain(net, 4)
    assert_commits_verify(net)


@pytest.mark.parametrize("seed", range(2))
def test_safety_with_two_byzantine_validators_of_seven(seed):
    net = Network(list("abcdefg"), seed=seed, drop=0.1, dup=0.2, delay_ms=(1, 200), byzantine={"f", "g"})
    net.partition("abf", "cdeg", start_ms=300, end_ms=2000)
    net.run(until_height=3, max_ms=120_000)
    assert_same_chain(net, 3)
    evidence = {e.vote_a.validator for node in net.honest for e in node.evidence}
    assert evidence <= {ADDR["f"], ADDR["g"]} and evidence  # only the byzantine double-signed, and it was seen


@pytest.mark.parametrize("seed", range(3))
def test_no_block_is_committed_while_no_side_of_a_partition_has_two_thirds_and_blocks_follow_the_heal(seed):
    net = Network(["a", "b", "c", "d"], seed=seed, drop=0.05)
    net.partition("ab", "cd", start_ms=0, end_ms=4000)
    net.run(max_ms=3900)
    assert max(n.app.height for n in net.nodes.values()) == 0
    net.run(until_height=5, max_ms=120_000)
    assert_same_chain(net, 5)
    assert max(c.round for c in net.honest[0].commits.values()) >= 1  # the partition cost rounds


def test_a_minority_partition_falls_behind_then_catches_up_to_the_same_chain():
    net = Network({"a": 10, "b": 10, "c": 10, "d": 10, "e": 10}, seed=5)
    net.partition("abcd", "e", start_ms=0, end_ms=3000)
    net.run(max_ms=2900)
    assert net.nodes["e"].app.height == 0 and net.nodes["a"].app.height >= 3
    net.run(until_height=net.nodes["a"].app.height + 2, max_ms=120_000)
    assert_same_chain(net, net.committed_height())


def test_a_validator_that_crashes_and_restarts_resumes_from_its_sign_state_and_store():
    net = Network(["a", "b", "c", "d"], seed=11, drop=0.05, delay_ms=(1, 80))
    net.crash("c", at_ms=300, restart_ms=2000)
    net.run(max_ms=1990)
    crashed_at = net.nodes["c"].app.height
    assert crashed_at < net.nodes["a"].app.height  # the other three kept committing without c
    net.run(until_height=net.nodes["a"].app.height + 3, max_ms=120_000)
    assert_same_chain(net, net.committed_height())
    assert net.nodes["c"].persisted.get_signed("precommit").height > crashed_at + 1  # c votes again


@pytest.mark.parametrize("restart", [False, True], ids=["proposer-stays-down", "proposer-restarts"])
def test_two_locked_validators_and_one_that_missed_the_lock_still_commit_with_the_relays_own_resends(restart):
    """Regression (a 4-node chaos run halted for good): round 0's proposer P crashes right after its proposal
    and prevote; X and Y see P's, X's and Y's prevotes, lock and precommit (no +2/3); Z was partitioned
    through round 0. The real relay re-sends only a node's own messages of its last two rounds, so Z can
    never see round 0's prevotes: X's re-proposal (valid round 0) must carry them, or Z prevotes nil on
    it forever while X and Y, locked, prevote nil on everything else."""
    net = Network(["a", "b", "c", "d"], seed=1, resend="own")
    vset = net.nodes["a"].vset
    assert vset is not None
    proposer = next(n for n in net.nodes.values() if n.key.address == vset.proposer(0)).name
    lagger = next(name for name in "abcd" if name != proposer)
    net.partition([lagger], [n for n in "abcd" if n != lagger], start_ms=0, end_ms=400)
    net.crash(proposer, at_ms=1, restart_ms=1_500 if restart else 10_000_000)
    net.run(max_ms=390)
    locked = [n for n in net.nodes.values() if n.persisted is not None and n.persisted.locked_round == 0]
    assert len(locked) == 2 and net.committed_height() == 0  # the setup of the halt
    net.run(max_ms=20_000)
    live = [n for n in net.nodes.values() if n.up]
    assert len(live) == (4 if restart else 3) and min(n.app.height for n in live) >= 1
    net.check_safety()
    assert len({n.decided[1].id for n in live}) == 1


def test_signed_price_votes_submitted_to_single_nodes_are_committed_with_equal_app_hashes():
    net = Network(["a", "b", "c", "d"], seed=3, drop=0.05, dup=0.1, delay_ms=(1, 60))
    prices = {"a": 100, "b": 120, "c": 90, "d": 110}
    for i, (name, price) in enumerate(prices.items()):
        net.submit(signed(name, 0, MsgSubmitPriceProposal.of(price)), at_ms=50 * i, to=[name])
    net.submit(signed("a", 1, MsgSubmitPriceProposal.of(105)), at_ms=400, to=["b"])
    net.run(until_height=10, max_ms=120_000)
    net.run(until_height=net.committed_height() + 1, max_ms=120_000)
    height = net.committed_height()
    assert_same_chain(net, height)
    committed = [tx for n in [net.honest[0]] for h in range(1, height + 1) for tx in n.decided[h].txs]
    assert len(committed) == 5
    for node in net.honest:
        votes = {name: node.app.query("price_vote/" + ADDR[name])["price"] for name in prices}
        assert votes == {**prices, "a": votes["a"]} and votes["a"] in (100, 105)


def test_a_stake_bonded_by_a_new_account_makes_it_a_proposing_and_voting_validator_after_the_epoch_boundary():
    net = Network(["a", "b", "c", "d"], observers=["e"], seed=2, epoch_length=4, delay_ms=(1, 30))
    net.submit(signed("e", 0, MsgBond(30)), at_ms=0)
    net.run(until_height=14, max_ms=120_000)
    assert_same_chain(net, 14)
    node = net.nodes["a"]
    bond_height = next(h for h in sorted(node.decided) if node.decided[h].txs)
    boundary = (bond_height // 4 + 1) * 4  # the epoch's last block snapshots the new set
    powers = dict(get_app_powers(node.app))
    assert powers[ADDR["e"]] == 30 and sum(powers.values()) == 70
    for h in range(1, boundary + 1):
        assert node.decided[h].header.proposer != ADDR["e"]
    voters_after = {v.validator for h in range(boundary + 1, 14) for v in node.commits[h].precommits}
    assert ADDR["e"] in voters_after  # with P = 70, a..d (40) are no quorum without e
    assert ADDR["e"] in {node.decided[h].header.proposer for h in range(boundary + 1, 15)}
    assert node.decided[boundary + 1].header.validators_hash != node.decided[boundary].header.validators_hash


def test_the_same_seed_replays_the_same_run():
    def run() -> list[str]:
        net = Network(["a", "b", "c", "d"], seed=42, drop=0.1, dup=0.1, byzantine={"b"})
        net.run(until_height=3, max_ms=60_000)
        return [net.nodes["a"].decided[h].id for h in (1, 2, 3)]

    assert run() == run()


def test_the_safety_check_does_find_forks_once_byzantine_power_reaches_one_half():
    """The adversary and the checker have teeth: above the 1/3 bound the same attacks do fork the chain."""
    forks = 0
    for seed in range(10):
        net = Network(["a", "b", "c", "d"], seed=seed, byzantine={"b", "c"}, delay_ms=(1, 100))
        net.run(until_height=3, max_ms=3000)
        try:
            net.check_safety()
        except AssertionError:
            forks += 1
    assert forks >= 1


@pytest.mark.parametrize("seed", range(3))
def test_safety_and_liveness_with_unequal_powers_and_the_largest_validator_byzantine(seed):
    net = Network(
        {"a": 32, "b": 25, "c": 23, "d": 20}, seed=seed, drop=0.1, dup=0.1, delay_ms=(1, 150), byzantine={"a"}
    )
    net.partition("ab", "cd", start_ms=0, end_ms=1500)
    net.run(until_height=4, max_ms=120_000)
    assert_same_chain(net, 4)
    assert_commits_verify(net)


@pytest.mark.parametrize("time_ms", [2**63 - 1, START_MS + 10**12, 0], ids=["int64-max", "far-future", "far-past"])
def test_a_byzantine_proposer_that_sets_a_far_future_or_far_past_time_cannot_halt_the_chain(time_ms):
    net = Network(["a", "b", "c", "d"], seed=3, block_times={"d": time_ms})  # d lies only about time
    net.run(until_height=10, max_ms=120_000)
    assert_same_chain(net, 10)
    assert_commits_verify(net)
    assert ADDR["d"] not in {b.header.proposer for b in net.honest[0].decided.values()}  # d's blocks: refused
    assert any(c.round >= 1 for c in net.honest[0].commits.values())  # in d's turns, round 1 decided
    times = [net.honest[0].decided[h].header.time_ms for h in range(1, 11)]
    assert times == sorted(set(times)) and times[-1] < net.now + 1  # BFT time: increasing, never ahead of the clocks
    assert all(n.invalid == 0 for n in net.honest)  # re-signed proposals verify; they are just not valid(v)


def test_a_peer_that_relays_proposals_with_swapped_transactions_poisons_nobody():
    net = Network(["a", "b", "c", "d"], seed=4, delay_ms=(1, 60), byzantine={"d"}, tamper_relay={"d"})
    txs = [signed("a", i, MsgBond(amount=1)) for i in range(6)]
    for i, tx in enumerate(txs):
        net.submit(tx, at_ms=200 * i)
    net.run(until_height=8, max_ms=120_000)
    assert_same_chain(net, 8)
    assert sum(n.invalid for n in net.honest) > 0  # the poison arrived, and was refused as invalid input
    committed = [tx for b in net.honest[0].decided.values() for tx in b.txs]
    assert all(tx in committed for tx in txs) and b"poison" not in committed
