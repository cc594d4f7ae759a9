"""A node home: `config.toml`, keys, `admin_token` and a Cosmos-style `genesis.json`.

    HOME/config.toml          listen address, peers, timeouts, block interval, limits
    HOME/genesis.json         {chain_id, genesis_time, params, accounts, validators}
    HOME/node_key.json        the node's identity key (mode 0600); its node id names it to peers
    HOME/node_tls_key.pem     the TLS key bound to the node key, and its certificate (node.tls)
    HOME/node_tls_cert.pem
    HOME/validator_key.json   the key that signs votes and proposals (mode 0600)
    HOME/validator_state.json what that key last signed (the sign state, beside the key: node.sign_state_file)
    HOME/admin_token          the admin API bearer token (mode 0600)
    HOME/data/node.db         the SQLite store (state, blocks, commits, validator sets, evidence)

Several homes share one genesis: `uocd init` each home, then `uocd genesis collect HOME…` merges
their validators and accounts into one genesis.json, writes it to every home and lists every other
home as a peer, NODE_ID@HOST:PORT. (Or copy one genesis.json to every home and set `grpc.peers`.)
"""

from __future__ import annotations

import json
import os
import secrets
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chain.crypto import PrivateKey, is_valid_address
from chain.errors import ChainError
from chain.fields import FieldError, IdentifierKind
from chain.params import DEFAULT_PARAMS
from chain.tx import is_decimal

from .consensus import SignState, Timeouts
from .errors import ConfigError
from .secret_files import read_secret, write_secret
from .sign_state_file import SIGN_STATE_FILE, save_sign_state
from .tls import TLS_CERT_FILE, TLS_KEY_FILE, compute_node_id, load_or_create_identity, parse_peer_address

MONIKER = IdentifierKind("a moniker", 64, "-_.", "node0")
CONFIG_FILE = "config.toml"
GENESIS_FILE = "genesis.json"
NODE_KEY_FILE = "node_key.json"
VALIDATOR_KEY_FILE = "validator_key.json"
ADMIN_TOKEN_FILE = "admin_token"
DB_FILE = "data/node.db"


@dataclass(frozen=True)
class NodeConfig:
    """The settings of one node (config.toml)."""

    moniker: str
    listen: str = "127.0.0.1:26656"
    peers: tuple[str, ...] = ()
    max_message_bytes: int = 16 * 1024 * 1024
    rpc_timeout_ms: int = 2000
    status_interval_ms: int = 500
    timeouts: Timeouts = field(default_factory=Timeouts)
    double_sign_check_height: int = 2
    mempool_max_txs: int = 20_000
    mempool_max_bytes: int = 64 * 1024 * 1024
    mempool_max_txs_per_sender: int = 100
    mempool_max_bytes_per_sender: int = 1024 * 1024
    min_gas_price: str = ""  # ngonka per gas this node admits at least, besides the chain's ("": the chain's)
    block_max_txs: int = 5_000
    block_max_bytes: int = 4 * 1024 * 1024
    api_public: str = "127.0.0.1:26650"
    api_admin: str = "127.0.0.1:26651"
    api_max_connections: int = 512
    api_max_connections_per_client: int = 128
    api_request_read_timeout_ms: int = 5000
    api_max_header_bytes: int = 8190
    api_max_headers: int = 64
    api_rate_limit_per_s: int = 100
    api_rate_limit_burst: int = 200
    api_rate_limit_loopback: bool = False
    api_rate_limit_ipv6_prefix: int = 64
    grpc_max_concurrent_streams: int = 100
    grpc_max_connection_idle_ms: int = 300_000
    validator_set_retention: int = 100_000


