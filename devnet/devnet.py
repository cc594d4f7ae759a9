"""A local network of `uocd start` processes in one directory: `uocd devnet up|status|down`.

    D/devnet.json   the nodes: name, home, pid, gRPC, public and admin API addresses, admin token
    D/nI/           node I's home (config.toml, keys, genesis.json, data/); its log is D/nI/node.log

`up` creates the homes with one shared genesis and free loopback ports (gRPC, public and admin
HTTP), starts one detached process per node (its own process group), waits until every node has
committed a block and writes devnet.json. Run again on a running devnet it refuses; on a stopped
one (after `down`, or a reboot) it restarts the same nodes, whose chain goes on where it stopped.
`down` sends SIGTERM to each node's process group, then SIGKILL after a grace period.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chain.crypto import PrivateKey
from chain.encoding import describe_json_error
from chain.errors import InvalidGenesis
from chain.params import DEFAULT_PARAMS, Params
from node.client import ApiError, Client
from node.config import (
    ADMIN_TOKEN_FILE,
    GENESIS_FILE,
    collect_genesis,
    compute_loopback_timeouts,
    compute_peer_address,
    find_free_port,
    init_home,
    load_home,
    update_config,
    write_json,
)
from node.secret_files import replace_secret

from .errors import DevnetError
from .launch import spawn_node

STATE_FILE = "devnet.json"
READY_TIMEOUT = 60.0
STOP_GRACE = 10.0


def free_port() -> int:
    """A TCP port free on loopback right now."""
    return find_free_port("127.0.0.1")


@dataclass(frozen=True)
class NodeSpec:
    """A node to create: its name and, optionally, its validator key (else a random one)."""

    name: str
    key: PrivateKey | None = None


def compute_devnet_chain_id() -> str:
    """A chain id of its own for a new devnet (`uoc-devnet-` and 8 random hex digits): a transaction signed
    for one devnet never verifies on another."""
    return f"uoc-devnet-{secrets.token_hex(4)}"


def create_homes(
    root: Path,
    specs: list[NodeSpec],
    *,
    epoch_length: int = DEFAULT_PARAMS.epoch_length,
    block_ms: int = 1000,
    genesis: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
) -> list[Path]:
    """Node homes in root/<name> on free loopback ports, every node a peer of the others; one shared
    genesis: the homes' own validators (collected) with `params` over the defaults, or `genesis` as given."""
    homes = []
    chain_id = compute_devnet_chain_id()
    for spec in specs:
        home = root / spec.name
        init_home(
            home,
            spec.name,
            chain_id=chain_id,
            epoch_length=epoch_length,
            listen=f"127.0.0.1:{free_port()}",
            block_interval_ms=1,
            validator_key=spec.key,
        )
        update_config(
            home,
            timeouts=compute_loopback_timeouts(block_ms),
            status_interval_ms=200,
            api_public=f"127.0.0.1:{free_port()}",
            api_admin=f"127.0.0.1:{free_port()}",
        )
        homes.append(home)
    if genesis is None:
        collected = collect_genesis(homes)
        if params:
            doc = {**collected, "params": {**collected["params"], **params}}
            try:
                Params.from_json(doc["params"])
            except InvalidGenesis as exc:
                raise DevnetError(f"devnet params: {exc}") from None
            for home in homes:
                write_json(home / GENESIS_FILE, doc)
    else:
        addresses = [compute_peer_address(load_home(h)) for h in homes]
        for home, address in zip(homes, addresses):
            write_json(home / GENESIS_FILE, genesis)
            update_config(home, peers=tuple(a for a in addresses if a != address))
    return homes


def describe_node(home: Path, pid: int | None) -> dict[str, Any]:
    """A node's entry of devnet.json."""
    loaded = load_home(home)
    key = loaded.validator_key
    return {
        "name": home.name,
        "home": str(home),
        "pid": pid,
        "grpc": loaded.config.listen,
        "public": f"http://{loaded.config.api_public}",
        "admin": f"http://{loaded.config.api_admin}",
        "admin_token": (home / ADMIN_TOKEN_FILE).read_text().strip(),
        "validator_address": key.address if key else None,
    }


def start_node(home: Path) -> int:
    """Start `uocd start --home HOME` detached (see spawn_node); its pid."""
    return spawn_node(home).pid


def is_alive(pid: int | None, home: str | None = None) -> bool:
    """True if `pid` runs (not a zombie) and, given `home`, is the node of that home: its command line has
    the argument pair `--home HOME` exactly (`devnet.launch.node_argv`), so no other process, and no node of
    another home, is taken for it (a devnet.json is a file: its pids and homes are checked, never trusted)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
        stat = Path(f"/proc/{pid}/stat").read_text()
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (ProcessLookupError, PermissionError, FileNotFoundError):
        return False
    if stat.rpartition(")")[2].split()[0] == "Z":
        reap(pid)
        return False
    if home is None:
        return True
    wanted = [b"--home", os.fsencode(home)]
    return bool(home) and any(argv[i : i + 2] == wanted for i in range(len(argv) - 1))


def reap(pid: int) -> None:
    """Collect a child's exit status if it is our child (no zombie left)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def read_state(root: Path) -> dict[str, Any] | None:
    """devnet.json of `root`, or None if there is none."""
    path = root / STATE_FILE
    if not path.exists():
        return None
    try:
        state = json.loads(path.read_bytes())
    except (ValueError, RecursionError) as exc:
        raise DevnetError(f"{path} is not a devnet state file: {describe_json_error(exc)}") from None
    check_state(path, state)
    return state


