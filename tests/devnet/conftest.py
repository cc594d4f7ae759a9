"""Fixtures for the devnet tests: scenario files, in-process simulation runs and their outputs, and the
`netns` marker: a test that needs network namespaces (root, iproute2, iptables, NFQUEUE) is skipped
with the reason `devnet.fabric_netns.probe_netns` gives when they are missing, or fails instead when
UOC_REQUIRE_NETNS=1 (set by .ci/run, so CI always runs them).

The helpers are handed out as fixtures (this directory is not a package, so test modules cannot
import this file by a stable name).
"""

from __future__ import annotations

import csv
import json
import os
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from devnet.fabric_netns import probe_netns
from devnet.scenario import parse_scenario
from devnet.simulate import run_inproc

INT_COLUMNS = ("epoch", "price", "total_power", "voters", "non_voters", "fees_collected")
REQUIRE_NETNS = "UOC_REQUIRE_NETNS"
NETNS_REFUSAL = pytest.StashKey[str | None]()


def pytest_configure(config: pytest.Config) -> None:
    """Register the `netns` marker."""
    config.addinivalue_line(
        "markers", f"netns: needs network namespaces; skipped with the reason if not usable ({REQUIRE_NETNS}=1: fails)"
    )


def get_netns_refusal(config: pytest.Config) -> str | None:
    """Why network namespaces cannot be used here, or None when they can (probed once per session)."""
    if NETNS_REFUSAL not in config.stash:
        config.stash[NETNS_REFUSAL] = probe_netns()
    return config.stash[NETNS_REFUSAL]


def is_netns_required() -> bool:
    """True if UOC_REQUIRE_NETNS=1: a test needing namespaces fails where they are missing, never skips."""
    return os.environ.get(REQUIRE_NETNS) == "1"


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip a `netns` test with the reason namespaces are refused here (fail instead if they are required)."""
    if item.get_closest_marker("netns") is None:
        return
    refusal = get_netns_refusal(item.config)
    if refusal is None:
        return
    if is_netns_required():
        pytest.fail(f"{REQUIRE_NETNS}=1 but network namespaces are unusable: {refusal}", pytrace=False)
    pytest.skip(f"network namespaces unusable: {refusal}")


@pytest.fixture(scope="session")
def netns_expected(pytestconfig: pytest.Config) -> bool:
    """True if a chaos run here must use namespaces: they are usable, or UOC_REQUIRE_NETNS=1 requires them."""
    return get_netns_refusal(pytestconfig) is None or is_netns_required()


def parse_epochs_csv(path: Path) -> list[dict[str, int | None]]:
    """epochs.csv as a list of rows; numbers as ints, an empty min/max vote as None."""
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    out = []
    for row in rows:
        parsed: dict[str, int | None] = {c: int(row[c]) for c in INT_COLUMNS}
        for c in ("min_vote", "max_vote"):
            parsed[c] = int(row[c]) if row[c] != "" else None
        out.append(parsed)
    return out


@dataclass
class SimRun:
    """One finished in-process run: its directory, returned summary and parsed epochs.csv."""

    out: Path
    summary: dict[str, Any]
    rows: list[dict[str, int | None]]

    @property
    def csv_bytes(self) -> bytes:
        return (self.out / "epochs.csv").read_bytes()

    @property
    def prices(self) -> list[int]:
        return [r["price"] for r in self.rows]

    def column(self, name: str) -> list[int | None]:
        return [r[name] for r in self.rows]

    def summary_file(self) -> dict[str, Any]:
        return json.loads((self.out / "summary.json").read_text())


@pytest.fixture(scope="session")
def simulate(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., SimRun]:
    """Run scenario TOML text on the inproc engine (no progress bar) in a fresh directory."""

    def run(text: str, name: str = "sim") -> SimRun:
        base = tmp_path_factory.mktemp(name)
        path = base / f"{name}.toml"
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        scenario = parse_scenario(path.read_text(), str(path))
        out = base / "out"
        summary = run_inproc(scenario, out, progress=False)
        return SimRun(out, summary, parse_epochs_csv(out / "epochs.csv"))

    return run
