"""The storage interface of the state machine, the incremental state hash, and the block overlay.

State is a set of `(space, key) -> value` entries; values are canonical JSON text. A `Store` holds
the committed entries and writes a block's changes atomically. `State` is the working view of one
block (or of the mempool): layered overlays over the store, so a failing transaction can be
discarded without a trace.

The app hash is `sha256(APP_HASH_DOMAIN || LtHash16(entries))`. LtHash16, the homomorphic
multiset hash of Bellare and Micciancio (1997) with the lattice parameters of Lewi et al. (2019),
maps each entry to 1024 16-bit lanes with SHAKE-256 and adds the lanes mod 2^16. Adding, removing or changing an entry
costs two lane additions, so the hash of a block costs O(changed entries), yet it is a function of
the state alone: export and import recompute it from scratch and must land on the same value.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

import numpy as np

from .encoding import canonical_json, decode_canonical
from .errors import StoreError
from .gas import GasMeter

APP_HASH_DOMAIN = b"uoc/apphash/v1"
LTHASH_DOMAIN = b"uoc/lthash/v1"
LTHASH_LANES = 1024
LTHASH_BYTES = 2 * LTHASH_LANES
LANES_BATCH = 4096  # entries summed per vectorised step (8 MiB of lanes)

Change = tuple[str, str, "str | None"]  # (space, key, new value or None for a deletion)


def compute_entry_data(space: str, key: str, value: str) -> bytes:
    """The unambiguous bytes of one state entry that its lanes are drawn from."""
    s, k, v = space.encode(), key.encode(), value.encode()
    return LTHASH_DOMAIN + len(s).to_bytes(4, "big") + s + len(k).to_bytes(4, "big") + k + v


@lru_cache(maxsize=1 << 11)
def compute_entry_lanes(space: str, key: str, value: str) -> bytes:
    """The LtHash16 lanes of one state entry, as 2048 little-endian bytes (cached: an entry added
    now is often removed soon)."""
    return hashlib.shake_256(compute_entry_data(space, key, value)).digest(LTHASH_BYTES)


def compute_lanes_sum(lanes: list[bytes]) -> np.ndarray:
    """The lane-wise sum mod 2^16 of several entries' lanes."""
    stacked = np.frombuffer(b"".join(lanes), dtype="<u2").reshape(len(lanes), LTHASH_LANES)
    total: np.ndarray = stacked.sum(axis=0, dtype="<u2")
    return total


class LtHash:
    """An LtHash16 accumulator over a multiset of state entries."""

    __slots__ = ("lanes",)

    def __init__(self, data: bytes | None = None) -> None:
        if data is None:
            self.lanes = np.zeros(LTHASH_LANES, dtype="<u2")
        elif len(data) != LTHASH_BYTES:
            raise StoreError(f"an LtHash is {LTHASH_BYTES} bytes, got {len(data)}")
        else:
            self.lanes = np.frombuffer(data, dtype="<u2").copy()

    def update(self, added: list[bytes], removed: list[bytes]) -> None:
        """Add and remove entries' lanes (sums wrap mod 2^16, as single steps would)."""
        for start in range(0, len(added), LANES_BATCH):
            self.lanes += compute_lanes_sum(added[start : start + LANES_BATCH])
        for start in range(0, len(removed), LANES_BATCH):
            self.lanes -= compute_lanes_sum(removed[start : start + LANES_BATCH])

    def to_bytes(self) -> bytes:
        """The 2048-byte little-endian encoding of the lanes."""
        return self.lanes.tobytes()

    def app_hash(self) -> str:
        """The app hash for this multiset, as lower-case hex."""
        return compute_app_hash(self.to_bytes())


def compute_app_hash(lthash: bytes) -> str:
    """The app hash of a state whose LtHash lanes are `lthash`, as lower-case hex."""
    return hashlib.sha256(APP_HASH_DOMAIN + lthash).hexdigest()


def compute_lthash(entries: Iterable[tuple[str, str, str]]) -> LtHash:
    """Recompute the LtHash of a whole state from its entries, in bounded memory."""
    acc = LtHash()
    batch: list[bytes] = []
    for space, key, value in entries:
        batch.append(hashlib.shake_256(compute_entry_data(space, key, value)).digest(LTHASH_BYTES))
        if len(batch) == LANES_BATCH:
            acc.update(batch, [])
            batch = []
    acc.update(batch, [])
    return acc


@dataclass(frozen=True)
class CommitInfo:
    """What a store knows about its last committed block."""

    height: int
    app_hash: str
    lthash: bytes


class Store(Protocol):
    """Committed state: point reads, ordered scans of one space, and atomic block writes."""

    def get(self, space: str, key: str) -> str | None: ...

    def iterate(self, space: str) -> Iterator[tuple[str, str]]: ...

    def entries(self) -> Iterator[tuple[str, str, str]]: ...

    def last_commit(self) -> CommitInfo | None: ...

    def write_block(self, info: CommitInfo, changes: list[Change]) -> None: ...


