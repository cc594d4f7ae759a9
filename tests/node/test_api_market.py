"""The market-data routes over real HTTP (issue 19), on one in-process validator node: `/v1/pricing` keeps
its fields and adds confidence, status and age_epochs; `/v1/pricing/twap`; `/v1/pricing/at?height=` reads
any committed height (its `height` is the block asked about, not the state to answer from); bad input is a
4xx naming the field."""

from __future__ import annotations

import asyncio
import json
import sys

import aiohttp
import pytest

from node.config import load_home, write_json
from node.node import Node
from tests.node.netutil import make_homes, wait_for

pytestmark = pytest.mark.asyncio


async def test_market_routes_answer_over_http_and_refuse_bad_input_naming_the_field(tmp_path):
    [home] = make_homes(tmp_path, 1, validators=1)
    genesis = json.loads((home / "genesis.json").read_text())
    genesis["params"]["epoch_length"] = 2
    write_json(home / "genesis.json", genesis)
    node = Node(load_home(home))
    await node.start()
    base = f"http://{load_home(home).config.api_public}"
    try:
        await wait_for(lambda: node.app is not None and node.app.height >= 6, "6 blocks")
        async with aiohttp.ClientSession() as http:

            async def get(path: str, **params) -> tuple[int, dict]:
                async with http.get(base + path, params={k: str(v) for k, v in params.items()}) as response:
                    return response.status, await response.json()

            status, pricing = await get("/v1/pricing")
            assert status == 200
            assert {"unit_of_compute_price", "unit_of_compute_price_str", "denom", "epoch", "models"} <= set(pricing)
            assert pricing["confidence"] == 0 and pricing["participation"] == "0"  # only never-voters, at the price
            assert pricing["status"] == "ok" and pricing["age_epochs"] == pricing["epoch"]

            status, twap = await get("/v1/pricing/twap", from_epoch=0, to_epoch=1)
            assert status == 200 and (twap["arithmetic"], twap["geometric"], twap["epochs"]) == ("100", "100", 2)

            status, at = await get("/v1/pricing/at", height=1)  # an old height: answered, not refused
            assert status == 200 and (at["epoch"], at["unit_of_compute_price"]) == (0, 100)
            status, at = await get("/v1/pricing/at", height=0)
            assert status == 200 and at["unit_of_compute_price"] is None

            for args, expected in (
                (("twap", "--from-epoch", "0", "--to-epoch", "1"), {"arithmetic": "100", "epochs": 2}),
                (("price-at", "--height", "1"), {"epoch": 0, "unit_of_compute_price": 100}),
            ):  # the same reads from the command line
                cli = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "uocd", "query", *args, "--node", base, "-o", "json",
                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                )  # fmt: skip
                out, err = await cli.communicate()
                assert cli.returncode == 0, err.decode()
                answer = json.loads(out)
                assert {k: answer[k] for k in expected} == expected, answer

            status, history = await get("/v1/pricing/history", from_epoch=0, to_epoch=1)
            assert status == 200 and [r["epoch"] for r in history["epochs"]] == [0, 1]

            cases = [
                ("/v1/pricing/twap", {"from_epoch": 2, "to_epoch": 1}, 400, "from_epoch"),
                ("/v1/pricing/twap", {"to_epoch": 10**6}, 400, "to_epoch"),
                ("/v1/pricing/twap", {"from_epoch": -1}, 400, "from_epoch"),
                ("/v1/pricing/twap", {"model": "no-such-model"}, 404, "model"),
                ("/v1/pricing/history", {"from_epoch": 3, "to_epoch": 1}, 400, "from_epoch"),
                ("/v1/pricing/history", {"model": "no-such-model"}, 404, "model"),
                ("/v1/pricing/at", {"height": 10**9}, 404, "height"),
                ("/v1/pricing/at", {"height": -1}, 400, "height"),
                ("/v1/pricing/at", {}, 400, "height"),
            ]
            for path, params, code, field in cases:
                status, body = await get(path, **params)
                assert status == code, (path, params, body)
                assert field in body["error"]["message"], (path, params, body)
    finally:
        await node.stop(0.1)
