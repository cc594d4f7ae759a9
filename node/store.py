"""SQLite persistence of a node: the chain state, blocks, commits, validator sets and evidence, in one
file (the sqlite3 module, WAL, one transaction per block). The consensus sign state is not here: it lives
beside the validator key (`node.sign_state_file`), so that wiping the data directory does not lose it.

Tables: `state` and `meta` (the chain's Store protocol); `blocks` (height, block id, the block and
the commit that decided it, as canonical JSON); `validator_sets` (the set, with proposer priorities,
at each height where its powers change and at checkpoints: `node.ledger` steps the priorities of the
heights between; older rows are pruned); `evidence` (the double signs this node saw, was sent or applied
in a block, keyed by `Evidence.key`); `tx_index` (each committed tx's height, index in the block, hash, result
code, log and bytes, found by hash through `tx_hashes`, so a lookup reads one row and never a block) and
`tx_sender_index` (each sender's txs in block order). `apply_block` writes a decided
block, its commit, its tx results and, when due, the validator set of the next height with the
block's state changes and the new height in ONE transaction.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chain.encoding import canonical_json, decode_value
from chain.errors import StoreError
from chain.store import Change, CommitInfo, compute_lthash

SCHEMA_VERSION = 2  # 2: blocks carry evidence (and their header its hash), no sign_state table; range-scanned
# state layout (gq/<height>/<id>, vrank/, vchg/, gopen/), sparse validator_sets; txs holds each tx's bytes
READ_CACHE_BYTES = 64 * 1024 * 1024  # committed values read, by (space, key); cleared when full
READ_CACHE_ENTRY_OVERHEAD = 160  # bytes per entry beyond its strings: the dict slot, tuple and str headers
ITERATE_PAGE = 256  # rows per query of a range scan
WAL_CHECKPOINT_PAGES = 10_000  # ~40 MB of WAL between checkpoints: fewer fsyncs per block


NODE_TABLES = (
    "CREATE TABLE IF NOT EXISTS blocks (height INTEGER PRIMARY KEY, block_id TEXT NOT NULL, block TEXT NOT NULL,"
    " commit_json TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS validator_sets (height INTEGER PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS evidence (key TEXT PRIMARY KEY, height INTEGER NOT NULL, value TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS evidence_height ON evidence (height)",
    # The tx index: each committed tx under its position (`compute_tx_id`), so a block's rows are appended
    # in order, and found by hash through `tx_hashes`, a small index of the hash's first 64 bits
    # (`compute_hash_key`): a block's txs have random hashes, and each one writes an index page, so the
    # smaller the entries the fewer pages a block rewrites (about half the bytes a tx costs the WAL
    # before, when the hash itself was the key; docs/benchmarks.md).
    "CREATE TABLE IF NOT EXISTS tx_index (id INTEGER PRIMARY KEY, hash_key INTEGER NOT NULL, hash TEXT NOT NULL,"
    " height INTEGER NOT NULL, idx INTEGER NOT NULL, code TEXT NOT NULL, log TEXT NOT NULL, tx BLOB NOT NULL)",
    "CREATE INDEX IF NOT EXISTS tx_hashes ON tx_index (hash_key)",
    # The txs of each sender, by position HEIGHT/INDEX (zero-padded: text order is block order), for
    # GET /v1/txs?sender=, with the tx's row id in tx_index.
    "CREATE TABLE IF NOT EXISTS tx_sender_index (sender TEXT NOT NULL, pos TEXT NOT NULL, id INTEGER NOT NULL,"
    " PRIMARY KEY (sender, pos)) WITHOUT ROWID",
)
MOVE_BATCH = 1000  # txs moved per step when a store made before tx_index is opened


def compute_tx_id(height: int, index: int) -> int:
    """The row id of a committed tx in `tx_index`: its height and index in one integer, in block order (an
    index is below 2^32: a block's message is at most 16 MiB, at least two bytes a tx)."""
    return (height << 32) | index


def compute_hash_key(tx_hash: str) -> int | None:
    """The `tx_hashes` key of a tx hash: its first 64 bits as a signed integer (None: not a hash's form)."""
    try:
        return int.from_bytes(bytes.fromhex(tx_hash[:16]), "big", signed=True) if len(tx_hash) == 64 else None
    except ValueError:
        return None


def compute_tx_position(height: int, index: int) -> str:
    """A tx's position in the chain as text whose order is block order: `000000000042/000003`."""
    return f"{height:012d}/{index:06d}"


def read_tx_sender(raw: bytes) -> str | None:
    """The `body.sender` of a tx's bytes, or None if they hold none (a malformed tx in a block)."""
    try:
        sender = decode_value(raw)["body"]["sender"]
    except (ValueError, TypeError, KeyError):
        return None
    return sender if isinstance(sender, str) and len(sender) <= 128 else None


def compute_read_cache_size(space: str, key: str, value: str | None) -> int:
    """The bytes one entry of the read cache is counted as."""
    return len(space) + len(key) + len(value or "") + READ_CACHE_ENTRY_OVERHEAD


@dataclass(frozen=True)
class BlockWrite:
    """The node's rows of one applied height, written with its state changes: the block and the commit
        that decided it (None at genesis, height 0), its tx results `(hash, code, log, sender)` (the sender the
        application decoded; None: read from the bytes) and its transactions' bytes in block order, and the
        validator set of the next height when it is to be stored, and the evidence the block commits
    `(key, height, evidence)` (stored like gossiped evidence: every node that applies the block holds it,
    whether or not a peer's gossip reached it first).

        `next_validator_set` runs inside the transaction after the state changes are written, so it reads
        the powers after the block; None stores no row (the set follows from the last stored one, see
        `node.ledger`). Rows no longer needed for the heights from `keep_validator_sets_from` on are pruned
        in the same transaction (0: none)."""

    height: int
    next_validator_set: Callable[[], dict[str, Any] | None]
    block_id: str = ""
    block: dict[str, Any] | None = None
    commit: dict[str, Any] | None = None
    tx_results: tuple[tuple[str, str, str, str | None], ...] = ()
    keep_validator_sets_from: int = 0
    txs: tuple[bytes, ...] = ()
    evidence: tuple[tuple[str, int, dict[str, Any]], ...] = ()


class SqliteStore:
    """A chain `Store` in one SQLite file (`state`, `meta`) plus the node's block, validator-set and
    evidence tables."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._cache: dict[tuple[str, str], str | None] = {}  # committed values only
        self._cache_bytes = 0
        self._writing: BlockWrite | None = None  # set only during `apply_block`
        try:
            # the sqlite3 module itself: sqlite-utils did no more here, and importing it imports pandas and
            # pyarrow when they are installed (92 MiB and half a second in every node and command)
            self._conn = sqlite3.connect(str(self.path))
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes; see docs/design.md
            self._conn.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
            with self._conn:
                self._conn.execute(
                    "CREATE TABLE IF NOT EXISTS state (space TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,"
                    " PRIMARY KEY (space, key)) WITHOUT ROWID"
                )
                self._conn.execute(
                    "CREATE TABLE IF NOT EXISTS meta (id INTEGER PRIMARY KEY CHECK (id = 1), schema INTEGER NOT NULL,"
                    " height INTEGER NOT NULL, app_hash TEXT NOT NULL, lthash BLOB NOT NULL)"
                )
                for statement in NODE_TABLES:
                    self._conn.execute(statement)
                if self._conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'txs'").fetchone():
                    self._move_old_tx_index()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path} is not a usable uoc state store: {exc}") from None

    # -- reads ------------------------------------------------------------------------------
    def get(self, space: str, key: str) -> str | None:
        try:
            return self._cache[(space, key)]
        except KeyError:
            pass
        row = self._conn.execute("SELECT value FROM state WHERE space = ? AND key = ?", (space, key)).fetchone()
        value = row[0] if row else None
        size = compute_read_cache_size(space, key, value)
        if size > READ_CACHE_BYTES:
            return value
        if self._cache_bytes + size > READ_CACHE_BYTES:
            self._cache.clear()
            self._cache_bytes = 0
        self._cache[(space, key)] = value
        self._cache_bytes += size
        return value

    def iterate(
        self, space: str, start: str = "", end: str | None = None, reverse: bool = False
    ) -> Iterator[tuple[str, str]]:
        """The rows of `space` with start <= key < end in key order (descending if `reverse`), read
        by primary-key range in pages of ITERATE_PAGE rows, so a caller that stops early reads no more."""
        lo, hi = ("key >= ?", start), ("key < ?", end)
        while True:
            bounds = [b for b in (lo, hi) if b[1] is not None]
            where = " AND ".join(["space = ?", *(b[0] for b in bounds)])
            rows = self._conn.execute(
                f"SELECT key, value FROM state WHERE {where} ORDER BY key {'DESC' if reverse else 'ASC'} LIMIT ?",
                (space, *(b[1] for b in bounds), ITERATE_PAGE),
            ).fetchall()
            yield from rows
            if len(rows) < ITERATE_PAGE:
                return
            if reverse:
                hi = ("key < ?", rows[-1][0])
            else:
                lo = ("key > ?", rows[-1][0])

    def entries(self) -> Iterator[tuple[str, str, str]]:
        return iter(self._conn.execute("SELECT space, key, value FROM state ORDER BY space, key"))

    def last_commit(self) -> CommitInfo | None:
        row = self._conn.execute("SELECT schema, height, app_hash, lthash FROM meta WHERE id = 1").fetchone()
        if row is None:
            return None
        if row[0] != SCHEMA_VERSION:
            raise StoreError(f"{self.path} has schema {row[0]}, this uocd reads schema {SCHEMA_VERSION}")
        return CommitInfo(row[1], row[2], bytes(row[3]))

    # -- writes -----------------------------------------------------------------------------
    def apply_block(self, write: BlockWrite, commit_state: Callable[[], object]) -> None:
        """Apply one height in ONE transaction: `commit_state()` (the application's `commit` or
        `init_chain`) writes the state changes through `write_block`, which writes `write`'s rows in the
        same transaction. StoreError if `commit_state` wrote no block or another height; nothing of
        `write` outlives this call."""
        if self._writing is not None:
            raise StoreError(f"apply_block of height {write.height} inside that of height {self._writing.height}")
        self._writing = write
        try:
            commit_state()
            if self._writing is not None:
                raise StoreError(f"height {write.height} was not committed by the application")
        finally:
            self._writing = None

    def write_block(self, info: CommitInfo, changes: list[Change]) -> None:
        """Write a block's changes and its commit info in one transaction, with the node's rows of the
        height when inside `apply_block`; all or nothing."""
        write = self._writing
        if write is not None and write.height != info.height:
            raise StoreError(f"the application committed height {info.height}, apply_block writes {write.height}")
        upserts = [(s, k, v) for s, k, v in changes if v is not None]
        deletes = [(s, k) for s, k, v in changes if v is None]
        try:
            with self._conn:  # BEGIN … COMMIT, or ROLLBACK on any exception
                self._conn.executemany("INSERT OR REPLACE INTO state (space, key, value) VALUES (?, ?, ?)", upserts)
                if deletes:
                    self._conn.executemany("DELETE FROM state WHERE space = ? AND key = ?", deletes)
                self._conn.execute(
                    "INSERT OR REPLACE INTO meta (id, schema, height, app_hash, lthash) VALUES (1, ?, ?, ?, ?)",
                    (SCHEMA_VERSION, info.height, info.app_hash, info.lthash),
                )
                if write is not None:
                    self._write_node_rows(write)
        except sqlite3.Error as exc:  # disk full, I/O error, a read-only file: the transaction is rolled back
            raise StoreError(
                f"{self.path}: writing height {info.height} failed ({exc}); nothing of it was written"
            ) from None
        self._writing = None
        for space, key, value in changes:
            if (space, key) in self._cache:
                old = self._cache[(space, key)]
                self._cache[(space, key)] = value
                self._cache_bytes += len(value or "") - len(old or "")

    def close(self) -> None:
        self._conn.close()

    # -- blocks, commits and validator sets (node) ------------------------------------------
    def get_tx_row(self, tx_hash: str) -> tuple[int, int, str, str] | None:
        """(height, index, code, log) of a committed transaction, or None (the first, should the same
        bytes ever be committed twice: a later copy could only fail on its used sequence)."""
        row = self._find_tx(tx_hash, "height, idx, code, log")
        return (row[0], row[1], row[2], row[3]) if row else None

    def get_tx_bytes(self, tx_hash: str) -> bytes | None:
        """The bytes of a committed transaction, as its block holds them (one row of the index), or None."""
        row = self._find_tx(tx_hash, "tx")
        return bytes(row[0]) if row else None

    def _find_tx(self, tx_hash: str, columns: str) -> tuple[Any, ...] | None:
        """`columns` of the first tx_index row of `tx_hash`, found through its hash key, or None."""
        key = compute_hash_key(tx_hash)
        if key is None:
            return None
        return self._conn.execute(
            f"SELECT {columns} FROM tx_index WHERE hash_key = ? AND hash = ? ORDER BY id LIMIT 1", (key, tx_hash)
        ).fetchone()

    def get_sender_tx_rows(
        self, sender: str, after: str | None, limit: int, reverse: bool
    ) -> list[tuple[str, str, int, int, str, str, bytes]]:
        """Up to `limit` txs of `sender` as (position, hash, height, index, code, log, bytes), in block order
        from position `after` on (newest first and up to it, with `reverse`): one range of the sender index."""
        sign, order = ("<=", "DESC") if reverse else (">=", "ASC")
        bound = "" if after is None else f" AND s.pos {sign} ?"
        rows = self._conn.execute(
            "SELECT s.pos, t.hash, t.height, t.idx, t.code, t.log, t.tx FROM tx_sender_index s"
            f" JOIN tx_index t ON t.id = s.id WHERE s.sender = ?{bound} ORDER BY s.pos {order} LIMIT ?",
            (sender, *(() if after is None else (after,)), limit),
        ).fetchall()
        return [(r[0], r[1], r[2], r[3], r[4], r[5], bytes(r[6])) for r in rows]

    def _move_old_tx_index(self) -> None:
        """Move the txs of a store made before `tx_index` (its `txs` table, keyed by hash) into `tx_index` and
        `tx_sender_index` (each sender read again from the tx's bytes), MOVE_BATCH rows a step, and drop
        `txs` and its sender table `tx_senders`, if any (caller's transaction)."""
        last = -1
        while True:
            rows = self._conn.execute(
                "SELECT rowid, hash, height, idx, code, log, tx FROM txs WHERE rowid > ? ORDER BY rowid LIMIT ?",
                (last, MOVE_BATCH),
            ).fetchall()
            self._insert_txs(
                [(height, idx, h, code, log, bytes(raw), None) for _, h, height, idx, code, log, raw in rows]
            )
            if len(rows) < MOVE_BATCH:
                break
            last = rows[-1][0]
        self._conn.execute("DROP TABLE txs")
        self._conn.execute("DROP TABLE IF EXISTS tx_senders")

    def _insert_txs(self, rows: list[tuple[int, int, str, str, str, bytes, str | None]]) -> None:
        """Write committed txs `(height, index, hash, code, log, bytes, sender)` to the tx and sender
        indexes (the sender None: read from the bytes; a tx that holds none is in no sender's list)."""
        self._conn.executemany(
            "INSERT OR REPLACE INTO tx_index (id, hash_key, hash, height, idx, code, log, tx)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (compute_tx_id(height, idx), compute_hash_key(h) or 0, h, height, idx, code, log, raw)
                for height, idx, h, code, log, raw, _ in rows
            ],
        )
        self._conn.executemany(
            "INSERT OR REPLACE INTO tx_sender_index (sender, pos, id) VALUES (?, ?, ?)",
            [
                (sender, compute_tx_position(height, idx), compute_tx_id(height, idx))
                for height, idx, _, _, _, raw, decoded in rows
                if (sender := decoded or read_tx_sender(raw)) is not None
            ],
        )

    def _write_node_rows(self, write: BlockWrite) -> None:
        """Write the block, commit, tx index rows, committed evidence and next validator set of `write`
        (caller's transaction)."""
        if write.block is not None and write.commit is not None:
            self._conn.execute(
                "INSERT OR REPLACE INTO blocks (height, block_id, block, commit_json) VALUES (?, ?, ?, ?)",
                (write.height, write.block_id, canonical_json(write.block), canonical_json(write.commit)),
            )
        next_set = write.next_validator_set()
        if next_set is not None:
            self._conn.execute(
                "INSERT OR REPLACE INTO validator_sets (height, value) VALUES (?, ?)",
                (write.height + 1, canonical_json(next_set)),
            )
        if write.keep_validator_sets_from > 0:
            self._conn.execute(
                "DELETE FROM validator_sets WHERE height < (SELECT MAX(height) FROM validator_sets WHERE height <= ?)",
                (write.keep_validator_sets_from,),
            )
        if len(write.txs) != len(write.tx_results):
            raise StoreError(f"height {write.height}: {len(write.tx_results)} tx results for {len(write.txs)} txs")
        self._insert_txs(
            [
                (write.height, i, h, code, log, raw, sender)
                for i, ((h, code, log, sender), raw) in enumerate(zip(write.tx_results, write.txs))
            ]
        )
        self._conn.executemany(
            "INSERT OR IGNORE INTO evidence (key, height, value) VALUES (?, ?, ?)",
            [(key, height, canonical_json(evidence)) for key, height, evidence in write.evidence],
        )

    def save_decided_blocks(self, rows: list[tuple[int, str, dict[str, Any], dict[str, Any]]]) -> None:
        """Write decided blocks `(height, block_id, block, commit)` that are not applied yet, in one
        transaction; the node applies them at its next start (see `get_unapplied_heights`)."""
        with self._conn:
            self._conn.executemany(
                "INSERT OR REPLACE INTO blocks (height, block_id, block, commit_json) VALUES (?, ?, ?, ?)",
                [(h, i, canonical_json(b), canonical_json(c)) for h, i, b, c in rows],
            )

    def get_block_row(self, height: int) -> tuple[str, dict[str, Any], dict[str, Any]] | None:
        """(block id, block JSON, commit JSON) of a stored block, or None."""
        row = self._conn.execute(
            "SELECT block_id, block, commit_json FROM blocks WHERE height = ?", (height,)
        ).fetchone()
        return (row[0], json.loads(row[1]), json.loads(row[2])) if row else None

    def get_block_id(self, height: int) -> str | None:
        """The id of the stored block at `height`, or None."""
        row = self._conn.execute("SELECT block_id FROM blocks WHERE height = ?", (height,)).fetchone()
        return row[0] if row else None

    def iterate_block_rows(self, first: int, last: int) -> Iterator[tuple[int, str, str]]:
        """(height, block JSON text, commit JSON text) of the stored blocks first..last, in order."""
        return iter(
            self._conn.execute(
                "SELECT height, block, commit_json FROM blocks WHERE height BETWEEN ? AND ? ORDER BY height",
                (first, last),
            ).fetchall()
        )

    def get_max_block_height(self) -> int:
        """The highest stored block (0 when none)."""
        return self._conn.execute("SELECT COALESCE(MAX(height), 0) FROM blocks").fetchone()[0]

    def get_unapplied_heights(self) -> list[int]:
        """Heights of stored blocks above the committed state height, in order (decided, not applied)."""
        info = self.last_commit()
        applied = info.height if info else -1
        return [
            r[0] for r in self._conn.execute("SELECT height FROM blocks WHERE height > ? ORDER BY height", (applied,))
        ]

    def get_validator_set_row(self, height: int) -> tuple[int, dict[str, Any]] | None:
        """(stored height, validator set JSON) of the last set stored at or below `height`, or None."""
        row = self._conn.execute(
            "SELECT height, value FROM validator_sets WHERE height <= ? ORDER BY height DESC LIMIT 1", (height,)
        ).fetchone()
        return (row[0], json.loads(row[1])) if row else None

    def get_validator_set_heights(self) -> list[int]:
        """The heights whose validator set is stored, in order."""
        return [r[0] for r in self._conn.execute("SELECT height FROM validator_sets ORDER BY height")]

    # -- evidence ---------------------------------------------------------------------------
    def add_evidence(self, key: str, height: int, evidence: dict[str, Any]) -> bool:
        """Keep one piece of evidence; False if its key was already stored; StoreError if it cannot be written."""
        try:
            with self._conn:
                cursor = self._conn.execute(
                    "INSERT OR IGNORE INTO evidence (key, height, value) VALUES (?, ?, ?)",
                    (key, height, canonical_json(evidence)),
                )
        except sqlite3.Error as exc:  # disk full, I/O error: rolled back
            raise StoreError(f"{self.path}: storing evidence {key} failed ({exc})") from None
        return cursor.rowcount == 1

    def get_evidence(self, from_height: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        """Stored evidence JSON from `from_height` up, by height then key (the first `limit`; all if None)."""
        rows = self._conn.execute(
            "SELECT value FROM evidence WHERE height >= ? ORDER BY height, key LIMIT ?",
            (from_height, -1 if limit is None else limit),
        ).fetchall()
        return [json.loads(r[0]) for r in rows]

    def count_evidence(self) -> int:
        """How many pieces of evidence are stored."""
        return self._conn.execute("SELECT COUNT(*) FROM evidence").fetchone()[0]

    # -- export and import ------------------------------------------------------------------
    def export_state(self) -> dict[str, Any]:
        """The committed state at the last height, as a JSON-able document."""
        info = self.last_commit()
        if info is None:
            raise StoreError(f"{self.path} holds no committed state to export")
        return {
            "height": info.height,
            "app_hash": info.app_hash,
            "entries": [[s, k, json.loads(v)] for s, k, v in self.entries()],
        }

    @classmethod
    def import_state(cls, path: str | Path, document: dict[str, Any]) -> SqliteStore:
        """Create a store at `path` from an export, verifying the app hash it claims."""
        try:
            entries = [(s, k, canonical_json(v)) for s, k, v in document["entries"]]
            height, claimed = document["height"], document["app_hash"]
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreError(f"not a uoc state export: {exc}") from None
        if not all(isinstance(s, str) and isinstance(k, str) for s, k, _ in entries):
            raise StoreError("not a uoc state export: every entry's space and key must be strings")
        if len({(s, k) for s, k, _ in entries}) != len(entries):
            raise StoreError("not a uoc state export: an entry appears twice")
        if not isinstance(height, int) or not isinstance(claimed, str):
            raise StoreError("not a uoc state export: height must be an integer and app_hash a string")
        if ("meta", "height", canonical_json(height)) not in entries:
            raise StoreError(f"export claims height {height} but its state is at another height")
        acc = compute_lthash(entries)
        if acc.app_hash() != claimed:
            raise StoreError(f"export claims app hash {claimed} but its entries hash to {acc.app_hash()}")
        store = cls(path)
        if store.last_commit() is not None:
            store.close()
            raise StoreError(f"{path} already holds a chain; import needs an empty store")
        store.write_block(CommitInfo(height, claimed, acc.to_bytes()), [(s, k, v) for s, k, v in entries])
        return store

    # -- read-only checks (the chaos verdict reads the stores of stopped nodes) -------------
    def check_integrity(self) -> str:
        """SQLite's `PRAGMA integrity_check` answer: "ok" when the file is sound, else its findings joined by "; "."""
        return "; ".join(row[0] for row in self._conn.execute("PRAGMA integrity_check").fetchall())

    def run_quick_check(self) -> str:
        """SQLite's `PRAGMA quick_check` answer (O(N), cheaper than integrity_check): "ok" when the file is
        sound, else its findings (or the error that stopped it) joined by "; "."""
        try:
            return "; ".join(row[0] for row in self._conn.execute("PRAGMA quick_check").fetchall())
        except sqlite3.DatabaseError as exc:
            return str(exc)

    def get_block_ids(self, first: int, last: int) -> dict[int, str]:
        """Height → block id of the stored blocks first..last."""
        rows = self._conn.execute(
            "SELECT height, block_id FROM blocks WHERE height BETWEEN ? AND ? ORDER BY height", (first, last)
        ).fetchall()
        return {height: block_id for height, block_id in rows}
