"""`uocd tx send|bond|unbond|price-proposal|register-model|remove-model` and `uocd tx gov vote|deposit`:
sign a transaction locally, broadcast it through a node's public API and wait for its commit."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from chain.errors import ChainError
from chain.tx import (
    VOTE_OPTIONS,
    Msg,
    MsgBond,
    MsgDeposit,
    MsgSend,
    MsgSubmitPriceProposal,
    MsgSubmitProposal,
    MsgUnbond,
    MsgVote,
    RegisterModel,
    RemoveModel,
)
from node.client import broadcast
from node.errors import NodeError

from .keys import load_named_key
from .options import add_node_options, parse_int, resolve_client, resolve_home
from .output import emit, fail

Build = Callable[[argparse.Namespace], list[Msg]]


def add_tx_commands(commands: argparse._SubParsersAction) -> None:
    """uocd tx send|bond|unbond|price-proposal|register-model|remove-model and tx gov vote|deposit."""
    tx = commands.add_parser(
        "tx",
        help="sign and broadcast a transaction",
        description="Sign a transaction locally with a key of --home (--from NAME; in a node home the validator "
        "key by default), fetch the chain id and the account's sequence from the node (--node), post it with "
        "?wait=commit and print the on-chain result. A rejected transaction exits 1.",
    )
    sub = tx.add_subparsers(dest="tx_command", metavar="COMMAND", required=True)

    p = sub.add_parser("send", help="send ngonka", description="Send AMOUNT ngonka to ADDRESS.")
    p.add_argument("to", metavar="ADDRESS")
    p.add_argument("amount", metavar="AMOUNT", type=parse_int)
    add_signing_options(p, lambda a: [MsgSend(to=a.to, amount=a.amount)])
    p = sub.add_parser(
        "bond", help="bond stake", description="Bond AMOUNT ngonka of stake (power from the next epoch)."
    )
    p.add_argument("amount", metavar="AMOUNT", type=parse_int)
    add_signing_options(p, lambda a: [MsgBond(a.amount)])
    p = sub.add_parser("unbond", help="unbond stake", description="Unbond AMOUNT ngonka of stake (at the epoch end).")
    p.add_argument("amount", metavar="AMOUNT", type=parse_int)
    add_signing_options(p, lambda a: [MsgUnbond(a.amount)])
    p = sub.add_parser(
        "price-proposal",
        help="vote the unit-of-compute price",
        description="Vote PRICE DENOM as this validator's unit-of-compute price (it counts at the epoch end).",
    )
    p.add_argument("price", metavar="PRICE", type=parse_int)
    p.add_argument("denom", metavar="DENOM", nargs="?", default="ngonka", help="ngonka (default), icoin, …")
    add_signing_options(p, lambda a: [MsgSubmitPriceProposal.of(a.price, a.denom)])
    p = sub.add_parser(
        "register-model",
        help="propose to register (or update) a model",
        description="Submit a RegisterModel governance proposal: model ID at UNITS units of compute per token.",
    )
    p.add_argument("id", metavar="ID")
    p.add_argument("units", metavar="UNITS", type=parse_int)
    p.add_argument("--deposit", type=parse_int, default=None, help="ngonka (default: the chain's min_deposit)")
    add_signing_options(p, lambda a: [MsgSubmitProposal(RegisterModel(a.id, a.units), a.deposit)])
    p = sub.add_parser(
        "remove-model", help="propose to remove a model", description="Submit a RemoveModel governance proposal."
    )
    p.add_argument("id", metavar="ID")
    p.add_argument("--deposit", type=parse_int, default=None, help="ngonka (default: the chain's min_deposit)")
    add_signing_options(p, lambda a: [MsgSubmitProposal(RemoveModel(a.id), a.deposit)])

    gov = sub.add_parser("gov", help="governance votes and deposits", description="Governance votes and deposits.")
    gov_sub = gov.add_subparsers(dest="gov_command", metavar="COMMAND", required=True)
    p = gov_sub.add_parser(
        "vote", help="vote on a proposal", description="Vote on a proposal in its voting period (validators only)."
    )
    p.add_argument("proposal", metavar="PROPOSAL", type=parse_int)
    p.add_argument("option", metavar="OPTION", choices=VOTE_OPTIONS, help=" | ".join(VOTE_OPTIONS))
    add_signing_options(p, lambda a: [MsgVote(a.proposal, a.option)])
    p = gov_sub.add_parser(
        "deposit", help="add to a proposal's deposit", description="Deposit AMOUNT ngonka on a proposal."
    )
    p.add_argument("proposal", metavar="PROPOSAL", type=parse_int)
    p.add_argument("amount", metavar="AMOUNT", type=parse_int)
    add_signing_options(p, lambda a: [MsgDeposit(a.proposal, a.amount)])


def add_signing_options(parser: argparse.ArgumentParser, build: Build) -> None:
    """--from, --home, --node, --output, and the messages the command signs."""
    parser.add_argument("--from", dest="sender", metavar="NAME", default=None, help="the signing key (uocd keys list)")
    add_node_options(parser)
    parser.set_defaults(func=cmd_tx, build=build)


def cmd_tx(args: argparse.Namespace) -> int:
    """Sign, broadcast and wait for a transaction; exit 1 if the chain rejects it."""
    client = resolve_client(args)
    if getattr(args, "deposit", 0) is None:  # a proposal without --deposit: the chain's min_deposit
        args.deposit = client.get("/v1/params")["min_deposit"]
    try:
        messages = args.build(args)
    except (ChainError, ValueError) as exc:
        raise NodeError(f"invalid transaction: {exc}") from None
    _, key = load_named_key(resolve_home(args), args.sender)
    result = broadcast(client, key, messages)
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
