"""node.store.SqliteStore on real SQLite files: atomic blocks, reopening, WAL, export and import."""

from __future__ import annotations

import copy
import json
import sqlite3

import pytest

from chain.app import Application
from chain.encoding import canonical_json
from chain.errors import StoreError
from chain.store import CommitInfo, MemoryStore, compute_lthash
from chain.tx import MsgBond, MsgSend, MsgSubmitPriceProposal, MsgUnbond
from node.store import SqliteStore
from tests.helpers import ADDR, make_genesis, run_block, signed, store_snapshot, supply_parts

GENESIS = make_genesis({"a": 50, "b": 30, "c": 20}, epoch_length=2)

BLOCKS = [
    [signed("a", 0, MsgSubmitPriceProposal.of(300)), signed("d", 0, MsgBond(100))],
    [signed("d", 1, MsgSubmitPriceProposal.of(2, "uicoin")), signed("b", 0, MsgSend(ADDR["e"], 17))],
    [signed("c", 0, MsgUnbond(20))],
    [],
    [signed("b", 1, MsgSubmitPriceProposal.of(1, "micoin"))],
]
MORE_BLOCKS = [
    [signed("a", 1, MsgSend(ADDR["f"], 5)), signed("e", 0, MsgBond(3))],
    [signed("f", 0, MsgSend(ADDR["a"], 2))],
    [],
]


def build(path, blocks=BLOCKS) -> Application:
    app = Application(SqliteStore(path))
    app.init_chain(GENESIS)
    for txs in blocks:
        run_block(app, txs)
    return app


def reference_hashes(blocks) -> list[str]:
    """App hashes after each block, computed on a MemoryStore."""
    app = Application(MemoryStore())
    app.init_chain(GENESIS)
    return [run_block(app, txs).app_hash for txs in blocks]


def table_rows(path) -> tuple[list, list]:
    """Every row of the state and meta tables, read through an independent connection."""
    conn = sqlite3.connect(path)
    try:
        state = conn.execute("SELECT space, key, value FROM state ORDER BY space, key").fetchall()
        meta = conn.execute("SELECT id, schema, height, app_hash, lthash FROM meta").fetchall()
    finally:
        conn.close()
    return state, meta


class FailingConnection:
    """Delegates to a sqlite3 connection but raises on the n-th executemany call."""

    def __init__(self, conn: sqlite3.Connection, fail_on: int) -> None:
        self._conn, self._fail_on, self.calls = conn, fail_on, 0

    def __getattr__(self, name):
        return getattr(self._conn, name)

    def __enter__(self):
        return self._conn.__enter__()

    def __exit__(self, *exc):
        return self._conn.__exit__(*exc)

    def executemany(self, sql, rows):
        self.calls += 1
        if self.calls == self._fail_on:
            raise OSError("injected disk failure")
        return self._conn.executemany(sql, rows)


# --- export and import ----------------------------------------------------------------------


def test_export_then_import_gives_the_same_app_hash_and_state(tmp_path):
    app = build(tmp_path / "a.db")
    document = json.loads(json.dumps(app.store.export_state()))  # an export survives JSON
    assert document["height"] == app.height == len(BLOCKS)
    assert document["app_hash"] == app.app_hash
    imported = Application(SqliteStore.import_state(tmp_path / "b.db", document))
    assert imported.height == app.height
    assert imported.app_hash == app.app_hash == imported.recompute_app_hash()
    assert store_snapshot(imported.store) == store_snapshot(app.store)
    for path in ("status", "validators", "history", "epoch/current", "account/" + ADDR["d"]):
        assert imported.query(path) == app.query(path)


def test_imported_store_continues_the_chain_exactly_like_the_original(tmp_path):
    app = build(tmp_path / "a.db")
    imported = Application(SqliteStore.import_state(tmp_path / "b.db", app.store.export_state()))
    for txs in MORE_BLOCKS:
        assert run_block(imported, txs).app_hash == run_block(app, txs).app_hash
    assert imported.app_hash == reference_hashes(BLOCKS + MORE_BLOCKS)[-1]


def test_import_into_a_non_empty_store_is_refused(tmp_path):
    app = build(tmp_path / "a.db")
    other = build(tmp_path / "b.db", BLOCKS[:2])
    before = table_rows(tmp_path / "b.db")
    other.store.close()
    with pytest.raises(StoreError, match="already holds a chain"):
        SqliteStore.import_state(tmp_path / "b.db", app.store.export_state())
    assert table_rows(tmp_path / "b.db") == before


