"""`uocd`: the command line of uoc (`python -m node` is the same program)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chain.errors import ChainError

from .errors import NodeError

if TYPE_CHECKING:
    from chain.crypto import PrivateKey

    from .client import Client

EXIT_USAGE = 2


class JsonFormatter(logging.Formatter):
    """One JSON object per log line."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def setup_logging(level: str, fmt: str) -> None:
    """Log to stderr, as text or JSON."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="uocd",
        description="uoc: epoch-based unit-of-compute price voting for decentralized AI inference.",
    )
    parser.add_argument(
        "--log-level",
        default="warning",
        choices=["debug", "info", "warning", "error"],
        help="log verbosity (default: warning)",
    )
    parser.add_argument(
        "--log-format", default="text", choices=["text", "json"], help="log line format (default: text)"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    devnet = commands.add_parser(
        "devnet", help="local networks and simulations", description="Local networks and simulations."
    )
    devnet_commands = devnet.add_subparsers(dest="devnet_command", metavar="COMMAND", required=True)
    simulate = devnet_commands.add_parser(
        "simulate",
        help="run a scenario of provider behaviour over many epochs",
        description="Run a scenario (TOML) of validators voting prices over many epochs, and write "
        "OUT/epochs.csv, OUT/models.csv, OUT/proposals.csv, OUT/summary.json and OUT/price.png. "
        "The inproc engine drives the chain state machine directly with signed transactions in blocks.",
    )
    simulate.add_argument("scenario", metavar="SCENARIO.toml", help="scenario file (see README: Scenarios)")
    simulate.add_argument(
        "--engine",
        choices=["inproc", "network"],
        default="inproc",
        help="inproc: the state machine in this process (default); network: a devnet of node processes "
        "driven through their HTTP API",
    )
    simulate.add_argument("--out", metavar="DIR", default=None, help="output directory (default: out/<scenario name>)")
    simulate.add_argument(
        "--dir",
        metavar="D",
        default=None,
        help="network engine: create the scenario's devnet in D and leave it running afterwards "
        "(default: OUT/devnet, stopped at the end); D must not hold another devnet",
    )
    simulate.add_argument(
        "--block-time",
        type=float,
        default=0.2,
        metavar="S",
        help="network engine: seconds between blocks (default 0.2)",
    )
    simulate.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    simulate.set_defaults(func=cmd_devnet_simulate)
    add_devnet_commands(devnet_commands)

    init = commands.add_parser(
        "init",
        help="create a node home (config.toml, keys, admin token, genesis.json)",
        description="Create a node home: config.toml, node_key.json and validator_key.json, admin_token "
        "(mode 0600) and a one-validator genesis.json. Several homes share one genesis: init each, then "
        "`uocd genesis collect HOME...`.",
    )
    init.add_argument("--home", required=True, metavar="DIR", help="the node home to create")
    init.add_argument("--moniker", required=True, metavar="NAME", help="this node's name")
    init.add_argument("--chain-id", default="uoc-devnet-1", metavar="ID", help="chain id (default uoc-devnet-1)")
    init.add_argument(
        "--key-name", metavar="NAME", help="derive the validator key from NAME (devnets only; default: a random key)"
    )
    init.add_argument("--stake", type=int, default=100, help="this validator's genesis stake, ngonka (default 100)")
    init.add_argument("--balance", type=int, default=10**12, help="its genesis balance, ngonka (default 10^12)")
    init.add_argument("--epoch-length", type=int, default=10, help="blocks per epoch (default 10)")
    init.add_argument("--grpc", default="127.0.0.1:26656", metavar="HOST:PORT", help="gRPC listen address")
    init.add_argument("--block-interval-ms", type=int, default=1000, help="block interval (default 1000)")
    init.set_defaults(func=cmd_init)

    start = commands.add_parser(
        "start", help="run a node", description="Run the node of a home until SIGINT or SIGTERM."
    )
    start.add_argument("--home", required=True, metavar="DIR", help="the node home (see uocd init)")
    start.set_defaults(func=cmd_start)

    genesis = commands.add_parser("genesis", help="shared genesis for several homes", description="Genesis tools.")
    genesis_commands = genesis.add_subparsers(dest="genesis_command", metavar="COMMAND", required=True)
    collect = genesis_commands.add_parser(
        "collect",
        help="merge several homes' validators and accounts into one genesis written to every home",
        description="Merge the validators and accounts of the homes' genesis.json files (chain id, time and "
        "params of the first home) into one genesis, write it to every home, and list every other "
        "home's gRPC address in each config.toml's grpc.peers.",
    )
    collect.add_argument("homes", nargs="+", metavar="HOME")
    collect.add_argument("--no-peers", action="store_true", help="leave grpc.peers unchanged")
    collect.set_defaults(func=cmd_genesis_collect)

    add_keys_commands(commands)
    add_tx_commands(commands)
    add_query_commands(commands)

    grpc_cmd = commands.add_parser("grpc", help="ask a node over gRPC", description="Ask a node over gRPC.")
    grpc_commands = grpc_cmd.add_subparsers(dest="grpc_command", metavar="COMMAND", required=True)
    for name, text in (("status", "the node's Status"), ("evidence", "the double signs the node recorded")):
        sub = grpc_commands.add_parser(name, help=text, description=f"Print {text} as JSON.")
        sub.add_argument("address", metavar="HOST:PORT", help="the node's gRPC address")
        sub.set_defaults(func=cmd_grpc_query, what=name)
    return parser


def cmd_init(args: argparse.Namespace) -> int:
    """uocd init."""
    from .config import init_home

    home = init_home(
        Path(args.home),
        args.moniker,
        chain_id=args.chain_id,
        key_name=args.key_name,
        stake=args.stake,
        balance=args.balance,
        epoch_length=args.epoch_length,
        listen=args.grpc,
        block_interval_ms=args.block_interval_ms,
    )
    print(f"initialized {home.path} for {home.config.moniker}: validator {home.validator_key.address}")
    return 0


def cmd_start(args: argparse.Namespace) -> int:
    """uocd start."""
    import asyncio

    os.environ.setdefault("GRPC_VERBOSITY", "NONE")  # gRPC core's own log lines; our errors are one line
    from .config import load_home
    from .node import run_node

    asyncio.run(run_node(load_home(Path(args.home))))
    return 0


def cmd_genesis_collect(args: argparse.Namespace) -> int:
    """uocd genesis collect."""
    from .config import collect_genesis

    genesis = collect_genesis([Path(h) for h in args.homes], set_peers=not args.no_peers)
    count = len(genesis["validators"])
    print(f"wrote genesis of {genesis['chain_id']} with {count} validators to {len(args.homes)} homes")
    return 0


def cmd_grpc_query(args: argparse.Namespace) -> int:
    """uocd grpc status|evidence."""
    import asyncio

    import grpc
    from google.protobuf.json_format import MessageToDict

    from .network import PeerClient
    from .pb import services_pb2 as spb

    async def ask() -> dict:
        peer = PeerClient(args.address)
        try:
            if args.what == "status":
                return MessageToDict(await peer.get_status(), always_print_fields_with_no_presence=True)
            reply = await peer.call("GetEvidence", spb.EvidenceRequest().SerializeToString())
            return MessageToDict(reply, always_print_fields_with_no_presence=True)
        except grpc.aio.AioRpcError as exc:
            raise NodeError(f"{args.address}: {exc.code().name}: {exc.details()}") from None
        finally:
            await peer.close()

    print(json.dumps(asyncio.run(ask()), indent=2))
    return 0


def cmd_devnet_simulate(args: argparse.Namespace) -> int:
    """uocd devnet simulate."""
    from devnet.scenario import load_scenario
    from devnet.simulate import run_inproc

    scenario = load_scenario(args.scenario)
    out = Path(args.out) if args.out else Path("out") / Path(args.scenario).stem
    progress = False if args.no_progress else None
    if args.engine == "network":
        from devnet.network import run_network

        if args.block_time <= 0:
            raise NodeError(f"--block-time must be positive, got {args.block_time}")
        keep = Path(args.dir) if args.dir else None
        summary = run_network(scenario, out, devnet_dir=keep, block_ms=int(args.block_time * 1000), progress=progress)
    else:
        if args.dir:
            raise NodeError("--dir is for --engine network")
        summary = run_inproc(scenario, out, progress=progress)
    rate = summary["txs_committed"] / summary["elapsed_seconds"] if summary["elapsed_seconds"] else 0
    print(
        f"simulated {summary['epochs']} epochs ({summary['final_height']} blocks, {summary['txs_committed']} "
        f"signed txs) in {summary['elapsed_seconds']:.1f} s ({rate:,.0f} tx/s)"
    )
    print_csv_table(out / "epochs.csv")
    if summary["proposals"]:
        print()
        print_csv_table(out / "proposals.csv")
    print(f"final price {summary['final_price']} ngonka per unit of compute; app hash {summary['final_app_hash']}")
    for model, units in summary["final_models"].items():
        price = units * summary["final_price"]
        print(f"model {model}: {units} units of compute per token = {price} ngonka per token")
    files = ["epochs.csv", "models.csv", "proposals.csv", "summary.json", "price.png"]
    files += ["models.png"] if (out / "models.png").exists() else []
    print(f"wrote {', '.join(f'{out}/{name}' for name in files)}")
    if summary.get("devnet_running"):
        from devnet.devnet import format_endpoints, read_state

        where = summary["devnet_dir"]
        print(
            f"\nthe devnet keeps running in {where} (uocd devnet status --dir {where}; uocd devnet down --dir {where})"
        )
        if summary.get("devnet_created"):
            print(format_endpoints(read_state(Path(where))))
    return 0


def print_csv_table(path: Path, limit: int = 12) -> None:
    """Print a CSV file as an aligned table, eliding the middle of long ones."""
    rows = path.read_text().splitlines()
    header, body = rows[0].split(","), [r.split(",") for r in rows[1:]]
    if len(body) > limit:
        body = body[: limit // 2] + [["…"] * len(header)] + body[-limit // 2 :]
    widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(header)]
    for row in [header, *body]:
        print("  ".join(cell.rjust(w) for cell, w in zip(row, widths)))


# -- shared options, output ----------------------------------------------------------------------
DEFAULT_HOME = "~/.uocd"
KEYS_DIR = "keys"


def add_output_option(parser: argparse.ArgumentParser) -> None:
    """--output text|json."""
    parser.add_argument(
        "--output", "-o", choices=["text", "json"], default="text", help="text for people (default), json for scripts"
    )


def add_home_option(parser: argparse.ArgumentParser) -> None:
    """--home: a key home (HOME/keys/NAME.json) and possibly a node home (its validator key and API)."""
    parser.add_argument(
        "--home",
        default=os.environ.get("UOCD_HOME", DEFAULT_HOME),
        metavar="DIR",
        help="where keys live, in DIR/keys/NAME.json; a node home also lends its validator key "
        "(NAME 'validator') and its public API address (default $UOCD_HOME or ~/.uocd)",
    )


def add_node_options(parser: argparse.ArgumentParser) -> None:
    """--home, --node, --output."""
    add_home_option(parser)
    parser.add_argument(
        "--node",
        metavar="URL",
        default=None,
        help="the node's public HTTP API (default: the node home's [api] public, else http://127.0.0.1:26650)",
    )
    add_output_option(parser)


def resolve_home(args: argparse.Namespace) -> Path:
    """The --home directory, with ~ expanded."""
    return Path(args.home).expanduser()


def resolve_client(args: argparse.Namespace) -> Client:
    """A client of --node, or of the node home's public listener."""
    from .client import DEFAULT_NODE, Client
    from .config import CONFIG_FILE, parse_config

    if args.node:
        return Client(args.node)
    home = resolve_home(args)
    if (home / CONFIG_FILE).is_file():
        return Client(parse_config((home / CONFIG_FILE).read_text()).api_public)
    return Client(DEFAULT_NODE)


