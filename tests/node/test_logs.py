"""Log lines (node.logs): ISO-8601 UTC times and key-value fields in text and JSON, and a node process that
logs each committed block, each epoch boundary and each of its own transactions at the default level."""

from __future__ import annotations

import io
import json
import logging
import signal
import urllib.request
from datetime import datetime
from pathlib import Path

import pytest

from node.config import load_home, update_config
from node.logs import configure_logging
from tests.node.netutil import NodeProcess, make_homes, wait_until


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level


def log_lines(fmt: str, level: str = "info") -> list[str]:
    stream = io.StringIO()
    configure_logging(level, fmt, stream)
    logging.getLogger("node.node").info("committed block", extra={"height": 7, "round": 1, "txs": 2})
    logging.getLogger("node.network").warning("peer %s dropped", "abc@127.0.0.1:1")
    logging.getLogger("node.node").debug("a detail")
    return stream.getvalue().splitlines()


def test_json_lines_carry_an_iso_utc_time_the_level_logger_message_and_the_fields(restore_logging):
    first, second = (json.loads(line) for line in log_lines("json"))
    assert first["time"].endswith("Z") and datetime.fromisoformat(first["time"]).utcoffset().total_seconds() == 0
    assert {k: first[k] for k in ("level", "logger", "message", "height", "round", "txs")} == {
        "level": "info",
        "logger": "node.node",
        "message": "committed block",
        "height": 7,
        "round": 1,
        "txs": 2,
    }
    assert second["message"] == "peer abc@127.0.0.1:1 dropped" and second["level"] == "warning"


def test_text_lines_start_with_the_utc_time_and_end_with_key_value_fields(restore_logging):
    first, second = log_lines("text")
    stamp = first.split()[0]
    assert stamp.endswith("Z") and datetime.fromisoformat(stamp).utcoffset().total_seconds() == 0
    assert "committed block" in first and "height=7 round=1 txs=2" in first and "[node.node]" in first
    assert "info" in first and "warning" in second


@pytest.mark.parametrize(("level", "count"), [("debug", 3), ("info", 2), ("warning", 1), ("error", 0)])
def test_the_level_drops_the_lines_below_it(restore_logging, level, count):
    assert len(log_lines("json", level)) == count


@pytest.mark.parametrize(("level", "fmt"), [("verbose", "json"), ("info", "xml")])
def test_an_unknown_level_or_format_is_refused(restore_logging, level, fmt):
    with pytest.raises(ValueError, match="log (level|format) must be one of"):
        configure_logging(level, fmt)


def read_log(home: Path) -> list[dict]:
    return [json.loads(line) for line in (home / "node.log").read_text().splitlines() if line.startswith("{")]


def test_a_node_logs_every_block_its_own_vote_and_the_epoch_boundary_with_the_price_and_its_distance(tmp_path):
    (home,) = make_homes(tmp_path, 1)
    genesis = json.loads((home / "genesis.json").read_text())
    genesis["params"]["epoch_length"] = 5
    (home / "genesis.json").write_text(json.dumps(genesis))
    update_config(home, timeouts=load_home(home).config.timeouts.__class__(commit_ms=50))
    node = NodeProcess(home)
    try:
        wait_until(lambda: any(e["message"] == "committed block" for e in read_log(home)), "a block is committed")
        request = urllib.request.Request(
            f"http://{node.admin}/v1/admin/unit-of-compute-price-proposal",
            data=json.dumps({"price": 1000, "denom": "ngonka"}).encode(),
            headers={"Authorization": f"Bearer {node.token}", "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert answer.status == 200
        wait_until(
            lambda: any(e["message"] == "epoch ended" and e["voters"] == 1 for e in read_log(home)),
            "an epoch ends with the vote counted",
        )
    finally:
        assert node.signal(signal.SIGTERM) == 0
    entries = read_log(home)
    blocks = [e for e in entries if e["message"] == "committed block"]
    assert [e["height"] for e in blocks] == list(range(1, len(blocks) + 1))
    assert all({"round", "txs", "block_time", "proposer", "app_hash"} <= set(e) for e in blocks)
    [own] = [e for e in entries if e["message"] == "own tx committed"]
    assert own["kind"] == "MsgSubmitPriceProposal" and own["result"] == "ok" and len(own["tx_hash"]) == 64
    epochs = [e for e in entries if e["message"] == "epoch ended"]
    assert [e["epoch"] for e in epochs] == list(range(len(epochs))) and all(e["height"] % 5 == 0 for e in epochs)
    assert {k: epochs[-1][k] for k in ("price", "voters", "participation", "own_vote", "own_vote_distance")} == {
        "price": 1000,
        "voters": 1,
        "participation": "1.00",
        "own_vote": 1000,
        "own_vote_distance": 0,
    }
    assert all(e["time"].endswith("Z") for e in entries)
