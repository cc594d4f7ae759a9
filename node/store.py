"""SQLite persistence of the state machine (sqlite-utils, WAL, one transaction per block)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlite_utils

from chain.encoding import canonical_json
from chain.errors import StoreError
from chain.store import Change, CommitInfo, compute_lthash

SCHEMA_VERSION = 1
READ_CACHE_ENTRIES = 1 << 18
WAL_CHECKPOINT_PAGES = 10_000  # ~40 MB of WAL between checkpoints: fewer fsyncs per block


class SqliteStore:
    """A chain `Store` in one SQLite file: `state(space, key, value)` plus a one-row `meta`."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._cache: dict[tuple[str, str], str | None] = {}  # committed values only
        try:
            self.db = sqlite_utils.Database(str(self.path))
            self.db.enable_wal()
            self.db.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes; see docs/design.md
            self.db.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
            self._conn = self.db.conn
            with self._conn:
                self._conn.execute(
                    "CREATE TABLE IF NOT EXISTS state (space TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,"
                    " PRIMARY KEY (space, key)) WITHOUT ROWID"
                )
                self._conn.execute(
                    "CREATE TABLE IF NOT EXISTS meta (id INTEGER PRIMARY KEY CHECK (id = 1), schema INTEGER NOT NULL,"
                    " height INTEGER NOT NULL, app_hash TEXT NOT NULL, lthash BLOB NOT NULL)"
                )
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path} is not a usable uoc state store: {exc}") from None

    # -- reads ------------------------------------------------------------------------------
    def get(self, space: str, key: str) -> str | None:
        try:
            return self._cache[(space, key)]
        except KeyError:
            pass
        row = self._conn.execute("SELECT value FROM state WHERE space = ? AND key = ?", (space, key)).fetchone()
        if len(self._cache) >= READ_CACHE_ENTRIES:
            self._cache.clear()
        self._cache[(space, key)] = value = row[0] if row else None
        return value

    def iterate(self, space: str) -> Iterator[tuple[str, str]]:
        return iter(
            self._conn.execute("SELECT key, value FROM state WHERE space = ? ORDER BY key", (space,)).fetchall()
        )

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
    def write_block(self, info: CommitInfo, changes: list[Change]) -> None:
        """Write a block's changes and its commit info in one transaction; all or nothing."""
        upserts = [(s, k, v) for s, k, v in changes if v is not None]
        deletes = [(s, k) for s, k, v in changes if v is None]
        with self._conn:  # BEGIN … COMMIT, or ROLLBACK on any exception
            self._conn.executemany("INSERT OR REPLACE INTO state (space, key, value) VALUES (?, ?, ?)", upserts)
            if deletes:
                self._conn.executemany("DELETE FROM state WHERE space = ? AND key = ?", deletes)
            self._conn.execute(
                "INSERT OR REPLACE INTO meta (id, schema, height, app_hash, lthash) VALUES (1, ?, ?, ?, ?)",
                (SCHEMA_VERSION, info.height, info.app_hash, info.lthash),
            )
        for space, key, value in changes:
            if (space, key) in self._cache:
                self._cache[(space, key)] = value

    def close(self) -> None:
        self.db.close()

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