def emit(args: argparse.Namespace, doc: Any, text: Callable[[Any], str] | None = None) -> int:
    """Print a result: JSON with --output json, else `text(doc)` (or a generic rendering)."""
    if args.output == "json":
        print(json.dumps(doc, indent=2))
    else:
        print((text or render_text)(doc))
    return 0


def render_text(doc: Any, indent: str = "") -> str:
    """A generic human rendering: `key: value` lines, lists of objects as tables."""
    if isinstance(doc, list):
        if doc and all(isinstance(d, dict) for d in doc):
            return render_rows(doc, indent)
        return indent + (", ".join(map(str, doc)) if doc else "(none)")
    if not isinstance(doc, dict):
        return indent + str(doc)
    lines = []
    for key, value in doc.items():
        if isinstance(value, (dict, list)) and value:
            lines.append(f"{indent}{key}:")
            lines.append(render_text(value, indent + "  "))
        else:
            lines.append(f"{indent}{key}: {'-' if value is None or value == [] else value}")
    return "\n".join(lines)


def render_rows(rows: list[dict[str, Any]], indent: str = "") -> str:
    """A list of flat objects as an aligned table (nested values as JSON)."""
    header = list(dict.fromkeys(k for r in rows for k in r))

    def cell(value: Any) -> str:
        return "-" if value is None else json.dumps(value) if isinstance(value, (dict, list)) else str(value)

    table = [header, *[[cell(r.get(k)) for k in header] for r in rows]]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    return "\n".join(indent + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table)


