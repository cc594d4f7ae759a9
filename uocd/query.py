"""`uocd query …`: read the chain through a node's public HTTP API and print the answer.

Every query that `chain` declares with a CLI name (`chain.catalog.get_cli_queries`: pricing, epoch,
history, validators, models, params, proposals, proposal) is a command here, read through the public
route that serves it, with its arguments parsed by their declared kinds. Three stay written by hand,
as they need more than the chain declares: `status` (the node's own fields: moniker, peers, catching
up), `account` (a key NAME of --home, or the node home's validator, as well as an address) and `tx`
(a committed transaction, which the node keeps, not the chain state)."""

from __future__ import annotations

import argparse
import re
import urllib.parse
from collections.abc import Callable
from typing import Any

from chain.catalog import get_cli_queries
from chain.queries import HEIGHT_ARG, TXS_PAGE_ARGS, Http, Query

from .keys import load_named_key
from .options import add_declared_argument, add_node_options, parse_int, resolve_client, resolve_home
from .output import emit, render_rows

ARG_DEST = "query_arg_{}"  # where an argument's value is kept (apart from --home, --node, --output)
HAND_WRITTEN = ("status", "account", "tx", "txs", "block")  # commands that need more than the chain's declaration


def add_query_commands(commands: argparse._SubParsersAction) -> None:
    """uocd query NAME for every declared query with a CLI name, and status, account and tx."""
    query = commands.add_parser(
        "query",
        aliases=["q"],
        help="read the chain through a node's HTTP API (alias: q)",
        description="Read the chain through --node's API.",
    )
    sub = query.add_subparsers(dest="query_command", metavar="COMMAND", required=True)
    for q in get_cli_queries():
        if q.cli in HAND_WRITTEN or not q.http:
            continue
        text = q.summary[:1].lower() + q.summary[1:]
        paths = " or ".join(h.path for h in q.http)
        p = sub.add_parser(q.cli, help=text, description=f"Print {text} (GET {paths}).")
        for arg in q.all_args:
            add_declared_argument(p, arg, ARG_DEST.format(arg.name), parse=True)
        if all(arg.name != "height" for arg in q.all_args):  # a query of a height (price-at) reads history
            add_height_option(p)
        add_node_options(p)
        p.set_defaults(func=cmd_query, path=lambda a, q=q: compute_request(q, a))
    p = sub.add_parser(
        "status",
        help="the node's height, app hash, epoch, price and peers",
        description="Print the node's height, app hash, epoch, price and peers (GET /v1/status).",
    )
    add_height_option(p)
    add_node_options(p)
    p.set_defaults(func=cmd_query, path=lambda a: ("/v1/status", {}))
    p = sub.add_parser("account", help="an account", description="Print an account's balance and sequence.")
    p.add_argument("address", metavar="ADDRESS|NAME", nargs="?", default=None, help="default: --home's validator key")
    add_height_option(p)
    add_node_options(p)
    p.set_defaults(func=cmd_query, path=lambda a: (f"/v1/accounts/{resolve_address(a)}", {}))
    p = sub.add_parser(
        "block", help="a committed block", description="Print the block at HEIGHT and its commit (GET /v1/blocks/H)."
    )
    p.add_argument("height", metavar="HEIGHT", type=parse_int)
    add_node_options(p)
    p.set_defaults(func=cmd_query, path=lambda a: (f"/v1/blocks/{a.height}", {}))
    p = sub.add_parser(
        "txs",
        help="a sender's committed transactions",
        description="Print the committed transactions of --sender, oldest first, a page at a time (GET /v1/txs, "
        "read from the node's sender index).",
    )
    p.add_argument("--sender", required=True, metavar="ADDRESS|NAME", help="an address, or a key name of --home")
    for arg in TXS_PAGE_ARGS:
        add_declared_argument(p, arg, ARG_DEST.format(arg.name), parse=True)
    add_node_options(p)
    p.set_defaults(func=cmd_query, path=compute_txs_request)
    p = sub.add_parser("tx", help="a committed transaction", description="Print a committed transaction by hash.")
    p.add_argument("hash", metavar="HASH")
    add_node_options(p)
    p.set_defaults(func=cmd_query, path=lambda a: (f"/v1/txs/{a.hash}", {}))


