"""`uocd query txs --sender` pages through a sender's committed transactions (the node's sender index), and
`uocd query … --height H` answers at the node's latest height and refuses any other in one line naming why
(the node keeps only its latest state; docs/design.md, "Queries at a height")."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from chain.crypto import PrivateKey
from node.config import load_home
from tests.node.netutil import NodeProcess, make_homes, wait_until
from tests.node.test_cli_keys import assert_one_error_line

ROOT = Path(__file__).resolve().parents[2]
TO = PrivateKey.from_name("txs-recipient").address


def uocd(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "uocd", *args], cwd=ROOT, capture_output=True, text=True, timeout=90)


def read(home: Path, *args: str) -> dict:
    done = uocd("query", *args, "--home", str(home), "-o", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    (home,) = make_homes(tmp_path_factory.mktemp("txs"), 1)
    process = NodeProcess(home)
    try:
        wait_until(lambda: uocd("query", "status", "--home", str(home)).returncode == 0, "the node answers")
        for amount in (1, 2, 3):
            sent = uocd("tx", "send", TO, str(amount), "--home", str(home), "-o", "json")
            assert sent.returncode == 0 and json.loads(sent.stdout)["code"] == "ok", sent.stderr
        yield home
    finally:
        assert process.signal(signal.SIGTERM) == 0


def test_query_txs_pages_through_a_senders_transactions_oldest_first(node):
    first = read(node, "txs", "--sender", "validator", "--limit", "2")
    rest = read(node, "txs", "--sender", "validator", "--limit", "2", "--page-key", first["pagination"]["next_key"])
    txs = first["txs"] + rest["txs"]
    assert [t["tx"]["body"]["messages"][0]["amount"]["amount"] for t in txs] == [1, 2, 3]
    assert [t["tx"]["body"]["sequence"] for t in txs] == [0, 1, 2] and rest["pagination"]["next_key"] is None
    assert [(t["height"], t["index"]) for t in txs] == sorted((t["height"], t["index"]) for t in txs)
    newest = read(node, "txs", "--sender", "validator", "--reverse", "--limit", "1")["txs"]
    assert newest == txs[-1:] and read(node, "tx", txs[0]["tx_hash"]) == txs[0]
    assert read(node, "txs", "--sender", TO)["txs"] == []  # a recipient is not a sender
    text = uocd("query", "txs", "--sender", "validator", "--limit", "2", "--home", str(node)).stdout
    assert "MsgSend" in text and f"more: --page-key {first['pagination']['next_key']}" in text


def test_a_read_at_the_latest_height_answers_and_names_its_height(node):
    """Over HTTP (the command line starts too slowly to catch a 200 ms block): `height` naming the latest."""
    public = f"http://{load_home(node).config.api_public}"

    def at_latest():
        height = requests.get(public + "/v1/status", timeout=10).json()["height"]
        answer = requests.get(public + "/v1/pricing", params={"height": height}, timeout=10)
        return answer.status_code == 200 and (height, answer)

    height, answer = wait_until(at_latest, "a read at the height just read answers")
    assert answer.headers["X-Cosmos-Block-Height"] == str(height) and "unit_of_compute_price" in answer.json()
    latest = requests.get(public + "/v1/validators", timeout=10)  # without `height`: the latest, named
    assert int(latest.headers["X-Cosmos-Block-Height"]) >= height


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("pricing", "--height", "1"), "keeps only the state of its latest height"),
        (("account", "validator", "--height", "1"), "keeps only the state of its latest height"),
        (("status", "--height", "999999999"), "height 999999999 is not committed yet"),
    ],
)
def test_query_at_another_height_is_one_line_naming_why_and_exit_1(node, args, fragment):
    assert_one_error_line(uocd("query", *args, "--home", str(node)), fragment)
