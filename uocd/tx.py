"""`uocd tx …`: one command per message and governance content that `chain` declares with a `CLI`
(`chain.catalog.get_commands`: `send`, `bond`, `price-proposal`, `register-model`, `gov vote`, …), in
the groups it declares (`tx gov …`). Each signs a transaction locally, broadcasts it through a node's
public API and waits for its commit. Nothing here names a message: a new one is a declaration in `chain`."""

from __future__ import annotations

import argparse
from fractions import Fraction
from typing import Any

from chain.catalog import Command, get_cli_groups, get_commands, get_routes
from chain.errors import ChainError, MoneyError
from chain.fields import FieldError
from chain.gas import MAX_GAS_LIMIT
from chain.money import to_ngonka
from chain.tx import is_decimal
from node.client import Client, GasChoice, broadcast
from node.errors import NodeError

from .keys import load_named_key
from .options import add_declared_argument, add_node_options, resolve_client, resolve_home
from .output import emit, fail

ARG_DEST = "tx_arg_{}"  # where an argument's string is kept (apart from --home, --node, --from…)


def add_tx_commands(commands: argparse._SubParsersAction) -> None:
    """uocd tx COMMAND and uocd tx GROUP COMMAND, one per declared command."""
    tx = commands.add_parser(
        "tx",
        help="sign and broadcast a transaction",
        description="Sign a transaction locally with a key of --home (--from NAME; in a node home the validator "
        "key by default), fetch the chain id and the account's sequence from the node (--node), set its gas "
        "limit (--gas auto: simulated by the node) and fee (--fees, or --gas-prices × the limit; by default "
        "the least the node admits), post it with ?wait=commit and print the on-chain result. A rejected "
        "transaction exits 1.",
    )
    groups: dict[tuple[str, ...], argparse._SubParsersAction] = {}
    groups[()] = tx.add_subparsers(dest="tx_command", metavar="COMMAND", required=True)
    declared = get_cli_groups()
    for command in sorted(get_commands(), key=lambda c: len(c.path)):  # the groups after the commands
        for depth in range(1, len(command.path)):
            path = command.path[:depth]
            if path not in groups:
                text, description = declared[path]
                group = groups[path[:-1]].add_parser(path[-1], help=text, description=description)
                groups[path] = group.add_subparsers(dest=f"{path[-1]}_command", metavar="COMMAND", required=True)
        parser = groups[command.path[:-1]].add_parser(
            command.path[-1], help=command.help, description=command.description
        )
        for arg in command.args:
            add_declared_argument(parser, arg, ARG_DEST.format(arg.name), parse=False)
        parser.add_argument(
            "--from", dest="sender", metavar="NAME", default=None, help="the signing key (uocd keys list)"
        )
        add_node_options(parser)
        add_gas_options(parser)
        parser.set_defaults(func=cmd_tx, tx=command)


def add_gas_options(parser: argparse.ArgumentParser) -> None:
    """--gas, --gas-adjustment, --fees, --gas-prices (as in gaiad)."""
    parser.add_argument(
        "--gas",
        default="auto",
        metavar="auto|N",
        help="the gas limit, or auto: the gas the node simulates × --gas-adjustment (default auto)",
    )
    parser.add_argument(
        "--gas-adjustment", default="1.2", metavar="X", help="what auto multiplies the simulated gas by (default 1.2)"
    )
    parser.add_argument(
        "--fees", default=None, metavar="AMOUNT", help="the fee, e.g. 5000ngonka or 5uicoin (not with --gas-prices)"
    )
    parser.add_argument(
        "--gas-prices",
        default=None,
        metavar="PRICE",
        help="ngonka per gas, e.g. 0.05 or 0.05ngonka: fee = gas limit × PRICE, rounded up "
        "(default: the least the node admits)",
    )


def compute_gas_choice(args: argparse.Namespace) -> GasChoice:
    """The GasChoice of --gas, --gas-adjustment, --fees and --gas-prices; NodeError on bad input."""
    if args.fees is not None and args.gas_prices is not None:
        raise NodeError("give --fees or --gas-prices, not both")
    gas: int | str = args.gas
    if gas != "auto":
        if not (isinstance(gas, str) and gas.isascii() and gas.isdigit() and 1 <= int(gas) <= MAX_GAS_LIMIT):
            raise NodeError(f"--gas must be auto or an integer from 1 to {MAX_GAS_LIMIT}, got {args.gas!r}")
        gas = int(gas)
    if not is_decimal(args.gas_adjustment) or Fraction(args.gas_adjustment) < 1:
        raise NodeError(f"--gas-adjustment must be a decimal ≥ 1 such as 1.2, got {args.gas_adjustment!r}")
    fees = None
    if args.fees is not None:
        digits = args.fees.rstrip("abcdefghijklmnopqrstuvwxyz")
        denom = args.fees[len(digits) :] or "ngonka"
        try:
            fees = to_ngonka(
                int(digits) if digits.isascii() and digits.isdigit() else args.fees,
                denom,
                field="--fees",
                allow_zero=True,
            )
        except MoneyError as exc:
            raise NodeError(str(exc)) from None
    prices = args.gas_prices
    if prices is not None:
        prices = prices.removesuffix("ngonka")
        if not is_decimal(prices):
            raise NodeError(f"--gas-prices must be ngonka per gas as a decimal such as 0.05, got {args.gas_prices!r}")
    return GasChoice(gas, fees, prices, Fraction(args.gas_adjustment))


def compute_messages(command: Command, args: argparse.Namespace, client: Client) -> tuple[Any, ...]:
    """The command's messages from its arguments' strings; an argument left out whose default is a
    chain param gets the node's value (`GET /v1/params`). NodeError("invalid transaction: …") if bad."""
    try:
        values = command.parse_texts({a.name: getattr(args, ARG_DEST.format(a.name)) for a in command.args})
        missing = [a for a in command.args if values[a.name] is None and a.default_param is not None]
        if missing:
            params = client.get(get_route_path("params"))
            values.update({a.name: params[a.default_param] for a in missing})
        return command.build(values)
    except (ChainError, FieldError, ValueError) as exc:
        raise NodeError(f"invalid transaction: {exc}") from None


def get_route_path(name: str) -> str:
    """The public route of query `name` that takes no argument (`/v1/params`)."""
    return next(http.path for http, q in get_routes() if q.name == name and "{" not in http.path)


def cmd_tx(args: argparse.Namespace) -> int:
    """Sign, broadcast and wait for a transaction; exit 1 if the chain rejects it."""
    choice = compute_gas_choice(args)
    _, key = load_named_key(resolve_home(args), args.sender)
    client = resolve_client(args)
    messages = compute_messages(args.tx, args, client)
    result = broadcast(client, key, list(messages), gas=choice)
    emit(args, result, render_tx_result)
    if result.get("status") == "committed" and result.get("code") != "ok":
        return fail(f"the chain rejected tx {result['tx_hash']}: {result.get('log') or result.get('code')}")
    return 0


def render_tx_result(doc: dict[str, Any]) -> str:
    """One line about a broadcast transaction."""
    if doc.get("status") == "committed":
        verdict = "ok" if doc.get("code") == "ok" else f"rejected: {doc.get('code')}: {doc.get('log')}"
        return f"tx {doc['tx_hash']} committed at height {doc['height']}: {verdict}"
    return f"tx {doc['tx_hash']} is {doc.get('status')} (not committed yet; see uocd query tx {doc['tx_hash']})"