def render_config(config: NodeConfig) -> str:
    """config.toml text for `config`."""
    t = config.timeouts
    peers = ", ".join(json.dumps(p) for p in config.peers)
    return f"""# uoc node configuration (written by uocd init; edit freely)
moniker = {json.dumps(config.moniker)}

[grpc]
# this node's gRPC server (host:port) and the other nodes, NODE_ID@HOST:PORT (mutual TLS: a peer must present
# a certificate bound to that node id, and only these peers may call this node)
listen = {json.dumps(config.listen)}
peers = [{peers}]
max_message_bytes = {config.max_message_bytes}
# the deadline of every call to a peer, and how often peers' status is polled (block sync)
rpc_timeout_ms = {config.rpc_timeout_ms}
status_interval_ms = {config.status_interval_ms}
# abuse limits: concurrent calls (HTTP/2 streams) per connection; an idle connection is closed after this long
max_concurrent_streams = {config.grpc_max_concurrent_streams}
max_connection_idle_ms = {config.grpc_max_connection_idle_ms}

[consensus]
# the block interval is the commit timeout: the pause after each block
block_interval_ms = {t.commit_ms}
# round timeouts: base + delta * round
propose_ms = {t.propose_ms}
propose_delta_ms = {t.propose_delta_ms}
prevote_ms = {t.prevote_ms}
prevote_delta_ms = {t.prevote_delta_ms}
precommit_ms = {t.precommit_ms}
precommit_delta_ms = {t.precommit_delta_ms}
# when HOME/validator_state.json (what the validator key last signed) is missing at start, sign nothing
# until this many heights have been decided by the others (0: sign at once); 2 covers a validator wiped
# and restarted while its peers were still at the height it had signed last
double_sign_check_height = {config.double_sign_check_height}

[mempool]
max_txs = {config.mempool_max_txs}
max_bytes = {config.mempool_max_bytes}
# per sender, besides the node's own txs and validators' price votes (the priority lane)
max_txs_per_sender = {config.mempool_max_txs_per_sender}
max_bytes_per_sender = {config.mempool_max_bytes_per_sender}
# the least fee per gas (ngonka, a decimal string such as "0.05") this node admits, besides the chain's
# min_gas_price; "" admits what the chain does
min_gas_price = {json.dumps(config.min_gas_price)}

[block]
max_txs = {config.block_max_txs}
max_bytes = {config.block_max_bytes}

[api]
# HTTP API listeners: public (reads, tx submission) and admin (every request needs Bearer HOME/admin_token)
public = {json.dumps(config.api_public)}
admin = {json.dumps(config.api_admin)}
# abuse limits (both listeners): open connections in total and per client IP (more are answered 503 and closed);
# a connection whose next request (head and body) has not arrived this long after it opened or after its
# previous response is closed (slow-loris); request line and each header at most max_header_bytes, at most
# max_headers headers (else 431)
max_connections = {config.api_max_connections}
max_connections_per_client = {config.api_max_connections_per_client}
request_read_timeout_ms = {config.api_request_read_timeout_ms}
max_header_bytes = {config.api_max_header_bytes}
max_headers = {config.api_max_headers}
# the public listener's per-client-IP rate limit: a token bucket of rate_limit_burst requests refilled at
# rate_limit_per_s (0 disables); over it, 429 with Retry-After. Loopback clients (a devnet's load
# generators) are exempt unless rate_limit_loopback = true. The admin listener is not rate limited.
rate_limit_per_s = {config.api_rate_limit_per_s}
rate_limit_burst = {config.api_rate_limit_burst}
rate_limit_loopback = {"true" if config.api_rate_limit_loopback else "false"}
# IPv6 clients share one bucket per network of this prefix length (1..128; 64: one bucket per /64, the
# block a single host or home router usually holds); IPv4 clients have one bucket per address
rate_limit_ipv6_prefix = {config.api_rate_limit_ipv6_prefix}

[storage]
# heights back from the tip whose validator set stays in data/node.db (older sets are pruned); at least 2
validator_set_retention = {config.validator_set_retention}
"""


