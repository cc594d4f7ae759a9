"""Storage faults are loud: a store that fails `PRAGMA quick_check` or whose state does not hash to its
stored app hash is refused at start in one line naming the home and the height; a block that cannot be
written (disk full) stops the node before it signs anything further, and after a restart it catches
up with nothing committed lost. Real SQLite files and real nodes on loopback."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from chain.errors import StoreError
from node import codec
from node.blocks import Evidence, sign_vote
from node.config import load_home, update_config
from node.node import Node
from node.pb import types_pb2 as pb
from node.store import SqliteStore
from tests.node.netutil import FAST, aio_self_channel, make_homes, wait_for

ROOT = Path(__file__).resolve().parents[2]


def uocd(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "uocd", *args], cwd=ROOT, capture_output=True, text=True, timeout=60)


class DiskFull:
    """A sqlite3 connection whose writes fail as on a full disk (reads pass through)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __getattr__(self, name):
        return getattr(self._conn, name)

    def __enter__(self):
        return self._conn.__enter__()

    def __exit__(self, *exc):
        return self._conn.__exit__(*exc)

    def executemany(self, sql, rows):
        raise sqlite3.OperationalError("database or disk is full")


def chain_of(path: Path) -> tuple[int, dict[int, str]]:
    """(height, block ids by height) of a stopped node's store."""
    store = SqliteStore(path)
    try:
        height = store.last_commit().height
        return height, store.get_block_ids(1, height)
    finally:
        store.close()


@asynccontextmanager
async def started(home: Path) -> AsyncIterator[Node]:
    """The node of `home`, started in this process, stopped at the end."""
    node = Node(load_home(home))
    await node.start()
    try:
        yield node
    finally:
        await node.stop(0.1)


async def run_one_validator(home: Path, height: int) -> None:
    async with started(home) as node:
        await wait_for(lambda: node.app.height >= height, f"height {height}")


@pytest.mark.asyncio
async def test_a_failed_block_write_stops_the_node_before_it_signs_again_and_a_restart_catches_up(tmp_path):
    homes = make_homes(tmp_path, 4)  # four validators: three go on without the fourth
    nodes = [Node(load_home(h)) for h in homes]
    for node in nodes:
        await node.start()
    victim = nodes[3]
    try:
        await wait_for(lambda: victim.app.height >= 3, "the victim commits 3 blocks")
        victim.store._conn = DiskFull(victim.store._conn)
        await wait_for(lambda: victim.failed is not None, "the failed write stops the victim")
        stuck = victim.app.height
        assert f"writing height {stuck + 1} failed (database or disk is full)" in str(victim.failed)
        assert "stopped before signing anything further" in str(victim.failed) and victim.failed_event.is_set()
        signed = victim.home.sign_state_path.read_bytes()
        await wait_for(lambda: nodes[0].app.height >= stuck + 5, "the others go on")
        assert victim.home.sign_state_path.read_bytes() == signed, "the stopped node signed again"
        assert not victim.running and victim.app.height == stuck
        await victim.stop(0.1)
        victim_store = load_home(homes[3]).db_path
        height, before = chain_of(victim_store)
        assert height == stuck and sorted(before) == list(range(1, stuck + 1))

        restarted = nodes[3] = Node(load_home(homes[3]))
        await restarted.start()
        await wait_for(lambda: restarted.app.height >= nodes[0].app.height >= stuck + 5, "the restart catches up")
        assert restarted.failed is None
        assert {h: restarted.store.get_block_id(h) for h in before} == before  # nothing committed lost
        assert restarted.store.get_block_id(stuck + 1) == nodes[0].store.get_block_id(stuck + 1)
    finally:
        for node in reversed(nodes):
            await node.stop(0.1)


@pytest.mark.asyncio
async def test_a_lone_validator_whose_disk_filled_after_it_precommitted_decides_that_height_after_a_restart(tmp_path):
    """Regression: it had signed its proposal, prevote and precommit of height h in round 0 when the write
    failed; restarted in round 0, it re-proposed its valid block with that same round as the POL round and
    waited for a proof of lock no one would send, so a one-validator chain never decided h."""
    (home,) = make_homes(tmp_path, 1)
    async with started(home) as node:
        await wait_for(lambda: node.app.height >= 3, "three blocks")
        node.store._conn = DiskFull(node.store._conn)
        await wait_for(lambda: node.failed is not None, "the failed write stops it")
        stuck = node.app.height
    await run_one_validator(home, stuck + 3)  # it decides h and goes on
    height, ids = chain_of(load_home(home).db_path)
    assert height >= stuck + 3 and sorted(ids) == list(range(1, height + 1))


def test_uocd_start_on_a_full_disk_exits_in_one_line_naming_the_height(tmp_path, monkeypatch, capsys):
    (home,) = make_homes(tmp_path, 1)
    update_config(home, timeouts=FAST)
    real = SqliteStore._write_node_rows

    def write_until_full(self, write):
        if write.height >= 3:
            raise sqlite3.OperationalError("database or disk is full")
        return real(self, write)

    monkeypatch.setattr(SqliteStore, "_write_node_rows", write_until_full)
    from uocd.main import main

    assert main(["start", "--home", str(home)]) == 1
    lines = capsys.readouterr().err.splitlines()  # the info log lines of blocks 1 and 2, then the failure
    assert lines[-1].startswith(f"uocd: error: {home / 'data' / 'node.db'}: writing height 3 failed")
    assert [line for line in lines if line.startswith("uocd:")] == lines[-1:]
    assert "stopped before signing anything further" in lines[-1]
    assert chain_of(home / "data" / "node.db")[0] == 2


