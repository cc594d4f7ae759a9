"""A least-recently-used map bounded by the bytes of its entries, not by their count.

A count bound says nothing about memory when entries can be large (a 64 KiB transaction, a proposal's
content): 100,000 entries of a verify cache could hold gigabytes. Each entry here is put with its
size in bytes (the caller's estimate of what it keeps alive), and the oldest entries go until the sum
fits `max_bytes`. An entry larger than the whole bound is not kept. A cache never changes a result:
it only saves recomputing it, so the state machine stays deterministic whatever it holds.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

ENTRY_OVERHEAD = 128  # bytes counted per entry beyond its own size: the map's slot, the key and value headers


class ByteBoundedCache(Generic[K, V]):
    """An LRU map whose entries' sizes (plus ENTRY_OVERHEAD each) sum to at most `max_bytes`."""

    __slots__ = ("max_bytes", "bytes", "evicted", "_entries")

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.evicted = 0  # entries dropped to fit (or not kept: larger than the bound), ever
        self._entries: OrderedDict[K, tuple[V, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def get(self, key: K) -> V | None:
        """The value of `key` (now the most recently used), or None."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry[0]

    def put(self, key: K, value: V, size: int) -> None:
        """Keep `value` under `key`, counted as `size` bytes; evict the least recently used to fit."""
        self.pop(key)
        cost = size + ENTRY_OVERHEAD
        if cost > self.max_bytes:
            self.evicted += 1
            return
        self._entries[key] = (value, cost)
        self.bytes += cost
        while self.bytes > self.max_bytes:
            _, (_, evicted) = self._entries.popitem(last=False)
            self.bytes -= evicted
            self.evicted += 1

    def resize(self, max_bytes: int) -> None:
        """Change the bound; the least recently used entries go until the sum fits it."""
        self.max_bytes = max_bytes
        while self.bytes > self.max_bytes:
            _, (_, evicted) = self._entries.popitem(last=False)
            self.bytes -= evicted
            self.evicted += 1

    def pop(self, key: K) -> V | None:
        """Remove `key` and return its value, or None."""
        entry = self._entries.pop(key, None)
        if entry is None:
            return None
        self.bytes -= entry[1]
        return entry[0]

    def clear(self) -> None:
        """Drop every entry."""
        self._entries.clear()
        self.bytes = 0
