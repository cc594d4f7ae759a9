"""config.toml (node.settings): unknown keys name the nearest valid one, UOCD_* variables override the file,
edits keep the user's comments and layout, and `uocd start` refuses a bad file or variable in one line."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.config import collect_genesis, init_home, load_home, update_config
from node.consensus import Timeouts
from node.errors import ConfigError
from node.settings import ConfigFile, NodeConfig, compute_node_config, edit_config, parse_config, render_config

ROOT = Path(__file__).resolve().parents[2]
BASE = 'moniker = "m"\n'
FILE = BASE + "[consensus]\nblock_interval_ms = 900\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            BASE + "[consensus]\nblok_interval_ms = 50\n",
            "consensus.blok_interval_ms is not a setting; did you mean consensus.block_interval_ms?",
        ),
        (BASE + "[consensu]\nblock_interval_ms = 50\n", "consensu is not a setting; did you mean consensus?"),
        (BASE + "monikr = 'x'\n", "monikr is not a setting; did you mean moniker?"),
        (
            BASE + "[api]\nrate_limt_per_s = 1\n",
            "api.rate_limt_per_s is not a setting; did you mean api.rate_limit_per_s?",
        ),
        (BASE + "[api]\nzzz = 1\n", "api.zzz is not a setting"),
        (
            BASE + "[instrumentation]\nprometheus_listen_addr = 'nowhere'\n",
            "instrumentation.prometheus_listen_addr must be host:port",
        ),
        ("[grpc]\n", "moniker is missing"),
        (BASE + f"[consensus]\nblock_interval_ms = {2**70}\n", "consensus.block_interval_ms must be 1..2147483647"),
        (BASE + f"[grpc]\nmax_message_bytes = {2**70}\n", "grpc.max_message_bytes must be 1..2147483647"),
        (BASE + f"[api]\nmax_header_bytes = {2**40}\n", "api.max_header_bytes must be 256..2147483647"),
    ],
)
def test_an_unknown_key_or_bad_value_is_one_error_naming_it_and_the_nearest_valid_key(text, message):
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert str(info.value) == f"config.toml: {message}" or str(info.value).startswith(f"config.toml: {message}")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("environ", "check"),
    [
        ({"UOCD_CONSENSUS_BLOCK_INTERVAL_MS": "50"}, lambda c: c.timeouts.commit_ms == 50),
        ({"UOCD_MONIKER": "zed"}, lambda c: c.moniker == "zed"),
        ({"UOCD_API_RATE_LIMIT_LOOPBACK": "true"}, lambda c: c.api_rate_limit_loopback),
        ({"UOCD_INSTRUMENTATION_PROMETHEUS_LISTEN_ADDR": ""}, lambda c: c.prometheus_listen_addr == ""),
        ({"UOCD_MEMPOOL_MIN_GAS_PRICE": "0.05"}, lambda c: c.min_gas_price == "0.05"),
        ({"UOCD_HOME": "/elsewhere", "HOME": "/root"}, lambda c: c == parse_config(FILE)),
    ],
)
def test_an_environment_variable_overrides_the_file(environ, check):
    assert check(parse_config(FILE, environ))


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (
            {"UOCD_CONSENSUS_BLOK_INTERVAL_MS": "50"},
            "environment variable UOCD_CONSENSUS_BLOK_INTERVAL_MS names no setting of config.toml; did you mean "
            "UOCD_CONSENSUS_BLOCK_INTERVAL_MS (consensus.block_interval_ms)?",
        ),
        (
            {"UOCD_API_RATE_LIMIT_LOOPBACK": "yes"},
            "environment variable UOCD_API_RATE_LIMIT_LOOPBACK: api.rate_limit_loopback must be true or false, "
            "got 'yes'",
        ),
        (
            {"UOCD_GRPC_RPC_TIMEOUT_MS": "0"},
            "environment variable UOCD_GRPC_RPC_TIMEOUT_MS: grpc.rpc_timeout_ms must be a positive integer, got 0",
        ),
        ({"UOCD_GRPC": "1"}, "environment variable UOCD_GRPC names no setting of config.toml"),
    ],
)
def test_a_bad_environment_override_is_one_error_naming_the_variable(environ, message):
    with pytest.raises(ConfigError) as info:
        parse_config(BASE, environ)
    assert str(info.value).startswith(message)


def test_the_schema_defaults_are_the_node_config_defaults():
    assert compute_node_config(ConfigFile(moniker="m")) == NodeConfig(moniker="m") == parse_config(BASE)


@settings(max_examples=40, deadline=None)
@given(
    block_ms=st.integers(1, 10**9),
    retention=st.integers(2, 10**9),
    loopback=st.booleans(),
    prefix=st.integers(1, 128),
    price=st.sampled_from(["", "0", "0.05", "12.5"]),
)
def test_a_rendered_config_parses_back_to_itself(block_ms, retention, loopback, prefix, price):
    config = replace(
        NodeConfig(moniker="m"),
        timeouts=Timeouts(commit_ms=block_ms),
        validator_set_retention=retention,
        api_rate_limit_loopback=loopback,
        api_rate_limit_ipv6_prefix=prefix,
        min_gas_price=price,
    )
    assert parse_config(render_config(config)) == config


USER_FILE = """# my node, tuned by hand
moniker = "mine"  # shown to peers