NODE_FIELDS = ("name", "home", "public", "admin", "admin_token", "grpc")  # strings every node of devnet.json has


def check_state(path: Path, state: Any) -> None:
    """DevnetError naming the fault unless `state` has the shape `write_state` gives devnet.json: a `nodes`
    list of objects, each with NODE_FIELDS as non-empty strings (`home` an absolute path) and `pid` an
    integer or null."""
    nodes = state.get("nodes") if isinstance(state, dict) else None
    if not isinstance(nodes, list):
        raise DevnetError(f"{path} is not a devnet state file: it needs a list of nodes")
    for i, node in enumerate(nodes):
        where = f"{path}: nodes[{i}]"
        if not isinstance(node, dict):
            raise DevnetError(f"{where} is not an object")
        for name in NODE_FIELDS:
            if not isinstance(node.get(name), str) or not node[name]:
                raise DevnetError(f"{where}.{name} must be a non-empty string")
        if not Path(node["home"]).is_absolute():
            raise DevnetError(f"{where}.home must be an absolute path, got {node['home'][:80]!r}")
        pid = node.get("pid")
        if pid is not None and (type(pid) is not int or not 0 < pid < 2**31):
            raise DevnetError(f"{where}.pid must be a process id or null")


def write_state(root: Path, state: dict[str, Any]) -> None:
    """Write devnet.json, mode 0600 (it holds the admin tokens)."""
    replace_secret(root / STATE_FILE, json.dumps(state, indent=2) + "\n")


def running_nodes(state: dict[str, Any]) -> list[dict[str, Any]]:
    """The nodes of a devnet whose process runs."""
    return [n for n in state["nodes"] if is_alive(n.get("pid"), n["home"])]


def fetch_status(node: dict[str, Any], timeout: float = 2.0) -> dict[str, Any] | None:
    """A node's /v1/status, or None if it does not answer."""
    try:
        return Client(node["public"], timeout=timeout).get("/v1/status")
    except ApiError:
        return None


def wait_ready(
    state: dict[str, Any], *, min_height: int = 1, timeout: float = READY_TIMEOUT, what: str = "committed a block"
) -> None:
    """Wait until every node answers /v1/status at `min_height` or more; DevnetError naming the node
    (and the end of its log) if one dies or the timeout passes."""
    deadline = time.monotonic() + timeout
    pending = list(state["nodes"])
    while pending:
        for node in list(pending):
            if not is_alive(node.get("pid"), node["home"]):
                raise DevnetError(f"node {node['name']} exited; its log: {tail(Path(node['home']) / 'node.log')}")
            status = fetch_status(node, timeout=1.0)
            if status is not None and status["height"] >= min_height:
                pending.remove(node)
        if pending and time.monotonic() > deadline:
            names = ", ".join(n["name"] for n in pending)
            raise DevnetError(f"timed out after {timeout:g} s waiting until {names} {what}")
        if pending:
            time.sleep(0.1)


def tail(path: Path, lines: int = 3) -> str:
    """The last lines of a log file, joined on one line."""
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except FileNotFoundError:
        return "(no log)"
    return " | ".join(text[-lines:]) or "(empty)"


