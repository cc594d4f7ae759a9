"""Queries of committed state, each declared once: name, arguments, response schema, CLI name and
the public HTTP read route that serves it (as Cosmos modules annotate their Query services with
`google.api.http`).

    @query("epoch", "The current epoch, or the record of epoch n", EPOCH,
           args=(Arg("n", EPOCH_INDEX, "an epoch", positional=True, required=False, words={"current": None}),),
           http=(Http("/v1/epochs/current"), Http("/v1/epochs/{n}")), cli="epoch")
    def query_epoch(ctx: QueryContext, n: int | None) -> Any: ...

`run_query(ctx, "epoch/3")` (what `Application.query` calls) parses the path argument from its text
and checks keyword arguments with their kinds; a bad argument is `ChainError(code="bad_query")`.
A route answers `{wrap: result}` when its `Http` has a `wrap`, else the result itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from . import rules
from .encoding import thaw
from .errors import ChainError, InvalidTx
from .fields import Arg, EnumKind, FieldError, IntKind
from .params import describe_params
from .store import State
from .tx import ADDRESS, CONTENT, PROPOSAL_ID, VOTE_OPTIONS

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
BALLOT = obj({"voters": INT, "non_voters": INT, "min_vote": nullable(INT), "max_vote": nullable(INT)})
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
    }
)
MODEL = obj(
    {"id": STR, "units_of_compute_per_token": INT},
    hf_repo=STR,
    hf_commit=STR,
    v_ram=INT,
    throughput_per_nonce=INT,
    validation_threshold=STR,
)
ACTIVE_MODEL = {**MODEL, "required": [*MODEL["required"], "price_per_token"]}
ACTIVE_MODEL["properties"] = {**MODEL["properties"], "price_per_token": INT}
MODEL_PRICE = obj({"id": STR, "units_of_compute_per_token": INT, "price_per_token": INT})
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
PROPOSAL_DETAIL = obj(
    {
        **PROPOSAL_FIELDS,
        "tally": nullable(TALLY),
        "deposits": array(obj({"depositor": STR, "amount": INT})),
        "votes": array(obj({"voter": STR, "option": {"type": "string", "enum": list(VOTE_OPTIONS)}})),
    }
)
PARAMS = obj({p.name: {**p.schema, "description": p.description, "default": p.default} for p in describe_params()})
EPOCH_INDEX = IntKind(0, text="an epoch index")

# -- declarations ------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueryContext:
    """What a query reads: the committed state, and the height and app hash it was committed with."""

    state: State
    height: int
    app_hash: str


@dataclass(frozen=True)
class Http:
    """A public read route that serves a query: `path` with `{arg}` placeholders for its path
    argument; the route answers `{wrap: result}` when `wrap` is set, else the result."""

    path: str
    wrap: str | None = None

    def compute_response(self, result: Any) -> Any:
        """The route's answer for a query result."""
        return result if self.wrap is None else {self.wrap: result}


@dataclass(frozen=True)
class Query:
    """One declared query (see the module docstring)."""

    name: str
    summary: str
    response: dict[str, Any]
    run: Callable[..., Any]
    args: tuple[Arg, ...] = ()
    http: tuple[Http, ...] = ()
    cli: str | None = None

    def route_schema(self, http: Http) -> dict[str, Any]:
        """The JSON schema of a route's answer."""
        return self.response if http.wrap is None else obj({http.wrap: self.response})

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
) -> Callable[[F], F]:
    """Declare the decorated function `(ctx, **args) -> JSON` as query `name` (its one registration)."""

    def declare(run: F) -> F:
        if name in QUERIES:
            raise TypeError(f"query {name!r} is declared twice")
        QUERIES[name] = Query(name, summary, response, run, args, http, cli)
        return run

    return declare


def bad_query(message: str) -> ChainError:
    """The error of a query asked with bad arguments."""
    return ChainError(message, code="bad_query")


def compute_query_args(q: Query, text: str, params: dict[str, Any]) -> dict[str, Any]:
    """The query's arguments: the path's `text` (parsed by its kind), the keyword ones (checked),
    the defaults of the others; ChainError(bad_query) for a bad or unknown one."""
    values: dict[str, Any] = {}
    try:
        if text:
            if q.path_arg is None:
                raise bad_query(f"query {q.name!r} takes no path argument, got {text[:40]!r}")
            values[q.path_arg.name] = q.path_arg.parse_text(text)
        for name, value in params.items():
            arg = next((a for a in q.args if a.name == name), None)
            if arg is None:
                raise bad_query(f"query {q.name!r} has no argument {name!r}")
            values[name] = arg.check(value)
    except FieldError as exc:
        raise bad_query(str(exc)) from None
    for arg in q.args:
        if arg.name not in values:
            if arg.required:
                raise bad_query(f"query {q.name!r} needs its argument {arg.name} ({arg.kind.describe()})")
            values[arg.name] = arg.default
    return values