def test_uocd_start_whose_sign_state_cannot_be_saved_exits_in_one_line_before_sending_what_it_signed(
    tmp_path, monkeypatch, capsys
):
    """Regression: an OSError saving the sign state (EMFILE when the node's files ran out, ENOSPC, EIO)
    escaped the engine's timeout callback: the process stayed up with its consensus stopped for good."""
    (home,) = make_homes(tmp_path, 1)
    update_config(home, timeouts=FAST)
    import node.node

    real = node.node.save_sign_state
    sent: list[object] = []

    def save_until_out_of_files(path, state):
        if state.height >= 3:
            raise OSError(24, "Too many open files", str(path))
        return real(path, state)

    monkeypatch.setattr(node.node, "save_sign_state", save_until_out_of_files)
    monkeypatch.setattr(node.node.Relay, "send_own", lambda self, height, *args: sent.append(height))
    from uocd.main import main

    assert main(["start", "--home", str(home)]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert lines[-1].startswith(f"uocd: error: the sign state could not be saved to {home / 'validator_state.json'}")
    assert "Too many open files" in lines[-1] and "stopped before sending what it was about to sign" in lines[-1]
    assert [line for line in lines if line.startswith("uocd:")] == lines[-1:]
    assert not [line for line in lines if "Exception in callback" in line]  # the engine's callback no longer dies
    assert max(sent) == 2 and chain_of(home / "data" / "node.db")[0] == 2  # nothing of height 3 left the node


class EvidenceDiskFull(DiskFull):
    """A sqlite3 connection on which storing evidence fails as on a full disk."""

    def execute(self, sql, *args):
        if sql.lstrip().startswith("INSERT OR IGNORE INTO evidence"):
            raise sqlite3.OperationalError("database or disk is full")
        return self._conn.execute(sql, *args)


@pytest.mark.asyncio
@pytest.mark.parametrize("sent_as", ["twin-votes", "evidence"])
async def test_evidence_that_cannot_be_stored_stops_the_node_in_one_error_not_a_dead_callback(tmp_path, sent_as):
    """Regression: a double sign was stored in the middle of the engine's actions (seen as two votes) or of a
    gRPC call (a peer's evidence); on a full disk the sqlite3 error escaped them, so the engine's next actions
    (its votes, its timeouts) were lost and its consensus could stop for good with the node still up, or the
    peer got the raw sqlite error while the node went on as if the evidence were stored."""
    (home,) = make_homes(tmp_path, 1)
    async with started(home) as node:
        await wait_for(lambda: node.app.height >= 2, "two blocks")
        node.store._conn = EvidenceDiskFull(node.store._conn)
        key = node.home.validator_key
        height = node.consensus.height - (sent_as == "evidence")  # a peer's evidence is of a committed height
        twins = [
            sign_vote(key, node.chain_id, "prevote", height, 5, block_id, 1) for block_id in ("ab" * 32, "cd" * 32)
        ]
        messages = [pb.ConsensusMessage(vote=codec.vote_to_pb(vote)) for vote in twins]
        if sent_as == "evidence":
            messages = [codec.consensus_message_to_pb(Evidence(*twins))]
        async with aio_self_channel(home, f"127.0.0.1:{node.port}") as channel:
            call = channel.unary_unary("/uoc.v1.Gossip/SendConsensus", request_serializer=None)
            for message in messages:
                await call(message.SerializeToString(), timeout=5)
        await wait_for(lambda: node.failed is not None, "the failed write stops the node")
        error = str(node.failed)
        assert isinstance(node.failed, StoreError) and f"storing evidence {key.address}/{height}/5/prevote" in error
        assert "database or disk is full" in error and "stopped before signing anything further" in error
        assert not node.running


def tamper_balance(db: Path) -> None:
    conn = sqlite3.connect(db)
    with conn:
        space, key, value = conn.execute("SELECT space, key, value FROM state WHERE space = 'acct' LIMIT 1").fetchone()
        conn.execute("UPDATE state SET value = ? WHERE space = ? AND key = ?", (value.replace("1", "2", 1), space, key))
    conn.close()


def corrupt_pages(db: Path) -> None:
    data = bytearray(db.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    for offset in range(page, len(data) - page, page):  # every page but the header's: garbage over its b-tree
        data[offset : offset + 64] = b"\xa5" * 64
    db.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("damage", "fragments"),
    [
        (tamper_balance, ("does not match its app hash", "at height 3")),
        (corrupt_pages, ("is corrupt (PRAGMA quick_check:",)),
    ],
    ids=["app-hash-mismatch", "corrupt-pages"],
)
def test_start_on_a_damaged_store_refuses_in_one_line_naming_the_home_and_changes_nothing(tmp_path, damage, fragments):
    (home,) = make_homes(tmp_path, 1)
    asyncio.run(run_one_validator(home, 3))
    db = home / "data" / "node.db"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # one file to damage
    conn.execute("UPDATE meta SET height = 3")  # a fixed height to name (the node may have gone further)
    conn.commit()
    conn.close()
    damage(db)
    before = db.read_bytes()
    result = uocd("start", "--home", str(home))
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    line = result.stderr
    assert line.startswith("uocd: error: ") and str(home) in line and "Traceback" not in line
    assert all(f in line for f in fragments), line
    assert "restore" in line and "from a backup" in line
    assert db.read_bytes() == before  # nothing written
