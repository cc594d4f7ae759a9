"""The storage interface of the state machine, the incremental state hash, and the block overlay.

State is a set of `(space, key) -> value` entries; values are canonical JSON text. A `Store` holds
the committed entries and writes a block's changes atomically. `State` is the working view of one
block (or of the mempool): layered overlays over the store, so a failing transaction can be
discarded without a trace.

The app hash is `sha256(APP_HASH_DOMAIN || LtHash16(entries))`. LtHash16, the homomorphic
multiset hash of Bellare and Micciancio (1997) with the lattice parameters of Lewi et al. (2019),
maps each entry to 1024 16-bit lanes with the BLAKE3 XOF and adds the lanes mod 2^16. Adding,
removing or changing an entry costs two lane additions, so the hash of a block costs O(changed
entries), yet it is a function of the state alone: export and import recompute it from scratch
and must land on the same value.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from blake3 import blake3
from sortedcontainers import SortedDict, SortedList

from .encoding import canonical_json, decode_canonical
from .errors import StoreError
from .gas import GasMeter

APP_HASH_DOMAIN = b"uoc/apphash/v1"
LTHASH_DOMAIN = b"uoc/lthash/v1"
LTHASH_LANES = 1024
LTHASH_BYTES = 2 * LTHASH_LANES
LANES_BATCH = 4096  # entries summed per vectorised step (8 MiB of lanes)

Change = tuple[str, str, "str | None"]  # (space, key, new value or None for a deletion)


def compute_xof(data: bytes) -> bytes:
    """The LTHASH_BYTES of the BLAKE3 extendable output of `data` (Lewi et al. draw LtHash lanes from an
    XOF; BLAKE3's gives 2 KiB for a 300-byte entry in 1.1 µs here, SHAKE-256's, used before, in 6.6 µs)."""
    return blake3(data).digest(LTHASH_BYTES)


def compute_entry_data(space: str, key: str, value: str) -> bytes:
    """The unambiguous bytes of one state entry that its lanes are drawn from."""
    s, k, v = space.encode(), key.encode(), value.encode()
    return LTHASH_DOMAIN + len(s).to_bytes(4, "big") + s + len(k).to_bytes(4, "big") + k + v


def compute_entry_lanes(space: str, key: str, value: str) -> bytes:
    """The LtHash16 lanes of one state entry, as 2048 little-endian bytes, drawn afresh each time: the
    XOF takes ~0.9 µs for a short entry, less than a cache's put and get of its lanes (~2.8 µs; the
    lanes cache this replaces, docs/benchmarks.md)."""
    return compute_xof(compute_entry_data(space, key, value))


def compute_lanes_sum(lanes: list[bytes]) -> np.ndarray:
    """The lane-wise sum mod 2^16 of several entries' lanes."""
    stacked = np.frombuffer(b"".join(lanes), dtype="<u2").reshape(len(lanes), LTHASH_LANES)
    total: np.ndarray = stacked.sum(axis=0, dtype="<u2")
    return total


