"""config.toml: its schema (one pydantic model per section, each setting with its default, its rule and the
comment `uocd init` writes above it), the environment overrides, and edits that keep the user's file.

    parse_config(text, environ)   # TOML, then UOCD_SECTION_KEY overrides, then the schema: a NodeConfig
    render_config(config)         # a new config.toml (tomlkit), every setting with its comment
    edit_config(text, **changes)  # the same file with some NodeConfig fields changed: comments and layout kept

Every section and the file forbid unknown keys: a misspelled key is a ConfigError naming it and the
nearest valid one (`config.toml: consensus.blok_interval_ms is not a setting; did you mean
consensus.block_interval_ms?`). An environment variable `UOCD_<SECTION>_<KEY>` (`UOCD_MONIKER` for the
top-level key) overrides the file; its value is read as a TOML value (`50`, `true`, `["a"]`; for a string
setting, and whatever is not TOML, the text itself), and a variable that names no setting is an error naming it.
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Annotated, Any

import tomlkit
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator
from tomlkit.items import Table

from chain.fields import FieldError, IdentifierKind
from chain.tx import is_decimal

from .consensus import Timeouts
from .errors import ConfigError
from .tls import parse_peer_address

CONFIG_FILE = "config.toml"
ENV_PREFIX = "UOCD_"
MONIKER = IdentifierKind("a moniker", 64, "-_.", "node0")


# -- value rules ------------------------------------------------------------------------------
def is_host_port(text: Any) -> bool:
    """True for "host:port" with a port in 0..65535 (0 allowed only for listening)."""
    if not isinstance(text, str) or ":" not in text:
        return False
    host, _, port = text.rpartition(":")
    return bool(host) and port.isascii() and port.isdigit() and len(port) <= 5 and 0 <= int(port) <= 65535


def check_host_port(value: str) -> str:
    """A host:port address, else ValueError."""
    if not is_host_port(value):
        raise ValueError(f"must be host:port, got {value!r}")
    return value


def check_optional_host_port(value: str) -> str:
    """ "" or a host:port address, else ValueError."""
    return value if value == "" else check_host_port(value)


def check_peers(peers: list[Any]) -> list[str]:
    """A list of distinct nodes' NODE_ID@HOST:PORT, else ValueError naming the bad entry."""
    seen: set[str] = set()
    for i, peer in enumerate(peers):
        try:
            node_id, _ = parse_peer_address(peer)
        except ValueError as exc:
            raise ValueError(f"[{i}]: {exc}") from None
        if node_id in seen:
            raise ValueError(f"lists node {node_id} twice")
        seen.add(node_id)
    return peers


def check_gas_price(value: str) -> str:
    """ "" or a decimal string of ngonka per gas, else ValueError."""
    if value != "" and not is_decimal(value):
        raise ValueError(f'must be "" or a decimal string such as "0.05", got {value!r}')
    return value


def check_moniker(value: Any, where: str) -> str:
    """A node's name: 1 to 64 ASCII letters, digits and - _ . (it is served and shown as is); else ConfigError."""
    try:
        return MONIKER.check(value, where)
    except FieldError as exc:
        raise ConfigError(str(exc)) from None


def check_moniker_value(value: str) -> str:
    """The moniker rule as a schema check (ValueError)."""
    try:
        return MONIKER.check(value, "moniker")
    except FieldError as exc:
        raise ValueError(str(exc)) from None


HostPort = Annotated[str, AfterValidator(check_host_port)]
Peers = Annotated[list[Any], AfterValidator(check_peers)]  # each entry checked (and named) by check_peers


MAX_SETTING_INT = 2**31 - 1  # every integer setting's bound unless it has its own: a C int (gRPC's options),
# 24 days of milliseconds, 2 GiB: a value past it is a mistake, and 2^70 ms must not reach a timer


def setting(default: Any, comment: str = "", **rules: Any) -> Any:
    """A setting: its default, the comment written above it, and its rules (ge, le; an integer with a lower
    bound and no upper one gets MAX_SETTING_INT)."""
    if "ge" in rules and "le" not in rules and type(default) is int:
        rules["le"] = MAX_SETTING_INT
    return Field(default, description=comment, **rules)