# -- keys ---------------------------------------------------------------------------------------
def add_keys_commands(commands: argparse._SubParsersAction) -> None:
    """uocd keys add|list|show."""
    keys = commands.add_parser(
        "keys",
        help="local signing keys",
        description="Local signing keys, kept in HOME/keys/NAME.json (mode 0600). In a node home, the "
        "validator key (validator_key.json) is listed and used as NAME 'validator'.",
    )
    sub = keys.add_subparsers(dest="keys_command", metavar="COMMAND", required=True)
    add = sub.add_parser(
        "add",
        help="create a key (or import one with --recover)",
        description="Generate a new ed25519 key NAME in HOME/keys/NAME.json (mode 0600) and print its address. "
        "With --recover, read its 32-byte seed as 64 hex digits from standard input instead.",
    )
    add.add_argument("name", metavar="NAME", help="a-z, 0-9, '_' and '-'")
    add.add_argument("--recover", action="store_true", help="import: read the hex seed from standard input")
    add_home_option(add)
    add_output_option(add)
    add.set_defaults(func=cmd_keys_add)
    listing = sub.add_parser("list", help="list the keys", description="List the keys of the home: name and address.")
    add_home_option(listing)
    add_output_option(listing)
    listing.set_defaults(func=cmd_keys_list)
    show = sub.add_parser("show", help="show one key", description="Print a key's name, address and public key.")
    show.add_argument("name", metavar="NAME")
    add_home_option(show)
    add_output_option(show)
    show.set_defaults(func=cmd_keys_show)


