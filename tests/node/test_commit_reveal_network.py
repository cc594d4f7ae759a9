"""Commit–reveal voting on a real 4-validator network of `uocd start` processes (vote_mode
commit_reveal, epochs of 20 blocks of ~200 ms): the operator's `POST /v1/admin/unit-of-compute-price-
proposal` keeps its request and answer, the node commits at once and its price feeder reveals in the
next epoch, also after the node was restarted between the two; `GET` shows the commit and when it
becomes public; an open vote is refused naming the rule."""

from __future__ import annotations

import json
import stat

import pytest
import requests

from chain.tx import MsgSubmitPriceProposal, sign_tx
from node.feeder import FEEDER_FILE
from tests.node.netutil import ApiNode, make_cli_network, wait_until

RETRYABLE = (requests.RequestException,)
EPOCH_LENGTH = 20
PRICE_PATH = "/v1/admin/unit-of-compute-price-proposal"


class Node(ApiNode):
    """A `uocd start` child process with its API URLs and admin auth header."""

    def get(self, path: str, **params) -> dict:
        return requests.get(self.public + path, params=params, timeout=10).json()

    def own_vote(self) -> requests.Response:
        return requests.get(self.admin + PRICE_PATH, headers=self.auth, timeout=10)


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    homes = make_cli_network(
        tmp_path_factory.mktemp("crnet"), "cr", {"epoch_length": EPOCH_LENGTH, "vote_mode": "commit_reveal"}
    )
    nodes = [Node(h) for h in homes]
    try:
        wait_until(lambda: all(n.get("/v1/status")["height"] >= 2 for n in nodes), "all nodes commit", ignore=RETRYABLE)
        yield nodes
    finally:
        codes = [n.stop() for n in nodes]
    assert codes == [0] * len(nodes), "every node stops cleanly on SIGTERM"


def epoch_of(height: int) -> int:
    return (height - 1) // EPOCH_LENGTH


def test_an_open_vote_is_refused_naming_the_vote_mode(network):
    node = network[1]
    sequence = node.get(f"/v1/accounts/{node.key.address}")["sequence"]
    raw = sign_tx(node.key, node.chain_id, sequence, [MsgSubmitPriceProposal.of(100)])
    answer = requests.post(node.public + "/v1/txs", data=raw, headers={"Content-Type": "application/json"}, timeout=10)
    assert answer.status_code == 422 and answer.json()["error"]["code"] == "wrong_vote_mode"


def test_the_node_commits_the_operators_price_and_reveals_it_next_epoch_across_a_restart(network):
    operator, witness = network[0], network[1]
    # start at the beginning of an epoch, so the commit and the restart fit in it
    wait_until(lambda: witness.get("/v1/status")["height"] % EPOCH_LENGTH == 1, "an epoch starts", ignore=RETRYABLE)
    answer = requests.post(operator.admin + PRICE_PATH, json={"price": 777, "denom": "ngonka"}, headers=operator.auth)
    assert answer.status_code == 200, answer.text
    vote = answer.json()
    assert set(vote) == {"tx_hash", "height", "price", "denom", "price_ngonka", "effective_epoch"}
    committed = epoch_of(vote["height"])
    assert (vote["price"], vote["price_ngonka"], vote["effective_epoch"]) == (777, 777, committed + 2)
    assert operator.get(f"/v1/txs/{vote['tx_hash']}")["tx"]["body"]["messages"][0]["@type"] == "MsgCommitPrice"

    shown = operator.own_vote().json()
    assert shown["vote_mode"] == "commit_reveal" and shown["price"] is None  # nothing revealed yet
    assert [(c["epoch"], c["price"], c["reveal_epoch"], c["in_force_epoch"]) for c in shown["commits"]] == [
        (committed, 777, committed + 1, committed + 2)
    ]
    # the operator answered once its own node committed the block; the witness may apply it a moment later
    wait_until(lambda: witness.get("/v1/status")["height"] >= vote["height"], "the witness has it", ignore=RETRYABLE)
    public = witness.get(f"/v1/validators/{operator.key.address}/price-commits")
    assert [c["epoch"] for c in public["commits"]] == [committed] and "price" not in public["commits"][0]

    assert operator.stop() == 0
    assert epoch_of(witness.get("/v1/status")["height"]) == committed, "the node stopped before its reveal epoch"
    feeder_file = operator.home / FEEDER_FILE
    assert stat.S_IMODE(feeder_file.stat().st_mode) == 0o600
    assert str(committed) in json.loads(feeder_file.read_text())["commits"]

    restarted = Node(operator.home)
    network[0] = restarted  # the fixture stops it
    revealed = wait_until(
        lambda: (v := restarted.own_vote().json()).get("proposed_at_epoch") == committed + 1 and v,
        "the restarted node reveals its commit",
        timeout=60,
        ignore=RETRYABLE + (json.JSONDecodeError,),
    )
    assert (revealed["price"], revealed["denom"], revealed["price_ngonka"]) == (777, "ngonka", 777)
    record = wait_until(
        lambda: (
            witness.get(f"/v1/epochs/{committed + 2}")
            if epoch_of(witness.get("/v1/status")["height"]) > committed + 1
            else None
        ),
        "the reveal epoch ends",
        timeout=60,
        ignore=RETRYABLE,
    )
    assert (record["voters"], record["max_vote"]) == (1, 777)  # the ballot of the reveal epoch holds the vote
    # the feeder committed the standing price again, so the vote stays fresh without another request
    wait_until(
        lambda: restarted.own_vote().json().get("proposed_at_epoch") == committed + 2,
        "the feeder reveals the price again",
        timeout=60,
        ignore=RETRYABLE,
    )
