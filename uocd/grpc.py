"""`uocd grpc status|evidence`: ask a node over gRPC (mutual TLS, as a home's node) and print the reply as JSON."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from node.errors import ConfigError, NodeError

from .options import add_output_option
from .output import emit

if TYPE_CHECKING:
    from node.pb import services_pb2 as spb
    from node.tls import TlsIdentity

QUESTIONS = {"status": "the node's Status", "evidence": "the double signs the node recorded"}


def add_grpc_commands(commands: argparse._SubParsersAction) -> None:
    """uocd grpc status|evidence."""
    grpc_cmd = commands.add_parser(
        "grpc",
        help="ask a node over gRPC",
        description="Ask a node over gRPC. The call is mutual TLS with the identity of the node of --home, "
        "which the asked node accepts if it is that node or one of its peers.",
    )
    grpc_commands = grpc_cmd.add_subparsers(dest="grpc_command", metavar="COMMAND", required=True)
    for name, text in QUESTIONS.items():
        sub = grpc_commands.add_parser(
            name, help=text, description=f"Print {text} (--output json: as GET /v1/status shapes it, for status)."
        )
        sub.add_argument("--home", required=True, metavar="DIR", help="the node home whose identity to present")
        sub.add_argument(
            "address",
            nargs="?",
            metavar="NODE_ID@HOST:PORT",
            help="the node to ask (default: the node of --home)",
        )
        add_output_option(sub)
        sub.set_defaults(func=cmd_grpc_query, what=name)


def cmd_grpc_query(args: argparse.Namespace) -> int:
    """uocd grpc status|evidence."""
    import asyncio

    from node.config import compute_peer_address, load_home
    from node.tls import load_identity, parse_peer_address

    home = load_home(Path(args.home))
    address = args.address or compute_peer_address(home)
    try:
        parse_peer_address(address)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    identity = load_identity(home.path, home.node_key)
    return emit(args, asyncio.run(ask(identity, address, args.what)))


def compute_status_doc(status: spb.StatusResponse) -> dict[str, Any]:
    """The gRPC Status as `GET /v1/status` shapes it (its keys in its order, integers as numbers), then the fields
    only gRPC has."""
    return {
        "chain_id": status.chain_id,
        "moniker": status.moniker,
        "height": status.height,
        "app_hash": status.app_hash,
        "epoch": status.epoch,
        "unit_of_compute_price": status.unit_of_compute_price,
        "catching_up": status.catching_up,
        "peers": status.peers,
        "validator_address": status.validator_address,
        "latest_block_id": status.latest_block_id,
        "node_id": status.node_id,
        "evidence_count": status.evidence_count,
        "round": status.round,
        "mempool_size": status.mempool_size,
    }


async def ask(identity: TlsIdentity, address: str, what: str) -> dict[str, Any]:
    """The node's reply to `what` (status or evidence), asked as `identity`, as a JSON document; NodeError if it
    fails."""
    import grpc
    from google.protobuf.json_format import MessageToDict

    from node.network import PeerClient
    from node.pb import services_pb2 as spb

    peer = PeerClient(address, identity=identity)
    try:
        if what == "status":
            return compute_status_doc(await peer.get_status())
        reply = await peer.call("GetEvidence", spb.EvidenceRequest().SerializeToString())
        return MessageToDict(reply, always_print_fields_with_no_presence=True, preserving_proto_field_name=True)
    except grpc.aio.AioRpcError as exc:
        raise NodeError(f"{address}: {exc.code().name}: {exc.details()}") from None
    finally:
        await peer.close()