def compute_request(q: Query, args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """(path, query parameters) of the route that serves `q` with the values given: the route whose
    placeholders are exactly the path arguments given (`/v1/epochs/current`, `/v1/epochs/{n}`)."""
    values = {a.name: getattr(args, ARG_DEST.format(a.name)) for a in q.all_args}
    given = {a.name for a in q.args if a.positional and values[a.name] is not None}
    http: Http = next(h for h in q.http if set(re.findall(r"{(\w+)}", h.path)) == given)
    path = http.path.format(**{name: values[name] for name in given})
    params = {a.name: values[a.name] for a in q.all_args if not a.positional}
    return path, {name: str(value).lower() if isinstance(value, bool) else value for name, value in params.items()}


def add_height_option(parser: argparse.ArgumentParser) -> None:
    """--height H: read the state at H (the node answers only at its latest height, or refuses naming why)."""
    add_declared_argument(parser, HEIGHT_ARG, "height", parse=True)


def compute_txs_request(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """GET /v1/txs of --sender (an address or a key name) with the page arguments given."""
    params = {a.name: getattr(args, ARG_DEST.format(a.name)) for a in TXS_PAGE_ARGS}
    params = {name: str(v).lower() if isinstance(v, bool) else v for name, v in params.items() if v is not None}
    return "/v1/txs", {"sender": resolve_address(args, args.sender), **params}


def resolve_address(args: argparse.Namespace, given: str | None = None) -> str:
    """An address given as is, or the address of a key name (default: the node home's validator)."""
    name = args.address if given is None else given
    if name and name.startswith("uoc1"):
        return name
    return load_named_key(resolve_home(args), name)[1].address


def cmd_query(args: argparse.Namespace) -> int:
    """GET one API path and print it."""
    path, params = args.path(args)
    if getattr(args, "height", None) is not None:
        params = {**params, "height": args.height}
    path = urllib.parse.quote(path)
    return emit(args, resolve_client(args).get(path, **params), TEXT_RENDERERS.get(args.query_command))


def render_pricing(doc: dict[str, Any]) -> str:
    """The pricing document for people (its prices from their exact decimal strings)."""
    lines = [f"epoch {doc['epoch']}: {doc['unit_of_compute_price_str']} {doc['denom']} per unit of compute"]
    for m in doc["models"]:
        lines.append(
            f"  {m['id']}: {m['units_of_compute_per_token']} units/token = {m['price_per_token_str']} ngonka/token"
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
    text = render_rows(rows, width=width) if rows else "no proposals"
    next_key = doc.get("pagination", {}).get("next_key")
    return text + (f"\nmore: --page-key {next_key}" if next_key else "")


def describe_content(content: dict[str, Any]) -> str:
    """A proposal's content in one line: its type, then its values (`RegisterModel model-alpha 10`,
    `ParamChange vote_mode=commit_reveal`)."""
    values = [v for k, v in content.items() if k != "@type"]
    words = [" ".join(f"{n}={x}" for n, x in v.items()) if isinstance(v, dict) else str(v) for v in values]
    return " ".join([str(content.get("@type", "?")), *words])


def render_txs(doc: dict[str, Any], width: int | None = None) -> str:
    """A sender's txs as a table of what people look for first (`uocd query tx HASH` shows one whole)."""
    rows = [
        {
            "height": t["height"],
            "index": t["index"],
            "code": t["code"],
            "messages": " ".join(m.get("@type", "?") for m in t["tx"]["body"]["messages"]),
            "tx_hash": t["tx_hash"],
        }
        for t in doc["txs"]
    ]
    text = render_rows(rows, width=width) if rows else "no transactions"
    next_key = doc["pagination"]["next_key"]
    return text + (f"\nmore: --page-key {next_key}" if next_key else "")


TEXT_RENDERERS: dict[str, Callable[[Any], str]] = {
    "pricing": render_pricing,
    "proposals": render_proposals,
    "txs": render_txs,
}