def run_query(ctx: QueryContext, path: str, **params: Any) -> Any:
    """Answer `path` ("name" or "name/arg") with keyword arguments; a plain, mutable JSON value."""
    name, _, text = path.partition("/")
    q = QUERIES.get(name)
    if q is None:
        raise ChainError(f"unknown query path {path!r}; known: {', '.join(sorted(QUERIES))}", code="unknown_query")
    return thaw(q.run(ctx, **compute_query_args(q, text, params)))


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
            "unit_of_compute_price": INT,
            "denom": {"type": "string", "enum": ["ngonka"]},
            "epoch": INT,
            "models": array(MODEL_PRICE),
        }
    ),
    http=(Http("/v1/pricing"),),
    cli="pricing",
)
def query_pricing(ctx: QueryContext) -> dict[str, Any]:
    """The price of a unit of compute this epoch, and of a token of each active model."""
    epoch = rules.get_current_epoch(ctx.state)
    models = sorted(rules.get_active_models(ctx.state), key=lambda m: m["id"])
    return {
        "unit_of_compute_price": epoch["price"],
        "denom": "ngonka",
        "epoch": epoch["index"],
        "models": [{k: m[k] for k in ("id", "units_of_compute_per_token", "price_per_token")} for m in models],
    }


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


@query(
    "validators",
    "The current epoch's validators",
    array(obj({"address": STR, "power": INT, "stake": INT, "pending_stake": INT})),
    http=(Http("/v1/validators", wrap="validators"),),
    cli="validators",
)
def query_validators(ctx: QueryContext) -> list[dict[str, Any]]:
    """The current epoch's validator set with powers and stakes, by address."""
    state = ctx.state
    return [{"address": a, "power": p, **rules.get_validator(state, a)} for a, p in rules.get_validator_set(state)]


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


@query(
    "history",
    "Epoch records (SPEC §3)",
    array(EPOCH_RECORD),
    args=(
        Arg("from_epoch", EPOCH_INDEX, "the first epoch (default 0)", required=False, default=0),
        Arg("to_epoch", EPOCH_INDEX, "the last epoch (default: the latest)", required=False),
    ),
    http=(Http("/v1/pricing/history", wrap="epochs"),),
    cli="history",
)
def query_history(ctx: QueryContext, from_epoch: int, to_epoch: int | None) -> list[dict[str, Any]]:
    """The epoch records from `from_epoch` to `to_epoch`, oldest first."""
    return rules.get_history(ctx.state, from_epoch, to_epoch)


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
    "fees",
    "The fee pool (paid to the validators by power at the epoch's end) and the fees of this epoch so far",
    obj({"pool": INT, "epoch": INT, "min_gas_price": STR}),
    http=(Http("/v1/fees"),),
    cli="fees",
)
def query_fees(ctx: QueryContext) -> dict[str, Any]:
    """The fee pool, the current epoch's fees and the chain's min_gas_price."""
    return {**rules.get_fees(ctx.state), "min_gas_price": rules.get_params(ctx.state).min_gas_price}


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
    http=(Http("/v1/governance/proposals", wrap="proposals"),),
    cli="proposals",
)
def query_proposals(ctx: QueryContext, status: str | None) -> list[dict[str, Any]]:
    """Every proposal in id order, or those in `status`."""
    return rules.get_proposals(ctx.state, status)


@query(
    "proposal",
    "A proposal with tally, deposits, votes",
    PROPOSAL_DETAIL,
    args=(Arg("id", PROPOSAL_ID, "the proposal id", positional=True, metavar="ID"),),
    http=(Http("/v1/governance/proposals/{id}"),),
    cli="proposal",
)
def query_proposal(ctx: QueryContext, id: int) -> dict[str, Any]:
    """A proposal with its live (or final) tally, its deposits held and its votes."""
    state = ctx.state
    try:
        proposal = rules.get_proposal(state, id)
    except InvalidTx as exc:
        raise ChainError(str(exc), code="not_found") from None
    live = proposal["status"] == "voting_period"
    tally = rules.get_tally(state, proposal["id"]).to_json() if live else proposal["final_tally"]
    deposits = rules.get_entries_of_proposal(state, "dep", proposal["id"])
    votes = rules.get_entries_of_proposal(state, "gvote", proposal["id"])
    return {
        **proposal,
        "tally": tally,
        "deposits": [{"depositor": a, "amount": n} for a, n in deposits],
        "votes": [{"voter": a, "option": o} for a, o in votes],
    }


@query("models", "The models active this epoch, with their price per token", array(ACTIVE_MODEL))
def query_models(ctx: QueryContext) -> list[dict[str, Any]]:
    """The active models, by id."""
    return rules.get_active_models(ctx.state)


@query(
    "registry",
    "The model registry: its version, every registered model and the change log",
    obj({"version": INT, "models": array(MODEL), "changes": array(MODEL_CHANGE)}),
)
def query_registry(ctx: QueryContext) -> dict[str, Any]:
    """The registry: version, models (active or not yet), change log."""
    return {
        "version": rules.get_registry_version(ctx.state),
        "models": rules.get_registered_models(ctx.state),
        "changes": rules.get_model_changes(ctx.state),
    }


@query(
    "catalog",
    "Active models (with price per token) and the registry",
    obj({"epoch": INT, "models": array(ACTIVE_MODEL), "registry_version": INT, "registered": array(MODEL)}),
    http=(Http("/v1/models"),),
    cli="models",
)
def query_catalog(ctx: QueryContext) -> dict[str, Any]:
    """The epoch, its active models and the registry's version and models (what GET /v1/models shows)."""
    return {
        "epoch": rules.get_current_epoch(ctx.state)["index"],
        "models": rules.get_active_models(ctx.state),
        "registry_version": rules.get_registry_version(ctx.state),
        "registered": rules.get_registered_models(ctx.state),
    }


__all__ = ["QUERIES", "Http", "Query", "QueryContext", "query", "run_query"]