class MemoryStore:
    """A dict-backed Store for tests and throw-away simulations."""

    def __init__(self) -> None:
        self.spaces: dict[str, dict[str, str]] = {}
        self.commit_info: CommitInfo | None = None

    def get(self, space: str, key: str) -> str | None:
        return self.spaces.get(space, {}).get(key)

    def iterate(self, space: str) -> Iterator[tuple[str, str]]:
        data = self.spaces.get(space, {})
        return iter([(k, data[k]) for k in sorted(data)])

    def entries(self) -> Iterator[tuple[str, str, str]]:
        for space in sorted(self.spaces):
            for key, value in self.iterate(space):
                yield space, key, value

    def last_commit(self) -> CommitInfo | None:
        return self.commit_info

    def write_block(self, info: CommitInfo, changes: list[Change]) -> None:
        for space, key, value in changes:
            data = self.spaces.setdefault(space, {})
            if value is None:
                data.pop(key, None)
            else:
                data[key] = value
        self.commit_info = info


_DELETED = None  # an overlay value of None marks a deletion


class State:
    """A block's working view of the state: overlay layers over a Store, with typed JSON values."""

    def __init__(self, store: Store, height: int, lthash: bytes | None = None) -> None:
        self.store = store
        self.height = height
        self.base_lthash = lthash
        self.layers: list[dict[tuple[str, str], str | None]] = [{}]
        self.meter: GasMeter | None = None  # while set, point reads and writes are charged to it (chain.gas)

    # -- reads and writes -------------------------------------------------------------------
    def get_raw(self, space: str, key: str) -> str | None:
        """The committed-or-pending canonical text of an entry, or None."""
        for layer in reversed(self.layers):
            if (space, key) in layer:
                raw = layer[(space, key)]
                break
        else:
            raw = self.store.get(space, key)
        if self.meter is not None:
            self.meter.consume_read(0 if raw is None else len(raw))
        return raw

    def get(self, space: str, key: str) -> Any:
        """The decoded value of an entry, or None if absent."""
        raw = self.get_raw(space, key)
        return None if raw is None else decode_canonical(raw)

    def set(self, space: str, key: str, value: Any) -> None:
        """Write an entry (canonical JSON of `value`)."""
        text = canonical_json(value)
        if self.meter is not None:
            self.meter.consume_write(len(text))
        self.layers[-1][(space, key)] = text

    def delete(self, space: str, key: str) -> None:
        """Remove an entry."""
        if self.meter is not None:
            self.meter.consume_write(0)
        self.layers[-1][(space, key)] = _DELETED

    def iterate(self, space: str) -> list[tuple[str, Any]]:
        """All live entries of a space, pending writes included, in sorted key order."""
        pending = [(key, value) for layer in self.layers for (sp, key), value in layer.items() if sp == space]
        if not pending:  # the store's rows come sorted already
            return [(k, decode_canonical(v)) for k, v in self.store.iterate(space)]
        merged: dict[str, str | None] = dict(self.store.iterate(space))
        merged.update(pending)
        return [(k, decode_canonical(merged[k])) for k in sorted(merged) if merged[k] is not None]

    # -- transactional layers ---------------------------------------------------------------
    def begin(self) -> None:
        """Open a nested layer (one transaction)."""
        self.layers.append({})

    def keep(self) -> None:
        """Fold the top layer into the one below."""
        top = self.layers.pop()
        self.layers[-1].update(top)

    def discard(self) -> None:
        """Drop the top layer and everything written in it."""
        self.layers.pop()

    # -- committing -------------------------------------------------------------------------
    def compute_commit(self) -> tuple[CommitInfo, list[Change]]:
        """The commit info (with the new app hash) and the block's net changes, sorted."""
        assert len(self.layers) == 1, "an open transaction layer remains"
        acc = LtHash(self.base_lthash)
        added: list[bytes] = []
        removed: list[bytes] = []
        changes: list[Change] = []
        for (space, key), value in sorted(self.layers[0].items(), key=lambda item: item[0]):
            old = self.store.get(space, key)
            if old == value:
                continue
            if old is not None:
                removed.append(compute_entry_lanes(space, key, old))
            if value is not None:
                added.append(compute_entry_lanes(space, key, value))
            changes.append((space, key, value))
            if len(added) + len(removed) >= LANES_BATCH:  # bounded memory for huge blocks (genesis)
                acc.update(added, removed)
                added, removed = [], []
        acc.update(added, removed)
        lthash = acc.to_bytes()
        return CommitInfo(self.height, compute_app_hash(lthash), lthash), changes
