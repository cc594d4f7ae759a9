"""uocd devnet up|status|down as a person runs them: up starts a network and prints its endpoints,
a second up is refused in one line, status shows every node, down leaves no process, and up on the
stopped devnet restarts the same chain."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def uocd(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "uocd", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def processes_of(directory: Path) -> str:
    return subprocess.run(["pgrep", "-af", str(directory)], capture_output=True, text=True).stdout


@pytest.fixture
def devnet_dir(tmp_path):
    directory = tmp_path / "devnet"
    yield directory
    if (directory / "devnet.json").exists():
        uocd("devnet", "down", "--dir", str(directory))
    assert processes_of(directory) == ""


def test_devnet_up_status_down_and_restart(devnet_dir):
    d = str(devnet_dir)
    up = uocd("devnet", "up", "--validators", "3", "--epoch-length", "4", "--block-time", "0.2", "--dir", d)
    assert up.returncode == 0, up.stderr
    state = json.loads((devnet_dir / "devnet.json").read_text())
    assert stat.S_IMODE((devnet_dir / "devnet.json").stat().st_mode) == 0o600  # it holds the admin tokens
    assert [n["name"] for n in state["nodes"]] == ["n0", "n1", "n2"]
    n0 = state["nodes"][0]
    assert n0["public"] in up.stdout and n0["admin"] in up.stdout and n0["grpc"] in up.stdout
    assert f"Authorization: Bearer {n0['admin_token']}" in up.stdout
    assert f"live dashboard (open in a browser): {n0['public']}/\n" in up.stdout
    for path in ("/v1/pricing", "/v1/admin/unit-of-compute-price-proposal", "/v1/admin/models"):
        assert f"{path}" in up.stdout and "curl" in up.stdout

    again = uocd("devnet", "up", "--dir", d)
    assert again.returncode == 1 and "Traceback" not in again.stderr
    assert again.stderr.count("\n") == 1 and "already running" in again.stderr

    scenario = uocd("devnet", "simulate", "examples/quick.toml", "--engine", "network", "--dir", d)
    assert scenario.returncode == 1 and scenario.stderr.count("\n") == 1
    assert "was not made for this scenario" in scenario.stderr, scenario.stderr

    status = uocd("devnet", "status", "--dir", d, "--output", "json")
    nodes = json.loads(status.stdout)["nodes"]
    assert [n["state"] for n in nodes] == ["up"] * 3
    assert all(n["height"] >= 1 and len(n["app_hash"]) == 64 and n["unit_of_compute_price"] == 100 for n in nodes)
    assert "app_hash" in uocd("devnet", "status", "--dir", d).stdout

    down = uocd("devnet", "down", "--dir", d)
    assert down.returncode == 0 and "stopped 3 node(s)" in down.stdout
    assert processes_of(devnet_dir) == ""
    stopped = uocd("devnet", "status", "--dir", d, "-o", "json")
    assert [n["state"] for n in json.loads(stopped.stdout)["nodes"]] == ["down"] * 3

    restart = uocd("devnet", "up", "--dir", d, "-o", "json")
    assert restart.returncode == 0, restart.stderr
    assert "restarting the stopped devnet" in restart.stderr
    after = json.loads(uocd("devnet", "status", "--dir", d, "-o", "json").stdout)["nodes"]
    assert all(n["state"] == "up" and n["height"] >= m["height"] for n, m in zip(after, nodes)), "the chain goes on"
    assert uocd("devnet", "down", "--dir", d).returncode == 0
    assert processes_of(devnet_dir) == ""


@pytest.mark.parametrize(
    "args, fragment",
    [
        (("status",), "no devnet in"),
        (("down",), "no devnet in"),
        (("up", "--validators", "0"), "--validators must be at least 1"),
        (("up", "--block-time", "0"), "--block-time must be from 0.001 to 3600 seconds, got 0.0"),
        (("up", "--block-time", "nan"), "--block-time must be from 0.001 to 3600 seconds, got nan"),
        (("up", "--block-time", "inf"), "--block-time must be from 0.001 to 3600 seconds, got inf"),
    ],
)
def test_devnet_commands_on_a_bad_dir_or_input_fail_in_one_line(devnet_dir, args, fragment):
    proc = uocd("devnet", *args, "--dir", str(devnet_dir))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and fragment in proc.stderr, proc.stderr


def test_devnet_up_refuses_a_directory_that_is_not_a_devnet(tmp_path):
    (tmp_path / "something").write_text("x")
    proc = uocd("devnet", "up", "--dir", str(tmp_path))
    assert proc.returncode == 1 and "is not a devnet directory" in proc.stderr


def write_devnet_state(directory: Path, **node_fields) -> None:
    node = {"name": "a", "home": str(directory / "a"), "pid": None, "public": "http://127.0.0.1:9", "admin": "x"}
    node.update(admin_token="t", grpc="x", validator_address=None)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "devnet.json").write_text(json.dumps({"nodes": [{**node, **node_fields}]}))


@pytest.mark.parametrize("home", ["", "/", "sleep"])
def test_devnet_down_never_signals_a_process_that_is_not_the_node_of_its_home(tmp_path, home):
    other = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        write_devnet_state(tmp_path / "dv", home=home, pid=other.pid)
        proc = uocd("devnet", "down", "--dir", str(tmp_path / "dv"))
        assert "Traceback" not in proc.stderr and other.poll() is None, proc.stderr  # the sleep still runs
    finally:
        other.kill()
        other.wait()


@pytest.mark.parametrize(
    "state, fragment",
    [
        ('{"nodes": [{"name": "a"}]}', "nodes[0].home must be a non-empty string"),
        ('{"nodes": 5}', "needs a list of nodes"),
        ("[" * 100_000 + "]" * 100_000, "nests arrays or objects too deeply"),
        ("\udcff", "is not a devnet state file"),
    ],
)
def test_a_malformed_devnet_state_file_is_a_one_line_error(tmp_path, state, fragment):
    (tmp_path / "devnet.json").write_bytes(state.encode(errors="surrogateescape"))
    for command in ("status", "down", "env"):
        proc = uocd("devnet", command, "--dir", str(tmp_path))
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert proc.stderr.count("\n") == 1 and fragment in proc.stderr, proc.stderr
