"""Everything the declarations in `chain.tx` and `chain.queries` offer to a command line, an API and
its documentation, derived and never listed by hand:

- `get_commands()`: the `uocd tx …` commands (one per message with a `CLI`, and one per governance
  content with a `CLI`, which submits it as a proposal with a --deposit);
- `get_cli_queries()`, `get_routes()`: the `uocd query …` commands and the public read routes;
- `get_message_schemas()`, `get_tx_schema()`: JSON schemas (OpenAPI 3.0) of every message and of
  the signed transaction `POST /v1/txs` takes;
- `describe_commands()`: the command list for people (README, --help).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .crypto import PUBKEY_SIZE, SIGNATURE_SIZE
from .fields import MAX_INT64, Arg, Cli, Declared, FieldError, compute_base64_pattern
from .gas import MAX_GAS_LIMIT
from .queries import QUERIES, BoolKind, Http, Query
from .tx import ADDRESS, CLI_GROUPS, CONTENT_TYPES, MAX_MESSAGES, MESSAGE_TYPES, Content, Msg, MsgSubmitProposal


@dataclass(frozen=True)
class Command:
    """A `uocd tx PATH…` command: its arguments, and how it builds its messages from their values."""

    path: tuple[str, ...]
    help: str
    description: str
    args: tuple[Arg, ...]
    message: str  # the @type of the message it builds
    build: Callable[[Mapping[str, Any]], tuple[Msg, ...]]

    def parse_texts(self, texts: Mapping[str, str | None]) -> dict[str, Any]:
        """The argument values from their command-line strings (None or absent: the default; an
        argument with a `default_param` stays None for the caller to fill from the chain's params)."""
        values: dict[str, Any] = {}
        for arg in self.args:
            text = texts.get(arg.name)
            if text is None and arg.required:
                raise FieldError(f"{arg.name} is required ({arg.kind.describe()})")
            values[arg.name] = arg.default if text is None else arg.parse_text(text)
        return values

    def usage(self) -> str:
        """`tx PATH… POSITIONALS [--options]`."""
        return " ".join(["tx", *self.path, *compute_usage_words(self.args)])


def compute_cli_args(cls: type[Declared], cli: Cli) -> tuple[Arg, ...]:
    """A declared object's fields as arguments: the positional ones in `cli.positional` order, then
    the others as --options."""
    specs = {s.name: s for s in cls.FIELDS}
    names = [*cli.positional, *(n for n in specs if n not in cli.positional)]
    return tuple(
        Arg(
            name,
            specs[name].kind,
            specs[name].description,
            positional=name in cli.positional,
            required=not specs[name].optional and name not in cli.defaults,
            default=cli.defaults.get(name),
            metavar=cli.metavars.get(name, name.upper()),
        )
        for name in names
    )


def compute_message_command(cls: type[Msg], cli: Cli) -> Command:
    """The command that sends one message built from its fields."""
    args = compute_cli_args(cls, cli)
    return Command(cli.path, cli.help, cli.description, args, cls.TYPE, lambda values: (cls(**values),))


def compute_proposal_command(cls: type[Content], cli: Cli) -> Command:
    """The command that proposes one governance content, with a --deposit (default: min_deposit)."""
    deposit = next(s for s in MsgSubmitProposal.FIELDS if s.name == "initial_deposit")
    args = (
        *compute_cli_args(cls, cli),
        Arg(
            "deposit",
            deposit.kind,
            f"{deposit.description} (default: the chain's min_deposit)",
            required=False,
            default_param="min_deposit",
            metavar="AMOUNT",
        ),
    )
    names = tuple(s.name for s in cls.FIELDS)

    def build(values: Mapping[str, Any]) -> tuple[Msg, ...]:
        content = cls(**{n: values[n] for n in names if values.get(n) is not None})
        return (MsgSubmitProposal(content, values["deposit"]),)

    return Command(cli.path, cli.help, cli.description, args, MsgSubmitProposal.TYPE, build)


def get_commands() -> list[Command]:
    """Every `uocd tx` command, from the messages and governance content that declare a `CLI`."""
    commands = [compute_message_command(m, m.CLI) for m in MESSAGE_TYPES.values() if m.CLI is not None]
    commands += [compute_proposal_command(c, c.CLI) for c in CONTENT_TYPES.values() if c.CLI is not None]
    return commands


def get_cli_groups() -> dict[tuple[str, ...], tuple[str, str]]:
    """The command groups under `uocd tx` (path -> help, description)."""
    return dict(CLI_GROUPS)


def get_cli_queries() -> list[Query]:
    """Every query with a `uocd query NAME` command."""
    return [q for q in QUERIES.values() if q.cli is not None]


def get_routes() -> list[tuple[Http, Query]]:
    """Every public read route and the query it serves."""
    return [(http, q) for q in QUERIES.values() for http in q.http]


def get_message_schemas() -> dict[str, dict[str, Any]]:
    """The JSON schema of every message, by `@type`."""
    return {name: cls.schema() for name, cls in MESSAGE_TYPES.items()}


CHAIN_ID_MARK = "x-uoc-chain-id"  # a node's document replaces a schema so marked by the enum of its chain id


def get_tx_schema() -> dict[str, Any]:
    """The JSON schema of a signed transaction (what `sign_tx` returns and `POST /v1/txs` takes)."""

    def base64(size: int) -> dict[str, Any]:
        return {"type": "string", "pattern": compute_base64_pattern(size), "description": f"base64 of {size} bytes"}

    messages = {
        "type": "array",
        "minItems": 1,
        "maxItems": MAX_MESSAGES,
        "items": {"oneOf": list(get_message_schemas().values()), "discriminator": {"propertyName": "@type"}},
    }
    body = {
        "type": "object",
        "required": ["chain_id", "sender", "sequence", "fee", "gas_limit", "messages"],
        "properties": {
            "chain_id": {"type": "string", "minLength": 1, CHAIN_ID_MARK: True},
            "sender": ADDRESS.schema(),
            "sequence": {"type": "integer", "minimum": 0, "maximum": MAX_INT64},
            "fee": {
                "type": "integer",
                "minimum": 0,
                "maximum": MAX_INT64,
                "description": "ngonka paid for the gas limit",
            },
            "gas_limit": {
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_GAS_LIMIT,
                "description": "the most gas it may use",
            },
            "messages": messages,
        },
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "required": ["body", "pubkey", "signature"],
        "properties": {"body": body, "pubkey": base64(PUBKEY_SIZE), "signature": base64(SIGNATURE_SIZE)},
        "additionalProperties": False,
    }


def compute_usage_words(args: tuple[Arg, ...]) -> list[str]:
    """The usage words of arguments: `NAME` or `[NAME]` for a positional, `[--name NAME]` for an option."""
    words = []
    for arg in args:
        name = arg.metavar or arg.name.upper()
        if arg.positional:
            words.append(name if arg.required else f"[{name}]")
        else:
            words.append(f"[{arg.option}]" if isinstance(arg.kind, BoolKind) else f"[{arg.option} {name}]")
    return words


def describe_query(q: Query) -> str:
    """`query NAME POSITIONAL [--options]`."""
    return " ".join(["query", q.cli or q.name, *compute_usage_words(q.all_args)])


def describe_commands() -> list[tuple[str, str]]:
    """(usage, help) of every derived `uocd tx` and `uocd query` command, for people and docs."""
    out = [(c.usage(), c.help) for c in get_commands()]
    out += [(describe_query(q), q.summary) for q in get_cli_queries()]
    return out