class Section(BaseModel):
    """A table of config.toml: strict types, no unknown keys."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class GrpcSettings(Section):
    """[grpc]"""

    listen: HostPort = setting(
        "127.0.0.1:26656",
        "this node's gRPC server (host:port) and the other nodes, NODE_ID@HOST:PORT (mutual TLS: a peer must present\n"
        "a certificate bound to that node id, and only these peers may call this node)",
    )
    peers: Peers = setting([])
    max_message_bytes: int = setting(16 * 1024 * 1024, ge=1)
    rpc_timeout_ms: int = setting(
        2000, "the deadline of every call to a peer, and how often peers' status is polled (block sync)", ge=1
    )
    status_interval_ms: int = setting(500, ge=1)
    max_concurrent_streams: int = setting(
        100,
        "abuse limits: concurrent calls (HTTP/2 streams) per connection; an idle connection is closed after this long",
        ge=1,
    )
    max_connection_idle_ms: int = setting(300_000, ge=1)
    max_connections: int = setting(
        256,
        "abuse limits: open connections in total, authenticated or not (more are closed as they arrive; a\n"
        "configured peer keeps one), so no one who can reach the port can take the node's file descriptors;\n"
        "a connection that has not finished its TLS handshake this long after it opened is closed",
        ge=1,
    )
    handshake_timeout_ms: int = setting(10_000, ge=1)


class ConsensusSettings(Section):
    """[consensus]"""

    block_interval_ms: int = setting(1000, "the block interval is the commit timeout: the pause after each block", ge=1)
    propose_ms: int = setting(3000, "round timeouts: base + delta * round", ge=1)
    propose_delta_ms: int = setting(500, ge=1)
    prevote_ms: int = setting(1000, ge=1)
    prevote_delta_ms: int = setting(500, ge=1)
    precommit_ms: int = setting(1000, ge=1)
    precommit_delta_ms: int = setting(500, ge=1)
    double_sign_check_height: int = setting(
        2,
        "when HOME/validator_state.json (what the validator key last signed) is missing at start, sign nothing\n"
        "until this many heights have been decided by the others (0: sign at once); 2 covers a validator wiped\n"
        "and restarted while its peers were still at the height it had signed last",
        ge=0,
    )


class MempoolSettings(Section):
    """[mempool]"""

    max_txs: int = setting(20_000, ge=1)
    max_bytes: int = setting(64 * 1024 * 1024, ge=1)
    max_txs_per_sender: int = setting(
        100, "per sender, besides the node's own txs and validators' price votes (the priority lane)", ge=1
    )
    max_bytes_per_sender: int = setting(1024 * 1024, ge=1)
    min_gas_price: Annotated[str, AfterValidator(check_gas_price)] = setting(
        "",
        'the least fee per gas (ngonka, a decimal string such as "0.05") this node admits, besides the chain\'s\n'
        'min_gas_price; "" admits what the chain does',
    )


class BlockSettings(Section):
    """[block]"""

    max_txs: int = setting(5_000, ge=1)
    max_bytes: int = setting(4 * 1024 * 1024, ge=1)


class ApiSettings(Section):
    """[api]"""

    public: HostPort = setting(
        "127.0.0.1:26650",
        "HTTP API listeners: public (reads, tx submission) and admin (every request needs Bearer HOME/admin_token)",
    )
    admin: HostPort = setting("127.0.0.1:26651")
    max_connections: int = setting(
        512,
        "abuse limits (both listeners): open connections in total and per client IP (more are answered 503 and\n"
        "closed); a connection whose next request (head and body) has not arrived this long after it opened or\n"
        "after its previous response is closed (slow-loris); request line and each header at most\n"
        "max_header_bytes, at most max_headers headers (else 431)",
        ge=1,
    )
    max_connections_per_client: int = setting(128, ge=1)
    request_read_timeout_ms: int = setting(5000, ge=1)
    max_header_bytes: int = setting(8190, ge=256)
    max_headers: int = setting(64, ge=1)
    rate_limit_per_s: int = setting(
        100,
        "the public listener's per-client-IP rate limit: a token bucket of rate_limit_burst requests refilled at\n"
        "rate_limit_per_s (0 disables); over it, 429 with Retry-After. Loopback clients (a devnet's load\n"
        "generators) are exempt unless rate_limit_loopback = true. The admin listener is not rate limited.",
        ge=0,
    )
    rate_limit_burst: int = setting(200, ge=1)
    rate_limit_loopback: bool = setting(False)
    rate_limit_ipv6_prefix: int = setting(
        64,
        "IPv6 clients share one bucket per network of this prefix length (1..128; 64: one bucket per /64, the\n"
        "block a single host or home router usually holds); IPv4 clients have one bucket per address",
        ge=1,
        le=128,
    )
    max_event_streams: int = setting(
        128,
        "the dashboard's live streams (GET /v1/dashboard/events, Server-Sent Events) open at once, in total and\n"
        "per client IP (more are answered 503 too_many_streams); each also holds one of the client's connections",
        ge=1,
    )
    max_event_streams_per_client: int = setting(32, ge=1)


class StorageSettings(Section):
    """[storage]"""

    validator_set_retention: int = setting(
        100_000,
        "heights back from the tip whose validator set stays in data/node.db (older sets are pruned); at least 2",
        ge=2,
    )


class InstrumentationSettings(Section):
    """[instrumentation]"""

    prometheus_listen_addr: Annotated[str, AfterValidator(check_optional_host_port)] = setting(
        "127.0.0.1:26660",
        "Prometheus metrics (GET /metrics: CometBFT's series and the chain's) on a listener of their own, with no\n"
        'rate limit and no token; "" serves none',
    )


class ConfigFile(Section):
    """The whole of config.toml."""

    moniker: Annotated[str, AfterValidator(check_moniker_value)]
    grpc: GrpcSettings = GrpcSettings()
    consensus: ConsensusSettings = ConsensusSettings()
    mempool: MempoolSettings = MempoolSettings()
    block: BlockSettings = BlockSettings()
    api: ApiSettings = ApiSettings()
    storage: StorageSettings = StorageSettings()
    instrumentation: InstrumentationSettings = InstrumentationSettings()

    @model_validator(mode="after")
    def check_block_fits_a_message(self) -> ConfigFile:
        """A proposal carries its block, header and last commit: block.max_bytes at most half a message."""
        if 2 * self.block.max_bytes > self.grpc.max_message_bytes:
            raise ValueError(
                f"block.max_bytes ({self.block.max_bytes}) must be at most half of grpc.max_message_bytes "
                f"({self.grpc.max_message_bytes}): a proposal also carries its header and last commit"
            )
        return self


SECTIONS: dict[str, type[Section]] = {
    name: info.annotation
    for name, info in ConfigFile.model_fields.items()
    if isinstance(info.annotation, type) and issubclass(info.annotation, Section)
}
TIMEOUT_KEYS = {  # Timeouts field -> [consensus] key
    "propose_ms": "propose_ms",
    "propose_delta_ms": "propose_delta_ms",
    "prevote_ms": "prevote_ms",
    "prevote_delta_ms": "prevote_delta_ms",
    "precommit_ms": "precommit_ms",
    "precommit_delta_ms": "precommit_delta_ms",
    "commit_ms": "block_interval_ms",
}


# -- the node's view --------------------------------------------------------------------------
@dataclass(frozen=True)
class NodeConfig:
    """The settings of one node (config.toml), flat; each field's key is in FIELD_KEYS."""

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
    api_max_event_streams: int = 128
    api_max_event_streams_per_client: int = 32
    grpc_max_concurrent_streams: int = 100
    grpc_max_connection_idle_ms: int = 300_000
    grpc_max_connections: int = 256
    grpc_handshake_timeout_ms: int = 10_000
    validator_set_retention: int = 100_000
    prometheus_listen_addr: str = "127.0.0.1:26660"  # the metrics listener ("": none)


