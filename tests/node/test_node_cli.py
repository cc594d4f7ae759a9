"""uocd init / genesis collect / start: the files a home holds, validation, and one-line errors."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from node.config import (
    compute_listen_port_range,
    find_free_port,
    load_home,
    parse_config,
    read_ephemeral_port_range,
    render_config,
)
from node.tls import compute_node_id
from uocd.main import main

ROOT = Path(__file__).resolve().parents[2]


def uocd(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "uocd", *args], cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_init_writes_config_keys_token_and_a_cosmos_style_genesis(tmp_path, capsys):
    home = tmp_path / "h"
    assert main(["init", "--home", str(home), "--moniker", "alpha", "--chain-id", "uoc-x", "--key-name", "alpha"]) == 0
    assert "initialized" in capsys.readouterr().out
    for name in ("node_key.json", "validator_key.json", "admin_token"):
        assert stat.S_IMODE((home / name).stat().st_mode) == 0o600, name
    genesis = json.loads((home / "genesis.json").read_text())
    assert sorted(genesis) == ["accounts", "chain_id", "genesis_time", "params", "validators"]
    loaded = load_home(home)
    assert genesis["chain_id"] == "uoc-x" and genesis["validators"][0]["address"] == loaded.validator_key.address
    assert loaded.config.moniker == "alpha" and loaded.config.peers == ()
    assert parse_config(render_config(loaded.config)) == loaded.config


def test_genesis_collect_merges_validators_into_every_home_and_lists_peers(tmp_path):
    homes = [tmp_path / f"h{i}" for i in range(3)]
    for i, home in enumerate(homes):
        assert main(["init", "--home", str(home), "--moniker", f"m{i}", "--grpc", f"127.0.0.1:{30000 + i}"]) == 0
    assert main(["genesis", "collect", *map(str, homes)]) == 0
    texts = {(h / "genesis.json").read_text() for h in homes}
    assert len(texts) == 1
    genesis = json.loads(texts.pop())
    assert len(genesis["validators"]) == 3 and len(genesis["accounts"]) == 3
    ids = [compute_node_id(load_home(h).node_key.pubkey) for h in homes]
    assert load_home(homes[1]).config.peers == (f"{ids[0]}@127.0.0.1:30000", f"{ids[2]}@127.0.0.1:30002")


def test_genesis_collect_of_one_home_given_twice_is_one_line_and_writes_nothing(tmp_path):
    home = tmp_path / "h"
    assert main(["init", "--home", str(home), "--moniker", "m"]) == 0
    before = (home / "genesis.json").read_text(), (home / "config.toml").read_text()
    result = uocd("genesis", "collect", str(home), str(tmp_path / "." / "h"))
    assert result.returncode == 1 and result.stderr.count("\n") == 1 and "is given twice" in result.stderr
    assert ((home / "genesis.json").read_text(), (home / "config.toml").read_text()) == before


@pytest.mark.parametrize(
    "edit, message",
    [
        (("config.toml", "propose_ms = 3000", "propose_ms = -1"), "consensus.propose_ms must be a positive integer"),
        (("config.toml", "peers = []", 'peers = ["127.0.0.1:26656"]'), "grpc.peers[0]: peer '127.0.0.1:26656' has no"),
        (("config.toml", "peers = []", f'peers = ["{"a" * 40}@h:{"9" * 5000}"]'), "a port in 1..65535"),
        (("config.toml", "[grpc]", "[grpc"), "config.toml:"),
        (
            ("config.toml", "max_bytes = 4194304", "max_bytes = 16777216"),
            "must be at most half of grpc.max_message_bytes",
        ),
        (("genesis.json", '"genesis_time": "', '"genesis_time": "yesterday'), "genesis_time must be an RFC 3339"),
        (("genesis.json", '"chain_id"', '"chain"'), "chain_id is missing"),
        (("config.toml", 'moniker = "m"', 'moniker = "m\\u001b[2J"'), "config.toml: moniker 'm\\x1b[2J' may only hold"),
        (("config.toml", 'moniker = "m"', f'moniker = "{"m" * 65}"'), "moniker is 65 characters, over the limit of 64"),
        (("genesis.json", '"stake": 100', '"stake": -5'), "genesis.json: genesis.validators[0].stake must be"),
        (("genesis.json", '"vote_mode": "open"', '"vote_mode": "evil"'), "genesis.json: "),
        (
            ("genesis.json", '"stake": 100', '"stake": 1' + "0" * 5000),
            "is not JSON: a number has more than 4300 digits",
        ),
    ],
)
def test_start_with_a_bad_config_or_genesis_prints_one_line_and_exits_1(tmp_path, edit, message):
    home = tmp_path / "h"
    assert main(["init", "--home", str(home), "--moniker", "m"]) == 0
    name, old, new = edit
    text = (home / name).read_text()
    assert old in text
    (home / name).write_text(text.replace(old, new, 1))
    result = uocd("start", "--home", str(home))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("uocd: error: ")
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (home / "data" / "node.db").exists()  # refused before the store is made


@pytest.mark.parametrize(
    "option",
    [
        ("--stake", "-5"),
        ("--stake", "0"),
        ("--stake", str(2**70)),
        ("--balance", "-1"),
        ("--epoch-length", "0"),
        ("--chain-id", ""),
        ("--block-interval-ms", "0"),
    ],
)
def test_init_with_a_value_start_would_refuse_is_one_line_and_writes_nothing(tmp_path, option):
    result = uocd("init", "--home", str(tmp_path / "h"), "--moniker", "m", *option)
    assert result.returncode == 1 and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "h").exists() or not any((tmp_path / "h").rglob("*"))


@pytest.mark.parametrize("moniker", ["<b>node</b>", "node\x07", "", "n" * 65, "n\u00f6de"])
def test_init_with_a_moniker_outside_its_character_set_or_length_is_one_line_and_writes_nothing(tmp_path, moniker):
    result = uocd("init", "--home", str(tmp_path / "h"), "--moniker", moniker)
    assert result.returncode == 1 and result.stderr.count("\n") == 1 and "the moniker" in result.stderr
    assert not (tmp_path / "h").exists()


def test_init_refuses_an_existing_home_and_start_a_missing_one(tmp_path):
    home = tmp_path / "h"
    assert main(["init", "--home", str(home), "--moniker", "m"]) == 0
    again = uocd("init", "--home", str(home), "--moniker", "m")
    assert again.returncode == 1 and "already exists" in again.stderr and "Traceback" not in again.stderr
    missing = uocd("start", "--home", str(tmp_path / "nope"))
    assert missing.returncode == 1 and "is not a node home" in missing.stderr


def test_grpc_status_of_an_unreachable_node_is_one_line(tmp_path):
    home = tmp_path / "h"
    assert main(["init", "--home", str(home), "--moniker", "m"]) == 0
    address = f"{'a' * 40}@127.0.0.1:1"
    result = uocd("grpc", "status", "--home", str(home), address)
    assert result.returncode == 1 and result.stderr.startswith(f"uocd: error: {address}: UNAVAILABLE")
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1
    bare = uocd("grpc", "status", "--home", str(home), "127.0.0.1:1")
    assert bare.returncode == 1 and "has no node id" in bare.stderr and bare.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("ephemeral", "expected"),
    [
        ((32768, 60999), range(10000, 32768)),  # Linux's default: listen below it
        ((49152, 65535), range(10000, 49152)),  # the IANA range
        ((1024, 65000), range(65001, 65536)),  # no room below: listen above it
    ],
)
def test_listen_ports_come_from_outside_the_ephemeral_range(ephemeral, expected):
    assert compute_listen_port_range(ephemeral) == expected


def test_find_free_port_never_hands_out_an_ephemeral_or_repeated_port():
    low, high = read_ephemeral_port_range()
    ports = [find_free_port("127.0.0.1") for _ in range(50)]
    assert len(set(ports)) == 50
    assert not any(low <= port <= high for port in ports)


SECRETS = ("node_key.json", "node_tls_key.pem", "node_tls_cert.pem", "validator_key.json", "validator_state.json")


def test_init_on_a_home_with_keys_keeps_them_and_says_so(tmp_path):
    home = tmp_path / "h"
    assert main(["init", "--home", str(home), "--moniker", "m"]) == 0
    before = {name: (home / name).read_bytes() for name in (*SECRETS, "admin_token")}
    (home / "config.toml").unlink()
    again = uocd("init", "--home", str(home), "--moniker", "m2", "--key-name", "other")
    assert again.returncode == 0, again.stderr
    assert "kept the existing node_key.json, node_tls_key.pem, node_tls_cert.pem, validator_key.json, " in again.stdout
    assert before == {name: (home / name).read_bytes() for name in before}
    loaded = load_home(home)
    assert loaded.config.moniker == "m2"
    assert json.loads((home / "genesis.json").read_text())["validators"][0]["address"] == loaded.validator_key.address


def test_init_overwrite_replaces_the_home_and_its_keys(tmp_path):
    home = tmp_path / "h"
    assert main(["init", "--home", str(home), "--moniker", "m"]) == 0
    old = load_home(home)
    again = uocd("init", "--home", str(home), "--moniker", "m", "--overwrite")
    assert again.returncode == 0, again.stderr
    assert "replaced node_key.json" in again.stdout
    new = load_home(home)
    assert new.node_key.address != old.node_key.address and new.validator_key.address != old.validator_key.address
    for name in ("node_key.json", "validator_key.json", "admin_token", "node_tls_key.pem"):
        assert stat.S_IMODE((home / name).stat().st_mode) == 0o600, name


def link_to_a_moved_file(path: Path) -> None:
    path.rename(path.with_name("moved"))
    path.symlink_to(path.with_name("moved"))


@pytest.mark.parametrize(
    "spoil, fragments",
    [
        (lambda h: (h / "validator_key.json").chmod(0o644), ("validator_key.json: permissions 0644", "chmod 600")),
        (lambda h: (h / "admin_token").chmod(0o640), ("admin_token: permissions 0640", "chmod 600")),
        (lambda h: link_to_a_moved_file(h / "node_key.json"), ("node_key.json is a symbolic link",)),
    ],
)
def test_init_over_a_bad_key_file_is_one_line_and_changes_nothing(tmp_path, spoil, fragments):
    home = tmp_path / "h"
    assert main(["init", "--home", str(home), "--moniker", "m"]) == 0
    (home / "config.toml").unlink()
    spoil(home)
    before = {p.name: p.read_bytes() for p in home.iterdir() if p.is_file()}
    result = uocd("init", "--home", str(home), "--moniker", "m")
    assert result.returncode == 1 and result.stderr.count("\n") == 1 and result.stderr.startswith("uocd: error: ")
    assert all(f in result.stderr for f in fragments), result.stderr
    assert before == {p.name: p.read_bytes() for p in home.iterdir() if p.is_file()}


@pytest.mark.parametrize("name", ["node_key.json", "validator_key.json", "node_tls_key.pem", "admin_token"])
def test_start_with_a_key_file_others_may_read_names_it_and_the_chmod(tmp_path, name):
    home = tmp_path / "h"
    assert main(["init", "--home", str(home), "--moniker", "m"]) == 0
    (home / name).chmod(0o644)
    result = uocd("start", "--home", str(home))
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert f"{home / name}: permissions 0644 are too open" in result.stderr
    assert result.stderr.rstrip().endswith(f"run: chmod 600 {home / name}")
    assert stat.S_IMODE((home / name).stat().st_mode) == 0o644  # reported, not silently changed
