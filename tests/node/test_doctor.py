"""uocd doctor checks a home without changing it: every problem (a key others may read, a symlinked
key, a bad config, an unreadable sign state, a corrupt store, a state that does not match its app hash)
is named with its fix, the exit status is 1 with one error line, and a sound home is all `ok`."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from node.config import load_home
from node.doctor import check_home
from node.ledger import lock_home
from tests.node.netutil import make_homes
from tests.node.test_storage_faults import corrupt_pages, run_one_validator, tamper_balance

ROOT = Path(__file__).resolve().parents[2]


def uocd(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "uocd", *args], cwd=ROOT, capture_output=True, text=True, timeout=60)


def fingerprint(home: Path) -> dict[str, tuple[int, str]]:
    """Every file of a home: mode and content hash (links: their target)."""
    out = {}
    for path in sorted(home.rglob("*")):
        if path.is_symlink():
            out[str(path)] = (0, str(path.readlink()))
        elif path.is_file() and path.name != "LOCK":
            out[str(path)] = (path.stat().st_mode, hashlib.sha256(path.read_bytes()).hexdigest())
    return out


@pytest.fixture(scope="module")
def ran(tmp_path_factory) -> Path:
    """A home whose single validator committed 3 blocks, its WAL checkpointed into node.db."""
    (home,) = make_homes(tmp_path_factory.mktemp("ran"), 1)
    asyncio.run(run_one_validator(home, 3))
    conn = sqlite3.connect(home / "data" / "node.db")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return home


@pytest.fixture
def home(ran, tmp_path) -> Path:
    copy = tmp_path / "home"
    shutil.copytree(ran, copy, symlinks=True)
    return copy


def test_a_sound_home_is_all_ok_and_exits_0(home):
    result = uocd("doctor", "--home", str(home), "--output", "json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["home"] == str(home) and all(f["ok"] for f in doc["findings"])
    checks = [f["check"] for f in doc["findings"]]
    assert checks[:2] == ["config.toml", "genesis.json"] and checks[-1] == "data/node.db"
    assert {"node_key.json", "node_tls_key.pem", "validator_key.json", "admin_token"} <= set(checks)
    assert "app hash matches the state at height" in doc["findings"][-1]["note"]


def link_node_key(home: Path) -> None:
    (home / "node_key.json").rename(home / "elsewhere.json")
    (home / "node_key.json").symlink_to(home / "elsewhere.json")


def write(name: str, text: str):
    return lambda home: (home / name).write_text(text)


def write_private(name: str, text: str):
    """Write a 0600 file (so only its content is wrong)."""

    def damage(home: Path) -> None:
        (home / name).write_text(text)
        (home / name).chmod(0o600)

    return damage


DAMAGES = [
    # (what, damage, the check that fails, a fragment of its problem, a fragment of its fix)
    ("key 0644", lambda h: (h / "validator_key.json").chmod(0o644), "validator_key.json", "are too open", "chmod 600"),
    ("token 0640", lambda h: (h / "admin_token").chmod(0o640), "admin_token", "0640 are too open", "chmod 600"),
    ("symlinked key", link_node_key, "node_key.json", "is a symbolic link", "replace the link"),
    ("bad config", write("config.toml", "moniker = 5\n"), "config.toml", "moniker", "edit "),
    ("bad genesis", write("genesis.json", "{}"), "genesis.json", "chain_id is missing", "copy the network's"),
    ("empty token", write_private("admin_token", "\n"), "admin_token", "is empty", "uocd init"),
    ("bad sign state", write("validator_state.json", "junk"), "validator_state.json", "not a sign state", "delete it"),
    ("bad feeder file", write_private("price_feeder.json", "{}"), "price_feeder.json", "not a price", "post the price"),
    ("feeder file 0644", write("price_feeder.json", "{}"), "price_feeder.json", "too open", "chmod 600"),
    ("app hash", lambda h: tamper_balance(h / "data" / "node.db"), "data/node.db", "does not match", "restore"),
    ("corrupt store", lambda h: corrupt_pages(h / "data" / "node.db"), "data/node.db", "quick_check", "restore"),
]


@pytest.mark.parametrize(("what", "damage", "check", "problem", "fix"), DAMAGES, ids=[d[0] for d in DAMAGES])
def test_doctor_names_each_problem_and_its_fix_and_changes_nothing(home, what, damage, check, problem, fix):
    damage(home)
    before = fingerprint(home)
    result = uocd("doctor", "--home", str(home))
    assert result.returncode == 1 and result.stderr == f"uocd: error: 1 problem(s) in {home}\n", result.stderr
    lines = result.stdout.splitlines()
    (bad,) = [i for i, line in enumerate(lines) if line.startswith("PROBLEM")]
    assert lines[bad].startswith(f"PROBLEM  {check}: ") and problem in lines[bad], lines[bad]
    assert lines[bad + 1].startswith("         fix: ") and fix in lines[bad + 1], lines[bad + 1]
    assert fingerprint(home) == before


def test_a_missing_home_is_one_problem_per_missing_required_file(tmp_path):
    findings = {f.check: f for f in check_home(tmp_path / "none")}
    assert findings["config.toml"].fix == f"uocd init --home {tmp_path / 'none'}"
    assert findings["node_key.json"].problem.endswith("node_key.json is missing")
    missing = ["config.toml", "genesis.json", "node_key.json", "admin_token"]  # start needs each of them
    assert [c for c, f in findings.items() if f.problem] == missing


def test_the_store_of_a_running_node_is_not_checked_and_that_is_said(home):
    with lock_home(load_home(home).path):
        findings = check_home(home)
    assert all(f.problem is None for f in findings)
    assert findings[-1].note.startswith("not checked: ") and "stop the node" in findings[-1].note
