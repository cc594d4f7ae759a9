"""The validators of one height and weighted round-robin proposer selection (CometBFT's proposer priorities)."""

from __future__ import annotations

import hashlib
from typing import Any

from chain.encoding import canonical_bytes

from ..errors import ConsensusError


def compute_trunc_div(a: int, b: int) -> int:
    """Integer division rounding toward zero (b > 0)."""
    q = abs(a) // b
    return q if a >= 0 else -q


def compute_scaled_priorities(priorities: list[int], total: int) -> list[int]:
    """Divide every priority by ceil(spread / 2P) when the spread exceeds 2P (rounding toward zero)."""
    spread = max(priorities) - min(priorities)
    limit = 2 * total
    if spread <= limit:
        return priorities
    ratio = -(-spread // limit)
    return [compute_trunc_div(p, ratio) for p in priorities]


def compute_centered_priorities(priorities: list[int]) -> list[int]:
    """Subtract the mean (rounded toward zero) from every priority."""
    mean = compute_trunc_div(sum(priorities), len(priorities))
    return [p - mean for p in priorities]


def compute_proposer_step(powers: list[int], priorities: list[int], total: int) -> tuple[list[int], int]:
    """One step of weighted round-robin: scale, centre, A += power, pick max A (first index on ties), A -= P."""
    prios = compute_centered_priorities(compute_scaled_priorities(priorities, total))
    prios = [a + p for a, p in zip(prios, powers)]
    best = max(range(len(prios)), key=lambda i: (prios[i], -i))
    prios[best] -= total
    return prios, best


def compute_joiner_priority(total: int) -> int:
    """The priority of a validator joining an existing set: −1.125·P (CometBFT), rounded toward zero."""
    return -compute_trunc_div(9 * total, 8)


def _check_powers(powers: Any) -> list[tuple[str, int]]:
    """Sorted (address, power) pairs; ConsensusError unless non-empty, distinct, positive integers."""
    try:
        pairs = sorted((str(a), p) for a, p in powers)
    except (TypeError, ValueError):
        raise ConsensusError("validator powers must be (address, power) pairs") from None
    if not pairs:
        raise ConsensusError("a validator set needs at least one validator")
    if len({a for a, _ in pairs}) != len(pairs):
        raise ConsensusError("a validator appears twice in the set")
    if any(type(p) is not int or p <= 0 for _, p in pairs):
        raise ConsensusError("validator powers must be positive integers")
    return pairs


class ValidatorSet:
    """The validators of one height: powers by address and the proposer priorities before this height's step."""

    __slots__ = ("_addresses", "_powers", "_priorities", "_index", "total_power", "_proposers", "_round_prios", "_hash")

    def __init__(self, entries: list[tuple[str, int, int]]) -> None:
        """From sorted (address, power, priority) triples; use from_powers or from_json."""
        self._addresses = tuple(a for a, _, _ in entries)
        self._powers = tuple(p for _, p, _ in entries)
        self._priorities = tuple(q for _, _, q in entries)
        self._index = {a: i for i, a in enumerate(self._addresses)}
        self.total_power = sum(self._powers)
        self._proposers: list[str] = []
        self._round_prios = list(self._priorities)
        self._hash = hashlib.sha256(
            canonical_bytes([[a, p] for a, p in zip(self._addresses, self._powers)])
        ).hexdigest()

    @classmethod
    def from_powers(cls, powers: list[tuple[str, int]]) -> ValidatorSet:
        """A new set with every priority 0."""
        return cls([(a, p, 0) for a, p in _check_powers(powers)])

    @property
    def powers(self) -> tuple[tuple[str, int], ...]:
        """(address, power) sorted by address."""
        return tuple(zip(self._addresses, self._powers))

    @property
    def priorities(self) -> tuple[tuple[str, int], ...]:
        """(address, priority) sorted by address, before this height's proposer step."""
        return tuple(zip(self._addresses, self._priorities))

    @property
    def hash(self) -> str:
        """sha256 of the canonical JSON [[address, power], …] (priorities are not part of it)."""
        return self._hash

    def __len__(self) -> int:
        return len(self._addresses)

    def __contains__(self, address: object) -> bool:
        return address in self._index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ValidatorSet) and self.to_json() == other.to_json()

    def __hash__(self) -> int:
        return hash(self._hash)

    def __repr__(self) -> str:
        return f"ValidatorSet({len(self)} validators, P={self.total_power})"

    def power_of(self, address: str) -> int:
        """The power of `address`, 0 if it is not in the set."""
        i = self._index.get(address)
        return 0 if i is None else self._powers[i]

    def proposer(self, round: int) -> str:
        """proposer(h, round): the weighted round-robin proposer after 1 + round steps."""
        if type(round) is not int or round < 0:
            raise ConsensusError(f"round must be an integer ≥ 0, got {round!r}")
        while len(self._proposers) <= round:
            self._round_prios, best = compute_proposer_step(list(self._powers), self._round_prios, self.total_power)
            self._proposers.append(self._addresses[best])
        return self._proposers[round]

    def next_height(self, powers: list[tuple[str, int]], commit_round: int) -> ValidatorSet:
        """The set for the next height: one proposer step, then the powers after the block (joiners at −1.125·P).

        Priorities advance one step per height whatever `commit_round` is (as CometBFT): honest nodes
        may decide one block from commits of different rounds and must still agree on the next set."""
        if type(commit_round) is not int or commit_round < 0:
            raise ConsensusError(f"commit_round must be an integer ≥ 0, got {commit_round!r}")
        pairs = _check_powers(powers)
        stepped, _ = compute_proposer_step(list(self._powers), list(self._priorities), self.total_power)
        carried = dict(zip(self._addresses, stepped))
        total = sum(p for _, p in pairs)
        joiner = compute_joiner_priority(total)
        prios = [carried.get(a, joiner) for a, _ in pairs]
        prios = compute_centered_priorities(compute_scaled_priorities(prios, total))
        return ValidatorSet([(a, p, q) for (a, p), q in zip(pairs, prios)])

    def to_json(self) -> dict[str, Any]:
        return {
            "validators": [
                {"address": a, "power": p, "priority": q}
                for a, p, q in zip(self._addresses, self._powers, self._priorities)
            ]
        }

    @classmethod
    def from_json(cls, obj: Any) -> ValidatorSet:
        """The set from to_json(); ConsensusError on a bad shape."""
        try:
            rows = obj["validators"]
            entries = [(r["address"], r["power"], r["priority"]) for r in rows]
        except (TypeError, KeyError):
            raise ConsensusError("a validator set is {'validators': [{address, power, priority}, …]}") from None
        _check_powers([(a, p) for a, p, _ in entries])
        if any(type(q) is not int for _, _, q in entries):
            raise ConsensusError("validator priorities must be integers")
        return cls(sorted(entries))