def start_devnet(root: Path, homes: list[Path], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Start a node process per home, write devnet.json and wait until all have committed a block
    (stopping them all if one fails)."""
    state = {"dir": str(root), "nodes": [describe_node(h, start_node(h)) for h in homes], **(extra or {})}
    write_state(root, state)
    try:
        wait_ready(state)
    except BaseException:
        stop_devnet(root, grace=2.0)
        raise
    return state


def up(
    root: Path,
    validators: int,
    *,
    epoch_length: int = DEFAULT_PARAMS.epoch_length,
    block_ms: int = 1000,
    params: dict[str, Any] | None = None,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Create and start a devnet in `root` (or restart a stopped one); DevnetError if it runs.
    `params` override genesis params other than `epoch_length` (e.g. `{"voting_period": 60}`)."""
    root = root.resolve()
    state = read_state(root)
    if state is not None:
        alive = running_nodes(state)
        if alive:
            raise DevnetError(
                f"a devnet is already running in {root} ({len(alive)} of {len(state['nodes'])} nodes up); "
                f"see `uocd devnet status --dir {root}`, or stop it with `uocd devnet down --dir {root}`"
            )
        echo(f"restarting the stopped devnet in {root} ({len(state['nodes'])} nodes; --validators is ignored)")
        homes = [Path(n["home"]) for n in state["nodes"]]
        extra = {k: v for k, v in state.items() if k not in ("dir", "nodes")}
        return start_devnet(root, homes, extra)
    if validators < 1:
        raise DevnetError(f"--validators must be at least 1, got {validators}")
    if epoch_length < 1 or block_ms < 1:
        raise DevnetError("--epoch-length and --block-time must be positive")
    if root.exists() and any(root.iterdir()):
        raise DevnetError(f"{root} exists and is not a devnet directory (no {STATE_FILE}); pick another --dir")
    root.mkdir(parents=True, exist_ok=True)
    homes = create_homes(
        root,
        [NodeSpec(f"n{i}") for i in range(validators)],
        epoch_length=epoch_length,
        block_ms=block_ms,
        params=params,
    )
    return start_devnet(root, homes, {"epoch_length": epoch_length, "block_ms": block_ms})


def stop_devnet(root: Path, *, grace: float = STOP_GRACE) -> list[str]:
    """SIGTERM every node's process group, SIGKILL those still running after `grace` seconds; the
    names of the nodes stopped. devnet.json stays (pids cleared) so `up` can restart it."""
    root = root.resolve()
    state = read_state(root)
    if state is None:
        raise DevnetError(f"no devnet in {root} ({STATE_FILE} is missing)")
    alive = running_nodes(state)
    for node in alive:
        signal_group(node["pid"], signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(is_alive(n["pid"], n["home"]) for n in alive) and time.monotonic() < deadline:
        time.sleep(0.05)
    for node in alive:
        if is_alive(node["pid"], node["home"]):
            signal_group(node["pid"], signal.SIGKILL)
    while any(is_alive(n["pid"], n["home"]) for n in alive):
        time.sleep(0.05)
    for node in state["nodes"]:
        node["pid"] = None
    write_state(root, state)
    return [n["name"] for n in alive]


def signal_group(pid: int, sig: int) -> None:
    """Send `sig` to the process group led by `pid` (or to pid alone if it leads none)."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, sig)


def collect_status(root: Path) -> list[dict[str, Any]]:
    """Each node's name, state (up/down) and, if it answers, height, app hash, epoch and price."""
    state = read_state(root.resolve())
    if state is None:
        raise DevnetError(f"no devnet in {root.resolve()} ({STATE_FILE} is missing)")
    rows = []
    for node in state["nodes"]:
        alive = is_alive(node.get("pid"), node["home"])
        status = fetch_status(node) if alive else None
        row: dict[str, Any] = {"name": node["name"], "state": "up" if status else ("starting" if alive else "down")}
        if status:
            row.update({k: status[k] for k in ("height", "app_hash", "epoch", "unit_of_compute_price")})
        rows.append(row)
    return rows


def format_table(rows: list[list[str]]) -> str:
    """Rows of cells as left-aligned columns."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def format_endpoints(state: dict[str, Any]) -> str:
    """The endpoint table, the first node's dashboard address and ready-to-paste curl commands for it."""
    rows = [["node", "public", "admin", "admin token", "grpc", "validator"]]
    for n in state["nodes"]:
        rows.append([n["name"], n["public"], n["admin"], n["admin_token"], n["grpc"], n["validator_address"] or "-"])
    n0 = state["nodes"][0]
    auth = f'-H "Authorization: Bearer {n0["admin_token"]}"'
    json_h = '-H "Content-Type: application/json"'
    admin = n0["admin"]
    lines = [
        format_table(rows),
        "",
        f"live dashboard (open in a browser): {n0['public']}/",
        "",
        f"try it (node {n0['name']}):",
        f"  curl {n0['public']}/v1/pricing",
        f'  curl -X POST {auth} {json_h} -d \'{{"price": 1000, "denom": "icoin"}}\' '
        f"{admin}/v1/admin/unit-of-compute-price-proposal",
        f"  curl {auth} {admin}/v1/admin/unit-of-compute-price-proposal",
        f'  curl -X POST {auth} {json_h} -d \'{{"id": "model-alpha", "units_of_compute_per_token": 10}}\' '
        f"{admin}/v1/admin/models",
    ]
    return "\n".join(lines)


def format_env(state: dict[str, Any], name: str | None = None) -> str:
    """Shell lines exporting one node's endpoints and admin token (the first node's by default), for
    `eval "$(uocd devnet env NAME)"`: UOC_NODE (public API), UOC_ADMIN, UOC_ADMIN_TOKEN, UOC_GRPC, UOC_HOME."""
    nodes = {n["name"]: n for n in state["nodes"]}
    node = state["nodes"][0] if name is None else nodes.get(name)
    if node is None:
        raise DevnetError(f"no node {name!r} in this devnet; its nodes: {', '.join(nodes)}")
    values = {
        "UOC_NODE": node["public"],
        "UOC_ADMIN": node["admin"],
        "UOC_ADMIN_TOKEN": node["admin_token"],
        "UOC_GRPC": node["grpc"],
        "UOC_HOME": node["home"],
    }
    return "\n".join(f"export {key}={shlex.quote(str(value))}" for key, value in values.items())


__all__ = [
    "NodeSpec",
    "collect_status",
    "create_homes",
    "format_endpoints",
    "format_env",
    "read_state",
    "start_devnet",
    "stop_devnet",
    "up",
    "wait_ready",
]
