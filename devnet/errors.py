"""The exception tree of the `devnet` package."""

from __future__ import annotations


class DevnetError(Exception):
    """Base class of devnet and simulation errors; the CLI prints the message in one line."""


class ScenarioError(DevnetError, ValueError):
    """A scenario file that cannot be simulated; the message names the file, line and key."""
