"""The HTTP API's lifecycle inside one node process: the admin listener's token rule at start (always
required, loopback too), a taken port, 202 "pending" when the commit does not come in time (and when the
node stops mid-request), the pricing body prepared once per block."""

from __future__ import annotations

import asyncio
import json
import socket

import aiohttp
import pytest

from chain.tx import MsgSend, sign_tx
from devnet.launch import node_argv
from node.api import check_api_config, is_loopback
from node.config import ADMIN_TOKEN_FILE, NodeConfig, load_home, update_config
from node.errors import ConfigError, NodeError
from node.node import Node
from tests.node.netutil import free_port, make_homes

pytestmark = pytest.mark.asyncio
JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize(
    ("admin", "token", "refused"),
    [
        ("127.0.0.1:26651", None, True),
        ("localhost:26651", "", True),
        ("[::1]:26651", None, True),
        ("0.0.0.0:26651", None, True),
        ("10.1.2.3:26651", "", True),
        ("127.0.0.1:26651", "s3cret", False),
        ("0.0.0.0:26651", "s3cret", False),
    ],
)
async def test_admin_listener_needs_a_token_on_every_address(admin, token, refused):
    config = NodeConfig(moniker="m", api_admin=admin)
    if refused:
        with pytest.raises(ConfigError, match="always requires a token"):
            check_api_config(config, token)
    else:
        check_api_config(config, token)
    assert is_loopback("127.0.0.5") and not is_loopback("example.org")


async def test_node_refuses_to_start_with_a_public_admin_listener_and_no_token(tmp_path):
    (home,) = make_homes(tmp_path, 1)
    update_config(home, api_admin=f"0.0.0.0:{free_port()}")
    (home / ADMIN_TOKEN_FILE).unlink()
    node = Node(load_home(home))
    with pytest.raises(ConfigError) as info:
        await node.start()
    await node.stop(0)
    assert "\n" not in str(info.value) and "admin_token" in str(info.value)
    assert node.store is None  # refused before opening anything


async def test_a_taken_api_port_is_a_one_line_node_error(tmp_path):
    (home,) = make_homes(tmp_path, 1)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        update_config(home, api_public=f"127.0.0.1:{taken.getsockname()[1]}")
        node = Node(load_home(home))
        with pytest.raises(NodeError, match="cannot listen for the public API"):
            await node.start()
        await node.stop(0)


async def test_commit_timeout_answers_202_pending_and_stop_releases_waiting_requests(tmp_path):
    homes = make_homes(tmp_path, 2)  # two validators, only node0 runs: nothing commits
    home = load_home(homes[0])
    node = Node(home)
    await node.start()
    try:
        node.api.state.commit_timeout_s = 0.3
        admin = f"http://{home.config.api_admin}"
        auth = {"Authorization": f"Bearer {home.admin_token}"}
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            path = admin + "/v1/admin/unit-of-compute-price-proposal"
            async with http.post(path, json={"price": 5, "denom": "uicoin"}, headers=auth) as response:
                assert response.status == 202
                first = await response.json()
            assert set(first) == {"tx_hash", "status"} and first["status"] == "pending"
            async with http.post(path, json={"price": 6, "denom": "uicoin"}, headers=auth) as response:
                second = await response.json()
            assert response.status == 202 and second["tx_hash"] != first["tx_hash"]  # next sequence, no collision
            assert node.mempool is not None and len(node.mempool) == 2

            raw = sign_tx(
                home.validator_key, home.genesis["chain_id"], 2, [MsgSend(to=home.validator_key.address, amount=1)]
            )
            public = f"http://{home.config.api_public}"
            async with http.post(
                public + "/v1/txs", data=raw, headers={"Content-Type": "application/json"}
            ) as response:
                assert response.status == 202
                tx_hash = (await response.json())["tx_hash"]
            async with http.post(public + "/v1/txs", data=raw, params={"wait": "commit"}, headers=JSON) as response:
                assert response.status == 202 and (await response.json()) == {"tx_hash": tx_hash, "status": "pending"}

            node.api.state.commit_timeout_s = 30
            waiting = asyncio.ensure_future(
                http.post(public + "/v1/txs", data=raw, params={"wait": "commit"}, headers=JSON)
            )
            await asyncio.sleep(0.3)
            await node.stop()
            response = await waiting
            assert response.status == 202
    finally:
        await node.stop(0)


async def test_pricing_body_is_prepared_once_per_committed_block(tmp_path):
    (home_path,) = make_homes(tmp_path, 1)
    home = load_home(home_path)
    node = Node(home)
    await node.start()
    try:
        state = node.api.state
        refreshed = []
        original = state.refresh_pricing

        def counting(height=None):
            refreshed.append(height)
            original(height)

        node.waiters.listeners = [counting]  # count the per-block refreshes
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            for _ in range(20):
                async with http.get(f"http://{home.config.api_public}/v1/pricing") as response:
                    body = await response.read()
            while len(refreshed) < 2:
                await asyncio.sleep(0.05)
        assert json.loads(body)["denom"] == "ngonka"
        assert refreshed == sorted(set(refreshed)), "one refresh per block"
        assert state.pricing_height == node.app.height or state.pricing_height == node.app.height - 1
    finally:
        await node.stop()


async def test_a_loopback_admin_listener_without_a_token_file_refuses_to_start(tmp_path):
    (home_path,) = make_homes(tmp_path, 1)
    (home_path / ADMIN_TOKEN_FILE).write_text("\n")
    home = load_home(home_path)
    assert home.admin_token is None and is_loopback(home.config.api_admin.rpartition(":")[0])
    node = Node(home)
    with pytest.raises(ConfigError, match="always requires a token"):
        await node.start()
    await node.stop(0)
    assert node.store is None


async def test_uocd_start_with_a_public_admin_listener_and_no_token_fails_with_one_line(tmp_path):
    import subprocess

    (home,) = make_homes(tmp_path, 1)
    update_config(home, api_admin=f"0.0.0.0:{free_port()}")
    (home / ADMIN_TOKEN_FILE).write_text("")
    done = subprocess.run(node_argv(home, log_level=None, log_format=None), capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("uocd: error: HOME/admin_token is missing or empty"), done.stderr