def test_export_of_an_empty_store_is_refused(tmp_path):
    with pytest.raises(StoreError):
        SqliteStore(tmp_path / "empty.db").export_state()


def _tamper_balance(doc):
    for entry in doc["entries"]:
        if entry[0] == "acct" and entry[1] == ADDR["e"]:
            entry[2]["balance"] += 1
            return
    raise AssertionError("no account e")


def _drop_entry(doc):
    doc["entries"].pop()


def _add_entry(doc):
    doc["entries"].append(["acct", ADDR["h"], {"balance": 10**6, "sequence": 0, "pubkey": None}])


def _claim_other_hash(doc):
    doc["app_hash"] = "0" * 64


def _drop_entries(doc):
    del doc["entries"]


def _entries_not_a_list(doc):
    doc["entries"] = 5


def _entry_of_two_items(doc):
    doc["entries"][0] = doc["entries"][0][:2]


def _height_not_a_number(doc):
    doc["height"] = "tall"


def _claim_other_height(doc):
    doc["height"] += 7


def _non_string_space(doc):
    doc["entries"].append([1, "x", 1])


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(_tamper_balance, id="changed-balance"),
        pytest.param(_drop_entry, id="dropped-entry"),
        pytest.param(_add_entry, id="added-entry"),
        pytest.param(_claim_other_hash, id="claimed-hash-changed"),
        pytest.param(_drop_entries, id="entries-missing"),
        pytest.param(_entries_not_a_list, id="entries-not-a-list"),
        pytest.param(_entry_of_two_items, id="entry-of-two-items"),
        pytest.param(_height_not_a_number, id="height-not-a-number"),
        pytest.param(_claim_other_height, id="height-differs-from-meta-height"),
        pytest.param(_non_string_space, id="non-string-space"),
    ],
)
def test_tampered_export_is_refused_with_store_error_and_writes_nothing(tmp_path, tamper):
    app = build(tmp_path / "a.db")
    document = copy.deepcopy(app.store.export_state())
    tamper(document)
    with pytest.raises(StoreError):
        SqliteStore.import_state(tmp_path / "b.db", document)
    assert not (tmp_path / "b.db").exists()


def test_export_whose_claimed_hash_counts_a_duplicated_entry_is_refused(tmp_path):
    # A duplicate collapses to one row in the store, so the stored app hash could never be
    # recomputed from the imported state.
    app = build(tmp_path / "a.db")
    document = copy.deepcopy(app.store.export_state())
    document["entries"].append(copy.deepcopy(document["entries"][0]))
    document["app_hash"] = compute_lthash((s, k, canonical_json(v)) for s, k, v in document["entries"]).app_hash()
    try:
        store = SqliteStore.import_state(tmp_path / "b.db", document)
    except StoreError:
        return
    imported = Application(store)
    assert imported.recompute_app_hash() == imported.app_hash


# --- atomic blocks ------------------------------------------------------------------------------


@pytest.mark.parametrize("fail_on", [1, 2], ids=["upserts-fail", "deletes-fail-after-upserts"])
def test_failure_mid_block_leaves_the_previous_height_and_no_partial_rows(tmp_path, fail_on):
    path = tmp_path / "a.db"
    app = build(path)
    height, app_hash = app.height, app.app_hash
    rows = table_rows(path)
    # An epoch-end block in which d leaves: it upserts (accounts, epoch, history) and deletes
    # (d's validator records), so both statements of the write run.
    result = app.finalize_block(app.height + 1, [signed("a", 1, MsgSend(ADDR["b"], 1)), signed("d", 2, MsgUnbond(100))])
    assert result.epoch_ended and all(r.ok for r in result.tx_results)
    app.store._conn = FailingConnection(app.store._conn, fail_on)
    with pytest.raises(OSError, match="injected"):
        app.commit()
    assert table_rows(path) == rows
    assert app.height == height and app.app_hash == app_hash
    reopened = Application(SqliteStore(path))
    assert (reopened.height, reopened.app_hash) == (height, app_hash)
    assert reopened.recompute_app_hash() == app_hash
    assert reopened.query("account/" + ADDR["a"])["sequence"] == 1
    assert ADDR["d"] in {v["address"] for v in reopened.query_all("validators")}


