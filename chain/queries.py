"""Queries of committed state, each declared once: name, arguments, response schema, CLI name and
the public HTTP read route that serves it (as Cosmos modules annotate their Query services with
`google.api.http`).

    @query("epoch", "The current epoch, or the record of epoch n", EPOCH,
           args=(Arg("n", EPOCH_INDEX, "an epoch", positional=True, required=False, words={"current": None}),),
           http=(Http("/v1/epochs/current"), Http("/v1/epochs/{n}")), cli="epoch")
    def query_epoch(ctx: QueryContext, n: int | None) -> Any: ...

`run_query(ctx, "epoch/3")` (what `Application.query` calls) parses the path argument from its text
and checks keyword arguments with their kinds; a bad argument is `ChainError(code="bad_query")`.

A list query is declared with `page="proposals"` (the name of its list in the answer): it takes the
Cosmos pagination arguments `pagination.limit` (1 to `MAX_PAGE_LIMIT`, default `DEFAULT_PAGE_LIMIT`),
`pagination.key` (the opaque `next_key` of the previous page) and `pagination.reverse`, reads one key
range of the state (`read_page`: at most `limit + 1` entries, or `MAX_PAGE_SCAN + 1` under a filter)
and answers `{"proposals": [...], "pagination": {"next_key": "…" or null}}`. Every route and CLI
command of a list query takes these arguments because they are declared here once.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, TypeVar

from . import dynamic, index, rules, usage
from .encoding import thaw
from .epochs import compute_epoch_at_height
from .errors import ChainError, InvalidTx
from .fields import Arg, EnumKind, FieldError, IdentifierKind, IntKind, Kind
from .market import (
    compute_arithmetic_mean,
    compute_decimal_text,
    compute_geometric_mean,
    compute_significant_text,
)
from .params import describe_params
from .store import State, compute_prefix_end
from .tx import ADDRESS, ATTRIBUTION_FIELDS, CONTENT, MODEL_ID, PROPOSAL_ID, REQUEST_ID, VOTE_OPTIONS

F = TypeVar("F", bound=Callable[..., Any])

# -- schemas (OpenAPI 3.0) ----------------------------------------------------------------------


def obj(required: dict[str, Any], **optional: Any) -> dict[str, Any]:
    """An object schema whose listed properties are all required (the keyword ones are optional)."""
    return {"type": "object", "required": list(required), "properties": {**required, **optional}}


def array(items: dict[str, Any]) -> dict[str, Any]:
    """An array schema."""
    return {"type": "array", "items": items}


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """A schema that also allows null."""
    return {**schema, "nullable": True}


INT = {"type": "integer"}
STR = {"type": "string"}
BOOL = {"type": "boolean"}
MAX_JSON_SAFE_INT = 2**53 - 1  # the largest integer every JSON client (JavaScript's doubles too) reads exactly


def compute_number_with_twin(name: str, value: int) -> dict[str, Any]:
    """`value` as `name`, a JSON number while every client reads it exactly (at most 2^53 - 1, else null),
    and as `name_str`, its exact decimal string."""
    return {name: value if value <= MAX_JSON_SAFE_INT else None, f"{name}_str": str(value)}


def twin_schema(name: str) -> dict[str, Any]:
    """The schemas of `compute_number_with_twin(name, …)`: a nullable integer and its decimal string."""
    number = {
        **INT,
        "nullable": True,
        "maximum": MAX_JSON_SAFE_INT,
        "description": f"null past 2^53 - 1: read {name}_str",
    }
    return {name: number, f"{name}_str": {**STR, "pattern": "^[0-9]+$", "description": f"{name}, exact"}}


DECIMAL = {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?$"}
DIGITS = {"type": "string", "pattern": "^[0-9]+$"}
PRICE_STATUS = {"type": "string", "enum": list(rules.PRICE_STATUSES)}
BALLOT_SHAPE = {  # absent from a record written before issue 19 (none: every chain starts from genesis with them)
    "q1": nullable(INT),
    "median": nullable(INT),
    "q3": nullable(INT),
    "fresh_power": INT,
    "ballot_power": INT,
    "participation": DECIMAL,
    "last_fresh_epoch": INT,
    "status": PRICE_STATUS,
}
BALLOT = obj({"voters": INT, "non_voters": INT, "min_vote": nullable(INT), "max_vote": nullable(INT)}, **BALLOT_SHAPE)
CURRENT_EPOCH = obj(
    {"index": INT, "price": INT, "total_power": INT, "validators": INT, "start_height": INT, "ballot": BALLOT}
)
EPOCH_RECORD = obj(
    {
        "epoch": INT,
        "price": INT,
        "total_power": INT,
        "voters": INT,
        "non_voters": INT,
        "min_vote": nullable(INT),
        "max_vote": nullable(INT),
        "registry_version": INT,
        "fees_collected": INT,
    },
    **BALLOT_SHAPE,
    price_cumulative={**DIGITS, "description": "the sum of the prices of epochs 0 to this one"},
    log2_price_cumulative={**DIGITS, "description": "the sum of their log2, in units of 2^-96 (chain.market)"},
)
MODEL = obj(
    {"id": STR, "units_of_compute_per_token": INT},
    hf_repo=STR,
    hf_commit=STR,
    v_ram=INT,
    throughput_per_nonce=INT,
    validation_threshold=STR,
)
ACTIVE_MODEL = {**MODEL, "required": [*MODEL["required"], "price_per_token", "price_per_token_str"]}
ACTIVE_MODEL["properties"] = {**MODEL["properties"], **twin_schema("price_per_token")}
MODEL_PRICE = obj(
    {
        "id": STR,
        "units_of_compute_per_token": INT,
        **twin_schema("price_per_token"),
        **twin_schema("inputPricePerMTok"),  # ngonka per million input tokens (the seed lexicon's name)
        **twin_schema("outputPricePerMTok"),  # and output tokens: a token costs the same either way
    },
    # only when pricing_mode is not "voted" (chain.dynamic): price_per_token is then the dynamic price
    **twin_schema("dynamic_price"),
    **twin_schema("voted_price_per_token"),
    utilization={**STR, "pattern": r"^[0-9]+\.[0-9]{6}$", "description": "tokens settled / capacity, rounded down"},
)
TOKENS_PER_MTOK = 1_000_000
MODEL_CHANGE = obj(
    {
        "version": INT,
        "epoch": INT,
        "height": INT,
        "proposal_id": INT,
        "kind": {"type": "string", "enum": ["register_model", "update_model", "remove_model"]},
        "model": STR,
        "units_before": nullable(INT),
        "units_after": nullable(INT),
    }
)
TALLY = obj({"yes": INT, "no": INT, "abstain": INT, "no_with_veto": INT, "voted": INT, "total_power": INT})
PROPOSAL_STATUS = EnumKind(rules.PROPOSAL_STATUSES, code="bad_query", reason="bad_query")
PROPOSAL_FIELDS = {
    "id": INT,
    "proposer": STR,
    "content": CONTENT.schema(),
    "status": PROPOSAL_STATUS.schema(),
    "submit_height": INT,
    "submit_epoch": INT,
    "deposit_end_height": INT,
    "voting_start_height": nullable(INT),
    "voting_end_height": nullable(INT),
    "total_deposit": INT,
    "final_tally": nullable(TALLY),
    "result": nullable(STR),
    "burned": BOOL,
}
PROPOSAL = obj(PROPOSAL_FIELDS)
PROPOSAL_DETAIL = obj({**PROPOSAL_FIELDS, "tally": nullable(TALLY)})
PARAMS = obj({p.name: {**p.schema, "description": p.description, "default": p.default} for p in describe_params()})
EPOCH_INDEX = IntKind(0, text="an epoch index")

# -- pagination ------------------------------------------------------------------------------

DEFAULT_PAGE_LIMIT = 100  # items per page when pagination.limit is not given
MAX_PAGE_LIMIT = 1000  # the largest pagination.limit
MAX_PAGE_SCAN = MAX_PAGE_LIMIT  # entries a filtered page reads at most (it may then return fewer than limit)
MAX_PAGE_KEY = 256  # bytes of a decoded page key
MAX_PAGE_KEY_TEXT = (MAX_PAGE_KEY * 4 + 2) // 3  # its characters in unpadded base64
# Canonical unpadded URL-safe base64: whole quads, then 2 or 3 characters whose unused low bits are 0.
PAGE_KEY_PATTERN = "^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2}[AEIMQUYcgkosw048]|[A-Za-z0-9_-][AQgw])?$"
PAGINATION = obj({"next_key": nullable({**STR, "description": "pagination.key of the next page; null on the last"})})


def encode_page_key(key: str) -> str:
    """The opaque `next_key` of a state key: unpadded URL-safe base64 of its UTF-8 bytes."""
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def decode_page_key(text: str) -> str | None:
    """The state key a page starts at, or None unless `text` is canonical unpadded URL-safe base64 of at most
    `MAX_PAGE_KEY` bytes. Any such text is a position in the key space (bytes that are not UTF-8 read as
    U+FFFD), so a page key the node never gave out reads the page from there, as Cosmos's next_key does."""
    if not 0 < len(text) <= MAX_PAGE_KEY_TEXT or re.fullmatch(PAGE_KEY_PATTERN, text) is None:
        return None
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode(errors="replace")


