"""Double signs in the state machine: evidence is verified (signatures by chain.crypto), committed once,
jails its validator and burns slash_fraction_double_sign of its bonded tokens; MsgUnjail after jail_blocks."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.crypto import PrivateKey
from chain.errors import InvalidBlock, InvalidEvidence
from chain.evidence import compute_vote_sign_bytes, parse_evidence
from chain.tx import MsgBond, MsgSend, MsgUnbond, MsgUnjail
from tests.helpers import ADDR, CHAIN_ID, KEYS, make_app, make_genesis, run_block, run_until, signed, supply_parts

H1 = "1" * 64
H2 = "2" * 64


def make_vote(
    name: str,
    height: int,
    block_id: str | None,
    *,
    round: int = 0,
    type: str = "prevote",
    chain_id: str = CHAIN_ID,
    key: PrivateKey | None = None,
    validator: str | None = None,
) -> dict[str, Any]:
    """A consensus vote's JSON, signed by `key` (default: the named key) over the consensus sign bytes."""
    key = key or KEYS[name]
    sign_bytes = compute_vote_sign_bytes(chain_id, type, height, round, block_id, 7)
    return {
        "type": type,
        "height": height,
        "round": round,
        "block_id": block_id,
        "timestamp_ms": 7,
        "validator": validator or ADDR[name],
        "pubkey": key.pubkey.hex(),
        "signature": key.sign(sign_bytes).hex(),
    }


def make_evidence(name: str, height: int, **kwargs: Any) -> dict[str, Any]:
    """Evidence that `name` prevoted nil and H1 at (height, 0)."""
    return {"vote_a": make_vote(name, height, None, **kwargs), "vote_b": make_vote(name, height, H1, **kwargs)}


def make_chain(**params: Any):
    """a (1000) and b (3000) validate; c is an account only; epochs of 5 blocks, jail for 10 blocks."""
    genesis = make_genesis({"a": 1000, "b": 3000}, {"a": 1000, "b": 1000, "c": 1000}, epoch_length=5, **params)
    genesis["params"].setdefault("jail_blocks", 10)
    app = make_app(genesis)
    run_until(app, 2)
    return app


def run_evidence_block(app, evidence: list[dict[str, Any]], txs: list[bytes] = ()):
    """Propose, finalize and commit the next block with `evidence` (process_proposal first, as consensus does)."""
    app.process_proposal(app.height + 1, list(txs), evidence)
    result = app.finalize_block(app.height + 1, list(txs), evidence)
    app.commit()
    return result


# -- validity: table-driven -----------------------------------------------------------------------

OTHER = PrivateKey.from_name("not-a-validator", salt="uoc-tests")

INVALID = [
    ("wrong signer key", lambda: make_evidence("a", 1, key=KEYS["b"]), "bad_signature"),
    (
        "bad signature",
        lambda: {**make_evidence("a", 1), "vote_b": {**make_vote("a", 1, H1), "signature": "00" * 64}},
        "bad_signature",
    ),
    ("signed for another chain", lambda: make_evidence("a", 1, chain_id="other-chain"), "bad_signature"),
    (
        "same block id",
        lambda: {"vote_a": make_vote("a", 1, H1), "vote_b": make_vote("a", 1, H1)},
        "malformed_evidence",
    ),
    (
        "different heights",
        lambda: {"vote_a": make_vote("a", 1, None), "vote_b": make_vote("a", 2, H1)},
        "malformed_evidence",
    ),
    (
        "different rounds",
        lambda: {"vote_a": make_vote("a", 1, None), "vote_b": make_vote("a", 1, H1, round=1)},
        "malformed_evidence",
    ),
    (
        "different types",
        lambda: {"vote_a": make_vote("a", 1, None), "vote_b": make_vote("a", 1, H1, type="precommit")},
        "malformed_evidence",
    ),
    (
        "different validators",
        lambda: {"vote_a": make_vote("a", 1, None), "vote_b": make_vote("b", 1, H1)},
        "malformed_evidence",
    ),
    (
        "not in canonical order",
        lambda: {"vote_a": make_vote("a", 1, H2), "vote_b": make_vote("a", 1, H1)},
        "malformed_evidence",
    ),
    ("unknown field", lambda: {**make_evidence("a", 1), "extra": 1}, "malformed_evidence"),
    ("from the block's own height", lambda: make_evidence("a", 3), "evidence_from_future"),
    ("from a later height", lambda: make_evidence("a", 9), "evidence_from_future"),
    ("not a validator", lambda: make_evidence("c", 1), "not_validator"),
    ("signed by a stranger", lambda: make_evidence("a", 1, key=OTHER, validator=OTHER.address), "not_validator"),
]


