"""node.blocks: canonical sign bytes, hashes, JSON round trips and typed rejections of bad shapes."""

from __future__ import annotations

import copy
import dataclasses
import json

import pytest

from chain.encoding import canonical_bytes
from node.blocks import (
    SIGN_DOMAIN,
    Block,
    Commit,
    Evidence,
    Header,
    Proposal,
    Vote,
    check_proposal_shape,
    check_vote_shape,
    compute_commit_hash,
    compute_txs_hash,
    make_evidence,
    sign_proposal,
    sign_vote,
)
from node.errors import ConsensusError, InvalidMessage, NodeError
from tests.helpers import ADDR, CHAIN_ID, KEYS

H = "ab" * 32


def make_header(**changes) -> Header:
    fields = dict(
        chain_id=CHAIN_ID,
        height=2,
        time_ms=1_000,
        last_block_id=H,
        last_commit_hash=H,
        txs_hash=compute_txs_hash([b"tx1"]),
        app_hash="cd" * 32,
        validators_hash="ef" * 32,
        proposer=ADDR["a"],
    )
    fields.update(changes)
    return Header(**fields)


def make_commit() -> Commit:
    votes = tuple(sign_vote(KEYS[n], CHAIN_ID, "precommit", 1, 0, H, 5) for n in "abc")
    return Commit(1, 0, H, tuple(sorted(votes, key=lambda v: v.validator)))


def make_block() -> Block:
    commit = make_commit()
    return Block(make_header(last_commit_hash=compute_commit_hash(commit)), (b"tx1",), commit)


def test_errors_belong_to_the_node_exception_tree():
    assert issubclass(InvalidMessage, ConsensusError) and issubclass(ConsensusError, NodeError)


@pytest.mark.parametrize(
    "obj",
    [
        make_header(),
        make_block(),
        Block(make_header(height=1, last_block_id="", last_commit_hash=""), (), None),
        make_commit(),
        sign_vote(KEYS["a"], CHAIN_ID, "prevote", 3, 1, None, 9),
        sign_proposal(KEYS["a"], CHAIN_ID, 2, 1, 0, make_block(), 11),
        make_evidence(
            sign_vote(KEYS["a"], CHAIN_ID, "prevote", 3, 1, H, 9),
            sign_vote(KEYS["a"], CHAIN_ID, "prevote", 3, 1, None, 9),
        ),
    ],
    ids=["header", "block", "first-block", "commit", "nil-vote", "proposal", "evidence"],
)
def test_every_type_round_trips_through_canonical_json_text(obj):
    text = canonical_bytes(obj.to_json()).decode()
    assert type(obj).from_json(json.loads(text)) == obj


def test_block_id_is_the_sha256_of_the_canonical_header_and_changes_with_every_header_field():
    header = make_header()
    ids = {header.id}
    changes = dict(
        chain_id="other",
        height=3,
        time_ms=1_001,
        last_block_id="",
        last_commit_hash="",
        txs_hash=compute_txs_hash([]),
        app_hash="00" * 32,
        validators_hash="11" * 32,
        proposer=ADDR["b"],
    )
    for name, value in changes.items():
        ids.add(dataclasses.replace(header, **{name: value}).id)
    assert len(ids) == 1 + len(changes)
    assert len(header.id) == 64 and header.id == header.id.lower()


def test_txs_hash_depends_on_order_and_content_and_commit_hash_is_empty_for_no_commit():
    assert compute_txs_hash([b"a", b"b"]) != compute_txs_hash([b"b", b"a"])
    assert compute_txs_hash([b"ab"]) != compute_txs_hash([b"a", b"b"])
    assert compute_commit_hash(None) == ""
    assert len(compute_commit_hash(make_commit())) == 64


def test_vote_sign_bytes_are_the_domain_and_canonical_json_of_the_signed_fields():
    vote = sign_vote(KEYS["a"], CHAIN_ID, "precommit", 4, 2, None, 77)
    expected = {
        "chain_id": CHAIN_ID,
        "type": "precommit",
        "height": 4,
        "round": 2,
        "block_id": None,
        "timestamp_ms": 77,
    }
    assert vote.sign_bytes(CHAIN_ID) == SIGN_DOMAIN + canonical_bytes(expected)
    assert vote.is_signed_by_validator(CHAIN_ID)
    assert not vote.is_signed_by_validator("another-chain")


def test_proposal_sign_bytes_cover_the_block_id_and_pol_round():
    block = make_block()
    proposal = sign_proposal(KEYS["a"], CHAIN_ID, 2, 3, 1, block, 50)
    fields = json.loads(proposal.sign_bytes(CHAIN_ID)[len(SIGN_DOMAIN) :])
    assert fields == {
        "chain_id": CHAIN_ID,
        "type": "proposal",
        "height": 2,
        "round": 3,
        "block_id": block.id,
        "pol_round": 1,
        "timestamp_ms": 50,
    }
    assert proposal.is_signed_by_proposer(CHAIN_ID)
    assert not dataclasses.replace(proposal, pol_round=0).is_signed_by_proposer(CHAIN_ID)


@pytest.mark.parametrize(
    "change",
    [
        dict(block_id=H),
        dict(round=1),
        dict(height=5),
        dict(type="prevote"),
        dict(timestamp_ms=78),
        dict(validator=ADDR["b"]),
        dict(pubkey=KEYS["b"].pubkey),
    ],
    ids=["block", "round", "height", "type", "timestamp", "validator", "pubkey"],
)
def test_a_vote_altered_after_signing_no_longer_verifies(change):
    vote = sign_vote(KEYS["a"], CHAIN_ID, "precommit", 4, 2, None, 77)
    assert not dataclasses.replace(vote, **change).is_signed_by_validator(CHAIN_ID)