@dataclass(frozen=True)
class PageKeyKind(Kind[str]):
    """An opaque page key (the `next_key` of a previous page)."""

    reason: str = "invalid_page_key"

    def check(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or decode_page_key(value) is None:
            raise self.fail(f"{where} is not a next_key (unpadded URL-safe base64), got {show_text(value)}")
        return value

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "minLength": 1, "maxLength": MAX_PAGE_KEY_TEXT, "pattern": PAGE_KEY_PATTERN}

    def describe(self) -> str:
        return "the next_key of the previous page"

    def example(self) -> str:
        return encode_page_key("000000000001")


@dataclass(frozen=True)
class BoolKind(Kind[bool]):
    """A boolean: `true` or `false` in a URL or on the command line."""

    reason: str = "invalid_parameter"

    def check(self, value: Any, where: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(f"{where} must be true or false, got {show_text(value)}")
        return value

    def parse_text(self, text: str, where: str) -> bool:
        if text not in ("true", "false"):
            raise self.fail(f"{where} must be true or false, got {show_text(text)}")
        return text == "true"

    def schema(self) -> dict[str, Any]:
        return {"type": "boolean"}

    def describe(self) -> str:
        return "true or false"

    def example(self) -> bool:
        return False


def show_text(value: Any) -> str:
    """A bad argument value for an error message, cut short."""
    return repr(value)[:40]


PAGE_LIMIT = "pagination.limit"
PAGE_KEY = "pagination.key"
PAGE_REVERSE = "pagination.reverse"


def compute_page_limit_arg(maximum: int, default: int, items: str) -> Arg:
    """The `pagination.limit` argument of a page of at most `maximum` `items`."""
    return Arg(
        PAGE_LIMIT,
        IntKind(1, maximum, text="a page size"),
        f"{items} per page, 1 to {maximum}",
        required=False,
        default=default,
        metavar="N",
        flag="--limit",
    )


PAGE_ARGS = (
    compute_page_limit_arg(MAX_PAGE_LIMIT, DEFAULT_PAGE_LIMIT, "items"),
    Arg(PAGE_KEY, PageKeyKind(), "the next_key of the previous page", required=False, metavar="KEY", flag="--page-key"),
    Arg(PAGE_REVERSE, BoolKind(), "newest (highest key) first", required=False, default=False, flag="--reverse"),
)

MAX_TXS_PAGE = 100  # txs per page of the node's tx index, GET /v1/txs (each up to the chain's tx size limit)
TXS_PAGE_ARGS = (  # a page of GET /v1/txs: declared here, beside PAGE_ARGS, for the API and `uocd query txs`
    compute_page_limit_arg(MAX_TXS_PAGE, MAX_TXS_PAGE, "txs"),
    *(a for a in PAGE_ARGS if a.name != PAGE_LIMIT),
)


HEIGHT_ARG = Arg(  # every state read of the API and `uocd query` takes it (node.api.public.check_height)
    "height",
    IntKind(1, text="a block height"),
    "answer from the state at this height: the node keeps only its latest (any other is refused, saying so)",
    required=False,
    metavar="H",
)


@dataclass(frozen=True)
class PageRequest:
    """One page to read: from state key `key` (None: the first or, with `reverse`, the last), `limit` items."""

    key: str | None = None
    limit: int = DEFAULT_PAGE_LIMIT
    reverse: bool = False


@dataclass(frozen=True)
class Paged:
    """What a list query reads: its page of items, the state key the next page starts at (None: this was
    the last page) and the answer's other fields."""

    items: list[Any]
    next_key: str | None
    extra: dict[str, Any] = field(default_factory=dict)


def compute_page_range(page: PageRequest, start: str, end: str | None) -> tuple[str, str | None]:
    """The key range `[start, end)` narrowed to the keys from `page.key` on (or up to it, reversed)."""
    if page.key is None:
        return start, end
    if not page.reverse:
        return max(start, page.key), end
    below = page.key + "\x00"  # the least key above page.key: the range ends just after it
    return start, below if end is None or below < end else end


def read_page(
    state: State,
    space: str,
    page: PageRequest,
    start: str = "",
    end: str | None = None,
    *,
    item: Callable[[str, Any], Any] = lambda key, value: value,
    keep: Callable[[Any], bool] | None = None,
) -> Paged:
    """One page of the entries of `space` with `start <= key < end`: `item(key, value)` of each entry
    (the items `keep` accepts), reading at most `limit + 1` entries, or `MAX_PAGE_SCAN + 1` with a filter (a
    filtered page that reads that many ends there: it may hold fewer than `limit` items, none even, and
    still have a next key)."""
    budget = page.limit if keep is None else MAX_PAGE_SCAN
    low, high = compute_page_range(page, start, end)
    items: list[Any] = []
    for read, (key, value) in enumerate(state.iterate(space, low, high, reverse=page.reverse, limit=budget + 1)):
        if read == budget:
            return Paged(items, key)
        found = item(key, value)
        if keep is None or keep(found):
            if len(items) == page.limit:  # the next page starts at the next entry it will return
                return Paged(items, key)
            items.append(found)
    return Paged(items, None)


# -- declarations ------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueryContext:
    """What a query reads: the committed state, and the height and app hash it was committed with."""

    state: State
    height: int
    app_hash: str


@dataclass(frozen=True)
class Http:
    """A public read route that serves a query: `path` with `{arg}` placeholders for its path argument."""

    path: str


@dataclass(frozen=True)
class Query:
    """One declared query (see the module docstring); `page` names the list of a list query."""

    name: str
    summary: str
    response: dict[str, Any]
    run: Callable[..., Any]
    args: tuple[Arg, ...] = ()
    http: tuple[Http, ...] = ()
    cli: str | None = None
    page: str | None = None

    @property
    def all_args(self) -> tuple[Arg, ...]:
        """Its arguments, the pagination ones included."""
        return (*self.args, *PAGE_ARGS) if self.page else self.args

    @property
    def path_arg(self) -> Arg | None:
        """The argument a path names after the query's name (`epoch/3`), if any."""
        return next((a for a in self.args if a.positional), None)


QUERIES: dict[str, Query] = {}


def query(
    name: str,
    summary: str,
    response: dict[str, Any],
    *,
    args: tuple[Arg, ...] = (),
    http: tuple[Http, ...] = (),
    cli: str | None = None,
    page: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Callable[[F], F]:
    """Declare the decorated function `(ctx, **args) -> JSON` as query `name` (its one registration). A
    list query (`page`: its list's name) answers `Paged`; its response is `{page: response, **extra,
    "pagination": {"next_key"}}`."""

    def declare(run: F) -> F:
        if name in QUERIES:
            raise TypeError(f"query {name!r} is declared twice")
        schema = obj({page: response, **(extra or {}), "pagination": PAGINATION}) if page else response
        QUERIES[name] = Query(name, summary, schema, run, args, http, cli, page)
        return run

    return declare


def bad_query(message: str) -> ChainError:
    """The error of a query asked with bad arguments."""
    return ChainError(message, code="bad_query")


def compute_query_args(q: Query, text: str, params: dict[str, Any]) -> dict[str, Any]:
    """The query's arguments: the path's `text` (parsed by its kind), the keyword ones (checked),
    the defaults of the others; ChainError(bad_query) for a bad or unknown one."""
    values: dict[str, Any] = {}
    args = q.all_args
    try:
        if text:
            if q.path_arg is None:
                raise bad_query(f"query {q.name!r} takes no path argument, got {text[:40]!r}")
            values[q.path_arg.name] = q.path_arg.parse_text(text)
        for name, value in params.items():
            arg = next((a for a in args if a.name == name), None)
            if arg is None:
                raise bad_query(f"query {q.name!r} has no argument {name[:40]!r}")
            values[name] = arg.check(value)
    except FieldError as exc:
        raise bad_query(str(exc)) from None
    for arg in args:
        if arg.name not in values:
            if arg.required:
                raise bad_query(f"query {q.name!r} needs its argument {arg.name} ({arg.kind.describe()})")
            values[arg.name] = arg.default
    return values


def compute_page_request(values: dict[str, Any]) -> PageRequest:
    """The page asked for by the pagination arguments (taken out of `values`)."""
    key = values.pop(PAGE_KEY)
    return PageRequest(None if key is None else decode_page_key(key), values.pop(PAGE_LIMIT), values.pop(PAGE_REVERSE))


def run_query(ctx: QueryContext, path: str, **params: Any) -> Any:
    """Answer `path` ("name" or "name/arg") with keyword arguments; a plain, mutable JSON value."""
    name, _, text = path.partition("/")
    q = QUERIES.get(name)
    if q is None:
        raise ChainError(f"unknown query path {path!r}; known: {', '.join(sorted(QUERIES))}", code="unknown_query")
    values = compute_query_args(q, text, params)
    if q.page is None:
        return thaw(q.run(ctx, **values))
    page = compute_page_request(values)
    result: Paged = q.run(ctx, page=page, **values)
    next_key = None if result.next_key is None else encode_page_key(result.next_key)
    return thaw({q.page: result.items, **result.extra, "pagination": {"next_key": next_key}})


def iterate_pages(ctx: QueryContext, path: str, **params: Any) -> Iterator[dict[str, Any]]:
    """Every page of a list query, in order (for in-process callers: the simulator, tests)."""
    while True:
        answer = run_query(ctx, path, **params)
        yield answer
        if answer["pagination"]["next_key"] is None:
            return
        params = {**params, PAGE_KEY: answer["pagination"]["next_key"]}


def run_query_all(ctx: QueryContext, path: str, **params: Any) -> list[Any]:
    """The whole list of a list query, its pages concatenated (in-process callers only: unbounded)."""
    name = path.partition("/")[0]
    q = QUERIES.get(name)
    if q is None or q.page is None:
        raise ChainError(f"{path!r} is not a list query", code="unknown_query")
    return [item for answer in iterate_pages(ctx, path, **params) for item in answer[q.page]]


# -- the queries ----------------------------------------------------------------------------------

ADDRESS_ARG = Arg("address", ADDRESS, "an account address", positional=True, metavar="ADDRESS")


@query(
    "status",
    "The chain's id, height, app hash, epoch and price",
    obj({"chain_id": STR, "height": INT, "app_hash": STR, "epoch": INT, "unit_of_compute_price": INT}),
)
def query_status(ctx: QueryContext) -> dict[str, Any]:
    """The chain part of a node's status (a node adds its own fields on /v1/status)."""
    epoch = rules.get_current_epoch(ctx.state)
    return {
        "chain_id": rules.get_chain_id(ctx.state),
        "height": ctx.height,
        "app_hash": ctx.app_hash,
        "epoch": epoch["index"],
        "unit_of_compute_price": epoch["price"],
    }


@query(
    "pricing",
    "Unit-of-compute price and active models' price per token",
    obj(
        {
            **twin_schema("unit_of_compute_price"),
            "denom": {"type": "string", "enum": ["ngonka"]},
            "epoch": INT,
            "models": array(MODEL_PRICE),
        },
        pricing_mode={**STR, "enum": ["dynamic", "hybrid"], "description": 'absent in "voted" mode'},
        confidence={
            **nullable(INT),
            "maximum": MAX_JSON_SAFE_INT,
            "description": "max(median − Q1, Q3 − median) of the ballot that set the price; null without one "
            "(or past 2^53 - 1: read confidence_str)",
        },
        confidence_str={**nullable(DIGITS), "description": "confidence, exact; null without a ballot"},
        status=PRICE_STATUS,
        age_epochs={**INT, "description": "epochs since the last epoch whose ballot held a fresh vote"},
        participation={**DECIMAL, "description": "share of the ballot's power with a fresh vote"},
    ),
    http=(Http("/v1/pricing"),),
    cli="pricing",
)
def query_pricing(ctx: QueryContext) -> dict[str, Any]:
    """The price of a unit of compute this epoch, and of a token of each active model (what a
    settlement in the next block pays: its dynamic price when pricing_mode is not "voted")."""
    epoch = rules.get_current_epoch(ctx.state)
    models = sorted(rules.get_active_models(ctx.state), key=lambda m: m["id"])
    mode = rules.get_params(ctx.state).pricing_mode
    answer: dict[str, Any] = {
        **compute_number_with_twin("unit_of_compute_price", epoch["price"]),
        "denom": "ngonka",
        "epoch": epoch["index"],
        "models": [compute_model_pricing(ctx.state, m, mode) for m in models],
        **compute_price_quality(epoch),
    }
    if mode != "voted":
        answer["pricing_mode"] = mode
    return answer


def compute_price_quality(epoch: dict[str, Any]) -> dict[str, Any]:
    """The confidence, status, age and participation of the current epoch's price (from its ballot)."""
    ballot = epoch["ballot"]
    median = ballot.get("median")
    confidence = None if median is None else max(median - ballot["q1"], ballot["q3"] - median)
    return {
        **(
            {"confidence": None, "confidence_str": None}
            if confidence is None
            else compute_number_with_twin("confidence", confidence)
        ),
        "status": ballot.get("status", "ok"),
        "age_epochs": epoch["index"] - ballot.get("last_fresh_epoch", 0),
        "participation": ballot.get("participation", "0"),
    }


def compute_model_pricing(state: State, model: dict[str, Any], mode: str) -> dict[str, Any]:
    """One active model's entry of `pricing` (with its dynamic price, voted price and utilization
    when the mode is not "voted")."""
    price = dynamic.get_price_per_token(state, model["id"], model)
    entry = {
        "id": model["id"],
        "units_of_compute_per_token": model["units_of_compute_per_token"],
        **compute_number_with_twin("price_per_token", price),
        **compute_number_with_twin("inputPricePerMTok", price * TOKENS_PER_MTOK),
        **compute_number_with_twin("outputPricePerMTok", price * TOKENS_PER_MTOK),
    }
    if mode != "voted":
        entry.update(compute_number_with_twin("dynamic_price", price))
        entry.update(compute_number_with_twin("voted_price_per_token", model["price_per_token"]))
        entry["utilization"] = dynamic.compute_decimal_text(dynamic.get_utilization(state, model["id"]))
    return entry


@query(
    "account",
    "An account (balance, sequence, pubkey)",
    obj({"address": STR, "balance": INT, "sequence": INT, "pubkey": nullable(STR)}),
    args=(ADDRESS_ARG,),
    http=(Http("/v1/accounts/{address}"),),
    cli="account",
)
def query_account(ctx: QueryContext, address: str) -> dict[str, Any]:
    """An account, or an empty one."""
    return {"address": address, **rules.get_account(ctx.state, address)}


VALIDATOR = obj(
    {
        "address": STR,
        "power": INT,
        "stake": INT,
        "pending_stake": INT,
        "jailed": BOOL,
        "jailed_until": INT,
        "slashes": INT,
        "slashed": INT,
        "misses": INT,
        "window_epochs": INT,
        "missed": INT,
        "miss_jails": INT,
        "last_vote": nullable(INT),
        "last_vote_epoch": nullable(INT),
        "vote_distance_bps": nullable(INT),
        "unbonding": {
            **INT,
            "description": "ngonka unbonded, not yet released (slashable for offences of the heights it was bonded at)",
        },
        "unbonding_release_height": {
            **nullable(INT),
            "description": "the block at whose end the next unbonding entry is paid back",
        },
    }
)


def get_validator_view(state: State, address: str, power: int) -> dict[str, Any]:
    """A validator as the queries show it: power, stakes, its jail and slash record, its price-vote
    misses (in its window, the epochs the window holds, ever, and miss jails), its vote in force and
    that vote's distance from the current price (the last median) in basis points, rounded down."""
    misses = rules.get_miss_record(state, address)
    vote = rules.get_price_vote(state, address)
    price = rules.get_current_epoch(state)["price"]
    unbonding = rules.get_unbondings(state, address)
    return {
        "address": address,
        "power": power,
        **rules.get_validator(state, address),
        **rules.get_jail(state, address),
        "misses": misses["window"].count("0"),
        "window_epochs": len(misses["window"]),
        "missed": misses["missed"],
        "miss_jails": misses["jails"],
        "last_vote": vote["price_ngonka"] if vote else None,
        "last_vote_epoch": vote["epoch"] if vote else None,
        "vote_distance_bps": abs(vote["price_ngonka"] - price) * 10_000 // price if vote else None,
        "unbonding": sum(record["amount"] for _, record in unbonding),
        "unbonding_release_height": int(unbonding[0][0].rsplit("|", 1)[1]) if unbonding else None,
    }


@query(
    "validators",
    "The current epoch's validators",
    array(VALIDATOR),
    http=(Http("/v1/validators"),),
    cli="validators",
    page="validators",
)
def query_validators(ctx: QueryContext, page: PageRequest) -> Paged:
    """The current epoch's validator set with powers, stakes, jail records and vote misses, by address."""
    state = ctx.state
    return read_page(state, "epval", page, item=lambda a, p: get_validator_view(state, a, p))


@query(
    "validator",
    "A validator (or a former one): power, stakes, jailed, jailed_until, slashes, vote misses and last vote",
    VALIDATOR,
    args=(ADDRESS_ARG,),
    http=(Http("/v1/validators/{address}"),),
    cli="validator",
)
def query_validator(ctx: QueryContext, address: str) -> dict[str, Any]:
    """One address's power this epoch, stakes, jail record and vote misses (zeros for an address that never
    validated)."""
    return get_validator_view(ctx.state, address, rules.get_epoch_power(ctx.state, address))


@query(
    "epoch",
    "The current epoch, or the record of epoch n",
    {"anyOf": [CURRENT_EPOCH, EPOCH_RECORD]},
    args=(
        Arg(
            "n",
            EPOCH_INDEX,
            "an epoch number (default: the current epoch)",
            positional=True,
            required=False,
            metavar="N",
            words={"current": None},
        ),
    ),
    http=(Http("/v1/epochs/current"), Http("/v1/epochs/{n}")),
    cli="epoch",
)
def query_epoch(ctx: QueryContext, n: int | None) -> dict[str, Any]:
    """The current epoch, or the history record of epoch `n` (not_found before it starts)."""
    if n is None:
        return rules.get_current_epoch(ctx.state)
    record = rules.get_epoch_record(ctx.state, n)
    if record is None:
        raise ChainError(f"epoch {n} has no record yet", code="not_found")
    return record


MODEL_ARG = Arg(
    "model",
    MODEL_ID,
    "a model id: its price per token (units of compute per token × the unit price)",
    required=False,
    metavar="MODEL",
)
HISTORY_MODEL = {
    "model": STR,
    "units_of_compute_per_token": {**nullable(INT), "description": "null: the model was not active that epoch"},
    **{name: {**schema, "nullable": True} for name, schema in twin_schema("price_per_token").items()},
}


@query(
    "history",
    "Epoch records (SPEC §3), with a model's price per token when `model` is given",
    array({**EPOCH_RECORD, "properties": {**EPOCH_RECORD["properties"], **HISTORY_MODEL}}),
    args=(
        Arg("from_epoch", EPOCH_INDEX, "the first epoch (default 0)", required=False, default=0),
        Arg("to_epoch", EPOCH_INDEX, "the last epoch (default: the latest)", required=False),
        MODEL_ARG,
    ),
    http=(Http("/v1/pricing/history"),),
    cli="history",
    page="epochs",
)
def query_history(
    ctx: QueryContext, from_epoch: int, to_epoch: int | None, model: str | None, page: PageRequest
) -> Paged:
    """The epoch records from `from_epoch` to `to_epoch`, oldest first; with `model`, each with the model's
    units and price per token in that epoch (null while it was not active)."""
    check_epoch_range(from_epoch, to_epoch)
    if model is not None:
        check_known_model(ctx.state, model)
    end = None if to_epoch is None else rules.compute_index_key(to_epoch + 1)
    result = read_page(ctx.state, "hist", page, rules.compute_index_key(from_epoch), end)
    if model is None:
        return result
    units_at: dict[int, int | None] = {}  # by registry version: one read per version in the page
    items = []
    for record in result.items:
        version = record["registry_version"]
        if version not in units_at:
            change = rules.get_model_units_at(ctx.state, model, version)
            units_at[version] = (change[1] or None) if change else None
        units = units_at[version]
        price = None if units is None else rules.compute_price_per_token(units, record["price"])
        twins = {"price_per_token": None, "price_per_token_str": None}
        items.append(
            {
                **record,
                "model": model,
                "units_of_compute_per_token": units,
                **(twins if price is None else compute_number_with_twin("price_per_token", price)),
            }
        )
    return Paged(items, result.next_key, result.extra)


def check_epoch_range(from_epoch: int, to_epoch: int | None) -> None:
    """ChainError(bad_query) if `from_epoch` is after `to_epoch` (None: no bound)."""
    if to_epoch is not None and from_epoch > to_epoch:
        raise bad_query(f"from_epoch ({from_epoch}) is after to_epoch ({to_epoch})")


def check_known_model(state: State, model: str) -> None:
    """Raise not_found unless `model` was ever registered (it has a change in the registry's index)."""
    if not state.iterate("mver", f"{model}|", f"{model}}}", limit=1):
        raise ChainError(f"model: {model!r} was never registered", code="not_found")


def get_window_records(state: State, from_epoch: int, to_epoch: int | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The records at the ends of the epoch window from_epoch..to_epoch (default: the latest), or bad_query
    naming the field that is out of range."""
    latest = rules.get_current_epoch(state)["index"]
    to_epoch = latest if to_epoch is None else to_epoch
    if to_epoch > latest:
        raise bad_query(f"to_epoch ({to_epoch}) is past the latest recorded epoch ({latest})")
    check_epoch_range(from_epoch, to_epoch)
    first, last = rules.get_epoch_record(state, from_epoch), rules.get_epoch_record(state, to_epoch)
    if first is None or last is None or "price_cumulative" not in first:
        raise bad_query(f"from_epoch ({from_epoch}): the history holds no TWAP accumulators there")
    return first, last


def get_window_units(state: State, model: str, first: dict[str, Any], last: dict[str, Any]) -> int:
    """The units per token of a model constant over the window of records first..last, or the error that
    says why there are none: never registered (not_found), not active, or changed inside the window."""
    check_known_model(state, model)
    change = rules.get_model_units_at(state, model, last["registry_version"])
    if change is None or change[1] == 0:
        raise bad_query(f"model: {model!r} is not active in epoch {last['epoch']} (to_epoch)")
    version, units = change
    if version > first["registry_version"]:
        changed = state.get("mlog", rules.compute_index_key(version))["epoch"]
        raise bad_query(
            f"model: {model!r} changed in epoch {changed}, inside the window: its per-token TWAP is asked of a "
            f"window from epoch {changed} on, or ending before it"
        )
    return int(units)


TWAP = obj(
    {
        "from_epoch": INT,
        "to_epoch": INT,
        "epochs": INT,
        "model": nullable(STR),
        "units_of_compute_per_token": nullable(INT),
        "denom": {"type": "string", "enum": ["ngonka"]},
        "price_sum": {**DIGITS, "description": "the exact sum of the window's prices: arithmetic = price_sum / epochs"},
        "arithmetic": {
            **DECIMAL,
            "description": "the mean price: exact when it terminates, else rounded down at 18 places",
        },
        "geometric": {**DECIMAL, "description": "the geometric mean price, to 24 significant digits (chain.market)"},
    }
)


@query(
    "twap",
    "The time-weighted average unit price (or a model's price per token) over epochs from_epoch..to_epoch",
    TWAP,
    args=(
        Arg("from_epoch", EPOCH_INDEX, "the window's first epoch (default 0)", required=False, default=0),
        Arg("to_epoch", EPOCH_INDEX, "the window's last epoch (default: the latest)", required=False),
        MODEL_ARG,
    ),
    http=(Http("/v1/pricing/twap"),),
    cli="twap",
)
def query_twap(ctx: QueryContext, from_epoch: int, to_epoch: int | None, model: str | None) -> dict[str, Any]:
    """Each epoch weighs one: two point reads of the running sums, whatever the window's length."""
    first, last = get_window_records(ctx.state, from_epoch, to_epoch)
    before = rules.get_epoch_record(ctx.state, from_epoch - 1) if from_epoch else None
    units = 1 if model is None else get_window_units(ctx.state, model, first, last)
    epochs = last["epoch"] - from_epoch + 1
    price_before = int(before["price_cumulative"]) if before else 0
    log2_before = int(before["log2_price_cumulative"]) if before else 0
    price_sum = int(last["price_cumulative"]) - price_before
    geometric = compute_geometric_mean(int(last["log2_price_cumulative"]), log2_before, epochs)
    return {
        "from_epoch": from_epoch,
        "to_epoch": last["epoch"],
        "epochs": epochs,
        "model": model,
        "units_of_compute_per_token": None if model is None else units,
        "denom": "ngonka",
        "price_sum": str(price_sum * units),
        "arithmetic": compute_decimal_text(compute_arithmetic_mean(price_sum * units, 0, epochs)),
        "geometric": compute_significant_text(geometric * units),
    }


PRICE_AT = obj(
    {
        "height": INT,
        "epoch": {**nullable(INT), "description": "the epoch the height is in; null at height 0 (no block yet)"},
        "denom": {"type": "string", "enum": ["ngonka"]},
        **{name: {**schema, "nullable": True} for name, schema in twin_schema("unit_of_compute_price").items()},
        "status": {**nullable(PRICE_STATUS), "enum": [*rules.PRICE_STATUSES, None]},
    }
)


@query(
    "price_at",
    "The unit-of-compute price in force at a block height (its epoch's price; null at height 0)",
    PRICE_AT,
    args=(
        Arg(
            "height",
            IntKind(0, text="a block height"),
            "the block height (0: genesis, before any block: no price in force)",
            metavar="H",
        ),
    ),
    http=(Http("/v1/pricing/at"),),
    cli="price-at",
)
def query_price_at(ctx: QueryContext, height: int) -> dict[str, Any]:
    """Step semantics: a price holds from its epoch's first block to its last; height 0 answers null."""
    if height > ctx.height:
        raise ChainError(f"height: {height} is not committed yet: the latest is {ctx.height}", code="not_found")
    if height == 0:
        nulls = {"unit_of_compute_price": None, "unit_of_compute_price_str": None}
        return {"height": 0, "epoch": None, "denom": "ngonka", **nulls, "status": None}
    epoch = compute_epoch_at_height(rules.get_params(ctx.state), height)
    record = rules.get_epoch_record(ctx.state, epoch)
    if record is None:  # unreachable on a chain: every epoch up to the current one has its record
        raise ChainError(f"height: epoch {epoch} of height {height} has no record", code="not_found")
    return {
        "height": height,
        "epoch": epoch,
        "denom": "ngonka",
        **compute_number_with_twin("unit_of_compute_price", record["price"]),
        "status": record.get("status"),
    }


@query(
    "price_vote",
    "An account's price vote in force",
    obj({"price": INT, "denom": STR, "price_ngonka": INT, "height": INT, "epoch": INT}),
    args=(ADDRESS_ARG,),
)
def query_price_vote(ctx: QueryContext, address: str) -> dict[str, Any]:
    """The price vote of `address` (not_found if it never voted)."""
    vote = rules.get_price_vote(ctx.state, address)
    if vote is None:
        raise ChainError(f"{address} has never voted a unit-of-compute price", code="not_found")
    return vote


@query(
    "price_commits",
    "An account's price commits not yet revealed (vote_mode commit_reveal): at most one per epoch, two in all",
    obj(
        {
            "address": STR,
            "vote_mode": STR,
            "commits": array(
                obj({"epoch": INT, "hash": STR, "height": INT, "reveal_epoch": INT, "in_force_epoch": INT})
            ),
        }
    ),
    args=(ADDRESS_ARG,),
    http=(Http("/v1/validators/{address}/price-commits"),),
    cli="price-commits",
)
def query_price_commits(ctx: QueryContext, address: str) -> dict[str, Any]:
    """The unrevealed commits of `address` (of the previous epoch and this one, oldest first): each with the
    epoch it may be revealed in and the first epoch its price would be in force."""
    epoch = rules.get_current_epoch(ctx.state)["index"]
    commits = []
    for committed in (epoch - 1, epoch):
        commit = rules.get_price_commit(ctx.state, committed, address)
        if commit is not None:
            commits.append(
                {"epoch": committed, **commit, "reveal_epoch": committed + 1, "in_force_epoch": committed + 2}
            )
    return {"address": address, "vote_mode": rules.get_params(ctx.state).vote_mode, "commits": commits}


@query(
    "fees",
    "The fee pool (paid to the validators by power at the epoch's end), the fees of this epoch so far, and "
    "the usage fees held until their settlements' dispute windows end (then they join the pool)",
    obj({"pool": INT, "epoch": INT, "held": INT, "min_gas_price": STR}),
    http=(Http("/v1/fees"),),
    cli="fees",
)
def query_fees(ctx: QueryContext) -> dict[str, Any]:
    """The fee pool, the current epoch's fees, the held usage fees and the chain's min_gas_price."""
    return {
        **rules.get_fees(ctx.state),
        "held": usage.get_fees_held(ctx.state),
        "min_gas_price": rules.get_params(ctx.state).min_gas_price,
    }


@query(
    "params",
    "The chain params: epochs, the default price and governance (min_deposit, periods, thresholds)",
    PARAMS,
    http=(Http("/v1/params"),),
    cli="params",
)
def query_params(ctx: QueryContext) -> Any:
    """The chain params."""
    return rules.get_params(ctx.state).to_json()


@query(
    "proposals",
    "Governance proposals",
    array(PROPOSAL),
    args=(Arg("status", PROPOSAL_STATUS, "only the proposals in this status", required=False),),
    http=(Http("/v1/governance/proposals"),),
    cli="proposals",
    page="proposals",
)
def query_proposals(ctx: QueryContext, status: str | None, page: PageRequest) -> Paged:
    """The proposals in id order, or those in `status` (a filtered page reads at most MAX_PAGE_SCAN)."""
    keep = None if status is None else (lambda p: p["status"] == status)
    return read_page(ctx.state, "gov", page, keep=keep)


PROPOSAL_ID_ARG = Arg("id", PROPOSAL_ID, "the proposal id", positional=True, metavar="ID")


def get_known_proposal(state: State, proposal_id: int) -> dict[str, Any]:
    """A proposal, or ChainError(not_found)."""
    try:
        return rules.get_proposal(state, proposal_id)
    except InvalidTx as exc:
        raise ChainError(str(exc), code="not_found") from None


@query(
    "proposal",
    "A proposal with its tally",
    PROPOSAL_DETAIL,
    args=(PROPOSAL_ID_ARG,),
    http=(Http("/v1/governance/proposals/{id}"),),
    cli="proposal",
)
def query_proposal(ctx: QueryContext, id: int) -> dict[str, Any]:
    """A proposal with its live (or final) tally; its deposits and votes are list queries of their own."""
    proposal = get_known_proposal(ctx.state, id)
    live = proposal["status"] == "voting_period"
    return {**proposal, "tally": rules.get_tally(ctx.state, id).to_json() if live else proposal["final_tally"]}


def read_proposal_page(ctx: QueryContext, space: str, id: int, page: PageRequest, names: tuple[str, str]) -> Paged:
    """A page of a proposal's deposits or votes (one key range: `<id>/…`), by address."""
    get_known_proposal(ctx.state, id)
    prefix = rules.compute_index_key(id) + "/"
    return read_page(
        ctx.state,
        space,
        page,
        prefix,
        compute_prefix_end(prefix),
        item=lambda key, value: {names[0]: key[len(prefix) :], names[1]: value},
    )


@query(
    "deposits",
    "A proposal's deposits held",
    array(obj({"depositor": STR, "amount": INT})),
    args=(PROPOSAL_ID_ARG,),
    http=(Http("/v1/governance/proposals/{id}/deposits"),),
    cli="deposits",
    page="deposits",
)
def query_deposits(ctx: QueryContext, id: int, page: PageRequest) -> Paged:
    """The deposits a proposal holds, by depositor."""
    return read_proposal_page(ctx, "dep", id, page, ("depositor", "amount"))


@query(
    "votes",
    "A proposal's votes (until its tally)",
    array(obj({"voter": STR, "option": {"type": "string", "enum": list(VOTE_OPTIONS)}})),
    args=(PROPOSAL_ID_ARG,),
    http=(Http("/v1/governance/proposals/{id}/votes"),),
    cli="votes",
    page="votes",
)
def query_votes(ctx: QueryContext, id: int, page: PageRequest) -> Paged:
    """The votes of a proposal in its voting period, by voter (deleted once tallied)."""
    return read_proposal_page(ctx, "gvote", id, page, ("voter", "option"))


@query(
    "models",
    "The models active this epoch, with their price per token",
    array(ACTIVE_MODEL),
    http=(Http("/v1/models"),),
    cli="models",
    page="models",
    extra={"epoch": INT, "registry_version": INT},
)
def query_models(ctx: QueryContext, page: PageRequest) -> Paged:
    """The active models by id, with the epoch and the registry's version."""
    state = ctx.state
    epoch = rules.get_current_epoch(state)

    def item(_: str, model: dict[str, Any]) -> dict[str, Any]:
        price = rules.compute_price_per_token(model["units_of_compute_per_token"], epoch["price"])
        return {**model, **compute_number_with_twin("price_per_token", price)}

    result = read_page(state, "amodel", page, item=item)
    return Paged(
        result.items, result.next_key, {"epoch": epoch["index"], "registry_version": rules.get_registry_version(state)}
    )


@query(
    "registered_models",
    "Every registered model (active, or from the next epoch)",
    array(MODEL),
    http=(Http("/v1/models/registered"),),
    cli="registered-models",
    page="models",
    extra={"registry_version": INT},
)
def query_registered_models(ctx: QueryContext, page: PageRequest) -> Paged:
    """The registry's models by id (changes that passed, active or not yet), with its version."""
    result = read_page(ctx.state, "model", page)
    return Paged(result.items, result.next_key, {"registry_version": rules.get_registry_version(ctx.state)})


@query(
    "model_changes",
    "The model registry's change log",
    array(MODEL_CHANGE),
    http=(Http("/v1/models/changes"),),
    cli="model-changes",
    page="changes",
)
def query_model_changes(ctx: QueryContext, page: PageRequest) -> Paged:
    """The registry change log, oldest first."""
    return read_page(ctx.state, "mlog", page)


# -- usage: escrows, settlements, cost records and their totals ----------------------------------------

CURRENCY = "NGONKA"
MONEY = obj({"amount": INT, "currency": {"type": "string", "enum": [CURRENCY]}})
TOKEN_COUNTS = obj({"in": INT, "out": INT})
ATTRIBUTION_OBJ = {"type": "object", "properties": {name: STR for name in ATTRIBUTION_FIELDS}}
SETTLEMENT_STATUS = EnumKind(usage.SETTLEMENT_STATUSES, code="bad_query", reason="bad_query")
SETTLEMENT = obj(
    {
        "request_id": STR,
        "requester": STR,
        "provider": STR,
        "model": STR,
        "tokens": TOKEN_COUNTS,
        "pricePerToken": MONEY,
        "amountCharged": MONEY,
        "providerPayout": MONEY,
        "exchangeFee": MONEY,
        "status": SETTLEMENT_STATUS.schema(),
        "epoch": INT,
        "height": INT,
        "tx_hash": STR,
        "price_record": obj(
            {"epoch": INT, "unit_of_compute_price": INT, "units_per_token": INT},
            pricing_mode={
                **STR,
                "enum": ["dynamic", "hybrid"],
                "description": 'absent in "voted" mode; else pricePerToken is the model\'s dynamic price of the block',
            },
        ),
        "dispute_until": INT,
        "fee_released": BOOL,
        "attribution": ATTRIBUTION_OBJ,
    },
    disputed_height=INT,
    resolve_until={**INT, "description": "the last block of the dispute's resolution window"},
    dispute_lapsed_height={**INT, "description": "the dispute lapsed unresolved here: the charge stands"},
    refunded_height=INT,
    refunded_by={**STR, "description": "provider, or proposal N (a passed RefundSettlement)"},
)
COST_RECORD = obj(
    {
        "cost_record_id": STR,
        "envelope_id": STR,
        "event_id": STR,
        "provider_id": STR,
        "capability_kind": STR,
        "units": obj({"tokens.input": INT, "tokens.output": INT, CURRENCY: INT}),
        "amount": MONEY,
        "attribution": ATTRIBUTION_OBJ,
        "model_or_sku": STR,
        "is_estimate": BOOL,
        "status": SETTLEMENT_STATUS.schema(),
        "epoch": INT,
        "requester": STR,
    }
)
TOTALS = obj(
    {
        "group": STR,
        "records": INT,
        "tokens": obj({"input": INT, "output": INT}),
        "amount": MONEY,
        "payout": MONEY,
        "fee": MONEY,
    }
)
CAPABILITY_KIND = "uoc:inference/tokens"
DIMENSION = EnumKind(usage.DIMENSIONS, code="bad_query", reason="bad_query")
GROUP_TEXT = IdentifierKind("a group or a prefix of one", 400, "-_.:@/", "team-a/", reason="bad_query")


def compute_money(amount: int) -> dict[str, Any]:
    """Money as the usage reads show it: integer ngonka, currency NGONKA."""
    return {"amount": amount, "currency": CURRENCY}


def compute_settlement_view(record: dict[str, Any]) -> dict[str, Any]:
    """A settlement record as the API shows it (money as money objects)."""
    view = {key: value for key, value in record.items() if key not in ("charged", "payout", "fee", "price_per_token")}
    return {
        **view,
        "pricePerToken": compute_money(record["price_per_token"]),
        "amountCharged": compute_money(record["charged"]),
        "providerPayout": compute_money(record["payout"]),
        "exchangeFee": compute_money(record["fee"]),
    }


def compute_cost_record(record: dict[str, Any]) -> dict[str, Any]:
    """A settlement as a cost record (cost-record.txt §10.1): bound to its tx, never an estimate."""
    key = usage.compute_settlement_key(record["requester"], record["request_id"])
    return {
        "cost_record_id": key,
        "envelope_id": record["request_id"],
        "event_id": record["tx_hash"],
        "provider_id": record["provider"],
        "capability_kind": CAPABILITY_KIND,
        "units": {
            "tokens.input": record["tokens"]["in"],
            "tokens.output": record["tokens"]["out"],
            CURRENCY: record["charged"],
        },
        "amount": compute_money(record["charged"]),
        "attribution": record["attribution"],
        "model_or_sku": record["model"],
        "is_estimate": False,
        "status": record["status"],
        "epoch": record["epoch"],
        "requester": record["requester"],
    }


@query(
    "escrow",
    "An account's usage escrow and its pending withdrawal",
    obj(
        {
            "address": STR,
            "amount": MONEY,
            "withdrawal": nullable(obj({"amount": MONEY, "height": INT})),
        }
    ),
    args=(ADDRESS_ARG,),
    http=(Http("/v1/escrows/{address}"),),
    cli="escrow",
)
def query_escrow(ctx: QueryContext, address: str) -> dict[str, Any]:
    """An escrow (zero if never funded) and the withdrawal paid out at the end of block `height`."""
    escrow = usage.get_escrow(ctx.state, address)
    withdrawal = escrow["withdrawal"]
    return {
        "address": address,
        "amount": compute_money(escrow["amount"]),
        "withdrawal": None
        if withdrawal is None
        else {"amount": compute_money(withdrawal["amount"]), "height": withdrawal["height"]},
    }


REQUEST_ID_ARG = Arg("request_id", REQUEST_ID, "the request id", positional=True, metavar="REQUEST_ID")
REQUESTER_ARG = Arg("requester", ADDRESS, "the requester (request ids are unique per requester)", metavar="ADDRESS")


@query(
    "settlement",
    "A usage settlement by its requester and request id",
    SETTLEMENT,
    args=(REQUEST_ID_ARG, REQUESTER_ARG),
    http=(Http("/v1/settlements/{request_id}"),),  # served by node.api.usage's handler (PAC charge reports)
    cli="settlement",
)
def query_settlement(ctx: QueryContext, request_id: str, requester: str) -> dict[str, Any]:
    """One settlement (not_found if the requester has none with this id)."""
    record = usage.get_settlement(ctx.state, requester, request_id)
    if record is None:
        raise ChainError(f"{requester} has no settlement with request id {request_id!r}", code="not_found")
    return compute_settlement_view(record)


SETTLEMENT_FILTERS = (
    Arg("requester", ADDRESS, "only this requester's, by request id", required=False, metavar="ADDRESS"),
    Arg("provider", ADDRESS, "only this provider's, oldest first", required=False, metavar="ADDRESS"),
    Arg("model", MODEL_ID, "only this model's, oldest first", required=False, metavar="MODEL"),
)


def read_settlement_page(
    ctx: QueryContext,
    page: PageRequest,
    view: Callable[[dict[str, Any]], Any],
    requester: str | None,
    provider: str | None,
    model: str | None,
) -> Paged:
    """A page of settlements from one key range: a provider's or a model's index (oldest first), else a
    requester's (or everyone's) by request id; the filters that range does not cover are checked on each
    record (a filtered page reads at most `MAX_PAGE_SCAN` entries, as `read_page` says)."""
    state = ctx.state
    if provider is None and model is None:
        prefix = "" if requester is None else requester + "|"
        space, filters = "usettle", {}

        def record_of(key: str, value: Any) -> Any:
            return value

    else:
        space, owner = ("uprov", provider) if provider is not None else ("umodel", model)
        prefix = f"{owner}|"
        filters = {"requester": requester, "model": model if provider is not None else None}

        def record_of(key: str, value: Any) -> Any:
            return state.get("usettle", key[len(prefix) + 13 :])

    wanted = {name: value for name, value in filters.items() if value is not None}
    keep = (lambda r: all(r[name] == value for name, value in wanted.items())) if wanted else None
    result = read_page(state, space, page, prefix, compute_prefix_end(prefix), item=record_of, keep=keep)
    return Paged([view(r) for r in result.items], result.next_key)


@query(
    "settlements",
    "Usage settlements: a requester's, a provider's or a model's (filters combine)",
    array(SETTLEMENT),
    args=SETTLEMENT_FILTERS,
    http=(Http("/v1/settlements"),),
    cli="settlements",
    page="settlements",
)
def query_settlements(
    ctx: QueryContext, requester: str | None, provider: str | None, model: str | None, page: PageRequest
) -> Paged:
    """Settlements by requester and request id, or by provider or model, oldest first (filters combine)."""
    return read_settlement_page(ctx, page, compute_settlement_view, requester, provider, model)


@query(
    "cost_records",
    "Cost records (one per settlement): a requester's, a provider's or a model's (filters combine)",
    array(COST_RECORD),
    args=SETTLEMENT_FILTERS,
    http=(Http("/v1/cost-records"),),
    cli="cost-records",
    page="records",
)
def query_cost_records(
    ctx: QueryContext, requester: str | None, provider: str | None, model: str | None, page: PageRequest
) -> Paged:
    """The settlements as cost records, by requester and request id, or by provider or model."""
    return read_settlement_page(ctx, page, compute_cost_record, requester, provider, model)


def compute_totals_view(key: str, totals: Sequence[int]) -> dict[str, Any]:
    """One group's totals (in `usage.TOTAL_FIELDS` order) as the API shows them."""
    records, tokens_in, tokens_out, charged, payout, fee = totals
    return {
        "group": key.partition("|")[2],
        "records": records,
        "tokens": {"input": tokens_in, "output": tokens_out},
        "amount": compute_money(charged),
        "payout": compute_money(payout),
        "fee": compute_money(fee),
    }


@query(
    "usage_totals",
    "Totals of the settlements not refunded, grouped by requester, provider, model, epoch or a prefix of "
    "the attribution chain (workforce, workforce/function, … workforce/function/intent/role/worker)",
    array(TOTALS),
    args=(
        Arg("group_by", DIMENSION, "what the totals are grouped by", metavar="DIMENSION"),
        Arg("prefix", GROUP_TEXT, "only the groups whose name starts with this", required=False),
    ),
    http=(Http("/v1/cost-records/totals"),),
    cli="cost-totals",
    page="groups",
    extra={"covered": INT, "total": TOTALS},
)
def query_usage_totals(ctx: QueryContext, group_by: str, prefix: str | None, page: PageRequest) -> Paged:
    """One page of groups, each read from its running totals (no record is read: the cost of a page
    follows its groups, never the records they cover), with how many records the page covers."""
    start = usage.compute_aggregate_key(group_by, prefix or "")
    return read_totals_page(ctx, group_by, page, start, compute_prefix_end(start))


@query(
    "usage_epoch_totals",
    "Totals of the settlements not refunded, by epoch, over a range of epochs",
    array(TOTALS),
    args=(
        Arg("from_epoch", EPOCH_INDEX, "the first epoch (default 0)", required=False),
        Arg("to_epoch", EPOCH_INDEX, "the last epoch (default the latest)", required=False),
    ),
    http=(Http("/v1/cost-records/totals/epochs"),),
    cli="cost-totals-by-epoch",
    page="groups",
    extra={"covered": INT, "total": TOTALS},
)
def query_usage_epoch_totals(
    ctx: QueryContext, from_epoch: int | None, to_epoch: int | None, page: PageRequest
) -> Paged:
    """usage_totals grouped by epoch, from `from_epoch` to `to_epoch` (a separate query, so that every
    argument of a route applies to it: an OpenAPI document cannot say that one goes with another's value)."""
    check_epoch_range(from_epoch or 0, to_epoch)
    base = usage.compute_aggregate_key("epoch", "")
    start = base + rules.compute_index_key(from_epoch or 0)
    end = compute_prefix_end(base) if to_epoch is None else base + rules.compute_index_key(to_epoch + 1)
    return read_totals_page(ctx, "epoch", page, start, end)


def read_totals_page(ctx: QueryContext, group_by: str, page: PageRequest, start: str, end: str | None) -> Paged:
    """One page of the running totals of `group_by` with keys in [start, end), and what the page covers."""
    base = usage.compute_aggregate_key(group_by, "")
    result = read_page(ctx.state, "uagg", page, start, end, item=compute_totals_view)
    total = [
        sum(g["records"] for g in result.items),
        sum(g["tokens"]["input"] for g in result.items),
        sum(g["tokens"]["output"] for g in result.items),
        *(sum(g[name]["amount"] for g in result.items) for name in ("amount", "payout", "fee")),
    ]
    extra = {"covered": total[0], "total": compute_totals_view(base + "*", total)}
    return Paged(result.items, result.next_key, extra)


# -- the reference index (chain.index) ----------------------------------------------------------------

DECIMAL_TEXT = {
    **STR,
    "pattern": r"^[0-9]+(\.[0-9]+)?$",
    "description": f"a decimal string, truncated to {index.DECIMAL_PLACES} places (never a float)",
}
EXACT_TEXT = {**STR, "pattern": "^[0-9]+(/[0-9]+)?$", "description": "the exact rational, p/q"}


def rational_schema(name: str) -> dict[str, Any]:
    """The schemas of `compute_rational_view(name, …)`: a nullable decimal string and its exact rational."""
    return {name: nullable(DECIMAL_TEXT), f"{name}_exact": nullable(EXACT_TEXT)}


def compute_rational_view(name: str, text: str | None) -> dict[str, Any]:
    """A stored rational (`p/q` text, or None) as `name`, a decimal string, and `name_exact`, `p/q`."""
    return {name: index.compute_decimal_text(text), f"{name}_exact": text}


INDEX_TIER_VALUE = obj(
    {
        "tier": STR,
        "weight": DECIMAL_TEXT,
        "members": INT,
        **rational_schema("capped_mean"),
        **rational_schema("contribution"),
    }
)
INDEX_RECORD = obj(
    {
        "epoch": INT,
        **rational_schema("value"),
        **rational_schema("cost"),
        "unit_price": INT,
        "revision": INT,
        "stale": BOOL,
        "tiers": array(INDEX_TIER_VALUE),
    }
)
INDEX_BASELINE = nullable(obj({"epoch": INT, **rational_schema("cost")}))
INDEX_CHANGE = obj(
    {
        "type": {"type": "string", "enum": ["added", "removed", "retiered", "repriced"]},
        "model": STR,
        "tier_before": nullable(STR),
        "tier_after": nullable(STR),
        "units_before": nullable(INT),
        "units_after": nullable(INT),
    }
)
INDEX_RECONSTITUTION = obj(
    {
        "revision": INT,
        "epoch": INT,
        "height": INT,
        "proposals": array(INT),
        "changes": array(INDEX_CHANGE),
        "config_changed": BOOL,
        "rebased": BOOL,
        **rational_schema("value_before"),
        **rational_schema("value_after"),
        **rational_schema("cost_before"),
        **rational_schema("cost_after"),
    }
)
INDEX_MEMBER = obj(
    {
        "model": STR,
        "units_of_compute_per_token": INT,
        **twin_schema("cost"),
        **rational_schema("counted"),
        "clipped": nullable({"type": "string", "enum": ["low", "high", None]}),
    }
)


def compute_index_record_view(record: Any) -> dict[str, Any]:
    """An epoch's index as the API shows it: rationals as decimal strings (and exact), tiers by name."""
    tiers = []
    for name, tier in sorted(record["tiers"].items()):
        mean = tier["capped_mean"]
        contribution = None if mean is None else str(Fraction(tier["weight"]) * Fraction(mean))
        tiers.append(
            {
                "tier": name,
                "weight": index.compute_decimal_text(tier["weight"]),
                "members": tier["members"],
                **compute_rational_view("capped_mean", mean),
                **compute_rational_view("contribution", contribution),
            }
        )
    return {
        "epoch": record["epoch"],
        **compute_rational_view("value", record["value"]),
        **compute_rational_view("cost", record["cost"]),
        "unit_price": record["unit_price"],
        "revision": record["revision"],
        "stale": record["stale"],
        "tiers": tiers,
    }


def get_index_in_force(state: State) -> dict[str, Any]:
    """The index's state at the last boundary, or ChainError(not_found) before the first IndexConfig."""
    current = index.get_index_state(state)
    if current is None or current["config"] is None:
        raise ChainError("the reference index has no config in force yet: no IndexConfig has applied", code="not_found")
    return current


@query(
    "index",
    "The reference index: its value (100 at the baseline epoch), cost, baseline and tier values",
    obj(
        {
            **INDEX_RECORD["properties"],
            "baseline": INDEX_BASELINE,
            "workload": TOKEN_COUNTS,
            "cap": DECIMAL_TEXT,
            "denom": {"type": "string", "enum": ["ngonka"]},
        }
    ),
    http=(Http("/v1/index"),),
    cli="index",
)
def query_index(ctx: QueryContext) -> dict[str, Any]:
    """The latest epoch's index with its baseline (epoch and cost), workload and band k."""
    current = get_index_in_force(ctx.state)
    record = index.get_latest_index_record(ctx.state)
    assert record is not None, "a config in force has an index record"
    baseline = current["baseline"]
    return {
        **compute_index_record_view(record),
        "baseline": None
        if baseline is None
        else {"epoch": baseline["epoch"], **compute_rational_view("cost", baseline["cost"])},
        "workload": current["config"]["workload"],
        "cap": current["config"]["cap"],
        "denom": "ngonka",
    }


@query(
    "index_history",
    "The reference index by epoch",
    array(INDEX_RECORD),
    args=(
        Arg("from_epoch", EPOCH_INDEX, "the first epoch (default 0)", required=False, default=0),
        Arg("to_epoch", EPOCH_INDEX, "the last epoch (default: the latest)", required=False),
    ),
    http=(Http("/v1/index/history"),),
    cli="index-history",
    page="epochs",
)
def query_index_history(ctx: QueryContext, from_epoch: int, to_epoch: int | None, page: PageRequest) -> Paged:
    """The index of each epoch from `from_epoch` to `to_epoch`, oldest first (one key range)."""
    check_epoch_range(from_epoch, to_epoch)
    end = None if to_epoch is None else rules.compute_index_key(to_epoch + 1)
    start = rules.compute_index_key(from_epoch)
    return read_page(ctx.state, "ihist", page, start, end, item=lambda _, r: compute_index_record_view(r))


@query(
    "index_tiers",
    "The reference index's tiers: weight, members with their costs, median and capped mean",
    obj(
        {
            "epoch": INT,
            "unit_price": INT,
            "workload": TOKEN_COUNTS,
            "cap": DECIMAL_TEXT,
            "tiers": array(
                obj(
                    {
                        "tier": STR,
                        "weight": DECIMAL_TEXT,
                        "members": array(INDEX_MEMBER),
                        **rational_schema("median"),
                        **rational_schema("capped_mean"),
                        **rational_schema("contribution"),
                    }
                )
            ),
        }
    ),
    http=(Http("/v1/index/tiers"),),
    cli="index-tiers",
)
def query_index_tiers(ctx: QueryContext) -> dict[str, Any]:
    """Each tier in force: its members (each one's cost of the reference workload and what it counts
    for once clipped), the median, the capped mean and its weighted contribution, in ngonka."""
    state = ctx.state
    config = get_index_in_force(state)["config"]
    epoch = rules.get_current_epoch(state)
    tokens = index.compute_workload_tokens(config)
    scale = tokens * epoch["price"]
    cap = Fraction(config["cap"])
    tiers = []
    for name, weight in sorted(config["tiers"].items()):
        summary = index.get_tier(state, name)
        members = index.get_tier_members(state, name)
        median = index.compute_lower_median([u for _, u in members]) if members else None
        views = []
        for model, units in members:
            counted = None if median is None else index.compute_clipped(units, median, cap) * scale
            views.append(
                {
                    "model": model,
                    "units_of_compute_per_token": units,
                    **compute_number_with_twin("cost", index.compute_model_cost(units, epoch["price"], tokens)),
                    **compute_rational_view("counted", None if counted is None else str(counted)),
                    "clipped": None
                    if median is None or median / cap <= units <= median * cap
                    else ("low" if units < median / cap else "high"),
                }
            )
        mean = None if summary is None else Fraction(summary["capped_mean"]) * scale
        tiers.append(
            {
                "tier": name,
                "weight": index.compute_decimal_text(weight),
                "members": views,
                **compute_rational_view("median", None if median is None else str(median * scale)),
                **compute_rational_view("capped_mean", None if mean is None else str(mean)),
                **compute_rational_view("contribution", None if mean is None else str(mean * Fraction(weight))),
            }
        )
    return {
        "epoch": epoch["index"],
        "unit_price": epoch["price"],
        "workload": config["workload"],
        "cap": index.compute_decimal_text(config["cap"]),
        "tiers": tiers,
    }


def compute_reconstitution_view(record: Any) -> dict[str, Any]:
    """A reconstitution as the API shows it (rationals as decimal strings, and exact)."""
    rationals = ("value_before", "value_after", "cost_before", "cost_after")
    view = {k: v for k, v in record.items() if k not in rationals}
    for name in rationals:
        view.update(compute_rational_view(name, record[name]))
    return view


@query(
    "index_reconstitutions",
    "The reference index's reconstitutions: models added, removed, re-tiered or re-priced and config changes, "
    "with the index before and after",
    array(INDEX_RECONSTITUTION),
    http=(Http("/v1/index/reconstitutions"),),
    cli="index-reconstitutions",
    page="reconstitutions",
)
def query_index_reconstitutions(ctx: QueryContext, page: PageRequest) -> Paged:
    """The reconstitutions, oldest first (by revision)."""
    return read_page(ctx.state, "irecon", page, item=lambda _, r: compute_reconstitution_view(r))


@query(
    "index_health",
    "Whether the reference index is stale: no index for the current epoch, or a weighted tier without members",
    obj({"latest_epoch": nullable(INT), "current_epoch": INT, "revision": INT, "stale": BOOL, "reasons": array(STR)}),
    http=(Http("/v1/index/health"),),
    cli="index-health",
)
def query_index_health(ctx: QueryContext) -> dict[str, Any]:
    """The latest epoch with an index and why it is stale, if it is (reasons empty: fresh)."""
    state = ctx.state
    epoch = rules.get_current_epoch(state)["index"]
    record = index.get_latest_index_record(state)
    current = index.get_index_state(state)
    reasons = []
    if record is None:
        reasons.append("no index has been computed: no IndexConfig has applied yet")
    else:
        if record["epoch"] != epoch:
            reasons.append(f"no index for the current epoch {epoch} (latest: epoch {record['epoch']})")
        if record["value"] is None:
            reasons.append("the index has no value: a weighted tier has never had a member")
        empty = sorted(name for name, tier in record["tiers"].items() if tier["members"] == 0)
        if empty:
            reasons.append(f"weighted tier(s) without members (their last value carried): {', '.join(empty)}")
    return {
        "latest_epoch": None if record is None else record["epoch"],
        "current_epoch": epoch,
        "revision": 0 if current is None else current["revision"],
        "stale": bool(reasons),
        "reasons": reasons,
    }


__all__ = [
    "DEFAULT_PAGE_LIMIT",
    "BoolKind",
    "MAX_PAGE_LIMIT",
    "MAX_PAGE_SCAN",
    "PAGE_ARGS",
    "PageKeyKind",
    "QUERIES",
    "Http",
    "PageRequest",
    "Paged",
    "Query",
    "QueryContext",
    "decode_page_key",
    "encode_page_key",
    "iterate_pages",
    "query",
    "read_page",
    "run_query",
    "run_query_all",
]
