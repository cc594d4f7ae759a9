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
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chain.crypto import PrivateKey, is_valid_address
from chain.encoding import describe_json_error
from chain.errors import ChainError
from chain.genesis import process_genesis
from chain.params import DEFAULT_PARAMS
from chain.store import MemoryStore, State

from .consensus import SignState, Timeouts
from .errors import ConfigError
from .secret_files import VALIDATOR_KEY_FILE, load_key, read_secret, render_key, write_secret
from .settings import CONFIG_FILE, NodeConfig, check_moniker, edit_config, is_host_port, parse_config, render_config
from .sign_state_file import SIGN_STATE_FILE, save_sign_state
from .tls import TLS_CERT_FILE, TLS_KEY_FILE, compute_node_id, load_or_create_identity

GENESIS_FILE = "genesis.json"
NODE_KEY_FILE = "node_key.json"
ADMIN_TOKEN_FILE = "admin_token"
DB_FILE = "data/node.db"


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
    try:  # the chain's own rules, on a throw-away state: a genesis start would refuse is refused before any write
        process_genesis(State(MemoryStore(), 0), genesis)
    except ChainError as exc:
        raise ConfigError(f"{GENESIS_FILE}: {exc}") from None
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
    api_public, api_admin, metrics = compute_api_addresses(listen, api_public, api_admin)
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
    new_validator_key = None
    if kept_validator_key is None:
        new_validator_key = validator_key or (PrivateKey.from_name(key_name) if key_name else PrivateKey.generate())
    validator = kept_validator_key or new_validator_key
    assert validator is not None
    config_text = render_config(
        NodeConfig(
            moniker=moniker,
            listen=listen,
            timeouts=Timeouts(commit_ms=block_interval_ms),
            api_public=api_public,
            api_admin=api_admin,
            prometheus_listen_addr=metrics,
        )
    )
    parse_config(config_text)  # every value as start reads it, and the genesis as start applies it: checked
    genesis = check_genesis(make_genesis(chain_id, validator.address, stake, balance, epoch_length))  # before any write
    (home / "data").mkdir(parents=True, exist_ok=True)
    if node_key is None:
        node_key = PrivateKey.generate()
        write_secret(home / NODE_KEY_FILE, render_key(node_key))
    load_or_create_identity(home, node_key)
    if new_validator_key is not None:
        write_secret(home / VALIDATOR_KEY_FILE, render_key(new_validator_key))
        save_sign_state(home / SIGN_STATE_FILE, SignState())  # a new validator has signed nothing
    if not os.path.lexists(home / ADMIN_TOKEN_FILE):
        write_secret(home / ADMIN_TOKEN_FILE, secrets.token_hex(32) + "\n")
    (home / CONFIG_FILE).write_text(config_text)
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


def compute_api_addresses(listen: str, public: str | None, admin: str | None) -> tuple[str, str, str]:
    """The public API, admin API and metrics addresses of a new home (see init_home); ConfigError if an API
    address is not host:port."""
    defaults = NodeConfig(moniker="-")
    metrics = defaults.prometheus_listen_addr
    if listen != defaults.listen:
        host = listen.rpartition(":")[0].strip("[]") or "127.0.0.1"
        loopback = host if host in ("127.0.0.1", "localhost", "::1") else "127.0.0.1"
        public = public or f"{host}:{find_free_port(host)}"
        admin = admin or f"{loopback}:{find_free_port(loopback)}"
        metrics = f"{loopback}:{find_free_port(loopback)}"
    public, admin = public or defaults.api_public, admin or defaults.api_admin
    for name, value in (("public", public), ("admin", admin)):
        if not is_host_port(value):
            raise ConfigError(f"the {name} API address must be host:port, got {value!r}")
    return public, admin, metrics


def read_admin_token(path: Path) -> str | None:
    """The admin token in `path`, stripped; None if the file is absent or empty."""
    try:
        token = read_secret(path).decode().strip()
    except FileNotFoundError:
        return None
    return token or None


def read_genesis(path: Path) -> dict[str, Any]:
    """genesis.json at `path`, checked (`check_genesis`); ConfigError naming the file if it is missing, not
    JSON (not UTF-8, nested too deep, a number past the digit limit) or not a genesis start would apply."""
    try:
        genesis = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise ConfigError(f"{path} is missing") from None
    except (ValueError, RecursionError) as exc:
        raise ConfigError(f"{path} is not JSON: {describe_json_error(exc)}") from None
    return check_genesis(genesis)


def load_home(home: Path) -> Home:
    """Load and validate a node home; ConfigError with the file and key at fault."""
    home = Path(home)
    if not (home / CONFIG_FILE).is_file():
        raise ConfigError(f"{home} is not a node home ({CONFIG_FILE} is missing; run uocd init --home {home})")
    config = parse_config((home / CONFIG_FILE).read_text(), os.environ)
    genesis = read_genesis(home / GENESIS_FILE)
    validator_key = load_key(home / VALIDATOR_KEY_FILE) if (home / VALIDATOR_KEY_FILE).exists() else None
    admin_token = read_admin_token(home / ADMIN_TOKEN_FILE)
    return Home(home, config, genesis, load_key(home / NODE_KEY_FILE), validator_key, admin_token)


def update_config(home: Path, **changes: Any) -> NodeConfig:
    """Change some NodeConfig fields in a home's config.toml, keeping the user's comments and layout."""
    path = home / CONFIG_FILE
    path.write_text(edit_config(path.read_text(), **changes))
    return parse_config(path.read_text())


def compute_peer_address(home: Home) -> str:
    """How other nodes address this home's node: NODE_ID@HOST:PORT (its gRPC listen address)."""
    return f"{compute_node_id(home.node_key.pubkey)}@{home.config.listen}"


def collect_genesis(homes: list[Path], *, set_peers: bool = True) -> dict[str, Any]:
    """Merge the homes' genesis validators and accounts into one genesis (chain id, time and params of
    the first), write it to every home and, with `set_peers`, list every other home as a peer (NODE_ID@HOST:PORT)."""
    loaded = [load_home(h) for h in homes]
    if not loaded:
        raise ConfigError("genesis collect needs at least one home")
    paths = [h.path.resolve() for h in loaded]
    repeated = next((p for i, p in enumerate(paths) if p in paths[:i]), None)
    if repeated is not None:
        raise ConfigError(f"genesis collect: the home {repeated} is given twice")
    first = loaded[0].genesis
    merged = {**first, "accounts": [], "validators": []}
    for section in ("accounts", "validators"):
        seen: set[str] = set()
        for home in loaded:
            for entry in home.genesis.get(section, []):
                if entry["address"] not in seen:
                    seen.add(entry["address"])
                    merged[section].append(entry)
    check_genesis(merged)  # as every home's start will read it: checked before any home is written
    for home in loaded:
        write_json(home.path / GENESIS_FILE, merged)
        if set_peers:
            update_config(home.path, peers=tuple(compute_peer_address(h) for h in loaded if h.path != home.path))
    return merged
