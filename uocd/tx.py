"""`uocd tx …`: one command per message and governance content that `chain` declares with a `CLI`
(`chain.catalog.get_commands`: `send`, `bond`, `price-proposal`, `register-model`, `gov vote`, …), in
the groups it declares (`tx gov …`). Each signs a transaction locally, broadcasts it through a node's
public API and waits for its commit. Nothing here names a message: a new one is a declaration in `chain`.

Every command signs for the chain id of `--chain-id` (default: the genesis of a `--home` node home), never
for the one the node names: a node of another chain is refused before anything is signed. `--offline`
with `--sequence` signs without a node and prints the signed transaction, for `POST /v1/txs` later."""

from __future__ import annotations

import argparse
import base64
import json
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

from chain.catalog import Command, compute_cli_args, get_cli_groups, get_commands, get_routes
from chain.errors import ChainError, MoneyError
from chain.fields import Arg, Cli, FieldError, NestedKind
from chain.gas import MAX_GAS_LIMIT, compute_gas_price, compute_min_fee
from chain.money import to_ngonka
from chain.tx import (
    DEFAULT_GAS_PRICE,
    Receipt,
    compute_sign_bytes,
    compute_tx_bytes,
    compute_tx_hash,
    decode_tx,
    is_decimal,
    make_body,
    sign_receipt,
)
from node.client import COMMIT_TIMEOUT, Client, GasChoice, broadcast, check_chain_id
from node.errors import NodeError

from .keys import load_named_key
from .options import (
    add_declared_argument,
    add_home_option,
    add_node_options,
    add_output_option,
    parse_int,
    resolve_client,
    resolve_home,
)
from .output import emit, fail

ARG_DEST = "tx_arg_{}"  # where an argument's string is kept (apart from --home, --node, --from…)


