"""A process killed with SIGKILL mid-run loses no committed block and leaves a consistent store."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from chain.app import Application
from node.store import SqliteStore

SCENARIO = "seed = 1\nepochs = 400\nepoch_length = 5\n" + "".join(
    f'[[validators]]\nname = "v{i}"\nstake = {10 + i}\nstrategy = "honest"\ntrue_cost = 1000\nnoise_bps = 300\n'
    for i in range(60)
)


def committed_height(db: Path) -> int:
    """The height a separate reader sees committed (WAL lets it read while the writer runs)."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            row = conn.execute("SELECT height FROM meta WHERE id = 1").fetchone()
    except sqlite3.OperationalError:
        return -1
    return row[0] if row else -1


def test_sigkill_mid_run_keeps_every_committed_block_and_a_consistent_store(tmp_path):
    scenario = tmp_path / "long.toml"
    scenario.write_text(SCENARIO)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "uocd", "devnet", "simulate", str(scenario), "--out", str(out), "--no-progress"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        seen = -1
        while seen < 200 and time.monotonic() < deadline:
            time.sleep(0.2)
            seen = committed_height(out / "state.db")
        assert seen >= 200, "the simulation never got going"
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    store = SqliteStore(out / "state.db")
    app = Application(store)
    assert app.height >= seen
    assert app.recompute_app_hash() == app.app_hash
    assert sqlite3.connect(out / "state.db").execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    history = app.query_all("history")
    assert [r["epoch"] for r in history] == list(range(app.height // 5 + 1))
    resumed_from = app.height
    app.finalize_block(resumed_from + 1, [])
    app.commit()
    assert SqliteStore(out / "state.db").last_commit().height == resumed_from + 1
