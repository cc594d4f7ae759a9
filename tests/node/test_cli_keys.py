"""uocd keys add|list|show, and the CLI's one-line errors when no node answers or the input is bad."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from chain.crypto import PrivateKey
from node.client import normalize_url
from uocd.main import main

ROOT = Path(__file__).resolve().parents[2]


def uocd(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "uocd", *args], cwd=ROOT, capture_output=True, text=True, timeout=60, input=stdin
    )


def assert_one_error_line(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("uocd: error: "), proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def test_keys_add_writes_a_0600_key_that_list_and_show_report(tmp_path, capsys):
    home = str(tmp_path / "kh")
    assert main(["keys", "add", "alice", "--home", home, "--output", "json"]) == 0
    added = json.loads(capsys.readouterr().out)
    path = Path(added["path"])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert added["address"].startswith("uoc1") and added["name"] == "alice"
    assert main(["keys", "list", "--home", home, "-o", "json"]) == 0
    assert [k["address"] for k in json.loads(capsys.readouterr().out)["keys"]] == [added["address"]]
    assert main(["keys", "show", "alice", "--home", home]) == 0
    assert added["address"] in capsys.readouterr().out


def test_keys_add_recover_imports_the_seed_from_stdin(tmp_path):
    key = PrivateKey.from_name("recover-me")
    proc = uocd("keys", "add", "bob", "--recover", "--home", str(tmp_path), "-o", "json", stdin=key.seed().hex() + "\n")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["address"] == key.address


def test_keys_of_a_node_home_include_its_validator_key(tmp_path, capsys):
    home = tmp_path / "node"
    assert main(["init", "--home", str(home), "--moniker", "m", "--key-name", "v"]) == 0
    capsys.readouterr()
    assert main(["keys", "list", "--home", str(home), "-o", "json"]) == 0
    keys = json.loads(capsys.readouterr().out)["keys"]
    assert [k["name"] for k in keys] == ["validator"]
    assert keys[0]["address"] == PrivateKey.from_name("v").address


@pytest.mark.parametrize(
    "args, stdin, fragments",
    [
        (("keys", "add", "Bad Name"), None, ("key name",)),
        (("keys", "add", "x", "--recover"), "nothex\n", ("64 hex digits",)),
        (("keys", "show", "nobody"), None, ("no key named 'nobody'",)),
        (("query", "status", "--node", "http://127.0.0.1:9"), None, ("cannot reach the node at http://127.0.0.1:9",)),
        (("query", "pricing", "--node", "127.0.0.1:9", "-o", "json"), None, ("http://127.0.0.1:9",)),
        (("tx", "send", "uoc1xyz", "5"), None, ("--from NAME is needed",)),
        (("tx", "bond", "10", "--from", "ghost"), None, ("no key named 'ghost'",)),
        (
            ("tx", "price-proposal", "10", "zcoin", "--from", "dup", "--chain-id", "uoc-x"),
            None,
            ("invalid transaction", "zcoin"),
        ),
        (("tx", "price-proposal", "10", "ngonka", "--from", "dup"), None, ("--chain-id is needed",)),
    ],
)
def test_cli_failures_print_one_line_and_exit_1(tmp_path, args, stdin, fragments):
    home = tmp_path / "h"
    assert main(["keys", "add", "dup", "--home", str(home)]) == 0
    assert_one_error_line(uocd(*args, "--home", str(home), stdin=stdin), *fragments)


def test_adding_an_existing_key_is_refused_in_one_line(tmp_path):
    home = str(tmp_path)
    assert uocd("keys", "add", "a", "--home", home).returncode == 0
    assert_one_error_line(uocd("keys", "add", "a", "--home", home), "already exists")


def test_every_new_command_explains_itself_with_help():
    for args in (
        ("keys", "add"),
        ("tx", "send"),
        ("tx", "gov", "vote"),
        ("tx", "remove-model"),
        ("query", "proposal"),
        ("query", "pricing"),
        ("devnet", "up"),
        ("devnet", "status"),
        ("devnet", "down"),
    ):
        proc = uocd(*args, "--help")
        assert proc.returncode == 0 and "usage: uocd" in proc.stdout, args


def test_node_urls_accept_host_port_or_a_url():
    assert normalize_url("127.0.0.1:26650") == "http://127.0.0.1:26650"
    assert normalize_url("http://localhost:1/") == "http://localhost:1"


def test_keys_add_recover_at_a_terminal_reads_the_seed_without_echo(tmp_path):
    import os
    import pty
    import select

    key = PrivateKey.from_name("typed-seed")
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uocd", "keys", "add", "carol", "--recover", "--home", str(tmp_path)],
        cwd=ROOT,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,  # no controlling terminal: getpass turns echo off on stdin, the pty
    )
    os.close(slave)
    seen = b""
    while b"not echoed" not in seen:
        assert select.select([master], [], [], 30)[0], seen
        seen += os.read(master, 1024)
    os.write(master, key.seed().hex().encode() + b"\n")
    assert proc.wait(timeout=60) == 0
    while select.select([master], [], [], 0.5)[0]:
        try:
            chunk = os.read(master, 1024)
        except OSError:  # the child closed its side
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    assert key.address in seen.decode() and key.seed().hex() not in seen.decode()


def test_keys_add_refuses_a_symlink_in_place_of_the_key_file(tmp_path):
    (tmp_path / "keys").mkdir()
    target = tmp_path / "elsewhere.json"
    (tmp_path / "keys" / "eve.json").symlink_to(target)
    assert_one_error_line(uocd("keys", "add", "eve", "--home", str(tmp_path)), "eve.json already exists")
    assert not target.exists()