FIELD_KEYS: dict[str, str] = {  # NodeConfig field -> dotted config.toml key (timeouts: TIMEOUT_KEYS)
    "moniker": "moniker",
    "listen": "grpc.listen",
    "peers": "grpc.peers",
    "max_message_bytes": "grpc.max_message_bytes",
    "rpc_timeout_ms": "grpc.rpc_timeout_ms",
    "status_interval_ms": "grpc.status_interval_ms",
    "double_sign_check_height": "consensus.double_sign_check_height",
    "mempool_max_txs": "mempool.max_txs",
    "mempool_max_bytes": "mempool.max_bytes",
    "mempool_max_txs_per_sender": "mempool.max_txs_per_sender",
    "mempool_max_bytes_per_sender": "mempool.max_bytes_per_sender",
    "min_gas_price": "mempool.min_gas_price",
    "block_max_txs": "block.max_txs",
    "block_max_bytes": "block.max_bytes",
    "api_public": "api.public",
    "api_admin": "api.admin",
    "api_max_connections": "api.max_connections",
    "api_max_connections_per_client": "api.max_connections_per_client",
    "api_request_read_timeout_ms": "api.request_read_timeout_ms",
    "api_max_header_bytes": "api.max_header_bytes",
    "api_max_headers": "api.max_headers",
    "api_rate_limit_per_s": "api.rate_limit_per_s",
    "api_rate_limit_burst": "api.rate_limit_burst",
    "api_rate_limit_loopback": "api.rate_limit_loopback",
    "api_rate_limit_ipv6_prefix": "api.rate_limit_ipv6_prefix",
    "api_max_event_streams": "api.max_event_streams",
    "api_max_event_streams_per_client": "api.max_event_streams_per_client",
    "grpc_max_concurrent_streams": "grpc.max_concurrent_streams",
    "grpc_max_connection_idle_ms": "grpc.max_connection_idle_ms",
    "grpc_max_connections": "grpc.max_connections",
    "grpc_handshake_timeout_ms": "grpc.handshake_timeout_ms",
    "validator_set_retention": "storage.validator_set_retention",
    "prometheus_listen_addr": "instrumentation.prometheus_listen_addr",
}