def _get(doc: dict[str, Any], path: str, kind: type, default: Any, *, minimum: int = 1) -> Any:
    """A config value by dotted path, type-checked (integers at least `minimum`)."""
    node: Any = doc
    *parents, name = path.split(".")
    for part in parents:
        node = node.get(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{CONFIG_FILE}: [{part}] must be a table")
    value = node.get(name, default)
    if kind is int and (type(value) is not int or value < minimum):
        what = "a positive integer" if minimum == 1 else f"an integer of at least {minimum}"
        raise ConfigError(f"{CONFIG_FILE}: {path} must be {what}, got {value!r}")
    if kind is bool and type(value) is not bool:
        raise ConfigError(f"{CONFIG_FILE}: {path} must be true or false, got {value!r}")
    if kind is str and (not isinstance(value, str) or not value):
        raise ConfigError(f"{CONFIG_FILE}: {path} must be a non-empty string, got {value!r}")
    return value


def _get_gas_price(doc: dict[str, Any], default: str) -> str:
    """`[mempool] min_gas_price`: "" or a decimal string of ngonka per gas such as "0.05"."""
    value = (
        doc.get("mempool", {}).get("min_gas_price", default) if isinstance(doc.get("mempool", {}), dict) else default
    )
    if value != "" and not is_decimal(value):
        raise ConfigError(
            f'{CONFIG_FILE}: mempool.min_gas_price must be "" or a decimal string such as "0.05", got {value!r}'
        )
    return str(value)


def check_moniker(value: Any, where: str) -> str:
    """A node's name: 1 to 64 ASCII letters, digits and - _ . (it is served and shown as is); else ConfigError."""
    try:
        return MONIKER.check(value, where)
    except FieldError as exc:
        raise ConfigError(str(exc)) from None


def is_host_port(text: Any) -> bool:
    """True for "host:port" with a port in 1..65535 (0 allowed only for listening)."""
    if not isinstance(text, str) or ":" not in text:
        return False
    host, _, port = text.rpartition(":")
    return bool(host) and port.isascii() and port.isdigit() and len(port) <= 5 and 0 <= int(port) <= 65535


def parse_peers(peers: Any) -> list[str]:
    """grpc.peers checked: a list of distinct nodes' NODE_ID@HOST:PORT; ConfigError naming the bad entry."""
    if not isinstance(peers, list):
        raise ConfigError(f"{CONFIG_FILE}: grpc.peers must be a list of NODE_ID@HOST:PORT strings, got {peers!r}")
    seen: set[str] = set()
    for i, peer in enumerate(peers):
        try:
            node_id, _ = parse_peer_address(peer)
        except ValueError as exc:
            raise ConfigError(f"{CONFIG_FILE}: grpc.peers[{i}]: {exc}") from None
        if node_id in seen:
            raise ConfigError(f"{CONFIG_FILE}: grpc.peers lists node {node_id} twice")
        seen.add(node_id)
    return peers


def parse_config(text: str) -> NodeConfig:
    """NodeConfig from config.toml text; ConfigError naming the key on any bad value."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{CONFIG_FILE}: {exc}") from None
    d = NodeConfig(moniker="x")
    dt = d.timeouts
    listen = _get(doc, "grpc.listen", str, d.listen)
    if not is_host_port(listen):
        raise ConfigError(f"{CONFIG_FILE}: grpc.listen must be host:port, got {listen!r}")
    peers = parse_peers(doc.get("grpc", {}).get("peers", []))
    timeouts = Timeouts(
        propose_ms=_get(doc, "consensus.propose_ms", int, dt.propose_ms),
        propose_delta_ms=_get(doc, "consensus.propose_delta_ms", int, dt.propose_delta_ms),
        prevote_ms=_get(doc, "consensus.prevote_ms", int, dt.prevote_ms),
        prevote_delta_ms=_get(doc, "consensus.prevote_delta_ms", int, dt.prevote_delta_ms),
        precommit_ms=_get(doc, "consensus.precommit_ms", int, dt.precommit_ms),
        precommit_delta_ms=_get(doc, "consensus.precommit_delta_ms", int, dt.precommit_delta_ms),
        commit_ms=_get(doc, "consensus.block_interval_ms", int, dt.commit_ms),
    )
    config = NodeConfig(
        moniker=check_moniker(_get(doc, "moniker", str, None), f"{CONFIG_FILE}: moniker"),
        listen=listen,
        peers=tuple(peers),
        max_message_bytes=_get(doc, "grpc.max_message_bytes", int, d.max_message_bytes),
        rpc_timeout_ms=_get(doc, "grpc.rpc_timeout_ms", int, d.rpc_timeout_ms),
        status_interval_ms=_get(doc, "grpc.status_interval_ms", int, d.status_interval_ms),
        timeouts=timeouts,
        double_sign_check_height=_get(
            doc, "consensus.double_sign_check_height", int, d.double_sign_check_height, minimum=0
        ),
        mempool_max_txs=_get(doc, "mempool.max_txs", int, d.mempool_max_txs),
        mempool_max_bytes=_get(doc, "mempool.max_bytes", int, d.mempool_max_bytes),
        mempool_max_txs_per_sender=_get(doc, "mempool.max_txs_per_sender", int, d.mempool_max_txs_per_sender),
        mempool_max_bytes_per_sender=_get(doc, "mempool.max_bytes_per_sender", int, d.mempool_max_bytes_per_sender),
        min_gas_price=_get_gas_price(doc, d.min_gas_price),
        block_max_txs=_get(doc, "block.max_txs", int, d.block_max_txs),
        block_max_bytes=_get(doc, "block.max_bytes", int, d.block_max_bytes),
        api_public=_get(doc, "api.public", str, d.api_public),
        api_admin=_get(doc, "api.admin", str, d.api_admin),
        api_max_connections=_get(doc, "api.max_connections", int, d.api_max_connections),
        api_max_connections_per_client=_get(
            doc, "api.max_connections_per_client", int, d.api_max_connections_per_client
        ),
        api_request_read_timeout_ms=_get(doc, "api.request_read_timeout_ms", int, d.api_request_read_timeout_ms),
        api_max_header_bytes=_get(doc, "api.max_header_bytes", int, d.api_max_header_bytes, minimum=256),
        api_max_headers=_get(doc, "api.max_headers", int, d.api_max_headers),
        api_rate_limit_per_s=_get(doc, "api.rate_limit_per_s", int, d.api_rate_limit_per_s, minimum=0),
        api_rate_limit_burst=_get(doc, "api.rate_limit_burst", int, d.api_rate_limit_burst),
        api_rate_limit_loopback=_get(doc, "api.rate_limit_loopback", bool, d.api_rate_limit_loopback),
        api_rate_limit_ipv6_prefix=_get(doc, "api.rate_limit_ipv6_prefix", int, d.api_rate_limit_ipv6_prefix),
        grpc_max_concurrent_streams=_get(doc, "grpc.max_concurrent_streams", int, d.grpc_max_concurrent_streams),
        grpc_max_connection_idle_ms=_get(doc, "grpc.max_connection_idle_ms", int, d.grpc_max_connection_idle_ms),
        validator_set_retention=_get(doc, "storage.validator_set_retention", int, d.validator_set_retention, minimum=2),
    )
    if config.api_rate_limit_ipv6_prefix > 128:
        raise ConfigError(
            f"{CONFIG_FILE}: api.rate_limit_ipv6_prefix must be 1..128, got {config.api_rate_limit_ipv6_prefix}"
        )
    for key, value in (("api.public", config.api_public), ("api.admin", config.api_admin)):
        if not is_host_port(value):
            raise ConfigError(f"{CONFIG_FILE}: {key} must be host:port, got {value!r}")
    if 2 * config.block_max_bytes > config.max_message_bytes:
        raise ConfigError(
            f"{CONFIG_FILE}: block.max_bytes ({config.block_max_bytes}) must be at most half of "
            f"grpc.max_message_bytes ({config.max_message_bytes}): a proposal also carries its header and last commit"
        )
    return config


# -- keys -------------------------------------------------------------------------------------
def render_key(key: PrivateKey) -> str:
    """A key file: address, public key and private seed (hex)."""
    return json.dumps({"address": key.address, "pubkey": key.pubkey.hex(), "seed": key.seed().hex()}, indent=2) + "\n"


def load_key(path: Path) -> PrivateKey:
    """A key from a key file; ConfigError if it is missing, inconsistent, a link or readable by others."""
    try:
        doc = json.loads(read_secret(path))
        key = PrivateKey(bytes.fromhex(doc["seed"]))
    except FileNotFoundError:
        raise ConfigError(f"{path} is missing (run uocd init)") from None
    except (ValueError, KeyError, TypeError, ChainError) as exc:  # ChainError: a seed of the wrong size
        raise ConfigError(f"{path} is not a key file: {exc}") from None
    if doc.get("address") != key.address:
        raise ConfigError(f"{path}: the address does not match the seed")
    return key


# -- genesis ----------------------------------------------------------------------------------
def compute_genesis_time_ms(genesis: dict[str, Any]) -> int:
    """genesis_time (RFC 3339, UTC) in milliseconds since the epoch; ConfigError if malformed."""
    text = genesis.get("genesis_time")
    try:
        moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{GENESIS_FILE}: genesis_time must be an RFC 3339 time, got {text!r}") from None
    if moment.tzinfo is None:
        raise ConfigError(f"{GENESIS_FILE}: genesis_time needs a time zone (e.g. Z), got {text!r}")
    return int(moment.timestamp() * 1000)


def check_genesis(genesis: Any) -> dict[str, Any]:
    """The node-level checks of genesis.json (the chain checks the rest at init_chain)."""
    if not isinstance(genesis, dict):
        raise ConfigError(f"{GENESIS_FILE} must hold a JSON object")
    for name in ("chain_id", "genesis_time", "validators"):
        if name not in genesis:
            raise ConfigError(f"{GENESIS_FILE}: {name} is missing")
    compute_genesis_time_ms(genesis)
    validators = genesis["validators"]
    if not isinstance(validators, list) or not validators:
        raise ConfigError(f"{GENESIS_FILE}: validators must be a non-empty list")
    for i, v in enumerate(validators):
        if not isinstance(v, dict) or not is_valid_address(v.get("address")):
            raise ConfigError(f"{GENESIS_FILE}: validators[{i}].address must be a uoc1… address")
    return genesis


def make_genesis(chain_id: str, validator: str, stake: int, balance: int, epoch_length: int) -> dict[str, Any]:
    """A one-validator genesis (the Cosmos shape: chain_id, genesis_time, params, accounts, validators), with
    every param at the chain's default but `epoch_length`."""
    return {
        "chain_id": chain_id,
        "genesis_time": datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "params": {**DEFAULT_PARAMS.to_json(), "epoch_length": epoch_length},
        "accounts": [{"address": validator, "balance": balance}],
        "validators": [{"address": validator, "stake": stake}],
    }


def write_json(path: Path, doc: Any) -> None:
    """Write indented JSON."""
    path.write_text(json.dumps(doc, indent=2) + "\n")


# -- homes ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Home:
    """A loaded node home."""

    path: Path
    config: NodeConfig
    genesis: dict[str, Any]
    node_key: PrivateKey
    validator_key: PrivateKey | None
    admin_token: str | None = None  # HOME/admin_token, stripped; None if the file is absent or empty

    @property
    def db_path(self) -> Path:
        return self.path / DB_FILE

    @property
    def sign_state_path(self) -> Path:
        """The validator's sign state, beside its key."""
        return self.path / SIGN_STATE_FILE


HOME_SECRETS = (NODE_KEY_FILE, TLS_KEY_FILE, TLS_CERT_FILE, VALIDATOR_KEY_FILE, SIGN_STATE_FILE, ADMIN_TOKEN_FILE)


def get_kept_files(home: Path) -> list[str]:
    """The key, token and sign state files already in `home`: those `init_home` keeps unless told to overwrite."""
    return [name for name in HOME_SECRETS if os.path.lexists(home / name)]


def load_kept_key(path: Path) -> PrivateKey | None:
    """The key in `path` if there is one (checked: a regular owner-only key file), else None."""
    return load_key(path) if os.path.lexists(path) else None


def init_home(
    home: Path,
    moniker: str,
    *,
    chain_id: str = "uoc-devnet-1",
    key_name: str | None = None,
    validator_key: PrivateKey | None = None,
    stake: int = 100,
    balance: int = 10**12,
    epoch_length: int = DEFAULT_PARAMS.epoch_length,
    listen: str = "127.0.0.1:26656",
    block_interval_ms: int = 1000,
    api_public: str | None = None,
    api_admin: str | None = None,
    overwrite: bool = False,
) -> Home:
    """Create a node home; ConfigError if it already holds one (config.toml), unless `overwrite`.

    Keys, the admin token and the sign state already in the home are kept (checked first, before
    anything is written); `overwrite` deletes them and makes new ones. The validator key is the one
    given, else derived from `key_name`, else random. The API listeners default to 26650/26651 with
    the default gRPC address, and to free loopback ports on the gRPC host otherwise (so several homes
    on one machine never collide)."""
    home = Path(home)
    if (home / CONFIG_FILE).exists() and not overwrite:
        raise ConfigError(
            f"{home / CONFIG_FILE} already exists; refusing to overwrite a node home "
            "(--overwrite replaces it and its keys)"
        )
    check_moniker(moniker, "the moniker")
    if not is_host_port(listen):
        raise ConfigError(f"the listen address must be host:port, got {listen!r}")
    api_public, api_admin = compute_api_addresses(listen, api_public, api_admin)
    if overwrite:
        for name in (CONFIG_FILE, GENESIS_FILE, *HOME_SECRETS):
            (home / name).unlink(missing_ok=True)
    node_key, kept_validator_key = load_kept_key(home / NODE_KEY_FILE), load_kept_key(home / VALIDATOR_KEY_FILE)
    if node_key is None and any(os.path.lexists(home / name) for name in (TLS_KEY_FILE, TLS_CERT_FILE)):
        raise ConfigError(
            f"{home / TLS_KEY_FILE}: a TLS identity without its {NODE_KEY_FILE}; delete {TLS_KEY_FILE} and "
            f"{TLS_CERT_FILE}, or pass --overwrite"
        )
    if os.path.lexists(home / ADMIN_TOKEN_FILE):
        read_secret(home / ADMIN_TOKEN_FILE)  # a link or a wide mode is refused before anything is written
    (home / "data").mkdir(parents=True, exist_ok=True)
    if node_key is None:
        node_key = PrivateKey.generate()
        write_secret(home / NODE_KEY_FILE, render_key(node_key))
    load_or_create_identity(home, node_key)
    if kept_validator_key is None:
        kept_validator_key = validator_key or (PrivateKey.from_name(key_name) if key_name else PrivateKey.generate())
        write_secret(home / VALIDATOR_KEY_FILE, render_key(kept_validator_key))
        save_sign_state(home / SIGN_STATE_FILE, SignState())  # a new validator has signed nothing
    if not os.path.lexists(home / ADMIN_TOKEN_FILE):
        write_secret(home / ADMIN_TOKEN_FILE, secrets.token_hex(32) + "\n")
    timeouts = Timeouts(commit_ms=block_interval_ms)
    config = NodeConfig(moniker=moniker, listen=listen, timeouts=timeouts, api_public=api_public, api_admin=api_admin)
    (home / CONFIG_FILE).write_text(render_config(config))
    genesis = make_genesis(chain_id, kept_validator_key.address, stake, balance, epoch_length)
    write_json(home / GENESIS_FILE, genesis)
    return load_home(home)


def compute_loopback_timeouts(block_ms: int) -> Timeouts:
    """Round timeouts for nodes on one machine (loopback), with blocks every `block_ms`."""
    return Timeouts(
        propose_ms=400,
        propose_delta_ms=200,
        prevote_ms=200,
        prevote_delta_ms=100,
        precommit_ms=200,
        precommit_delta_ms=100,
        commit_ms=block_ms,
    )


_handed_out_ports: set[int] = set()


def compute_listen_port_range(ephemeral: tuple[int, int]) -> range:
    """The ports to listen on: those outside the kernel's ephemeral range, which outgoing connections draw from."""
    low, high = ephemeral
    return range(10000, low) if low - 10000 >= 5000 else range(high + 1, 65536)


def read_ephemeral_port_range() -> tuple[int, int]:
    """The kernel's ephemeral port range (Linux's default when it cannot be read)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def find_free_port(host: str) -> int:
    """A TCP port free on `host` right now, outside the ephemeral range and not handed out before by this process.

    A port the kernel picks with bind(0) is an ephemeral one, and any outgoing connection may take
    it as its source port before the node binds it; ports below that range are only ever taken by
    a listener.
    """
    import random
    import socket

    candidates = compute_listen_port_range(read_ephemeral_port_range())
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.choice(candidates)
        if port in _handed_out_ports:
            continue
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
        _handed_out_ports.add(port)
        return port
    raise ConfigError(f"found no free TCP port on {host} in {candidates.start}-{candidates.stop - 1}")


def compute_api_addresses(listen: str, public: str | None, admin: str | None) -> tuple[str, str]:
    """The public and admin API addresses of a new home (see init_home); ConfigError if one is not host:port."""
    defaults = NodeConfig(moniker="-")
    if listen != defaults.listen:
        host = listen.rpartition(":")[0].strip("[]") or "127.0.0.1"
        loopback = host if host in ("127.0.0.1", "localhost", "::1") else "127.0.0.1"
        public = public or f"{host}:{find_free_port(host)}"
        admin = admin or f"{loopback}:{find_free_port(loopback)}"
    public, admin = public or defaults.api_public, admin or defaults.api_admin
    for name, value in (("public", public), ("admin", admin)):
        if not is_host_port(value):
            raise ConfigError(f"the {name} API address must be host:port, got {value!r}")
    return public, admin


def read_admin_token(path: Path) -> str | None:
    """The admin token in `path`, stripped; None if the file is absent or empty."""
    try:
        token = read_secret(path).decode().strip()
    except FileNotFoundError:
        return None
    return token or None


def load_home(home: Path) -> Home:
    """Load and validate a node home; ConfigError with the file and key at fault."""
    home = Path(home)
    if not (home / CONFIG_FILE).is_file():
        raise ConfigError(f"{home} is not a node home ({CONFIG_FILE} is missing; run uocd init --home {home})")
    config = parse_config((home / CONFIG_FILE).read_text())
    try:
        genesis = json.loads((home / GENESIS_FILE).read_text())
    except FileNotFoundError:
        raise ConfigError(f"{home / GENESIS_FILE} is missing") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{home / GENESIS_FILE} is not JSON: {exc}") from None
    check_genesis(genesis)
    validator_key = load_key(home / VALIDATOR_KEY_FILE) if (home / VALIDATOR_KEY_FILE).exists() else None
    admin_token = read_admin_token(home / ADMIN_TOKEN_FILE)
    return Home(home, config, genesis, load_key(home / NODE_KEY_FILE), validator_key, admin_token)


def update_config(home: Path, **changes: Any) -> NodeConfig:
    """Rewrite a home's config.toml with some fields changed."""
    from dataclasses import replace

    config = replace(parse_config((home / CONFIG_FILE).read_text()), **changes)
    (home / CONFIG_FILE).write_text(render_config(config))
    return config


def compute_peer_address(home: Home) -> str:
    """How other nodes address this home's node: NODE_ID@HOST:PORT (its gRPC listen address)."""
    return f"{compute_node_id(home.node_key.pubkey)}@{home.config.listen}"


def collect_genesis(homes: list[Path], *, set_peers: bool = True) -> dict[str, Any]:
    """Merge the homes' genesis validators and accounts into one genesis (chain id, time and params of
    the first), write it to every home and, with `set_peers`, list every other home as a peer (NODE_ID@HOST:PORT)."""
    loaded = [load_home(h) for h in homes]
    if not loaded:
        raise ConfigError("genesis collect needs at least one home")
    first = loaded[0].genesis
    merged = {**first, "accounts": [], "validators": []}
    for section in ("accounts", "validators"):
        seen: set[str] = set()
        for home in loaded:
            for entry in home.genesis.get(section, []):
                if entry["address"] not in seen:
                    seen.add(entry["address"])
                    merged[section].append(entry)
    for home in loaded:
        write_json(home.path / GENESIS_FILE, merged)
        if set_peers:
            update_config(home.path, peers=tuple(compute_peer_address(h) for h in loaded if h.path != home.path))
    return merged
