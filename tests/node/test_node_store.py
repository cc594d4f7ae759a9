"""The node tables of the SQLite store: blocks, commits, validator sets and evidence,
written with the state in one transaction; real SQLite files, including a SIGKILL mid-write."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from chain.app import Application
from chain.rules import get_validator_set
from chain.store import State
from chain.tx import MsgSend, compute_tx_bytes, decode_tx
from node.store import BlockWrite, SqliteStore
from tests.helpers import ADDR, make_genesis, signed


def fake_block(height: int) -> tuple[str, dict, dict]:
    """A block id, block JSON and commit JSON standing in for node.blocks objects."""
    block_id = f"{height:064x}"
    return block_id, {"header": {"height": height}, "txs": []}, {"height": height, "block_id": block_id}


def apply_block(app: Application, store: SqliteStore, txs: list[bytes]) -> None:
    """Commit the block with its rows in one store transaction, the way the node does."""
    height = app.height + 1
    block_id, block, commit = fake_block(height)
    app.finalize_block(height, txs)
    next_set = lambda: {"for": height + 1, "powers": get_validator_set(State(store, height))}  # noqa: E731
    store.apply_block(BlockWrite(height, next_set, block_id, block, commit), app.commit)


def init_chain(app: Application, store: SqliteStore, genesis: dict) -> None:
    """Write genesis with the validator set of height 1, the way the node does."""
    store.apply_block(BlockWrite(0, lambda: {"for": 1}), lambda: app.init_chain(genesis))


@pytest.fixture
def store(tmp_path: Path):
    s = SqliteStore(tmp_path / "node.db")
    yield s
    s.close()


def test_block_commit_and_next_validator_set_are_written_with_the_state(tmp_path: Path, store: SqliteStore):
    app = Application(store)
    init_chain(app, store, make_genesis({"a": 50, "b": 30}))
    apply_block(app, store, [signed("a", 0, MsgSend(to=ADDR["e"], amount=1))])
    reopened = SqliteStore(tmp_path / "node.db")
    assert reopened.last_commit().height == 1
    block_id, block, commit = reopened.get_block_row(1)
    assert (block_id, block, commit) == fake_block(1)
    assert reopened.get_block_id(1) == block_id and reopened.get_block_id(2) is None
    assert reopened.get_validator_set_row(1) == (1, {"for": 1})
    # computed inside the block's transaction: it sees the powers after the block
    assert reopened.get_validator_set_row(2) == (2, {"for": 2, "powers": sorted([[ADDR["a"], 50], [ADDR["b"], 30]])})
    assert reopened.get_max_block_height() == 1 and reopened.get_unapplied_heights() == []
    assert [h for h, _, _ in reopened.iterate_block_rows(1, 5)] == [1]
    reopened.close()


def test_block_rows_are_not_written_when_the_block_fails_nor_by_a_later_commit(store: SqliteStore):
    app = Application(store)
    app.init_chain(make_genesis({"a": 50}))

    def failing_commit() -> None:
        raise OSError("injected")

    with pytest.raises(OSError):
        store.apply_block(BlockWrite(1, lambda: {"for": 2}, *fake_block(1)), failing_commit)
    app.finalize_block(1, [])
    app.commit()
    assert store.get_block_row(1) is None


def test_a_validator_set_row_is_written_only_when_given_and_reads_fall_back_to_the_last_one(store: SqliteStore):
    app = Application(store)
    init_chain(app, store, make_genesis({"a": 50}))
    for height, doc in ((1, None), (2, {"for": 3}), (3, None), (4, None)):
        app.finalize_block(height, [])
        store.apply_block(BlockWrite(height, lambda doc=doc: doc, *fake_block(height)), app.commit)
    assert store.get_validator_set_heights() == [1, 3]
    assert [store.get_validator_set_row(h) for h in (0, 1, 2, 3, 5)] == [
        None,
        (1, {"for": 1}),
        (1, {"for": 1}),
        (3, {"for": 3}),
        (3, {"for": 3}),
    ]


@pytest.mark.parametrize(
    ("keep_from", "left"),
    [(0, [1, 3, 5, 7]), (1, [1, 3, 5, 7]), (2, [1, 3, 5, 7]), (3, [3, 5, 7]), (6, [5, 7]), (7, [7]), (99, [7])],
)
def test_pruning_keeps_the_row_in_force_at_the_kept_height_and_every_later_one(store: SqliteStore, keep_from, left):
    app = Application(store)
    init_chain(app, store, make_genesis({"a": 50}))
    for height in range(1, 7):
        app.finalize_block(height, [])
        doc = {"for": height + 1} if height % 2 == 0 else None
        keep = keep_from if height == 6 else 0
        write = BlockWrite(height, lambda doc=doc: doc, *fake_block(height), keep_validator_sets_from=keep)
        store.apply_block(write, app.commit)
    assert store.get_validator_set_heights() == left


def test_decided_blocks_saved_before_application_are_reported_unapplied(store: SqliteStore):
    app = Application(store)
    app.init_chain(make_genesis({"a": 50}))
    store.save_decided_blocks([(h, *fake_block(h)) for h in (1, 2, 3)])
    assert store.get_unapplied_heights() == [1, 2, 3]
    apply_block(app, store, [])
    assert store.get_unapplied_heights() == [2, 3]


def test_evidence_is_deduplicated_by_key_and_listed_by_height(store: SqliteStore):
    assert store.add_evidence("k2", 7, {"n": 2}) is True
    assert store.add_evidence("k1", 5, {"n": 1}) is True
    assert store.add_evidence("k1", 5, {"n": 1}) is False
    assert store.count_evidence() == 2
    assert store.get_evidence() == [{"n": 1}, {"n": 2}]
    assert store.get_evidence(from_height=6) == [{"n": 2}]


CHILD = textwrap.dedent(
    """
    from chain.app import Application
    from chain.tx import MsgSend
    from node.store import BlockWrite, SqliteStore
    from tests.helpers import ADDR, make_genesis, signed
    from tests.node.test_node_store import apply_block, init_chain
    store = SqliteStore({db!r})
    app = Application(store)
    init_chain(app, store, make_genesis({{"a": 50, "b": 30}}, balances={{"a": 10**12}}))
    seq = 0
    while True:
        txs = [signed("a", seq + i, MsgSend(to=ADDR["e"], amount=1)) for i in range(50)]
        seq += 50
        apply_block(app, store, txs)
    """
)


def test_sigkill_mid_write_leaves_blocks_commits_sets_and_state_consistent(tmp_path: Path):
    db = tmp_path / "node.db"
    root = str(Path(__file__).resolve().parents[2])
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD.format(db=str(db))],
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        seen, deadline = 0, time.monotonic() + 60
        while seen < 5 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
            try:
                with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
                    seen = (conn.execute("SELECT height FROM meta").fetchone() or (0,))[0]
            except sqlite3.OperationalError:
                pass
        assert seen >= 5, proc.stderr.read().decode() if proc.poll() is not None else "the child never got going"
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    store = SqliteStore(db)
    app = Application(store)
    height = app.height
    assert height >= seen
    assert store.get_max_block_height() == height  # the block rows went in with the state, never apart
    assert store.get_unapplied_heights() == []
    assert [store.get_validator_set_row(h)[1]["for"] for h in range(1, height + 2)] == list(range(1, height + 2))
    assert app.recompute_app_hash() == app.app_hash
    assert app.query(f"account/{ADDR['a']}")["sequence"] == 50 * height
    assert sqlite3.connect(db).execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    store.close()


def apply_txs(app: Application, store: SqliteStore, txs: list[bytes]) -> None:
    """Commit a block of `txs` with their tx index rows, the way the node's ledger does."""
    height = app.height + 1
    block_id, block, commit = fake_block(height)
    result = app.finalize_block(height, txs)
    rows = tuple((r.hash, r.code, r.log, r.sender) for r in result.tx_results)
    store.apply_block(BlockWrite(height, lambda: None, block_id, block, commit, rows, 0, tuple(txs)), app.commit)