def compute_key_values(config: NodeConfig) -> dict[str, Any]:
    """Every dotted config.toml key of `config` and its TOML value."""
    values: dict[str, Any] = {}
    for f in fields(config):
        value = getattr(config, f.name)
        if f.name == "timeouts":
            values.update({f"consensus.{key}": getattr(value, name) for name, key in TIMEOUT_KEYS.items()})
        else:
            values[FIELD_KEYS[f.name]] = list(value) if isinstance(value, tuple) else value
    return values


def compute_node_config(model: ConfigFile) -> NodeConfig:
    """The flat NodeConfig of a validated file."""

    def get(dotted: str) -> Any:
        node: Any = model
        for part in dotted.split("."):
            node = getattr(node, part)
        return node

    values: dict[str, Any] = {name: get(key) for name, key in FIELD_KEYS.items()}
    values["peers"] = tuple(values["peers"])
    timeouts = Timeouts(**{name: getattr(model.consensus, key) for name, key in TIMEOUT_KEYS.items()})
    return NodeConfig(**values, timeouts=timeouts)


# -- reading ----------------------------------------------------------------------------------
def compute_valid_keys(section: str | None) -> list[str]:
    """The dotted keys valid in a table (None: the top level, its tables included)."""
    if section is None:
        return [name for name in ConfigFile.model_fields]
    model = SECTIONS.get(section)
    return [f"{section}.{name}" for name in model.model_fields] if model else []


