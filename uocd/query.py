"""`uocd query …`: read the chain through a node's public HTTP API and print the answer."""

from __future__ import annotations

import argparse
import urllib.parse
from collections.abc import Callable
from typing import Any

from .keys import load_named_key
from .options import add_node_options, parse_int, resolve_client, resolve_home
from .output import emit, render_rows

QUERIES: dict[str, tuple[str, str]] = {
    "pricing": ("the unit-of-compute price and the active models' prices per token", "/v1/pricing"),
    "status": ("the node's height, app hash, epoch, price and peers", "/v1/status"),
    "validators": ("the validator set with powers and stakes", "/v1/validators"),
    "models": ("the active and every registered model", "/v1/models"),
    "params": ("the chain params (epochs, default price, governance)", "/v1/params"),
}


def add_query_commands(commands: argparse._SubParsersAction) -> None:
    """uocd query pricing|status|epoch|validators|proposals|proposal|models|params|account|history|tx."""
    query = commands.add_parser(
        "query", help="read the chain through a node's HTTP API", description="Read the chain through --node's API."
    )
    sub = query.add_subparsers(dest="query_command", metavar="COMMAND", required=True)
    for name, (text, path) in QUERIES.items():
        p = sub.add_parser(name, help=text, description=f"Print {text} (GET {path}).")
        add_node_options(p)
        p.set_defaults(func=cmd_query, path=lambda a, path=path: (path, {}))
    p = sub.add_parser("epoch", help="an epoch", description="Print the current epoch, or the record of epoch N.")
    p.add_argument("number", metavar="N", nargs="?", type=parse_int, help="an epoch number (default: the current one)")
    add_node_options(p)
    p.set_defaults(func=cmd_query, path=lambda a: (f"/v1/epochs/{'current' if a.number is None else a.number}", {}))
    p = sub.add_parser("history", help="the price history", description="Print the epoch records (price, ballot).")
    p.add_argument("--from-epoch", type=parse_int, default=None)
    p.add_argument("--to-epoch", type=parse_int, default=None)
    add_node_options(p)
    p.set_defaults(
        func=cmd_query, path=lambda a: ("/v1/pricing/history", {"from_epoch": a.from_epoch, "to_epoch": a.to_epoch})
    )
    p = sub.add_parser("proposals", help="governance proposals", description="List the governance proposals.")
    p.add_argument("--status", default=None, help="only proposals with this status (e.g. voting_period, passed)")
    add_node_options(p)
    p.set_defaults(func=cmd_query, path=lambda a: ("/v1/governance/proposals", {"status": a.status}))
    p = sub.add_parser("proposal", help="one proposal", description="Print a proposal with its live tally and votes.")
    p.add_argument("id", metavar="ID", type=parse_int)
    add_node_options(p)
    p.set_defaults(func=cmd_query, path=lambda a: (f"/v1/governance/proposals/{a.id}", {}))
    p = sub.add_parser("account", help="an account", description="Print an account's balance and sequence.")
    p.add_argument("address", metavar="ADDRESS|NAME", nargs="?", default=None, help="default: --home's validator key")
    add_node_options(p)
    p.set_defaults(func=cmd_query, path=lambda a: (f"/v1/accounts/{resolve_address(a)}", {}))
    p = sub.add_parser("tx", help="a committed transaction", description="Print a committed transaction by hash.")
    p.add_argument("hash", metavar="HASH")
    add_node_options(p)
    p.set_defaults(func=cmd_query, path=lambda a: (f"/v1/txs/{a.hash}", {}))


def resolve_address(args: argparse.Namespace) -> str:
    """An address given as is, or the address of a key name (default: the node home's validator)."""
    if args.address and args.address.startswith("uoc1"):
        return args.address
    return load_named_key(resolve_home(args), args.address)[1].address


def cmd_query(args: argparse.Namespace) -> int:
    """GET one API path and print it."""
    path, params = args.path(args)
    path = urllib.parse.quote(path)
    return emit(args, resolve_client(args).get(path, **params), TEXT_RENDERERS.get(args.query_command))


def render_pricing(doc: dict[str, Any]) -> str:
    """The pricing document for people."""
    lines = [f"epoch {doc['epoch']}: {doc['unit_of_compute_price']} {doc['denom']} per unit of compute"]
    for m in doc["models"]:
        lines.append(
            f"  {m['id']}: {m['units_of_compute_per_token']} units/token = {m['price_per_token']} ngonka/token"
        )
    return "\n".join(lines) if doc["models"] else lines[0] + " (no active model)"


def render_proposals(doc: dict[str, Any], width: int | None = None) -> str:
    """The proposals as a table of what people look for first, fit to `width` (default the terminal's);
    `uocd query proposal ID` shows one whole and `--output json` every field of all."""
    rows = [
        {
            "id": p["id"],
            "status": p["status"],
            "content": describe_content(p["content"]),
            "voting_end": p.get("voting_end_height"),
            "deposit": p.get("total_deposit"),
        }
        for p in doc["proposals"]
    ]
    return render_rows(rows, width=width) if rows else "no proposals"


def describe_content(content: dict[str, Any]) -> str:
    """A proposal's content in one line: its type, then its values (`RegisterModel model-alpha 10`)."""
    return " ".join([str(content.get("@type", "?")), *(str(v) for k, v in content.items() if k != "@type")])


TEXT_RENDERERS: dict[str, Callable[[Any], str]] = {"pricing": render_pricing, "proposals": render_proposals}