def key_path(home: Path, name: str) -> Path:
    """The file of key NAME; NodeError if the name is not a plain name."""
    import re

    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,63}", name):
        raise NodeError(
            f"a key name is 1-64 characters of a-z, 0-9, '_' and '-', starting with a letter or digit; got {name!r}"
        )
    return home / KEYS_DIR / f"{name}.json"


def list_keys(home: Path) -> list[tuple[str, Path]]:
    """(name, file) of every key of the home, the node's validator key first."""
    from .config import VALIDATOR_KEY_FILE

    found = [("validator", home / VALIDATOR_KEY_FILE)] if (home / VALIDATOR_KEY_FILE).is_file() else []
    if (home / KEYS_DIR).is_dir():
        found += sorted((p.stem, p) for p in (home / KEYS_DIR).glob("*.json"))
    return found


def load_named_key(home: Path, name: str | None) -> tuple[str, PrivateKey]:
    """(name, key) for --from NAME; without a name, the node home's validator key."""
    from .config import VALIDATOR_KEY_FILE, load_key

    if name is None:
        if (home / VALIDATOR_KEY_FILE).is_file():
            return "validator", load_key(home / VALIDATOR_KEY_FILE)
        raise NodeError(f"--from NAME is needed: {home} is not a node home (see uocd keys list --home {home})")
    path = key_path(home, name)
    if path.is_file():
        return name, load_key(path)
    if name == "validator" and (home / VALIDATOR_KEY_FILE).is_file():
        return name, load_key(home / VALIDATOR_KEY_FILE)
    raise NodeError(f"no key named {name!r} in {home} (see uocd keys list --home {home})")


def key_doc(name: str, key: PrivateKey, path: Path) -> dict[str, Any]:
    """A key as shown: name, address, public key, file."""
    return {"name": name, "address": key.address, "pubkey": key.pubkey.hex(), "path": str(path)}


def cmd_keys_add(args: argparse.Namespace) -> int:
    """uocd keys add."""
    from chain.crypto import PrivateKey

    from .config import render_key, write_secret

    home = resolve_home(args)
    path = key_path(home, args.name)
    if path.exists():
        raise NodeError(f"a key named {args.name!r} already exists in {path}")
    if args.recover:
        text = sys.stdin.readline().strip()
        try:
            key = PrivateKey(bytes.fromhex(text))
        except (ValueError, ChainError):
            raise NodeError("--recover reads a 32-byte seed as 64 hex digits from standard input") from None
    else:
        key = PrivateKey.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    write_secret(path, render_key(key))
    return emit(
        args, key_doc(args.name, key, path), lambda d: f"{d['name']}: {d['address']} (saved to {d['path']}, mode 0600)"
    )