def add_tx_commands(commands: argparse._SubParsersAction) -> None:
    """uocd tx COMMAND and uocd tx GROUP COMMAND, one per declared command."""
    tx = commands.add_parser(
        "tx",
        help="sign and broadcast a transaction",
        description="Sign a transaction locally with a key of --home (--from NAME; in a node home the validator "
        "key by default) for --chain-id (default: the node home's genesis), check that the node (--node) serves "
        "that chain, fetch the account's sequence from it (or take --sequence), set its gas limit (--gas auto: "
        "simulated by the node) and fee (--fees, or --gas-prices × the limit; by default the least the node "
        "admits), post it with ?wait=commit and print the on-chain result. A rejected transaction exits 1. With "
        "--offline and --sequence, print the signed transaction instead and contact no node (--gas auto is then "
        "the gas table's bound for the messages, at --gas-prices or the default least price).",
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
        add_signing_options(parser)
        add_node_options(parser)
        add_gas_options(parser)
        parser.set_defaults(func=cmd_tx, tx=command)
    parser = groups[()].add_parser(
        "broadcast",
        help="send a signed transaction (from --offline)",
        description="Post a signed transaction (what `uocd tx … --offline` prints) to --node with ?wait=commit, "
        "once the node is known to serve the transaction's chain id, and print the on-chain result.",
    )
    parser.add_argument("file", metavar="FILE", help="the signed transaction's JSON, or - for stdin")
    add_node_options(parser)
    parser.set_defaults(func=cmd_broadcast)
    parser = groups[()].add_parser(
        "sign",
        help="sign a transaction made with --generate-only, without a node",
        description="Sign the unsigned transaction of FILE (what `uocd tx … --generate-only` prints) with --from "
        "at --sequence, for --chain-id, and print it signed, for `uocd tx broadcast`. No node is contacted. A file "
        "for another chain id, or whose sender is not the key's address, is refused.",
    )
    parser.add_argument("file", metavar="FILE", help="the unsigned transaction's JSON, or - for stdin")
    parser.add_argument("--from", dest="sender", metavar="NAME", default=None, help="the signing key (uocd keys list)")
    parser.add_argument("--chain-id", metavar="ID", default=None, help="the chain to sign for (default: --home's)")
    parser.add_argument("--sequence", metavar="N", type=parse_int, required=True, help="the account's sequence")
    add_home_option(parser)
    add_output_option(parser)
    parser.set_defaults(func=cmd_sign)
    add_receipt_commands(commands)


RECEIPT_CLI = Cli(("receipt", "sign"), "sign a usage receipt", "", ())


def get_receipt_args() -> tuple[Arg, ...]:
    """The fields of a receipt as --options, but its requester: the signing key's account."""
    return tuple(a for a in compute_cli_args(Receipt, RECEIPT_CLI) if a.name != "requester")


def add_receipt_commands(commands: argparse._SubParsersAction) -> None:
    """uocd receipt sign: a requester's signed usage receipt, from flags."""
    receipt = commands.add_parser("receipt", help="usage receipts (requester side)", description="Usage receipts.")
    sub = receipt.add_subparsers(dest="receipt_command", metavar="COMMAND", required=True)
    parser = sub.add_parser(
        "sign",
        help="sign a usage receipt as its requester",
        description="Make a usage receipt from flags, its requester the --from key's account, and sign it for "
        "--chain-id (default: the genesis of --home). Print {receipt, requester_signature}: the body of POST "
        "/v1/admin/usage. With --out FILE, write the receipt's JSON to FILE and print only the signature, for "
        "`uocd tx settle @FILE SIGNATURE`. Nothing is sent.",
    )
    for arg in get_receipt_args():
        add_declared_argument(parser, arg, ARG_DEST.format(arg.name), parse=False)
    parser.add_argument("--from", dest="sender", metavar="NAME", default=None, help="the requester's key")
    parser.add_argument("--chain-id", metavar="ID", default=None, help="the chain (default: the genesis of --home)")
    parser.add_argument("--out", metavar="FILE", default=None, help="write the receipt's JSON here")
    add_home_option(parser)
    add_output_option(parser)
    parser.set_defaults(func=cmd_receipt_sign)


def cmd_receipt_sign(args: argparse.Namespace) -> int:
    """Build and sign a receipt; print it with its signature (or write it, and print the signature)."""
    _, key = load_named_key(resolve_home(args), args.sender)
    texts = {a.name: getattr(args, ARG_DEST.format(a.name)) for a in get_receipt_args()}
    try:
        values = {a.name: a.parse_text(texts[a.name]) for a in get_receipt_args() if texts[a.name] is not None}
        receipt = Receipt(requester=key.address, **values)
    except FieldError as exc:
        raise NodeError(f"invalid receipt: {exc}") from None
    signature = base64.b64encode(sign_receipt(key, resolve_chain_id(args), receipt)).decode()
    if args.out is not None:
        Path(args.out).write_text(json.dumps(receipt.to_json(), sort_keys=True) + "\n")
        sys.stdout.write(signature + "\n")
        return 0
    return emit(args, {"receipt": receipt.to_json(), "requester_signature": signature}, lambda d: json.dumps(d))


def add_signing_options(parser: argparse.ArgumentParser) -> None:
    """--chain-id, --sequence and --offline (as gaiad's)."""
    parser.add_argument(
        "--chain-id",
        metavar="ID",
        default=None,
        help="the chain to sign for (default: the genesis chain id of --home, if a node home); "
        "a node serving another chain is refused",
    )
    parser.add_argument(
        "--sequence", metavar="N", type=parse_int, default=None, help="the account's sequence (default: from the node)"
    )
    parser.add_argument(
        "--offline",
        action="store_true",
        help="sign without a node (needs --sequence and the chain id) and print the signed transaction",
    )
    parser.add_argument(
        "--generate-only",
        action="store_true",
        help="print the transaction unsigned, contacting no node (sign it with uocd tx sign)",
    )


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


def compute_messages(command: Command, args: argparse.Namespace, client: Client | None) -> tuple[Any, ...]:
    """The command's messages from its arguments' strings; an argument left out whose default is a
    chain param gets the node's value (`GET /v1/params`; offline, without `client`, it must be given).
    NodeError("invalid transaction: …") if bad."""
    try:
        texts = {a.name: read_json_argument(a, getattr(args, ARG_DEST.format(a.name))) for a in command.args}
        values = command.parse_texts(texts)
        missing = [a for a in command.args if values[a.name] is None and a.default_param is not None]
        if missing and client is None:
            flags = ", ".join("--" + a.name.replace("_", "-") for a in missing)
            raise NodeError(
                f"{flags} must be given with --offline (its default is the node's {missing[0].default_param})"
            )
        if missing:
            assert client is not None
            params = client.get(get_route_path("params"))
            values.update({a.name: params[a.default_param] for a in missing})
        return command.build(values)
    except (ChainError, FieldError, ValueError) as exc:
        raise NodeError(f"invalid transaction: {exc}") from None


def read_json_argument(arg: Arg, text: str | None) -> str | None:
    """An argument given as JSON (a receipt, governance content) may be `@FILE`: the file's text."""
    if text is None or not text.startswith("@") or not isinstance(arg.kind, NestedKind):
        return text
    try:
        return Path(text[1:]).read_text()
    except OSError as exc:
        raise NodeError(f"{arg.name}: cannot read {text[1:]}: {exc.strerror}") from None


def get_route_path(name: str) -> str:
    """The public route of query `name` that takes no argument (`/v1/params`)."""
    return next(http.path for http, q in get_routes() if q.name == name and "{" not in http.path)


def resolve_chain_id(args: argparse.Namespace) -> str:
    """--chain-id, else the genesis chain id of the --home node home; NodeError if neither is there."""
    from node.config import GENESIS_FILE

    if args.chain_id:
        return str(args.chain_id)
    genesis = resolve_home(args) / GENESIS_FILE
    if genesis.is_file():
        try:
            return str(json.loads(genesis.read_text())["chain_id"])
        except (ValueError, KeyError, TypeError):
            raise NodeError(f"{genesis} holds no chain_id; give --chain-id") from None
    raise NodeError(f"--chain-id is needed: {resolve_home(args)} is not a node home with a genesis to take it from")


def compute_offline_body(
    sender: str, chain_id: str, sequence: int, messages: list[Any], choice: GasChoice
) -> dict[str, Any]:
    """A body made without a node: --gas N or the gas table's bound for the messages (auto needs a node to
    simulate), and the fee of --fees or of --gas-prices (default: the chain's default least price) × it."""
    body = make_body(chain_id, sender, sequence, messages, gas_limit=None if choice.gas == "auto" else int(choice.gas))
    price = compute_gas_price(choice.gas_prices or DEFAULT_GAS_PRICE)
    return {**body, "fee": choice.fees if choice.fees is not None else compute_min_fee(body["gas_limit"], price)}


def sign_body(key: Any, body: dict[str, Any], where: str = "the transaction") -> bytes:
    """The signed transaction of a body, checked as a node decodes it (NodeError naming `where` if it would
    refuse it: a sequence below 0 or past 2^63, a fee out of range…)."""
    sign_bytes = compute_sign_bytes(body)
    raw = compute_tx_bytes(sign_bytes, key.pubkey, key.sign(sign_bytes))
    try:
        decode_tx(raw)
    except ChainError as exc:
        raise NodeError(f"{where}: invalid transaction: {exc}") from None
    return raw


def print_signed(args: argparse.Namespace, raw: bytes) -> int:
    """Print a signed transaction: its JSON line, or with --output json its hash and JSON."""
    if args.output == "json":
        return emit(args, {"tx_hash": compute_tx_hash(raw), "tx": json.loads(raw)})
    sys.stdout.write(raw.decode() + "\n")
    return 0


def cmd_tx(args: argparse.Namespace) -> int:
    """Sign, broadcast and wait for a transaction (or, --offline, print it signed); exit 1 if the chain
    rejects it."""
    choice = compute_gas_choice(args)
    _, key = load_named_key(resolve_home(args), args.sender)
    chain_id = resolve_chain_id(args)
    if args.generate_only or args.offline:
        if args.offline and args.sequence is None:
            raise NodeError("--offline needs --sequence (the account's next sequence: uocd query account)")
        offline = list(compute_messages(args.tx, args, None))
        body = compute_offline_body(key.address, chain_id, args.sequence or 0, offline, choice)
        if args.offline:
            return print_signed(args, sign_body(key, body))
        print(json.dumps({"body": body}, indent=2 if args.output == "json" else None))  # for `uocd tx sign`
        return 0
    client = resolve_client(args)
    messages = compute_messages(args.tx, args, client)
    result = broadcast(client, key, list(messages), chain_id, sequence=args.sequence, gas=choice)
    emit(args, result, render_tx_result)
    if result.get("status") == "committed" and result.get("code") != "ok":
        return fail(f"the chain rejected tx {result['tx_hash']}: {result.get('log') or result.get('code')}")
    return 0


def cmd_sign(args: argparse.Namespace) -> int:
    """uocd tx sign: sign an unsigned body for --chain-id at --sequence, checked first; print it signed."""
    _, key = load_named_key(resolve_home(args), args.sender)
    chain_id = resolve_chain_id(args)
    text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text()
    try:
        body = dict(json.loads(text)["body"])
        body_chain, sender = body["chain_id"], body["sender"]
    except (ValueError, KeyError, TypeError):
        raise NodeError(f"{args.file} is not an unsigned transaction (uocd tx … --generate-only prints one)") from None
    if body_chain != chain_id:
        raise NodeError(f"{args.file} is a transaction for chain {body_chain!r}, not {chain_id!r} (--chain-id)")
    if sender != key.address:
        raise NodeError(f"{args.file} is sent by {sender}, not by the key {key.address} (--from)")
    return print_signed(args, sign_body(key, {**body, "sequence": args.sequence}, args.file))


def cmd_broadcast(args: argparse.Namespace) -> int:
    """Post a signed transaction after checking the node's chain id; exit 1 if the chain rejects it."""
    raw = (sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()).strip()
    try:
        chain_id = json.loads(raw)["body"]["chain_id"]
    except (ValueError, KeyError, TypeError):
        raise NodeError(f"{args.file} is not a signed transaction (uocd tx … --offline prints one)") from None
    client = resolve_client(args)
    check_chain_id(client, str(chain_id))
    result = client.post("/v1/txs", raw, timeout=COMMIT_TIMEOUT, wait="commit")
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
