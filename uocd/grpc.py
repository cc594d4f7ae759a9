"""`uocd grpc status|evidence`: ask a node over gRPC and print the reply as JSON."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

import grpc
from google.protobuf.json_format import MessageToDict

from node.errors import NodeError
from node.network import PeerClient
from node.pb import services_pb2 as spb

QUESTIONS = {"status": "the node's Status", "evidence": "the double signs the node recorded"}


def add_grpc_commands(commands: argparse._SubParsersAction) -> None:
    """uocd grpc status|evidence."""
    grpc_cmd = commands.add_parser("grpc", help="ask a node over gRPC", description="Ask a node over gRPC.")
    grpc_commands = grpc_cmd.add_subparsers(dest="grpc_command", metavar="COMMAND", required=True)
    for name, text in QUESTIONS.items():
        sub = grpc_commands.add_parser(name, help=text, description=f"Print {text} as JSON.")
        sub.add_argument("address", metavar="HOST:PORT", help="the node's gRPC address")
        sub.set_defaults(func=cmd_grpc_query, what=name)


def cmd_grpc_query(args: argparse.Namespace) -> int:
    """uocd grpc status|evidence."""
    print(json.dumps(asyncio.run(ask(args.address, args.what)), indent=2))
    return 0


async def ask(address: str, what: str) -> dict[str, Any]:
    """The node's reply to `what` (status or evidence) as a JSON document; NodeError if it fails."""
    peer = PeerClient(address)
    try:
        if what == "status":
            return MessageToDict(await peer.get_status(), always_print_fields_with_no_presence=True)
        reply = await peer.call("GetEvidence", spb.EvidenceRequest().SerializeToString())
        return MessageToDict(reply, always_print_fields_with_no_presence=True)
    except grpc.aio.AioRpcError as exc:
        raise NodeError(f"{address}: {exc.code().name}: {exc.details()}") from None
    finally:
        await peer.close()
