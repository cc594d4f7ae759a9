"""Offline signing as with gaiad: `tx … --generate-only` prints an unsigned transaction, `tx sign FILE --from K
--chain-id C --sequence S` signs it without a node, `tx broadcast FILE` sends it; a file for another chain
or another sender is refused in one line."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from chain.crypto import PrivateKey
from tests.node.netutil import NodeProcess, make_homes, wait_until
from tests.node.test_cli_keys import assert_one_error_line

ROOT = Path(__file__).resolve().parents[2]
TO = PrivateKey.from_name("offline-recipient").address


def uocd(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "uocd", *args], cwd=ROOT, capture_output=True, text=True, timeout=90, input=stdin
    )


def test_generate_only_then_sign_without_a_node_then_broadcast_commits_the_transfer(tmp_path):
    (home,) = make_homes(tmp_path, 1)
    chain_id = json.loads((home / "genesis.json").read_text())["chain_id"]
    unsigned = uocd("tx", "send", TO, "7", "--home", str(home), "--generate-only")
    assert unsigned.returncode == 0, unsigned.stderr
    assert "signature" not in json.loads(unsigned.stdout)
    (tmp_path / "unsigned.json").write_text(unsigned.stdout)
    signed = uocd(
        "tx", "sign", str(tmp_path / "unsigned.json"), "--home", str(home), "--chain-id", chain_id, "--sequence", "0"
    )
    assert signed.returncode == 0, signed.stderr
    (tmp_path / "signed.json").write_text(signed.stdout)
    node = NodeProcess(home)
    try:
        wait_until(lambda: uocd("query", "status", "--home", str(home)).returncode == 0, "the node answers")
        sent = uocd("tx", "broadcast", str(tmp_path / "signed.json"), "--home", str(home), "-o", "json")
        account = json.loads(uocd("query", "account", TO, "--home", str(home), "-o", "json").stdout)
    finally:
        assert node.signal(signal.SIGTERM) == 0
    assert sent.returncode == 0 and json.loads(sent.stdout)["code"] == "ok", sent.stderr
    assert account["balance"] == 7


@pytest.mark.parametrize(
    ("file", "extra", "fragment"),
    [
        ("unsigned", ("--chain-id", "uoc-other"), "is a transaction for chain 'uoc-nettest', not 'uoc-other'"),
        ("unsigned", ("--chain-id", "uoc-nettest", "--from", "other"), "is sent by"),
        ("garbage", ("--chain-id", "uoc-nettest"), "is not an unsigned transaction"),
    ],
)
def test_a_tx_file_for_another_chain_or_sender_is_one_line_and_exit_1(tmp_path, file, extra, fragment):
    (home,) = make_homes(tmp_path, 1)
    assert uocd("keys", "add", "other", "--home", str(home)).returncode == 0
    unsigned = uocd("tx", "send", TO, "7", "--home", str(home), "--generate-only").stdout
    (tmp_path / "unsigned").write_text(unsigned)
    (tmp_path / "garbage").write_text('{"tx": 1}')
    before = {p: p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file()}
    done = uocd("tx", "sign", str(tmp_path / file), "--home", str(home), "--sequence", "0", *extra)
    assert_one_error_line(done, fragment)
    assert done.stdout == ""
    assert {p: p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file()} == before  # nothing written