def describe_unknown_key(dotted: str) -> str:
    """`X is not a setting`, with the nearest valid key if one is close."""
    section, _, _ = dotted.rpartition(".")
    choices = compute_valid_keys(section or None)
    if not choices:  # an unknown table: suggest among every key
        choices = [*compute_valid_keys(None), *(k for s in SECTIONS for k in compute_valid_keys(s))]
    near = difflib.get_close_matches(dotted, choices, n=1, cutoff=0.6)
    return f"{dotted} is not a setting" + (f"; did you mean {near[0]}?" if near else "")


def describe_error(error: Mapping[str, Any]) -> str:
    """One pydantic error as `KEY RULE, got VALUE`."""
    dotted = ".".join(str(p) for p in error["loc"] if not isinstance(p, int))
    kind, given, ctx = error["type"], error.get("input"), error.get("ctx") or {}
    if kind == "extra_forbidden":
        return describe_unknown_key(dotted)
    if kind == "missing":
        return f"{dotted} is missing"
    if kind in ("int_type", "int_parsing", "greater_than_equal", "less_than_equal"):
        low, high = ctx.get("ge"), ctx.get("le")
        if kind == "less_than_equal" or (high is not None and low is not None):
            return f"{dotted} must be {_LOWER_BOUNDS.get(dotted, 1)}..{high}, got {given!r}"
        if dotted in _LOWER_BOUNDS and _LOWER_BOUNDS[dotted] != 1:
            return f"{dotted} must be an integer of at least {_LOWER_BOUNDS[dotted]}, got {given!r}"
        return f"{dotted} must be a positive integer, got {given!r}"
    if kind == "bool_type":
        return f"{dotted} must be true or false, got {given!r}"
    if kind == "string_type":
        return f"{dotted} must be a string, got {given!r}"
    if kind in ("list_type", "model_type", "dict_type"):
        what = "a list of NODE_ID@HOST:PORT strings" if dotted == "grpc.peers" else "a table"
        return f"{dotted} must be {what}, got {given!r}"
    message = str(error["msg"]).removeprefix("Value error, ")
    if dotted == "moniker":
        return message  # the moniker rule names the key itself
    separator = "" if message.startswith("[") else " "
    return f"{dotted}{separator}{message}" if dotted else message


def _compute_lower_bounds() -> dict[str, int]:
    """Each integer setting's least value (for the messages)."""
    bounds: dict[str, int] = {}
    for section, model in SECTIONS.items():
        for name, info in model.model_fields.items():
            for rule in info.metadata:
                low = getattr(rule, "ge", None)
                if low is not None:
                    bounds[f"{section}.{name}"] = low
    return bounds


_LOWER_BOUNDS = _compute_lower_bounds()


def parse_toml_value(text: str) -> Any:
    """An environment variable's value as TOML (`50`, `true`, `"x"`, `["a"]`), else the text itself."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def compute_env_overrides(environ: Mapping[str, str]) -> dict[str, tuple[str, str, Any]]:
    """The settings `UOCD_<SECTION>_<KEY>` variables override: dotted key -> (variable, section, value). A
    variable that names no setting is a ConfigError naming it (and the nearest setting); UOCD_HOME and the
    command line's own variables are not settings."""
    overrides: dict[str, tuple[str, str, Any]] = {}
    for variable in sorted(environ):
        if not variable.startswith(ENV_PREFIX) or variable in COMMAND_LINE_VARIABLES:
            continue
        rest = variable[len(ENV_PREFIX) :].lower()
        section = next((s for s in SECTIONS if rest.startswith(s + "_")), "")
        dotted = f"{section}.{rest[len(section) + 1 :]}" if section else rest
        valid = compute_valid_keys(section or None)
        if dotted not in valid or dotted in SECTIONS:
            near = describe_unknown_key(dotted).partition("; did you mean ")[2].rstrip("?")
            hint = f"; did you mean {ENV_PREFIX}{near.replace('.', '_').upper()} ({near})?" if near else ""
            raise ConfigError(f"environment variable {variable} names no setting of {CONFIG_FILE}{hint}")
        name = dotted.rpartition(".")[2]
        info = (SECTIONS[section] if section else ConfigFile).model_fields[name]
        text = environ[variable]
        value = parse_toml_value(text)
        overrides[dotted] = (variable, section, value if info.annotation is not str or isinstance(value, str) else text)
    return overrides