@pytest.mark.parametrize(("case", "build", "code"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_evidence_is_refused_with_its_code_and_changes_nothing(case, build, code):
    app = make_chain()
    before = app.app_hash
    with pytest.raises(InvalidEvidence) as info:
        app.check_evidence(build())
    assert info.value.code == code
    with pytest.raises(InvalidEvidence) as info:
        app.process_proposal(app.height + 1, [], [build()])
    assert info.value.code == code
    assert app.app_hash == before and app.query("validator/" + ADDR["a"])["jailed"] is False


def test_evidence_older_than_max_evidence_age_blocks_is_refused():
    app = make_chain(max_evidence_age_blocks=3)
    run_until(app, 4)
    app.check_evidence(make_evidence("a", 2))  # block 5: 3 blocks old
    with pytest.raises(InvalidEvidence) as info:
        app.check_evidence(make_evidence("a", 1))  # 4 blocks old
    assert info.value.code == "evidence_too_old"


def test_the_same_offence_is_punished_once_whatever_the_pair_of_votes():
    app = make_chain()
    run_evidence_block(app, [make_evidence("a", 1)])
    again = {"vote_a": make_vote("a", 1, H1), "vote_b": make_vote("a", 1, H2)}  # the same (h, r, type) offence
    for evidence in (make_evidence("a", 1), again):
        with pytest.raises(InvalidEvidence) as info:
            app.check_evidence(evidence)
        assert info.value.code == "duplicate_evidence"
    with pytest.raises(InvalidEvidence):
        app.process_proposal(app.height + 1, [], [make_evidence("b", 1), make_evidence("b", 1)])  # twice in a block


def test_block_limits_count_evidence_and_its_bytes():
    app = make_chain(max_block_evidence=1)
    with pytest.raises(InvalidBlock):
        app.process_proposal(app.height + 1, [], [make_evidence("a", 1), make_evidence("b", 1)])
    size = parse_evidence(make_evidence("a", 1)).size
    app = make_chain(max_block_bytes=size + 10)
    app.process_proposal(app.height + 1, [b"x" * 10], [make_evidence("a", 1)])  # the tx fails, the size fits
    with pytest.raises(InvalidBlock):
        app.process_proposal(app.height + 1, [b"x" * 11], [make_evidence("a", 1)])


# -- punishment ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("fraction", "slashed"), [("0.05", 50), ("0", 0), ("1", 1000), ("0.0333", 33)])
def test_a_double_sign_jails_and_burns_exactly_the_slash_fraction_of_the_stake(fraction, slashed):
    app = make_chain(slash_fraction_double_sign=fraction)
    supply = supply_parts(app.store)[0]
    run_evidence_block(app, [make_evidence("a", 2)])
    view = app.query("validator/" + ADDR["a"])
    assert view == {
        "address": ADDR["a"],
        "power": 1000,  # still counts until the epoch boundary
        "stake": 1000 - slashed,
        "pending_stake": 1000 - slashed,
        "jailed": True,
        "jailed_until": 3 + 10,
        "slashes": 1,
        "slashed": slashed,
        "misses": 0,
        "window_epochs": 0,
        "missed": 0,
        "miss_jails": 0,
        "last_vote": None,
        "last_vote_epoch": None,
        "vote_distance_bps": None,
        "unbonding": 0,
        "unbonding_release_height": None,
    }
    held_supply, held = supply_parts(app.store)
    assert held_supply == held == supply - slashed
    assert app.query("validator/" + ADDR["b"])["slashed"] == 0


def test_slash_takes_the_fraction_of_the_tokens_held_from_stake_and_pending_stake():
    app = make_chain()
    run_block(app, [signed("a", 0, MsgBond(amount=500))])  # stake 1000, pending 1500: 1500 held
    run_evidence_block(app, [make_evidence("a", 1)])
    view = app.query("validator/" + ADDR["a"])
    assert (view["stake"], view["pending_stake"], view["slashed"]) == (925, 1425, 75)
    supply, held = supply_parts(app.store)
    assert supply == held


def test_burned_tokens_are_counted_and_leave_the_supply():
    app = make_chain()
    burned_before = app.store.get("meta", "burned")
    run_evidence_block(app, [make_evidence("b", 1)])
    assert int(app.store.get("meta", "burned")) == int(burned_before or 0) + 150


def test_a_jailed_validator_leaves_the_set_at_the_next_boundary_with_its_price_vote():
    app = make_chain()
    result = run_evidence_block(app, [make_evidence("a", 1)])  # height 3
    assert result.next_powers is None and {v["address"] for v in app.query_all("validators")} == {ADDR["a"], ADDR["b"]}
    run_until(app, 4)
    result = run_evidence_block(app, [])  # height 5 ends epoch 0
    assert result.next_powers == ((ADDR["b"], 3000),)
    assert [v["address"] for v in app.query_all("validators")] == [ADDR["b"]]
    assert app.query("epoch/current")["total_power"] == 3000
    assert app.query("validator/" + ADDR["a"])["power"] == 0


def test_further_offences_of_a_jailed_validator_are_recorded_but_not_slashed_again():
    app = make_chain()
    run_evidence_block(app, [make_evidence("a", 1), make_evidence("a", 2, type="precommit")])
    view = app.query("validator/" + ADDR["a"])
    assert (view["slashes"], view["slashed"], view["stake"]) == (1, 50, 950)
    with pytest.raises(InvalidEvidence):
        app.check_evidence(make_evidence("a", 2, type="precommit"))  # recorded: never committed twice


def test_unjail_is_refused_when_not_jailed_and_before_jail_blocks_then_rejoins_at_the_boundary():
    app = make_chain()
    result = run_block(app, [signed("a", 0, MsgUnjail())], expect_ok=False)
    assert result.tx_results[0].code == "not_jailed"
    run_evidence_block(app, [make_evidence("a", 1)])  # height 4, jailed until 14
    run_until(app, 12)
    result = run_block(app, [signed("a", 0, MsgUnjail())], expect_ok=False)  # height 13
    assert result.tx_results[0].code == "still_jailed"
    assert "jailed until height 14" in result.tx_results[0].log
    result = run_block(app, [signed("a", 0, MsgUnjail())])  # height 14
    view = app.query("validator/" + ADDR["a"])
    assert view["jailed"] is False and view["power"] == 0 and view["slashes"] == 1
    result = run_block(app)  # height 15 ends epoch 2
    assert dict(result.next_powers or ()) == {ADDR["a"]: 950, ADDR["b"]: 3000}
    assert app.query("validator/" + ADDR["a"])["power"] == 950


@settings(max_examples=40, deadline=None)
@given(
    stake=st.integers(1, 10**15),
    bond=st.integers(0, 10**12),
    text=st.integers(0, 10**4).map(lambda n: f"{n // 10**4}.{n % 10**4:04d}"),
)
def test_slashing_conserves_the_supply(stake, bond, text):
    genesis = make_genesis({"a": stake, "b": 10}, {"a": 10**12}, epoch_length=1000, slash_fraction_double_sign=text)
    app = make_app(genesis)
    run_until(app, 1)
    if bond:
        run_block(app, [signed("a", 0, MsgBond(amount=bond))])
    supply_before, _ = supply_parts(app.store)
    run_evidence_block(app, [make_evidence("a", 1)])
    supply, held = supply_parts(app.store)
    expected = int(max(stake, stake + bond) * Fraction(text))
    assert supply == held == supply_before - expected
    assert app.query("validator/" + ADDR["a"])["slashed"] == expected


def test_the_proposer_drops_a_tx_that_fails_after_its_blocks_evidence_and_the_block_is_valid():
    """Regression: prepare_proposal ran the txs without the block's evidence, so a validator unbonding all
    of its stake in the block that slashes it made the proposer's own block invalid (the round failed)."""
    app = make_chain()
    evidence = [make_evidence("a", 1)]
    flee = signed("a", 0, MsgUnbond(amount=1000))  # all of a's stake; after the 5% slash only 950 is left
    send = signed("b", 0, MsgSend(to=ADDR["c"], amount=1))
    assert [r.ok for r in app.process_proposal(app.height + 1, [flee, send])] == [True, True]  # without evidence
    app._proposal = None
    kept = app.prepare_proposal(app.height + 1, [flee, send], evidence)
    assert kept == [send]
    assert all(r.ok for r in app.process_proposal(app.height + 1, kept, evidence))  # the block is valid
    result = run_evidence_block(app, evidence, kept)
    assert [r.ok for r in result.tx_results] == [True] and app.query("validator/" + ADDR["a"])["slashed"] == 50


# -- unbonding: no escape from a slash by leaving before the evidence lands ------------------------------


def test_a_validator_that_unbonds_after_its_offence_is_slashed_from_its_unbonding_tokens():
    app = make_chain(max_evidence_age_blocks=20)
    run_block(app, [signed("a", 0, MsgUnbond(amount=1000))])  # height 3: all of a's stake, after the offence at 1
    run_until(app, 6)  # the boundary at 5 moved the 1000 to an unbonding entry released at the end of 25
    assert app.query("validator/" + ADDR["a"])["stake"] == 0
    supply_before = supply_parts(app.store)[0]
    run_evidence_block(app, [make_evidence("a", 1)])  # still within max_evidence_age_blocks of height 1
    view = app.query("validator/" + ADDR["a"])
    assert (view["slashed"], view["unbonding"], view["unbonding_release_height"]) == (50, 950, 25)
    supply, held = supply_parts(app.store)
    assert supply == held == supply_before - 50
    run_until(app, 25)
    assert app.query("account/" + ADDR["a"])["balance"] == 1000 + 950
    assert supply_parts(app.store)[0] == supply_parts(app.store)[1]


def test_unbonding_tokens_that_left_before_the_offence_are_not_slashed():
    app = make_chain(max_evidence_age_blocks=20)
    run_block(app, [signed("a", 0, MsgUnbond(amount=400))])  # height 3; the boundary at 5 unbonds 400
    run_until(app, 7)
    run_evidence_block(app, [make_evidence("a", 6)])  # an offence at 6, after the 400 left the stake
    view = app.query("validator/" + ADDR["a"])
    assert (view["stake"], view["unbonding"], view["slashed"]) == (570, 400, 30)  # 5% of the 600 bonded at 6


def test_evidence_against_a_former_validator_with_nothing_bonded_at_the_offence_is_refused():
    app = make_chain(max_evidence_age_blocks=20)
    run_block(app, [signed("a", 0, MsgUnbond(amount=1000))])
    run_until(app, 7)  # a left the stake at the boundary of height 5
    with pytest.raises(InvalidEvidence) as refused:
        run_evidence_block(app, [make_evidence("a", 6)])
    assert refused.value.code == "not_validator"


def test_a_committed_offence_is_forgotten_once_its_evidence_is_too_old_to_commit_again():
    app = make_chain(max_evidence_age_blocks=4)
    run_evidence_block(app, [make_evidence("a", 2)])  # height 3
    key = ("evid", f"{2:012d}/{ADDR['a']}/0/prevote")
    assert app.store.get(*key) is not None
    run_until(app, 5)  # block 6 = 2 + max_evidence_age_blocks is the last that may hold evidence of 2
    with pytest.raises(InvalidEvidence) as duplicate:
        run_evidence_block(app, [make_evidence("a", 2)])
    assert duplicate.value.code == "duplicate_evidence" and app.height == 5
    run_until(app, 6)
    assert app.store.get(*key) is None  # pruned at the end of block 6
    with pytest.raises(InvalidEvidence) as too_old:
        run_evidence_block(app, [make_evidence("a", 2)])
    assert too_old.value.code == "evidence_too_old"
