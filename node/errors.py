"""The exception tree of the `node` package."""

from __future__ import annotations

from chain.errors import StoreError


class NodeError(Exception):
    """Base class of node runtime errors."""


__all__ = ["NodeError", "StoreError"]