[consensus]
# faster blocks for the demo
block_interval_ms = 250
propose_ms = 3000

[api]
public = "127.0.0.1:27650"   # behind my proxy
"""


def test_an_edit_keeps_the_users_comments_order_and_layout():
    edited = edit_config(USER_FILE, peers=(f"{'ab' * 20}@127.0.0.1:1",), api_public="127.0.0.1:27651")
    assert edited.startswith('# my node, tuned by hand\nmoniker = "mine"  # shown to peers\n')
    assert "# faster blocks for the demo\nblock_interval_ms = 250\n" in edited
    assert 'public = "127.0.0.1:27651"   # behind my proxy' in edited
    assert parse_config(edited).peers == (f"{'ab' * 20}@127.0.0.1:1",)


def test_an_edit_that_breaks_a_rule_is_refused():
    with pytest.raises(ConfigError, match="api.max_headers must be a positive integer"):
        edit_config(USER_FILE, api_max_headers=0)


def test_genesis_collect_keeps_the_comments_of_every_home(tmp_path):
    homes = [tmp_path / "a", tmp_path / "b"]
    for i, home in enumerate(homes):
        init_home(home, f"n{i}", listen=f"127.0.0.1:{30100 + i}")
        text = (home / "config.toml").read_text()
        (home / "config.toml").write_text("# kept by collect\n" + text.replace("[api]", "[api]  # mine"))
    collect_genesis(homes)
    for home in homes:
        text = (home / "config.toml").read_text()
        assert text.startswith("# kept by collect\n") and "[api]  # mine" in text
        assert len(load_home(home).config.peers) == 1


def uocd_start(home: Path, **environ: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "uocd", "start", "--home", str(home)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **environ},
    )


def files_of(home: Path) -> dict[str, bytes]:
    return {str(p.relative_to(home)): p.read_bytes() for p in sorted(home.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    ("edit", "environ", "message"),
    [
        (("block_interval_ms = 1000", "blok_interval_ms = 50"), {}, "did you mean consensus.block_interval_ms?"),
        ((), {"UOCD_CONSENSUS_BLOCK_INTERVAL_MS": "fast"}, "environment variable UOCD_CONSENSUS_BLOCK_INTERVAL_MS: "),
        ((), {"UOCD_P2P_LADDR": "x"}, "environment variable UOCD_P2P_LADDR names no setting"),
    ],
)
def test_start_with_a_misspelled_key_or_bad_variable_prints_one_line_exits_1_and_writes_nothing(
    tmp_path, edit, environ, message
):
    home = init_home(tmp_path / "h", "m").path
    if edit:
        update = (home / "config.toml").read_text().replace(*edit)
        (home / "config.toml").write_text(update)
    before = files_of(home)
    result = uocd_start(home, **environ)
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("uocd: error: ") and message in result.stderr
    assert files_of(home) == before


def test_update_config_writes_a_file_that_loads(tmp_path):
    home = init_home(tmp_path / "h", "m").path
    update_config(home, timeouts=Timeouts(commit_ms=77), status_interval_ms=9)
    config = load_home(home).config
    assert config.timeouts.commit_ms == 77 and config.status_interval_ms == 9