def sender_pages(store: SqliteStore, sender: str, limit: int, reverse: bool) -> list[list[tuple[int, int]]]:
    """Every page of `sender`'s txs as (height, index), following each page's next position."""
    pages, start = [], None
    while True:
        rows = store.get_sender_tx_rows(sender, start, limit + 1, reverse)
        pages.append([(r[2], r[3]) for r in rows[:limit]])
        if len(rows) <= limit:
            return pages
        start = rows[limit][0]


def test_the_sender_index_lists_a_senders_txs_in_block_order_a_page_at_a_time(tmp_path: Path, store: SqliteStore):
    app = Application(store)
    init_chain(app, store, make_genesis({"a": 50, "b": 30}))
    send = MsgSend(to=ADDR["e"], amount=1)
    apply_txs(app, store, [signed("a", 0, send), signed("b", 0, send), signed("a", 1, send)])
    unsigned = decode_tx(
        signed("b", 1, send)
    )  # refused before it is decoded for the app: its sender read from its bytes
    forged = compute_tx_bytes(unsigned.sign_bytes, unsigned.pubkey, bytes(64))
    apply_txs(app, store, [b'{"not": "a tx"}', signed("a", 2, send), forged])
    apply_txs(app, store, [signed("a", 3, send)])
    assert sender_pages(store, ADDR["a"], 2, False) == [[(1, 0), (1, 2)], [(2, 1), (3, 0)]]
    assert sender_pages(store, ADDR["a"], 3, True) == [[(3, 0), (2, 1), (1, 2)], [(1, 0)]]
    assert sender_pages(store, ADDR["b"], 5, False) == [[(1, 1), (2, 2)]]
    assert sender_pages(store, ADDR["e"], 5, False) == [[]]
    assert [r[4] for r in store.get_sender_tx_rows(ADDR["a"], None, 9, False)] == ["ok"] * 4
    first = decode_tx(signed("a", 0, send)).hash
    assert store.get_tx_row(first) == (1, 0, "ok", "")
    assert store.get_tx_bytes(first) == signed("a", 0, send)
    assert [store.get_tx_row(h) for h in (first.lower(), first[:-1], "Z" * 64, "")] == [None] * 4


