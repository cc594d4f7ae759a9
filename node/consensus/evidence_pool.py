"""The pending-evidence pool: double signs seen (by this engine or gossiped) and not yet committed.

Bounded: at most `MAX_PENDING_EVIDENCE` pieces, `MAX_PENDING_EVIDENCE_BYTES` bytes of canonical JSON
and `MAX_PENDING_PER_VALIDATOR` pieces per validator (so that one equivocator cannot fill it), one per
offence (`Evidence.key`). The per-validator bound is generous: while the chain cannot commit (a
partition), an equivocator's offences pile up, and each one dropped is never committed (4 was too
few in the byzantine runs: a fifth offence during a partition was lost). A piece leaves when a block
commits it, when the host says it can no longer be committed (too old, already committed, its
validator gone), or when it is older than the host's age limit (`prune`).
"""

from __future__ import annotations

from ..blocks import Evidence

MAX_PENDING_EVIDENCE = 256
MAX_PENDING_EVIDENCE_BYTES = 512 * 1024
MAX_PENDING_PER_VALIDATOR = 32  # 64 KiB of a validator's evidence at the pool's average piece size


class EvidencePool:
    """Pending evidence by offence key, bounded in count, bytes and per validator."""

    def __init__(self) -> None:
        self._items: dict[str, Evidence] = {}
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, evidence: Evidence) -> bool:
        return evidence.key in self._items

    @property
    def bytes(self) -> int:
        """The bytes of the pending evidence's canonical JSON."""
        return self._bytes

    def add(self, evidence: Evidence) -> bool:
        """Keep a new piece of evidence; False if its offence is already pending or a bound is reached."""
        if evidence.key in self._items:
            return False
        if len(self._items) >= MAX_PENDING_EVIDENCE or self._bytes + evidence.size > MAX_PENDING_EVIDENCE_BYTES:
            return False
        if sum(1 for e in self._items.values() if e.validator == evidence.validator) >= MAX_PENDING_PER_VALIDATOR:
            return False
        self._items[evidence.key] = evidence
        self._bytes += evidence.size
        return True

    def remove(self, evidence: list[Evidence] | tuple[Evidence, ...]) -> None:
        """Forget these pieces (committed, or refused by the host)."""
        for piece in evidence:
            kept = self._items.pop(piece.key, None)
            if kept is not None:
                self._bytes -= kept.size

    def prune(self, min_height: int) -> None:
        """Forget every piece of a height below `min_height` (too old to be committed)."""
        self.remove([e for e in self._items.values() if e.height < min_height])

    def pending(self) -> tuple[Evidence, ...]:
        """The pending evidence, oldest first (by height, then key)."""
        return tuple(sorted(self._items.values(), key=lambda e: (e.height, e.key)))