def test_failed_commit_can_be_retried_and_lands_on_the_same_app_hash(tmp_path):
    path = tmp_path / "a.db"
    app = build(path)
    txs = [signed("a", 1, MsgSend(ADDR["b"], 1)), signed("d", 2, MsgUnbond(100))]
    expected = app.finalize_block(app.height + 1, txs).app_hash
    real = app.store._conn
    app.store._conn = FailingConnection(real, 2)
    with pytest.raises(OSError):
        app.commit()
    app.store._conn = real
    assert app.commit() == expected
    assert app.recompute_app_hash() == expected
    assert app.query("account/" + ADDR["b"])["balance"] == 1001 - 17
    assert ADDR["d"] not in {v["address"] for v in app.query_all("validators")}
    assert supply_parts(app.store)[0] == supply_parts(app.store)[1]
    assert expected == reference_hashes(BLOCKS + [txs])[-1]


def test_write_block_with_an_unwritable_change_midway_writes_nothing(tmp_path):
    path = tmp_path / "a.db"
    store = SqliteStore(path)
    store.write_block(CommitInfo(0, "h0", bytes(2048)), [("s", "k0", '"v0"'), ("s", "gone", '"x"')])
    before = table_rows(path)
    changes = [("s", "k1", '"v1"'), ("s", "k2", '"v2"'), ("s", "k3", object()), ("s", "gone", None)]
    with pytest.raises(StoreError, match=f"^{path}: writing height 1 failed .*; nothing of it was written$"):
        store.write_block(CommitInfo(1, "h1", bytes(2048)), changes)  # type: ignore[list-item]
    assert table_rows(path) == before
    assert store.last_commit().height == 0
    assert store.get("s", "k1") is None and store.get("s", "gone") == '"x"'


def test_write_block_replaces_and_deletes_entries_and_records_the_commit(tmp_path):
    store = SqliteStore(tmp_path / "a.db")
    store.write_block(CommitInfo(0, "h0", bytes(2048)), [("s", "a", "1"), ("s", "b", "2"), ("t", "c", "3")])
    store.write_block(CommitInfo(1, "h1", b"\x01" * 2048), [("s", "a", "10"), ("s", "b", None)])
    assert list(store.entries()) == [("s", "a", "10"), ("t", "c", "3")]
    assert list(store.iterate("s")) == [("a", "10")]
    assert store.get("s", "b") is None
    assert store.last_commit() == CommitInfo(1, "h1", b"\x01" * 2048)


# --- reopening -----------------------------------------------------------------------------------


def test_reopened_store_resumes_from_the_last_committed_height_and_continues(tmp_path):
    path = tmp_path / "a.db"
    app = build(path)
    height, app_hash = app.height, app.app_hash
    app.store.close()
    reopened = Application(SqliteStore(path))
    assert (reopened.height, reopened.app_hash) == (height, app_hash)
    assert reopened.recompute_app_hash() == app_hash
    hashes = [run_block(reopened, txs).app_hash for txs in MORE_BLOCKS]
    assert hashes == reference_hashes(BLOCKS + MORE_BLOCKS)[len(BLOCKS) :]
    reopened.store.close()
    again = Application(SqliteStore(path))
    assert (again.height, again.app_hash) == (height + len(MORE_BLOCKS), hashes[-1])


def test_reopened_store_does_not_see_a_block_that_was_finalized_but_not_committed(tmp_path):
    path = tmp_path / "a.db"
    app = build(path)
    app.finalize_block(app.height + 1, [signed("a", 1, MsgSend(ADDR["b"], 1))])
    reopened = Application(SqliteStore(path))
    assert reopened.height == len(BLOCKS)
    assert reopened.query("account/" + ADDR["a"])["sequence"] == 1
    assert ADDR["d"] in {v["address"] for v in reopened.query_all("validators")}


def test_init_chain_on_a_reopened_store_is_refused(tmp_path):
    path = tmp_path / "a.db"
    build(path, []).store.close()
    with pytest.raises(StoreError):
        Application(SqliteStore(path)).init_chain(GENESIS)


