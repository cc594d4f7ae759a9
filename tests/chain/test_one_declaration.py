"""One declaration: a message kind and a query declared here, and nowhere else, are parsed off the
wire, validated when built, described by a schema, offered as `uocd tx` / `uocd query` commands and
served by a public read route, with no other registration."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from chain.catalog import (
    describe_commands,
    get_cli_queries,
    get_commands,
    get_message_schemas,
    get_routes,
    get_tx_schema,
)
from chain.fields import Arg, Cli, FieldError, TextKind, wire
from chain.queries import QUERIES, Http, QueryContext, query
from chain.tx import ADDRESS, MESSAGE_TYPES, Msg, decode_tx, sign_tx
from tests.helpers import ADDR, CHAIN_ID, KEYS, make_app, make_genesis


@pytest.fixture
def declared() -> Iterator[type[Msg]]:
    """Declare MsgSetMoniker and the `moniker` query (and take them back out afterwards)."""
    try:

        class MsgSetMoniker(Msg):
            """Set the sender's display name."""

            TYPE = "MsgSetMoniker"
            CLI = Cli(("set-moniker",), "set your display name", "Set the sender's moniker to NAME.", ("moniker",))
            moniker: str = wire(TextKind(32), "the display name")

        @query(
            "moniker",
            "An account's display name",
            {"type": "object", "required": ["address", "moniker"], "properties": {"address": {}, "moniker": {}}},
            args=(Arg("address", ADDRESS, "an account address", positional=True, metavar="ADDRESS"),),
            http=(Http("/v1/monikers/{address}"),),
            cli="moniker",
        )
        def query_moniker(ctx: QueryContext, address: str) -> dict[str, Any]:
            return {"address": address, "moniker": ctx.state.get("moniker", address)}

        yield MsgSetMoniker
    finally:
        MESSAGE_TYPES.pop("MsgSetMoniker", None)
        QUERIES.pop("moniker", None)


def test_a_message_and_a_query_declared_once_are_known_everywhere(declared):
    msg = declared("alice")
    # the wire, both ways, and validation when built
    tx = decode_tx(sign_tx(KEYS["a"], CHAIN_ID, 0, [msg]))
    assert tx.messages == (msg,)
    assert msg.to_json() == {"@type": "MsgSetMoniker", "moniker": "alice"}
    with pytest.raises(FieldError):
        declared("x" * 33)
    # the schemas
    assert get_message_schemas()["MsgSetMoniker"]["required"] == ["@type", "moniker"]
    items = get_tx_schema()["properties"]["body"]["properties"]["messages"]["items"]["oneOf"]
    assert "MsgSetMoniker" in [s["title"] for s in items]
    # the command line
    (command,) = [c for c in get_commands() if c.path == ("set-moniker",)]
    assert command.build(command.parse_texts({"moniker": "bob"})) == (declared("bob"),)
    assert ("tx set-moniker MONIKER", "set your display name") in describe_commands()
    assert "moniker" in [q.cli for q in get_cli_queries()]
    # the query and its route
    app = make_app(make_genesis({"a": 50}))
    assert app.query("moniker/" + ADDR["a"]) == {"address": ADDR["a"], "moniker": None}
    assert ("/v1/monikers/{address}", "moniker") in [(h.path, q.name) for h, q in get_routes()]


def test_the_example_is_gone_afterwards():
    assert "MsgSetMoniker" not in MESSAGE_TYPES and "moniker" not in QUERIES