OLD_TX_TABLES = (  # the tx index of a store made before tx_index: keyed by hash, then its senders
    "CREATE TABLE txs (hash TEXT PRIMARY KEY, height INTEGER NOT NULL, idx INTEGER NOT NULL, code TEXT NOT NULL,"
    " log TEXT NOT NULL, tx BLOB NOT NULL)",
    "CREATE TABLE tx_senders (sender TEXT NOT NULL, pos TEXT NOT NULL, hash TEXT NOT NULL,"
    " PRIMARY KEY (sender, pos)) WITHOUT ROWID",
)


@pytest.mark.parametrize("with_senders", [True, False], ids=["with-tx_senders", "before-tx_senders"])
def test_a_store_made_before_the_compact_tx_index_has_its_txs_moved_into_it_when_opened(
    tmp_path: Path, store: SqliteStore, with_senders: bool, monkeypatch: pytest.MonkeyPatch
):
    app = Application(store)
    init_chain(app, store, make_genesis({"a": 50, "b": 30}))
    send = MsgSend(to=ADDR["e"], amount=1)
    blocks = [[signed("a", 0, send), signed("b", 0, send), signed("a", 1, send)], [signed("a", 2, send)]]
    for txs in blocks:
        apply_txs(app, store, txs)
    rows = [
        (decode_tx(raw).hash, height, i, "ok", "", raw)
        for height, txs in enumerate(blocks, 1)
        for i, raw in enumerate(txs)
    ]
    with store._conn:  # the same txs as the old layout held them
        store._conn.execute("DROP TABLE tx_index")
        store._conn.execute("DROP TABLE tx_sender_index")
        for statement in OLD_TX_TABLES[: 2 if with_senders else 1]:
            store._conn.execute(statement)
        store._conn.executemany("INSERT INTO txs VALUES (?, ?, ?, ?, ?, ?)", rows)
    store.close()
    monkeypatch.setattr("node.store.MOVE_BATCH", 2)  # several steps
    reopened = SqliteStore(tmp_path / "node.db")
    assert sender_pages(reopened, ADDR["a"], 2, False) == [[(1, 0), (1, 2)], [(2, 0)]]
    assert sender_pages(reopened, ADDR["b"], 5, True) == [[(1, 1)]]
    assert [reopened.get_tx_row(h) for h, *_ in rows] == [(height, i, "ok", "") for _, height, i, *_ in rows]
    assert reopened.get_tx_bytes(rows[3][0]) == blocks[1][0]
    tables = {r[0] for r in reopened._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "txs" not in tables and "tx_senders" not in tables
    reopened.close()