def test_evidence_orders_its_votes_canonically_and_keys_the_offence():
    nil_vote = sign_vote(KEYS["a"], CHAIN_ID, "prevote", 3, 1, None, 9)
    block_vote = sign_vote(KEYS["a"], CHAIN_ID, "prevote", 3, 1, H, 9)
    one, two = make_evidence(block_vote, nil_vote), make_evidence(nil_vote, block_vote)
    assert one == two and one.vote_a.block_id is None
    assert one.key == f"{ADDR['a']}/3/1/prevote"


@pytest.mark.parametrize(
    "other",
    [
        sign_vote(KEYS["a"], CHAIN_ID, "prevote", 3, 1, H, 10),
        sign_vote(KEYS["b"], CHAIN_ID, "prevote", 3, 1, None, 9),
        sign_vote(KEYS["a"], CHAIN_ID, "prevote", 3, 2, None, 9),
        sign_vote(KEYS["a"], CHAIN_ID, "precommit", 3, 1, None, 9),
    ],
    ids=["same-block", "other-validator", "other-round", "other-type"],
)
def test_make_evidence_refuses_votes_that_do_not_conflict(other):
    with pytest.raises(InvalidMessage):
        make_evidence(sign_vote(KEYS["a"], CHAIN_ID, "prevote", 3, 1, H, 9), other)


def _vote_json() -> dict:
    return sign_vote(KEYS["a"], CHAIN_ID, "prevote", 3, 1, H, 9).to_json()


def _mutate(obj: dict, path: list, value) -> dict:
    obj = copy.deepcopy(obj)
    target = obj
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return obj


@pytest.mark.parametrize(
    "cls,obj",
    [
        (Vote, "not an object"),
        (Vote, _mutate(_vote_json(), ["type"], "precommitt")),
        (Vote, _mutate(_vote_json(), ["height"], 0)),
        (Vote, _mutate(_vote_json(), ["height"], True)),
        (Vote, _mutate(_vote_json(), ["round"], -1)),
        (Vote, _mutate(_vote_json(), ["round"], 1.0)),
        (Vote, _mutate(_vote_json(), ["round"], 2**63)),
        (Vote, _mutate(_vote_json(), ["block_id"], "XY" * 32)),
        (Vote, _mutate(_vote_json(), ["block_id"], "")),
        (Vote, _mutate(_vote_json(), ["validator"], "uoc1notanaddress")),
        (Vote, _mutate(_vote_json(), ["pubkey"], "00" * 31)),
        (Vote, _mutate(_vote_json(), ["signature"], "zz" * 64)),
        (Vote, _mutate(_vote_json(), ["signature"], KeyError)),
        (Vote, {**_vote_json(), "extra": 1}),
        (Header, _mutate(make_header().to_json(), ["proposer"], 5)),
        (Header, _mutate(make_header().to_json(), ["txs_hash"], "")),
        (Block, _mutate(make_block().to_json(), ["txs"], "00")),
        (Block, _mutate(make_block().to_json(), ["txs", 0], "0g")),
        (Commit, _mutate(make_commit().to_json(), ["precommits"], {})),
        (Commit, _mutate(make_commit().to_json(), ["block_id"], None)),
        (Proposal, _mutate(sign_proposal(KEYS["a"], CHAIN_ID, 2, 1, 0, make_block(), 1).to_json(), ["pol_round"], 1)),
        (Proposal, _mutate(sign_proposal(KEYS["a"], CHAIN_ID, 2, 1, 0, make_block(), 1).to_json(), ["pol_round"], -2)),
        (Proposal, _mutate(sign_proposal(KEYS["a"], CHAIN_ID, 2, 1, 0, make_block(), 1).to_json(), ["height"], 3)),
        (Evidence, {"vote_a": _vote_json(), "vote_b": _vote_json()}),
    ],
    ids=[
        "vote-not-object",
        "vote-type",
        "vote-height-0",
        "vote-height-bool",
        "vote-round-negative",
        "vote-round-float",
        "vote-round-huge",
        "vote-block-id-uppercase",
        "vote-block-id-empty",
        "vote-validator",
        "vote-pubkey-size",
        "vote-signature-hex",
        "vote-missing-field",
        "vote-extra-field",
        "header-proposer",
        "header-txs-hash",
        "block-txs-not-list",
        "block-tx-bad-hex",
        "commit-precommits",
        "commit-block-id-nil",
        "proposal-pol-round-not-below-round",
        "proposal-pol-round-below-minus-one",
        "proposal-height-differs-from-block",
        "evidence-without-conflict",
    ],
)
def test_from_json_rejects_a_bad_shape_with_invalid_message(cls, obj):
    with pytest.raises(InvalidMessage):
        cls.from_json(obj)


def test_shape_checks_reject_wrong_python_types_built_without_from_json():
    vote = sign_vote(KEYS["a"], CHAIN_ID, "prevote", 3, 1, H, 9)
    with pytest.raises(InvalidMessage):
        check_vote_shape(dataclasses.replace(vote, pubkey="not bytes"))
    proposal = sign_proposal(KEYS["a"], CHAIN_ID, 2, 1, 0, make_block(), 1)
    with pytest.raises(InvalidMessage):
        check_proposal_shape(dataclasses.replace(proposal, block=dataclasses.replace(make_block(), txs=["str"])))