def test_sqlite_store_orders_and_ranges_keys_like_the_memory_store(tmp_path):
    keys = ["b", "B", "a", "10", "9", "\u00e9", "z", "\u4e2d", "a\u0000", "", "uoc1zz", "uoc1a"]
    changes = [("s", k, json.dumps(i)) for i, k in enumerate(keys)]
    sqlite, memory = SqliteStore(tmp_path / "a.db"), MemoryStore()
    for store in (sqlite, memory):
        store.write_block(CommitInfo(0, "h", bytes(2048)), changes)
    assert list(sqlite.iterate("s")) == list(memory.iterate("s"))
    assert list(sqlite.entries()) == list(memory.entries())
    for start, end in [("", None), ("a", "b"), ("9", "a\u0000"), ("\u00e9", None), ("uoc1", "uoc2"), ("z", "a")]:
        for reverse in (False, True):
            got = list(sqlite.iterate("s", start, end, reverse))
            assert got == list(memory.iterate("s", start, end, reverse)), (start, end, reverse)
    assert list(sqlite.iterate("s", "a", "b", True)) == [("a\u0000", "8"), ("a", "2")]


@pytest.mark.parametrize("reverse", [False, True])
def test_a_sqlite_range_scan_reads_page_by_page_and_finds_every_row_past_a_page(tmp_path, reverse):
    from node.store import ITERATE_PAGE

    keys = [f"{i:06d}" for i in range(3 * ITERATE_PAGE + 5)]
    sqlite = SqliteStore(tmp_path / "a.db")
    sqlite.write_block(CommitInfo(0, "h", bytes(2048)), [("s", k, "1") for k in keys] + [("t", "000001", "2")])
    expected = [k for k in sorted(keys, reverse=reverse) if "000007" <= k < "000700"]
    assert [k for k, _ in sqlite.iterate("s", "000007", "000700", reverse)] == expected


# --- the file ------------------------------------------------------------------------------------


def test_sqlite_store_uses_wal_mode(tmp_path):
    path = tmp_path / "a.db"
    build(path, [])
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


@pytest.mark.parametrize(
    "content",
    [b"this is not a database\n" * 200, bytes(range(256)) * 64, b"SQLite format 3\x00" + b"\xff" * 4000],
    ids=["text", "binary", "corrupt-header"],
)
def test_opening_a_file_that_is_not_sqlite_raises_store_error(tmp_path, content):
    path = tmp_path / "not.db"
    path.write_bytes(content)
    with pytest.raises(StoreError):
        SqliteStore(path)


def test_opening_a_store_with_another_schema_version_raises_store_error(tmp_path):
    path = tmp_path / "a.db"
    build(path, []).store.close()
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE meta SET schema = 99")
    conn.close()
    with pytest.raises(StoreError, match="schema"):
        Application(SqliteStore(path))


def test_the_read_cache_is_bounded_in_bytes_and_tracks_committed_changes(tmp_path, monkeypatch):
    """Regression: the read cache was bounded by count (2^18 values of any size)."""
    import node.store

    monkeypatch.setattr(node.store, "READ_CACHE_BYTES", 20_000)
    store = SqliteStore(tmp_path / "a.db")
    values = {f"k{i}": json.dumps("v" * 1000 * (1 + i % 3)) for i in range(40)}
    store.write_block(CommitInfo(0, "h", bytes(2048)), [("s", k, v) for k, v in values.items()])
    for key, value in values.items():
        assert store.get("s", key) == value
        counted = sum(node.store.compute_read_cache_size(s, k, v) for (s, k), v in store._cache.items())
        assert store._cache_bytes == counted <= 20_000
    last = list(values)[-1]
    store.write_block(CommitInfo(1, "h", bytes(2048)), [("s", last, '"short"')])
    assert store.get("s", last) == '"short"'
    assert store._cache_bytes == sum(node.store.compute_read_cache_size(s, k, v) for (s, k), v in store._cache.items())


def test_a_store_of_the_previous_layout_is_refused_with_its_schema(tmp_path):
    """Schema 1 kept each height's proposal queue as one list and had no stake index: read by this
    uocd, proposals would never end and the validator set would empty at the next boundary."""
    path = tmp_path / "a.db"
    SqliteStore(path).write_block(CommitInfo(0, "h", bytes(2048)), [("meta", "height", "0")])
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET schema = 1")
    with pytest.raises(StoreError, match="has schema 1, this uocd reads schema 2"):
        SqliteStore(path).last_commit()