COMMAND_LINE_VARIABLES = frozenset({"UOCD_HOME", "UOCD_NODE", "UOCD_CHAIN_ID", "UOCD_OUTPUT", "UOCD_KEYRING_DIR"})


def validate(doc: dict[str, Any], where: str) -> ConfigFile:
    """The schema's verdict on a parsed file; ConfigError `WHERE: KEY RULE` on the first error."""
    try:
        return ConfigFile.model_validate(doc)
    except ValidationError as exc:
        raise ConfigError(f"{where}: {describe_error(exc.errors()[0])}") from None


def parse_config(text: str, environ: Mapping[str, str] | None = None) -> NodeConfig:
    """NodeConfig from config.toml text, with the `UOCD_*` overrides of `environ` (none by default); ConfigError
    naming the key (or the variable) on an unknown key or a bad value."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{CONFIG_FILE}: {exc}") from None
    validate(doc, CONFIG_FILE)  # the file alone: its errors name the file
    overrides = compute_env_overrides(environ or {})
    for dotted, (variable, section, value) in overrides.items():
        table = doc.setdefault(section, {}) if section else doc
        table[dotted.rpartition(".")[2]] = value
        validate(doc, f"environment variable {variable}")  # one at a time: the error names its variable
    return compute_node_config(validate(doc, CONFIG_FILE))


# -- writing ----------------------------------------------------------------------------------
def add_setting(table: Any, name: str, value: Any, comment: str) -> None:
    """`name = value` in a tomlkit table, after its comment lines."""
    for line in comment.splitlines() if comment else ():
        table.add(tomlkit.comment(line))
    table.add(name, value)


def render_config(config: NodeConfig) -> str:
    """A new config.toml for `config`: every setting, each table and setting with the schema's comment."""
    values = compute_key_values(config)
    doc = tomlkit.document()
    doc.add(tomlkit.comment("uoc node configuration (written by uocd init; edit freely, uocd keeps your comments)"))
    doc.add("moniker", config.moniker)
    for section, model in SECTIONS.items():
        table = tomlkit.table()
        for name, info in model.model_fields.items():
            add_setting(table, name, values[f"{section}.{name}"], info.description or "")
        doc.add(tomlkit.nl())
        doc.add(section, table)
    return tomlkit.dumps(doc)


def edit_config(text: str, **changes: Any) -> str:
    """The config.toml `text` with some NodeConfig fields changed (`timeouts` sets the [consensus] keys); the
    user's comments, order and layout kept (tomlkit). ConfigError if the result is not a valid config."""
    doc = tomlkit.parse(text)
    current = compute_key_values(parse_config(text))
    for name, value in changes.items():
        if name == "timeouts":
            keys = {f"consensus.{key}": getattr(value, attr) for attr, key in TIMEOUT_KEYS.items()}
        elif name in FIELD_KEYS:
            keys = {FIELD_KEYS[name]: list(value) if isinstance(value, tuple) else value}
        else:
            raise ConfigError(f"{name} is not a NodeConfig field")
        for dotted, item in keys.items():
            if current.get(dotted) == item and not is_key_absent(doc, dotted):
                continue
            section, _, key = dotted.rpartition(".")
            table: Any = doc
            if section:
                if section not in doc:
                    doc.add(section, tomlkit.table())
                table = doc[section]
                assert isinstance(table, Table)
            table[key] = item
    edited = tomlkit.dumps(doc)
    parse_config(edited)
    return edited


def is_key_absent(doc: Any, dotted: str) -> bool:
    """True if the dotted key is not written in the tomlkit document."""
    section, _, key = dotted.rpartition(".")
    table = doc.get(section) if section else doc
    return table is None or key not in table


__all__ = [
    "CONFIG_FILE",
    "ConfigFile",
    "NodeConfig",
    "check_moniker",
    "compute_env_overrides",
    "edit_config",
    "is_host_port",
    "parse_config",
    "render_config",
]
