"""The Cosmos-style command line: version, shell completion, a default home, the `q` alias, and keys from
a BIP-39 mnemonic that can be deleted, renamed, exported and imported with a passphrase."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.node.test_cli_keys import assert_one_error_line
from uocd.keys import compute_mnemonic_key
from uocd.main import build_parser, compute_version

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# The BIP-39 phrase of all-zero entropy (a valid checksum).
ZERO_WORDS = "abandon " * 11 + "about"


def uocd(*args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "uocd", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        input=stdin,
        env={**os.environ, **(env or {})},
    )


def test_version_and_dash_dash_version_print_the_package_version():
    assert uocd("version").stdout.strip() == compute_version() != ""
    assert json.loads(uocd("version", "-o", "json").stdout) == {"version": compute_version(), "name": "uocd"}
    assert uocd("--version").stdout.strip() == f"uocd {compute_version()}"


@pytest.mark.parametrize(
    ("line", "expected"),
    [("uocd tx gov v", ["vote"]), ("uocd q prici", ["pricing"]), ("uocd keys ren", ["rename"])],
)
def test_the_bash_completion_script_completes_subcommands(tmp_path, line, expected):
    script = tmp_path / "complete.sh"
    script.write_text(
        "source <(uocd completion bash)\n"
        "fn=$(complete -p uocd | sed -E 's/.*-F ([^ ]+).*/\\1/')\n"
        f'COMP_LINE="{line}"; COMP_POINT=${{#COMP_LINE}}; read -ra COMP_WORDS <<< "$COMP_LINE"\n'
        "COMP_CWORD=$((${#COMP_WORDS[@]} - 1))\n"
        '$fn uocd "${COMP_WORDS[-1]}" "${COMP_WORDS[-2]}"\n'
        "printf '%s\\n' \"${COMPREPLY[@]}\"\n"
    )
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)
    assert [w.strip() for w in done.stdout.split()] == expected, done.stderr


HEAVY_MODULES = (
    "grpc",
    "aiohttp",
    "structlog",
    "pydantic",
    "pandas",
    "matplotlib",
    "node.node",
    "node.config",
    "devnet.simulate",
)


def test_building_the_argument_tree_loads_no_command_s_implementation():
    """Every start and every TAB of shell completion builds the whole tree: it must not load the node, gRPC,
    aiohttp, logging's renderer or the simulator, which only the command that runs needs."""
    probe = (
        "import sys; from uocd.main import build_parser; build_parser(); "
        f"print(' '.join(m for m in {HEAVY_MODULES!r} if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.split() == [], (done.stdout, done.stderr)


def test_a_command_s_help_epilog_is_its_module_s_docstring_loaded_when_asked():
    done = uocd("devnet", "attack", "--help")
    assert done.returncode == 0 and "rewards_lost" in done.stdout, done.stderr


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_completion_scripts_for_zsh_and_fish_name_uocd(shell):
    done = uocd("completion", shell)
    assert done.returncode == 0 and "uocd" in done.stdout


def test_start_and_init_default_to_uocd_home_then_the_home_directory(monkeypatch):
    monkeypatch.setenv("UOCD_HOME", "/srv/uocd")
    assert build_parser().parse_args(["start"]).home == "/srv/uocd"
    monkeypatch.delenv("UOCD_HOME")
    assert build_parser().parse_args(["init", "--moniker", "m"]).home == "~/.uocd"


def test_q_is_an_alias_of_query():
    parser = build_parser()
    assert parser.parse_args(["q", "pricing"]).func is parser.parse_args(["query", "pricing"]).func


def test_a_new_key_comes_with_its_mnemonic_once_and_the_mnemonic_recovers_it(tmp_path):
    added = json.loads(uocd("keys", "add", "alice", "--home", str(tmp_path), "-o", "json").stdout)
    assert len(added["mnemonic"].split()) == 24
    assert "mnemonic" not in uocd("keys", "show", "alice", "--home", str(tmp_path)).stdout
    recovered = uocd(
        "keys", "add", "again", "--recover", "--home", str(tmp_path), "-o", "json", stdin=added["mnemonic"]
    )
    assert json.loads(recovered.stdout)["address"] == added["address"]
    assert compute_mnemonic_key(ZERO_WORDS).address == compute_mnemonic_key(ZERO_WORDS.upper() + "  ").address


def test_a_key_survives_export_and_import_with_its_passphrase_then_rename_and_delete(tmp_path):
    home = str(tmp_path)
    address = json.loads(uocd("keys", "add", "alice", "--home", home, "-o", "json").stdout)["address"]
    exported = uocd("keys", "export", "alice", "--home", home, stdin="correct horse\n")
    doc = json.loads(exported.stdout)
    assert doc["address"] == address and doc["kdf"]["name"] == "scrypt" and "seed" not in exported.stdout
    (tmp_path / "alice.key").write_text(exported.stdout)
    imported = uocd(
        "keys", "import", "bob", str(tmp_path / "alice.key"), "--home", home, "-o", "json", stdin="correct horse\n"
    )
    assert json.loads(imported.stdout)["address"] == address
    assert uocd("keys", "rename", "bob", "carol", "--home", home).returncode == 0
    assert uocd("keys", "delete", "carol", "--yes", "--home", home).returncode == 0
    names = [k["name"] for k in json.loads(uocd("keys", "list", "--home", home, "-o", "json").stdout)["keys"]]
    assert names == ["alice"]


def key_files(home: Path) -> list[str]:
    return sorted(p.name for p in (home / "keys").glob("*")) if (home / "keys").exists() else []


@pytest.mark.parametrize(
    ("args", "stdin", "fragment"),
    [
        (("keys", "add", "x", "--recover"), "abandon " * 11 + "zoo\n", "not a valid BIP-39 phrase"),
        (("keys", "add", "x", "--recover"), "one two three\n", "BIP-39 mnemonic (12 to 24 words)"),
        (("keys", "import", "x", "EXPORT"), "wrong passphrase\n", "wrong passphrase for"),
        (("keys", "import", "x", "GARBAGE"), "whatever1\n", "is not a key exported by uocd keys export"),
        (("keys", "export", "alice"), "short\n", "at least 8 characters"),
        (("keys", "delete", "alice"), "", "needs --yes without a terminal"),
        (("keys", "delete", "validator", "--yes"), "", "not managed by uocd keys"),
        (("keys", "rename", "alice", "alice"), "", "already exists"),
        (("keys", "add", "validator"), "", "'validator' names the node's validator key"),
        (("keys", "rename", "alice", "validator"), "", "'validator' names the node's validator key"),
        (("keys", "import", "validator", "EXPORT"), "right passphrase\n", "'validator' names the node's validator key"),
    ],
)
def test_a_bad_mnemonic_passphrase_or_file_is_one_line_exit_1_and_writes_nothing(tmp_path, args, stdin, fragment):
    home = tmp_path / "h"
    assert uocd("keys", "add", "alice", "--home", str(home)).returncode == 0
    export = uocd("keys", "export", "alice", "--home", str(home), stdin="right passphrase\n").stdout
    (tmp_path / "EXPORT").write_text(export)
    (tmp_path / "GARBAGE").write_text('{"type": "something else"}')
    before = key_files(home)
    args = tuple(str(tmp_path / a) if a in ("EXPORT", "GARBAGE") else a for a in args)
    assert_one_error_line(uocd(*args, "--home", str(home), stdin=stdin), fragment)
    assert key_files(home) == before


@pytest.mark.parametrize(
    ("kdf", "fragment"),
    [
        ({"n": 2**20, "r": 16}, "scrypt parameters out of bounds"),  # 2 GiB: refused before deriving
        ({"n": -1}, "scrypt parameters out of bounds"),
        ({"r": 0}, "scrypt parameters out of bounds"),
        ({"n": 1000}, "scrypt parameters out of bounds"),  # not a power of 2
        ({"n": "32768"}, "scrypt parameters out of bounds"),
        ({"p": 5}, "scrypt parameters out of bounds"),
    ],
)
def test_an_export_whose_scrypt_parameters_are_out_of_bounds_is_refused_before_any_derivation(tmp_path, kdf, fragment):
    home = tmp_path / "h"
    assert uocd("keys", "add", "alice", "--home", str(home)).returncode == 0
    doc = json.loads(uocd("keys", "export", "alice", "--home", str(home), stdin="right passphrase\n").stdout)
    doc["kdf"].update(kdf)
    (tmp_path / "export.json").write_text(json.dumps(doc))
    before = key_files(home)
    proc = uocd("keys", "import", "x", str(tmp_path / "export.json"), "--home", str(home), stdin="right passphrase\n")
    assert_one_error_line(proc, fragment)
    assert key_files(home) == before


@pytest.mark.parametrize("sequence", ["-1", str(2**70)])
def test_offline_signing_refuses_a_sequence_a_node_would_refuse_and_prints_no_transaction(tmp_path, sequence):
    home = str(tmp_path / "n")
    assert uocd("init", "--home", home, "--moniker", "x").returncode == 0
    to = json.loads(uocd("keys", "show", "validator", "--home", home, "-o", "json").stdout)["address"]
    proc = uocd("tx", "send", to, "5", "--from", "validator", "--home", home, "--offline", "--sequence", sequence)
    assert_one_error_line(proc, "tx.body.sequence must be an integer ≥ 0 and < 2^63")
    assert proc.stdout == ""


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("query", "status", "--node", "not a url"), "is not a node URL"),
        (("query", "status", "--node", "http://[::1"), "is not a node URL"),
        (("query", "status", "--node", "http://x:99999"), "is not a node URL"),
        (("tx", "broadcast", "DEEP", "--node", "http://127.0.0.1:9"), "nests arrays or objects too deeply"),
        (("devnet", "simulate", "DEEP_TOML", "--out", "OUT"), "nests arrays or objects too deeply"),
    ],
)
def test_an_unreadable_input_or_a_bad_node_url_is_one_line_exit_1(tmp_path, args, fragment):
    (tmp_path / "DEEP").write_text("[" * 5000 + "]" * 5000)
    (tmp_path / "DEEP_TOML").write_text("seed = 1\nx = " + "[" * 5000 + "]" * 5000 + "\n")
    args = tuple(str(tmp_path / a) if a in ("DEEP", "DEEP_TOML", "OUT") else a for a in args)
    assert_one_error_line(uocd(*args), fragment)
