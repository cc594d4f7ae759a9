"""The price feeder (`node.feeder`, vote_mode commit_reveal): it keeps the operator's standing price and
each commit's salt in HOME/price_feeder.json (0600), reveals at the start of the next epoch, commits
again once half an epoch has passed (or at once when asked), survives a restart between commit and
reveal, and refuses a file it cannot trust.

The feeder runs against a real state machine (`chain.app.Application`) through a small stand-in for
the node, which puts what the feeder submits in the next block; the admin route's two paths (commit
now, or at the next epoch's start) run on a real in-process node."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from pathlib import Path

import aiohttp
import pytest

from chain.app import Application
from chain.params import Params
from chain.store import MemoryStore
from chain.tx import Msg, decode_tx, sign_tx
from node.config import load_home
from node.errors import ConfigError
from node.feeder import FEEDER_FILE, MAX_ATTEMPTS, PriceFeeder, load_feeder_file
from node.node import Node
from tests.helpers import ADDR, CHAIN_ID, KEYS, make_genesis
from tests.node.netutil import make_homes

EPOCH = 4  # blocks


class ChainNode:
    """What the feeder needs from a node, over a real Application: its submissions go in the next block."""

    def __init__(self, vote_mode: str = "commit_reveal") -> None:
        genesis = make_genesis({"a": 60, "b": 40}, vote_mode=vote_mode, epoch_length=EPOCH)
        self.app = Application(MemoryStore())
        self.app.init_chain(genesis)
        self.queue: list[bytes] = []
        self.sequence = 0
        self.syncing = False

    def get_params(self) -> Params:
        return self.app.get_params()

    def query(self, path: str, **params):
        return self.app.query(path, **params)

    def submit_own(self, msgs: list[Msg]) -> str:
        raw = sign_tx(KEYS["a"], CHAIN_ID, self.sequence, msgs, fee=0)
        self.sequence += 1
        self.queue.append(raw)
        return decode_tx(raw).hash

    def is_pending(self, tx_hash: str) -> bool:
        return any(decode_tx(raw).hash == tx_hash for raw in self.queue)

    def block(self, feeder: PriceFeeder | None = None) -> list:
        """Commit the next block with the queued transactions, then run the feeder's listener."""
        txs, self.queue = self.queue, []
        result = self.app.finalize_block(self.app.height + 1, txs)
        self.app.commit()
        assert all(r.ok for r in result.tx_results), [(r.code, r.log) for r in result.tx_results]
        if feeder is not None:
            feeder.on_block(self.app.height)
        return [decode_tx(raw).messages for raw in txs]


def salts():
    """Distinct deterministic salts (the node draws them from os.urandom)."""
    counter = iter(range(1, 1000))
    return lambda: next(counter).to_bytes(32, "big")


def make_feeder(node: ChainNode, home: Path) -> PriceFeeder:
    return PriceFeeder(node, ADDR["a"], home / FEEDER_FILE, draw_salt=salts())


def kinds(messages) -> list[list[str]]:
    return [[m.TYPE for m in tx] for tx in messages]


def test_a_posted_price_is_committed_at_once_revealed_next_epoch_and_counts_in_that_ballot(tmp_path):
    node = ChainNode()
    feeder = make_feeder(node, tmp_path)
    feeder.set_price(300, "ngonka")
    tx_hash = feeder.tick(node.app.height, commit_now=True)
    assert tx_hash is not None and feeder.get_sent_commit(0) == tx_hash
    assert kinds(node.block(feeder)) == [["MsgCommitPrice"]]  # height 1
    assert [c["epoch"] for c in node.query("price_commits/" + ADDR["a"])["commits"]] == [0]
    sent = [node.block(feeder) for _ in range(EPOCH - 1)]  # heights 2..4, the end of epoch 0
    assert [kinds(b) for b in sent] == [[], [], []]
    assert kinds(node.block(feeder)) == [["MsgRevealPrice"]]  # height 5, epoch 1: sent after height 4
    vote = node.query("price_vote/" + ADDR["a"])
    assert (vote["price"], vote["epoch"]) == (300, 1)
    for _ in range(EPOCH):
        node.block(feeder)
    assert node.query("epoch/current")["price"] == 300  # a's 60 of 100 power: in force from epoch 2


def test_the_feeder_commits_the_standing_price_again_each_epoch_so_the_vote_stays_fresh(tmp_path):
    node = ChainNode()
    feeder = make_feeder(node, tmp_path)
    feeder.set_price(250, "ngonka")
    feeder.tick(node.app.height, commit_now=True)
    epochs = {}
    for _ in range(4 * EPOCH):
        for tx in node.block(feeder):
            for msg in tx:
                epochs.setdefault(node.query("epoch/current")["index"], []).append(msg.TYPE)
    assert epochs[0] == ["MsgCommitPrice"]
    for epoch in (1, 2, 3):  # the reveal at the start, the new commit once half the epoch has passed
        assert epochs[epoch] == ["MsgRevealPrice", "MsgCommitPrice"], epochs
    assert node.query("price_vote/" + ADDR["a"])["epoch"] == 3