def compute_sorted_entries(entries: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """(space, key) pairs in order: the keys of each space sorted apart (a list of strings sorts twice as
    fast as one of pairs), the spaces in order."""
    by_space: dict[str, list[str]] = {}
    for space, key in entries:
        by_space.setdefault(space, []).append(key)
    return [(space, key) for space in sorted(by_space) for key in sorted(by_space[space])]


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
        batch.append(compute_xof(compute_entry_data(space, key, value)))
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


def compute_prefix_end(prefix: str) -> str | None:
    """The least key above every key that starts with `prefix` (None: no bound, for the empty prefix)."""
    while prefix and ord(prefix[-1]) == 0x10FFFF:
        prefix = prefix[:-1]
    return prefix[:-1] + chr(ord(prefix[-1]) + 1) if prefix else None


class Store(Protocol):
    """Committed state: point reads, ordered range scans of one space, and atomic block writes.

    `iterate(space, start, end, reverse)` yields the (key, value) of `space` with start <= key < end
    (end None: no upper bound) in key order (descending if `reverse`), lazily: its cost follows the
    rows taken, not the size of the space."""

    def get(self, space: str, key: str) -> str | None: ...

    def iterate(
        self, space: str, start: str = "", end: str | None = None, reverse: bool = False
    ) -> Iterator[tuple[str, str]]: ...

    def entries(self) -> Iterator[tuple[str, str, str]]: ...

    def last_commit(self) -> CommitInfo | None: ...

    def write_block(self, info: CommitInfo, changes: list[Change]) -> None: ...


class MemoryStore:
    """A dict-backed Store for tests and throw-away simulations."""

    def __init__(self) -> None:
        self.spaces: dict[str, Any] = {}  # space -> SortedDict of key -> value
        self.commit_info: CommitInfo | None = None

    def get(self, space: str, key: str) -> str | None:
        data = self.spaces.get(space)
        return None if data is None else data.get(key)

    def iterate(
        self, space: str, start: str = "", end: str | None = None, reverse: bool = False
    ) -> Iterator[tuple[str, str]]:
        data = self.spaces.get(space)
        if data is None:
            return iter(())
        keys = list(data.irange(start, end, inclusive=(True, False), reverse=reverse))
        return iter([(k, data[k]) for k in keys])

    def entries(self) -> Iterator[tuple[str, str, str]]:
        for space in sorted(self.spaces):
            for key, value in self.iterate(space):
                yield space, key, value

    def last_commit(self) -> CommitInfo | None:
        return self.commit_info

    def write_block(self, info: CommitInfo, changes: list[Change]) -> None:
        for space, key, value in changes:
            data = self.spaces.get(space)
            if data is None:  # not setdefault: it would build a SortedDict for every change
                data = self.spaces[space] = SortedDict()
            if value is None:
                data.pop(key, None)
            else:
                data[key] = value
        self.commit_info = info


_DELETED = None  # an overlay value of None marks a deletion

Entry = tuple[str, str]  # (space, key)
Credit = tuple[str, int, Any]  # (the integer field, the amount added, the value of an absent entry)
EXECUTION_ENTRY_BYTES = 256  # an Execution's bytes per entry beyond its value's text: its key, the dict slot, tuple


@dataclass
class Execution:
    """What one transaction's run on a State did, recorded for its reuse (docs/design.md, "One execution per
    transaction"): the text of every entry it read from below its own layers (None: absent), the entries its
    layer wrote, its counter deltas, its credits, its gas. `reusable` is false if it read a key range
    (`State.iterate`): a range is not a set of point reads that can be compared again.

    A credit (`State.credit`) is kept as its increment, not as a read and a write: applying the record adds
    it to what the entry holds then, so a transaction paying a hot account stays reusable in any order.
    `credit_bases` holds, while the run is recorded, the text each credited entry had before its first
    credit: if the transaction then reads that entry, the credit becomes an ordinary read and write."""

    depth: int  # the layers below the transaction when it started: reads found there are its inputs
    reads: dict[Entry, str | None]
    writes: dict[Entry, str | None] | None = None  # its layer at `keep` (None: it did not finish)
    deltas: dict[str, int] | None = None
    gas_used: int = 0
    reusable: bool = True
    credits: dict[Entry, Credit] = field(default_factory=dict)
    credit_bases: dict[Entry, str | None] = field(default_factory=dict)

    def compute_size(self) -> int:
        """The bytes this record keeps alive (for its cache's bound)."""
        writes = self.writes or {}
        texts = sum(len(raw) for raw in self.reads.values() if raw is not None)
        texts += sum(len(raw) for raw in writes.values() if raw is not None)
        entries = 1 + len(self.reads) + len(writes) + len(self.deltas or {}) + len(self.credits)
        return texts + EXECUTION_ENTRY_BYTES * entries


class State:
    """A block's working view of the state: overlay layers over a Store, with typed JSON values."""

    def __init__(self, store: Store, height: int, lthash: bytes | None = None) -> None:
        self.store = store
        self.height = height
        self.base_lthash = lthash
        self.layers: list[dict[tuple[str, str], str | None]] = [{}]
        # the keys written in any layer (a superset: a discarded layer's keys stay), per space: a set until
        # the space is first iterated, then a SortedList kept up to date (spaces never scanned pay a set add)
        self.written: dict[str, set[str]] = {}
        self.sorted_written: dict[str, Any] = {}
        self.meter: GasMeter | None = None  # while set, point reads and writes are charged to it (chain.gas)
        # the committed text of each entry this view read from the store (the store does not change while
        # a view lives): a second read of it, and compute_commit's old value, read no store again
        self.committed: dict[tuple[str, str], str | None] = {}
        self.tx_hash = ""  # the hash of the transaction running (settlements record it)
        # per layer, the counter deltas written by `add_delta` (counters no transaction reads: the fee pool, the
        # held usage fees); the block's end writes their sum once (`take_deltas`, chain.rules.process_counter_deltas)
        self.deltas: list[dict[str, int]] = [{}]
        self.recording: Execution | None = None  # while set, the transaction's reads and writes are recorded

    # -- reads and writes -------------------------------------------------------------------
    def get_raw(self, space: str, key: str) -> str | None:
        """The committed-or-pending canonical text of an entry, or None."""
        raw = self._peek(space, key)
        recording = self.recording
        if recording is not None and (space, key) not in recording.reads:
            self._record_read(recording, (space, key), raw)
        if self.meter is not None:
            self.meter.consume_read(0 if raw is None else len(raw))
        return raw

    def _peek(self, space: str, key: str) -> str | None:
        """get_raw without recording the read or charging it."""
        entry = (space, key)
        for layer in reversed(self.layers):
            if entry in layer:
                return layer[entry]
        if entry in self.committed:
            return self.committed[entry]
        raw = self.committed[entry] = self.store.get(space, key)
        return raw

    def _record_read(self, recording: Execution, entry: Entry, raw: str | None) -> None:
        """Record the first read of an entry that the recorded transaction found below its own layers (or
        that it credited: what it reads then follows from the text before, which becomes an input)."""
        if entry in recording.credits:
            del recording.credits[entry]
            recording.reads[entry] = recording.credit_bases.pop(entry)
            return
        for layer in self.layers[recording.depth :]:
            if entry in layer:
                return  # its own write: not an input
        recording.reads[entry] = raw

    def get(self, space: str, key: str, *, keep: bool = True) -> Any:
        """The decoded value of an entry, or None if absent (`keep` false: a bulk read, which does not
        enter the decode cache)."""
        raw = self.get_raw(space, key)
        return None if raw is None else decode_canonical(raw, keep)

    def set(self, space: str, key: str, value: Any) -> None:
        """Write an entry (canonical JSON of `value`)."""
        text = canonical_json(value)
        if self.meter is not None:
            self.meter.consume_write(len(text))
        self._overwrite(space, key, text)

    def delete(self, space: str, key: str) -> None:
        """Remove an entry."""
        if self.meter is not None:
            self.meter.consume_write(0)
        self._overwrite(space, key, _DELETED)

    def _overwrite(self, space: str, key: str, raw: str | None) -> None:
        """Write (or delete) an entry whatever it held: over an entry the recorded transaction credited, the
        credit becomes an ordinary input (its base text joins the read set: the result no longer adds to it)."""
        recording = self.recording
        if recording is not None and recording.credits and (space, key) in recording.credits:
            self._record_read(recording, (space, key), None)
        self._write(space, key, raw)

    def add_delta(self, name: str, amount: int) -> None:
        """Add `amount` to the top layer's delta of counter `name` (a write of no bytes for the meter)."""
        if self.meter is not None:
            self.meter.consume_write(0)
        top = self.deltas[-1]
        top[name] = top.get(name, 0) + amount

    def credit(self, space: str, key: str, name: str, amount: int, absent: Any) -> None:
        """Add `amount` to the integer field `name` of an entry (`absent`: its value if there is none), which no
        transaction reads for it: a recorded transaction keeps the increment (`Execution.credits`), not the
        entry's text, and its meter charges a flat GAS_PER_CREDIT whatever the entry's length."""
        if self.meter is not None:
            self.meter.consume_credit()
        entry = (space, key)
        raw = self._peek(space, key)
        recording = self.recording
        if recording is not None:
            if entry in recording.credits:
                name_, total, absent_ = recording.credits[entry]
                recording.credits[entry] = (name_, total + amount, absent_)
            elif entry not in recording.reads and not any(entry in layer for layer in self.layers[recording.depth :]):
                recording.credits[entry] = (name, amount, absent)
                recording.credit_bases[entry] = raw
            # else it read or wrote the entry before: an ordinary read and write of its own
        self._add_to(space, key, raw, name, amount, absent)

    def _add_to(self, space: str, key: str, raw: str | None, name: str, amount: int, absent: Any) -> None:
        """Write the entry whose text is `raw` with `amount` added to its integer field `name` (`absent`: its
        value if there is none)."""
        value = absent if raw is None else decode_canonical(raw)
        self._write(space, key, canonical_json({**value, name: value[name] + amount}))

    def take_deltas(self) -> dict[str, int]:
        """The counter deltas of the block so far, summed (no layer open), and forget them."""
        assert len(self.layers) == 1, "an open transaction layer remains"
        deltas, self.deltas = self.deltas[0], [{}]
        return deltas

    def _write(self, space: str, key: str, raw: str | None) -> None:
        """Record a write in the top layer and its key among the space's written keys."""
        top = self.layers[-1]
        if (space, key) not in top:
            index = self.sorted_written.get(space)
            if index is None:
                self.written.setdefault(space, set()).add(key)
            elif key not in index:
                index.add(key)
        top[(space, key)] = raw

    def iterate(
        self, space: str, start: str = "", end: str | None = None, *, reverse: bool = False, limit: int | None = None
    ) -> list[tuple[str, Any]]:
        """The live entries of `space` with start <= key < end (end None: no bound), pending writes
        included, in key order (descending if `reverse`), at most `limit` of them.

        A merge of the store's range scan with the keys written in that range: its cost follows the
        entries taken and the writes in the range, never the size of the space."""
        if self.recording is not None:
            self.recording.reusable = False
        index = self.sorted_written.get(space)
        if index is None:
            index = self.sorted_written[space] = SortedList(self.written.pop(space, ()))
        pending = iter(index.irange(start, end, inclusive=(True, False), reverse=reverse))
        out: list[tuple[str, Any]] = []
        want = -1 if limit is None else limit
        nxt: str | None = next(pending, None)
        if want == 0:
            return out
        for key, raw in self.store.iterate(space, start, end, reverse):  # no row is read past the limit
            while nxt is not None and (nxt > key if reverse else nxt < key):
                self._take(out, space, nxt, None)
                nxt = next(pending, None)
                if len(out) == want:
                    return out
            if nxt == key:
                self._take(out, space, key, raw)
                nxt = next(pending, None)
            else:
                out.append((key, decode_canonical(raw)))
            if len(out) == want:
                return out
        while nxt is not None and len(out) != want:
            self._take(out, space, nxt, None)
            nxt = next(pending, None)
        return out

    def iterate_prefix(self, space: str, prefix: str, *, limit: int | None = None) -> list[tuple[str, Any]]:
        """The live entries of `space` whose key starts with `prefix`, in key order, the prefix removed."""
        rows = self.iterate(space, prefix, compute_prefix_end(prefix), limit=limit)
        return [(key[len(prefix) :], value) for key, value in rows]

    def _take(self, out: list[tuple[str, Any]], space: str, key: str, stored: str | None) -> None:
        """Append a written key's live value (its store value if no open layer holds it any more)."""
        for layer in reversed(self.layers):
            if (space, key) in layer:
                raw = layer[(space, key)]
                break
        else:
            raw = stored  # written only in discarded layers: the store's value (None if it has none)
        if raw is not None:
            out.append((key, decode_canonical(raw)))

    # -- transactional layers ---------------------------------------------------------------
    def begin(self) -> None:
        """Open a nested layer (one transaction)."""
        self.layers.append({})
        self.deltas.append({})

    def keep(self) -> None:
        """Fold the top layer into the one below (a recorded transaction's own layer: its writes recorded)."""
        top = self.layers.pop()
        deltas = self.deltas.pop()
        recording = self.recording
        if recording is not None and len(self.layers) == recording.depth:
            recording.writes, recording.deltas = top, deltas
        self.layers[-1].update(top)
        below = self.deltas[-1]
        for name, amount in deltas.items():
            below[name] = below.get(name, 0) + amount

    def discard(self) -> None:
        """Drop the top layer and everything written in it."""
        self.layers.pop()
        self.deltas.pop()

    # -- recorded executions ----------------------------------------------------------------
    def start_recording(self) -> Execution:
        """Record the reads and writes of the transaction about to run here (until `stop_recording`)."""
        self.recording = Execution(len(self.layers), {})
        return self.recording

    def stop_recording(self) -> None:
        """Stop recording (the record keeps no credited entry's earlier text: it is only needed while it runs)."""
        if self.recording is not None:
            self.recording.credit_bases.clear()
        self.recording = None

    def is_unchanged(self, reads: dict[Entry, str | None]) -> bool:
        """Whether every entry of `reads` has the same text here now (None: still absent)."""
        get_raw = self.get_raw
        return all(get_raw(space, key) == raw for (space, key), raw in reads.items())

    def apply_execution(self, execution: Execution) -> None:
        """Apply a recorded transaction's writes, credits and deltas as one layer, as its run would have."""
        assert execution.writes is not None and execution.deltas is not None
        self.begin()
        credits = execution.credits
        for (space, key), raw in execution.writes.items():
            if (space, key) not in credits:
                self._write(space, key, raw)
        for (space, key), (name, amount, absent) in credits.items():
            self._add_to(space, key, self._peek(space, key), name, amount, absent)
        self.deltas[-1].update(execution.deltas)
        self.keep()

    # -- committing -------------------------------------------------------------------------
    def compute_commit(self) -> tuple[CommitInfo, list[Change]]:
        """The commit info (with the new app hash) and the block's net changes, sorted."""
        assert len(self.layers) == 1, "an open transaction layer remains"
        assert not self.deltas[0], "counter deltas remain unwritten (chain.rules.process_counter_deltas)"
        acc = LtHash(self.base_lthash)
        added: list[bytes] = []
        removed: list[bytes] = []
        changes: list[Change] = []
        layer, committed = self.layers[0], self.committed
        for entry in compute_sorted_entries(layer):
            value = layer[entry]
            space, key = entry
            old = committed[entry] if entry in committed else self.store.get(space, key)
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
