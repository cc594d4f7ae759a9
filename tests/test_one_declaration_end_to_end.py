"""One declaration, end to end (the example is MsgSetNickname, so that it never meets a real
MsgSetMoniker): a message kind, its state rule and a query declared in this file, and
nowhere else, are a `uocd tx` command that signs it, a `uocd query` command, a public read route that
answers it (with its arguments checked), and part of the OpenAPI document (the route, and the message
in the body of `POST /v1/txs`), with no other registration."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from chain.fields import Arg, Cli, TextKind, wire
from chain.queries import QUERIES, Http, QueryContext, query
from chain.rules import MESSAGE_RULES
from chain.store import State
from chain.tx import ADDRESS, MESSAGE_TYPES, Msg, sign_tx
from node.api import ApiState, build_app, build_openapi
from node.api.openapi import resolve
from node.client import Client
from node.errors import ApiRequestError
from tests.helpers import ADDR, CHAIN_ID, KEYS, make_app, make_genesis
from uocd.main import build_parser
from uocd.tx import compute_messages


@pytest.fixture
def nickname() -> Iterator[type[Msg]]:
    """Declare MsgSetNickname, its rule and the `nickname` query (and take them back out afterwards)."""
    try:

        class MsgSetNickname(Msg):
            """Set the sender's display name."""

            TYPE = "MsgSetNickname"
            CLI = Cli(("set-nickname",), "set your display name", "Set the sender's nickname to NAME.", ("nickname",))
            nickname: str = wire(TextKind(32), "the display name")

        def process_msg_set_nickname(state: State, sender: str, msg: MsgSetNickname) -> None:
            state.set("nickname", sender, msg.nickname)

        MESSAGE_RULES[MsgSetNickname] = process_msg_set_nickname

        @query(
            "nickname",
            "An account's display name",
            {"type": "object", "required": ["address", "nickname"], "properties": {"address": {}, "nickname": {}}},
            args=(Arg("address", ADDRESS, "an account address", positional=True, metavar="ADDRESS"),),
            http=(Http("/v1/nicknames/{address}"),),
            cli="nickname",
        )
        def query_nickname(ctx: QueryContext, address: str) -> dict[str, Any]:
            return {"address": address, "nickname": ctx.state.get("nickname", address)}

        yield MsgSetNickname
    finally:
        MESSAGE_TYPES.pop("MsgSetNickname", None)
        for cls in [m for m in MESSAGE_RULES if m.TYPE == "MsgSetNickname"]:
            del MESSAGE_RULES[cls]
        QUERIES.pop("nickname", None)


def subcommand(parser: argparse.ArgumentParser, *path: str) -> argparse.ArgumentParser:
    for name in path:
        (group,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        parser = group.choices[name]
    return parser


class QueryNode:
    """The part of a node the read routes use: its committed-state query."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def query(self, path: str, **params: Any) -> Any:
        return self.app.query(path, **params)


async def get(app: web.Application, path: str, **match_info: str) -> Any:
    """Call the handler of the route `path` matches on `app`; its JSON answer."""
    resource = next(r for r in app.router.resources() if r.canonical == path)
    handler = next(iter(resource)).handler
    concrete = path.format(**match_info)
    response = await handler(make_mocked_request("GET", concrete, match_info=match_info, app=app))
    assert isinstance(response, web.Response) and isinstance(response.body, bytes)
    return json.loads(response.body)


@pytest.mark.asyncio
async def test_a_message_its_rule_and_a_query_declared_here_are_served_everywhere(nickname):
    # `uocd tx set-nickname NAME` builds the message from its string; the chain applies it by its rule
    parser = build_parser()
    assert "set-nickname" in subcommand(parser, "tx").format_help()
    args = parser.parse_args(["tx", "set-nickname", "alice", "--from", "a"])
    messages = compute_messages(args.tx, args, Client("http://127.0.0.1:9"))  # no param to fetch
    assert messages == (nickname("alice"),)
    app = make_app(make_genesis({"a": 50}))
    result = app.finalize_block(1, [sign_tx(KEYS["a"], CHAIN_ID, 0, messages, fee=0)])
    assert [r.code for r in result.tx_results] == ["ok"]
    app.commit()

    # `uocd query nickname ADDRESS`, checked by the argument's kind, asks the route that serves it
    args = parser.parse_args(["query", "nickname", ADDR["a"]])
    assert args.path(args) == (f"/v1/nicknames/{ADDR['a']}", {})
    with pytest.raises(SystemExit):
        parser.parse_args(["query", "nickname", "not-an-address"])

    # the public read route answers it, and refuses a bad address with the kind's code
    state = ApiState.__new__(ApiState)
    state.node = QueryNode(app)  # type: ignore[assignment]
    served = build_app(state, "public")
    path = "/v1/nicknames/{address}"
    assert await get(served, path, address=ADDR["a"]) == {"address": ADDR["a"], "nickname": "alice"}
    with pytest.raises(ApiRequestError) as refused:
        await get(served, path, address="uoc1nobody")
    assert (refused.value.status, refused.value.code) == (400, "invalid_address")

    # the OpenAPI document describes the route and the message in the body of POST /v1/txs
    document = build_openapi()
    operation = document["paths"][path]["get"]
    assert operation["summary"] == "An account's display name"
    assert [p["name"] for p in operation["parameters"]] == ["address", "height"]  # every state read takes ?height=
    body = resolve(
        document, document["paths"]["/v1/txs"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    )
    messages_schema = body["properties"]["body"]["properties"]["messages"]["items"]["oneOf"]
    assert "MsgSetNickname" in [s["title"] for s in messages_schema]


def test_nothing_is_left_of_the_example_afterwards():
    assert "set-nickname" not in subcommand(build_parser(), "tx").format_help()
    assert "/v1/nicknames/{address}" not in build_openapi()["paths"]