def test_a_new_feeder_on_the_same_file_reveals_what_the_old_one_committed(tmp_path):
    node = ChainNode()
    first = make_feeder(node, tmp_path)
    first.set_price(410, "icoin")
    first.tick(node.app.height, commit_now=True)
    node.block()  # committed; then the node "restarts": the old feeder is gone
    path = tmp_path / FEEDER_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    saved = json.loads(path.read_text())
    assert saved["price"] == 410 and set(saved["commits"]) == {"0"}
    restarted = make_feeder(node, tmp_path)
    while node.query("epoch/current")["index"] == 0:
        node.block()
    restarted.on_block(node.app.height)
    assert kinds(node.block()) == [["MsgRevealPrice"]]
    assert node.query("price_vote/" + ADDR["a"])["price"] == 410


def test_a_price_posted_after_the_epochs_commit_waits_for_the_next_epoch(tmp_path):
    node = ChainNode()
    feeder = make_feeder(node, tmp_path)
    feeder.set_price(100, "ngonka")
    feeder.tick(node.app.height, commit_now=True)
    node.block(feeder)
    feeder.set_price(120, "ngonka")  # the operator changes its mind in the same epoch
    feeder.commit_next = True
    while node.query("epoch/current")["index"] == 0:
        node.block(feeder)
    assert kinds(node.block(feeder)) == [["MsgRevealPrice", "MsgCommitPrice"]]  # both at the epoch's start
    (on_chain,) = [c for c in node.query("price_commits/" + ADDR["a"])["commits"] if c["epoch"] == 1]
    commit = feeder.get_known_commit(1, on_chain["hash"])
    assert commit is not None and commit["price"] == 120


def test_a_commit_sent_again_before_the_first_lands_is_revealed_whichever_the_chain_took(tmp_path):
    node = ChainNode()
    feeder = make_feeder(node, tmp_path)
    feeder.set_price(100, "ngonka")
    feeder.tick(node.app.height, commit_now=True)
    first = list(node.queue)
    node.queue.clear()  # the node restarts with its commit still out there; a new feeder sends another
    restarted = make_feeder(node, tmp_path)
    restarted.draw_salt = lambda: bytes([7]) * 32
    restarted.set_price(130, "ngonka")
    restarted.tick(node.app.height, commit_now=True)
    node.queue, node.sequence = first, 1  # the first commit is the one that lands; the second is never sent
    node.block()
    assert len(json.loads((tmp_path / FEEDER_FILE).read_text())["commits"]["0"]) == 2
    while node.query("epoch/current")["index"] == 0:
        node.block()
    restarted.on_block(node.app.height)
    assert kinds(node.block()) == [["MsgRevealPrice"]]
    assert node.query("price_vote/" + ADDR["a"])["price"] == 100  # the commit the chain holds


def test_a_commit_sent_in_one_epoch_that_lands_in_the_next_is_revealed_in_the_one_after(tmp_path):
    """A node a block behind (or a commit that misses the epoch's last block) files the commit under the
    epoch it was in; the chain stores it under the epoch it landed in. The reveal still finds its salt
    (the network engine lost a reveal this way in CI)."""
    node = ChainNode()
    feeder = make_feeder(node, tmp_path)
    while node.app.height < EPOCH - 1:
        node.block()
    feeder.set_price(300, "ngonka")
    feeder.tick(node.app.height, commit_now=True)  # the node is in epoch 0: filed under 0
    held, node.queue = node.queue, []
    node.block()  # height EPOCH, epoch 0's last block: the commit misses it
    node.queue = held
    assert kinds(node.block(feeder)) == [["MsgCommitPrice"]]  # lands in epoch 1
    assert [c["epoch"] for c in node.query("price_commits/" + ADDR["a"])["commits"]] == [1]
    assert set(feeder.file.commits) == {0}
    revealed = []
    while node.query("epoch/current")["index"] < 3:
        revealed += [(node.query("epoch/current")["index"], k) for k in kinds(node.block(feeder))]
    assert revealed[0] == (2, ["MsgRevealPrice"]), revealed  # at the start of epoch 2
    vote = node.query("price_vote/" + ADDR["a"])
    assert (vote["price"], vote["epoch"]) == (300, 2)


def test_the_feeder_does_nothing_in_open_mode_or_while_syncing(tmp_path):
    opened = ChainNode(vote_mode="open")
    feeder = make_feeder(opened, tmp_path)
    feeder.set_price(100, "ngonka")
    assert feeder.tick(opened.app.height, commit_now=True) is None
    syncing = ChainNode()
    syncing.syncing = True
    (tmp_path / "other").mkdir()
    other = make_feeder(syncing, tmp_path / "other")
    other.set_price(100, "ngonka")
    assert other.tick(syncing.app.height, commit_now=True) is None
    assert opened.queue == syncing.queue == []