def cmd_keys_list(args: argparse.Namespace) -> int:
    """uocd keys list."""
    from .config import load_key

    home = resolve_home(args)
    docs = [key_doc(name, load_key(path), path) for name, path in list_keys(home)]
    return emit(
        args,
        {"keys": docs},
        lambda d: (
            render_rows([{"name": k["name"], "address": k["address"]} for k in d["keys"]])
            if d["keys"]
            else f"no keys in {home} (add one: uocd keys add NAME --home {home})"
        ),
    )


def cmd_keys_show(args: argparse.Namespace) -> int:
    """uocd keys show."""
    home = resolve_home(args)
    name, key = load_named_key(home, args.name)
    path = dict(list_keys(home)).get(name, home)
    return emit(args, key_doc(name, key, path))


# -- transactions -------------------------------------------------------------------------------
def add_tx_commands(commands: argparse._SubParsersAction) -> None:
    """uocd tx send|bond|unbond|price-proposal|register-model|remove-model and tx gov vote|deposit."""
    from chain.tx import VOTE_OPTIONS

    tx = commands.add_parser(
        "tx",
        help="sign and broadcast a transaction",
        description="Sign a transaction locally with a key of --home (--from NAME; in a node home the validator "
        "key by default), fetch the chain id and the account's sequence from the node (--node), post it with "
        "?wait=commit and print the on-chain result. A rejected transaction exits 1.",
    )
    sub = tx.add_subparsers(dest="tx_command", metavar="COMMAND", required=True)

    def command(parser: argparse.ArgumentParser, build: Callable[[argparse.Namespace], list[Any]]) -> None:
        parser.add_argument(
            "--from", dest="sender", metavar="NAME", default=None, help="the signing key (uocd keys list)"
        )
        add_node_options(parser)
        parser.set_defaults(func=cmd_tx, build=build)

    p = sub.add_parser("send", help="send ngonka", description="Send AMOUNT ngonka to ADDRESS.")
    p.add_argument("to", metavar="ADDRESS")
    p.add_argument("amount", metavar="AMOUNT", type=parse_int)
    command(p, lambda a: [M.MsgSend(to=a.to, amount=a.amount)])
    p = sub.add_parser(
        "bond", help="bond stake", description="Bond AMOUNT ngonka of stake (power from the next epoch)."
    )
    p.add_argument("amount", metavar="AMOUNT", type=parse_int)
    command(p, lambda a: [M.MsgBond(a.amount)])
    p = sub.add_parser("unbond", help="unbond stake", description="Unbond AMOUNT ngonka of stake (at the epoch end).")
    p.add_argument("amount", metavar="AMOUNT", type=parse_int)
    command(p, lambda a: [M.MsgUnbond(a.amount)])
    p = sub.add_parser(
        "price-proposal",
        help="vote the unit-of-compute price",
        description="Vote PRICE DENOM as this validator's unit-of-compute price (it counts at the epoch end).",
    )
    p.add_argument("price", metavar="PRICE", type=parse_int)
    p.add_argument("denom", metavar="DENOM", nargs="?", default="ngonka", help="ngonka (default), icoin, …")
    command(p, lambda a: [M.MsgSubmitPriceProposal.of(a.price, a.denom)])
    p = sub.add_parser(
        "register-model",
        help="propose to register (or update) a model",
        description="Submit a RegisterModel governance proposal: model ID at UNITS units of compute per token.",
    )
    p.add_argument("id", metavar="ID")
    p.add_argument("units", metavar="UNITS", type=parse_int)
    p.add_argument("--deposit", type=parse_int, default=None, help="ngonka (default: the chain's min_deposit)")
    command(p, lambda a: [M.MsgSubmitProposal(M.RegisterModel(a.id, a.units), a.deposit)])
    p = sub.add_parser(
        "remove-model", help="propose to remove a model", description="Submit a RemoveModel governance proposal."
    )
    p.add_argument("id", metavar="ID")
    p.add_argument("--deposit", type=parse_int, default=None, help="ngonka (default: the chain's min_deposit)")
    command(p, lambda a: [M.MsgSubmitProposal(M.RemoveModel(a.id), a.deposit)])

    gov = sub.add_parser("gov", help="governance votes and deposits", description="Governance votes and deposits.")
    gov_sub = gov.add_subparsers(dest="gov_command", metavar="COMMAND", required=True)
    p = gov_sub.add_parser(
        "vote", help="vote on a proposal", description="Vote on a proposal in its voting period (validators only)."
    )
    p.add_argument("proposal", metavar="PROPOSAL", type=parse_int)
    p.add_argument("option", metavar="OPTION", choices=VOTE_OPTIONS, help=" | ".join(VOTE_OPTIONS))
    command(p, lambda a: [M.MsgVote(a.proposal, a.option)])
    p = gov_sub.add_parser(
        "deposit", help="add to a proposal's deposit", description="Deposit AMOUNT ngonka on a proposal."
    )
    p.add_argument("proposal", metavar="PROPOSAL", type=parse_int)
    p.add_argument("amount", metavar="AMOUNT", type=parse_int)
    command(p, lambda a: [M.MsgDeposit(a.proposal, a.amount)])


