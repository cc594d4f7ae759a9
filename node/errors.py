"""The exception tree of the `node` package."""

from __future__ import annotations

from chain.errors import StoreError


class NodeError(Exception):
    """Base class of node runtime errors."""


class ConsensusError(NodeError):
    """Base class of consensus errors."""


class InvalidMessage(ConsensusError):
    """A proposal, vote, block or commit that is malformed, badly signed or not plausible."""


class InvalidCommit(ConsensusError):
    """A commit that does not carry +2/3 valid precommits for its block from the given set."""


class DoubleSignRefused(ConsensusError):
    """Signing would conflict with what this validator already signed at the same (h, r, step)."""


__all__ = ["ConsensusError", "DoubleSignRefused", "InvalidCommit", "InvalidMessage", "NodeError", "StoreError"]