def test_a_commit_whose_salt_was_lost_is_not_revealed_and_is_tried_once(tmp_path):
    node = ChainNode()
    feeder = make_feeder(node, tmp_path)
    feeder.set_price(100, "ngonka")
    feeder.tick(node.app.height, commit_now=True)
    node.block()
    feeder.file.commits[0] = [{**feeder.file.commits[0][0], "salt": "00" * 32}]  # not the salt committed
    while node.query("epoch/current")["index"] == 0:
        node.block()
    feeder.on_block(node.app.height)
    assert feeder.attempts[("reveal", 0)] == MAX_ATTEMPTS
    assert all("MsgRevealPrice" not in kind for kind in kinds(node.block()))


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("not json", "not a price feeder file"),
        ('{"price": 1}', "must be an object with price, denom and commits"),
        ('{"price": 0, "denom": "ngonka", "commits": {}}', "not a price feeder file"),
        ('{"price": 1, "denom": "ngonka", "commits": {"0": {"salt": "00"}}}', "commits.0 must be a list"),
        ('{"price": 1, "denom": "ngonka", "commits": {"0": [{"salt": "zz"}]}}', "commits.0"),
        ('{"price": 1, "denom": "ngonka", "commits": {"0": [{"salt": "zz", "price": 1, "denom": "ngonka"}]}}', "file"),
        ('{"price": 1, "denom": "ngonka", "commits": {"x": [{"salt": "00", "price": 1, "denom": "ngonka"}]}}', "file"),
    ],
)
def test_a_feeder_file_that_cannot_be_read_is_a_config_error_naming_the_file(tmp_path, content, words):
    path = tmp_path / FEEDER_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, content.encode())
    os.close(fd)
    with pytest.raises(ConfigError, match=words) as info:
        load_feeder_file(path)
    assert str(path) in str(info.value)


def test_a_feeder_file_readable_by_others_is_refused(tmp_path):
    path = tmp_path / FEEDER_FILE
    path.write_text('{"price": null, "denom": "ngonka", "commits": {}}')
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_feeder_file(path)


def test_an_operator_without_stake_for_the_next_epoch_gets_no_commit_and_is_told_why(tmp_path):
    node = ChainNode()
    feeder = PriceFeeder(node, ADDR["c"], tmp_path / FEEDER_FILE, draw_salt=salts())  # c has no stake
    feeder.set_price(100, "ngonka")
    assert feeder.tick(node.app.height, commit_now=True) is None and node.queue == []
    code, message = feeder.explain_no_commit()
    assert code == "not_validator" and "no stake for the next epoch" in message
    assert json.loads((tmp_path / FEEDER_FILE).read_text())["price"] == 100  # kept for when it bonds


# --- the admin route on an in-process node -------------------------------------------------------


@pytest.mark.asyncio
async def test_a_second_price_in_one_epoch_is_committed_at_the_next_epochs_start_and_answered_then(tmp_path):
    (path,) = make_homes(tmp_path, 1)
    genesis = json.loads((path / "genesis.json").read_text())
    genesis["params"] = {**genesis.get("params", {}), "vote_mode": "commit_reveal", "epoch_length": 6}
    (path / "genesis.json").write_text(json.dumps(genesis))
    home = load_home(path)
    node = Node(home)
    await node.start()
    try:
        url = f"http://{home.config.api_admin}/v1/admin/unit-of-compute-price-proposal"
        auth = {"Authorization": f"Bearer {home.admin_token}"}
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
            while node.app.height % 6 not in (0, 1):  # the start of an epoch: both posts fit in it
                await asyncio.sleep(0.02)
            async with http.post(url, json={"price": 500, "denom": "ngonka"}, headers=auth) as response:
                assert response.status == 200, await response.text()
                first = await response.json()
            async with http.post(url, json={"price": 600, "denom": "ngonka"}, headers=auth) as response:
                assert response.status == 200, await response.text()
                second = await response.json()
            first_epoch = (first["height"] - 1) // 6
            assert first["effective_epoch"] == first_epoch + 2
            assert (second["height"] - 1) // 6 == first_epoch + 1  # committed in the next epoch, with the reveal
            assert (second["price"], second["effective_epoch"]) == (600, first_epoch + 3)
            async with http.get(url, headers=auth) as response:
                shown = await response.json()
            assert (shown["price"], shown["proposed_at_epoch"]) == (500, first_epoch + 1)  # the first, revealed
            assert [(c["epoch"], c["price"], c["reveal_epoch"]) for c in shown["commits"]] == [
                (first_epoch + 1, 600, first_epoch + 2)
            ]
    finally:
        await node.stop(0)