def parse_int(text: str) -> int:
    """An integer argument (underscores allowed); argparse reports anything else."""
    try:
        return int(text.replace("_", ""), 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


class _Messages:
    """Lazy access to chain.tx's message classes (the CLI imports them only when signing)."""

    def __getattr__(self, name: str) -> Any:
        import chain.tx

        return getattr(chain.tx, name)


M = _Messages()


def cmd_tx(args: argparse.Namespace) -> int:
    """Sign, broadcast and wait for a transaction; exit 1 if the chain rejects it."""
    from .client import broadcast

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
        print(
            f"uocd: error: the chain rejected tx {result['tx_hash']}: {result.get('log') or result.get('code')}",
            file=sys.stderr,
        )
        return 1
    return 0


def render_tx_result(doc: dict[str, Any]) -> str:
    """One line about a broadcast transaction."""
    if doc.get("status") == "committed":
        verdict = "ok" if doc.get("code") == "ok" else f"rejected: {doc.get('code')}: {doc.get('log')}"
        return f"tx {doc['tx_hash']} committed at height {doc['height']}: {verdict}"
    return f"tx {doc['tx_hash']} is {doc.get('status')} (not committed yet; see uocd query tx {doc['tx_hash']})"


# -- queries ------------------------------------------------------------------------------------
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
    import urllib.parse

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


TEXT_RENDERERS: dict[str, Callable[[Any], str]] = {"pricing": render_pricing}


# -- devnet -------------------------------------------------------------------------------------
def add_devnet_commands(sub: argparse._SubParsersAction) -> None:
    """uocd devnet up|status|down|chaos."""
    from devnet.devnet import __doc__ as devnet_doc

    up = sub.add_parser(
        "up",
        help="create and start a local network",
        description="Create N node homes in D with one shared genesis and free loopback ports, start one "
        "node process each (logs in D/nI/node.log), wait until all have committed a block and print the "
        "endpoints, admin tokens and curl commands (also in D/devnet.json). On a running devnet it refuses; "
        "on a stopped one it restarts the same nodes.",
        epilog=devnet_doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    up.add_argument("--validators", type=parse_int, default=4, metavar="N", help="number of validators (default 4)")
    up.add_argument("--epoch-length", type=parse_int, default=10, metavar="L", help="blocks per epoch (default 10)")
    up.add_argument("--block-time", type=float, default=None, metavar="S", help="seconds between blocks (default 1)")
    up.add_argument("--dir", default="out/devnet", metavar="D", help="the devnet directory (default out/devnet)")
    up.add_argument(
        "--scenario",
        metavar="SCENARIO.toml",
        default=None,
        help="shape the devnet by a scenario (its validators, stakes, params and keys; --validators and "
        "--epoch-length are ignored, --block-time defaults to 0.2) for `devnet simulate --engine network --dir D`",
    )
    add_output_option(up)
    up.set_defaults(func=cmd_devnet_up)
    status = sub.add_parser(
        "status", help="each node's height, app hash, epoch and price", description="Show each node's state."
    )
    status.add_argument("--dir", default="out/devnet", metavar="D", help="the devnet directory (default out/devnet)")
    add_output_option(status)
    status.set_defaults(func=cmd_devnet_status)
    down = sub.add_parser(
        "down",
        help="stop the nodes",
        description="Stop every node (SIGTERM, then SIGKILL after a grace period); the homes stay, so "
        "`up` restarts the same chain. Delete D to start afresh.",
    )
    down.add_argument("--dir", default="out/devnet", metavar="D", help="the devnet directory (default out/devnet)")
    add_output_option(down)
    down.set_defaults(func=cmd_devnet_down)
    from devnet.chaos import __doc__ as chaos_doc

    chaos = sub.add_parser(
        "chaos",
        help="a devnet under load and seeded faults, then a verdict",
        description="Start N validators (each in its own network namespace when allowed, else behind a TCP "
        "fault relay), load them with price votes, governance and /v1/pricing reads, inject seeded faults "
        "(kill, pause, wipe, partition, loss, delay) one at a time, heal, and check that every node agrees, "
        "no committed transaction is lost and the epoch prices match the committed votes. Exits 1 on a failed "
        "verdict. Needs root for namespaces.",
        epilog=chaos_doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    chaos.add_argument("--validators", type=parse_int, default=4, metavar="N", help="validators, 4 to 7 (default 4)")
    chaos.add_argument("--seed", type=parse_int, default=1, metavar="S", help="the faults' seed (default 1)")
    chaos.add_argument("--duration", type=float, default=120.0, metavar="SECONDS", help="run length (default 120)")
    chaos.add_argument(
        "--fabric",
        choices=("auto", "netns", "proxy"),
        default="auto",
        help="network faults by namespaces and kernel rules (netns), by a TCP relay (proxy), or netns with a "
        "loud fallback to the relay (auto, the default)",
    )
    chaos.add_argument("--no-faults", action="store_true", help="load only (a soak run)")
    chaos.add_argument(
        "--dir", default="out/chaos", metavar="D", help="where the homes and chaos.json go (new or empty)"
    )
    add_output_option(chaos)
    chaos.set_defaults(func=cmd_devnet_chaos)


def cmd_devnet_up(args: argparse.Namespace) -> int:
    """uocd devnet up."""
    from devnet.devnet import format_endpoints, up

    block_time = args.block_time if args.block_time is not None else (0.2 if args.scenario else 1.0)
    if not block_time > 0:
        raise NodeError(f"--block-time must be positive, got {block_time}")
    echo = (lambda line: print(line, file=sys.stderr)) if args.output == "json" else print
    if args.scenario:
        from devnet.network import up_scenario
        from devnet.scenario import load_scenario

        state = up_scenario(load_scenario(args.scenario), Path(args.dir), int(block_time * 1000))
    else:
        state = up(
            Path(args.dir), args.validators, epoch_length=args.epoch_length, block_ms=int(block_time * 1000), echo=echo
        )
    return emit(args, state, lambda s: f"devnet of {len(s['nodes'])} nodes up in {s['dir']}\n" + format_endpoints(s))


def cmd_devnet_status(args: argparse.Namespace) -> int:
    """uocd devnet status."""
    from devnet.devnet import collect_status

    return emit(args, {"nodes": collect_status(Path(args.dir))}, lambda d: render_rows(d["nodes"]))


def cmd_devnet_down(args: argparse.Namespace) -> int:
    """uocd devnet down."""
    from devnet.devnet import stop_devnet

    stopped = stop_devnet(Path(args.dir))
    return emit(
        args,
        {"stopped": stopped},
        lambda d: (
            f"stopped {len(d['stopped'])} node(s): {', '.join(d['stopped'])}" if d["stopped"] else "no node was running"
        ),
    )


def cmd_devnet_chaos(args: argparse.Namespace) -> int:
    """uocd devnet chaos; exit 1 on a failed verdict."""
    from devnet.chaos import ChaosConfig, format_summary, run_chaos

    config = ChaosConfig(
        validators=args.validators,
        seed=args.seed,
        duration_s=args.duration,
        fabric=args.fabric,
        faults=not args.no_faults,
    )
    echo = (
        (lambda line: print(line, file=sys.stderr, flush=True))
        if args.output == "json"
        else (lambda line: print(line, flush=True))
    )
    summary = run_chaos(Path(args.dir), config, echo=echo)
    emit(args, summary, format_summary)
    return 0 if summary["ok"] else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run uocd; a failure prints one line and exits non-zero."""
    from devnet.errors import DevnetError

    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_level, args.log_format)
    try:
        return args.func(args)
    except BrokenPipeError:  # the reader went away (`uocd … | head`): stop quietly, like other tools
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except (ChainError, DevnetError, NodeError, OSError) as exc:
        print(f"uocd: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("uocd: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
