"""The public listener's routes ([api] public).

The chain's read routes are derived from its query declarations (`chain.catalog.get_routes`): one
route per `Http` of a query, its path and query parameters parsed by their declared kinds (a bad one
is a 400 with the kind's code), answered by the node's query in the declared shape and described by
the declared schemas; a list query's route takes `pagination.limit`, `pagination.key` and
`pagination.reverse` as query parameters like any other declared argument (`Query.all_args`); a route
without arguments is answered from bytes prepared once per committed block (`GET /v1/pricing` is the
hot one). Written by hand, each followed by its route: the node's
status, transaction submission and lookup, the OpenAPI document and the metrics."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

from aiohttp import web

from chain.catalog import CHAIN_ID_MARK, get_routes, get_tx_schema
from chain.encoding import canonical_bytes
from chain.fields import Arg, FieldError
from chain.gas import describe_gas_price
from chain.queries import (
    HEIGHT_ARG,
    MAX_TXS_PAGE,
    PAGE_KEY,
    PAGE_LIMIT,
    PAGE_REVERSE,
    PAGINATION,
    TXS_PAGE_ARGS,
    Http,
    Query,
    decode_page_key,
    encode_page_key,
)
from chain.tx import ADDRESS

from ..errors import ApiRequestError, MempoolError, NodeError, TxAlreadyKnown
from ..metrics import CONTENT_TYPE
from .dashboard import DASHBOARD_ROUTES
from .http import (
    bad_request,
    compute_tx_error_status,
    encode_json,
    json_response,
    mempool_error_to_api,
    outcome_error,
    parse_json_object,
    query,
    read_body,
)
from .openapi import (
    ANY_OBJ,
    BOOL,
    INT,
    JSON_TYPE,
    PENDING,
    STR,
    Handler,
    Route,
    compute_openapi_document,
    obj,
    param,
)
from .state import LISTENER_KEY, LISTENERS, get_state, get_table
from .usage import PUBLIC_USAGE_ROUTES


# =============================================================================================
# the chain's read routes, from its query declarations
# =============================================================================================
def compute_query_values(
    request: web.Request, path_args: tuple[Arg, ...], query_args: tuple[Arg, ...]
) -> dict[str, Any]:
    """A route's argument values from its path and query string (those left out are left to the
    query's defaults); 400 with the kind's code for a bad one."""
    values: dict[str, Any] = {}
    try:
        for arg in path_args:
            values[arg.name] = arg.parse_text(request.match_info[arg.name])
        for arg in query_args:
            text = request.query.get(arg.name)
            if text is not None:
                values[arg.name] = arg.parse_text(text)
    except FieldError as exc:
        raise bad_request(exc.reason, str(exc)) from None
    return values


HEIGHT_HEADER = "X-Cosmos-Block-Height"  # the height a state read answers at (as Cosmos's gateway names it)


def check_height(request: web.Request) -> int:
    """The committed height a state read answers at; 400 for a bad `height`, 404 for one whose state this
    node does not hold (it keeps only the latest: see docs/design.md, "Queries at a height")."""
    app = get_state(request).node.app
    committed = app.height if app is not None else 0
    if "height" not in request.query:  # the hot path (GET /v1/pricing): nothing to parse
        return committed
    height = compute_query_values(request, (), (HEIGHT_ARG,))["height"]
    if height > committed:
        raise ApiRequestError(
            404, "height_not_available", f"height {height} is not committed yet: the latest is {committed}"
        )
    if height < committed:
        raise ApiRequestError(
            404,
            "height_not_available",
            f"this node keeps only the state of its latest height ({committed}), not of height {height}; "
            "it keeps every block and tx (GET /v1/blocks/{height}, /v1/txs/{hash}) and every epoch's price "
            "(GET /v1/pricing/history)",
        )
    return committed


def get_committed_height(request: web.Request) -> int:
    """The node's latest committed height (0 before genesis is loaded)."""
    app = get_state(request).node.app
    return app.height if app is not None else 0


def is_point_in_time(q: Query) -> bool:
    """True for a query whose own `height` argument names the block it reads about (GET /v1/pricing/at):
    it answers from the latest state, and that argument is not the `height` every other read takes."""
    return any(a.name == HEIGHT_ARG.name for a in q.args)


def compute_query_handler(http: Http, q: Query, path_args: tuple[Arg, ...], query_args: tuple[Arg, ...]) -> Handler:
    """The handler of a route that answers query `q` (at the committed height: `height` may only name it)."""

    async def answer(request: web.Request) -> web.Response:
        height = get_committed_height(request) if is_point_in_time(q) else check_height(request)
        values = compute_query_values(request, path_args, query_args)
        response = json_response(query(request, q.name, **values))
        response.headers[HEIGHT_HEADER] = str(height)
        return response

    async def answer_prepared(request: web.Request) -> web.Response:
        height = check_height(request)
        state = get_state(request)
        body = state.get_prepared(http.path)
        if body is None:
            body = state.set_prepared(http.path, encode_json(query(request, q.name)))
        return web.Response(body=body, content_type=JSON_TYPE, headers={HEIGHT_HEADER: str(height)})

    return answer if path_args or query_args else answer_prepared


def compute_query_route(http: Http, q: Query) -> Route:
    """The public route `http` of query `q`: its handler and its OpenAPI description."""
    placeholders = re.findall(r"{(\w+)}", http.path)
    path_args = tuple(a for a in q.args if a.name in placeholders)
    query_args = tuple(a for a in q.all_args if not a.positional)
    params = tuple(param(a.name, "path", a.schema()) for a in path_args)
    height_arg = () if is_point_in_time(q) else (HEIGHT_ARG,)
    params += tuple(param(a.name, "query", a.schema(), required=a.required) for a in (*query_args, *height_arg))
    handler = compute_query_handler(http, q, path_args, query_args)
    return Route("public", "GET", http.path, handler, q.summary, {200: q.response}, params)


def compute_query_routes() -> tuple[Route, ...]:
    """A route for every `Http` of every declared query, those without a placeholder first (a literal
    path is matched before a templated one that would also match it: `/v1/epochs/current`)."""
    routes = [compute_query_route(http, q) for http, q in get_routes()]
    return tuple(sorted(routes, key=lambda r: "{" in r.path))


# =============================================================================================
# status
# =============================================================================================
async def get_status(request: web.Request) -> web.Response:
    node = get_state(request).node
    check_height(request)
    status = query(request, "status")
    return json_response(
        {
            "chain_id": status["chain_id"],
            "moniker": node.config.moniker,
            "height": status["height"],
            "app_hash": status["app_hash"],
            "epoch": status["epoch"],
            "unit_of_compute_price": status["unit_of_compute_price"],
            "catching_up": node.syncing,
            "peers": node.reachable_peers,
            "validator_address": node.signer.address if node.signer else "",
        }
    )


STATUS = Route(
    "public",
    "GET",
    "/v1/status",
    get_status,
    "Node and chain status",
    {
        200: obj(
            {
                "chain_id": STR,
                "moniker": STR,
                "height": INT,
                "app_hash": STR,
                "epoch": INT,
                "unit_of_compute_price": INT,
                "catching_up": BOOL,
                "peers": INT,
                "validator_address": STR,
            }
        )
    },
    (param("height", "query", HEIGHT_ARG.schema()),),
)


# =============================================================================================
# transactions
# =============================================================================================
async def post_tx(request: web.Request) -> web.Response:
    state = get_state(request)
    wait = request.query.get("wait")
    if wait not in (None, "commit"):
        raise bad_request("invalid_parameter", f"wait must be 'commit' or absent, got {wait[:40]!r}")
    raw = canonical_bytes(parse_json_object(await read_body(request)))
    try:
        tx_hash = state.node.submit_txs([raw])[0]
    except NodeError as exc:
        raise ApiRequestError(503, "unavailable", str(exc)) from None
    if isinstance(tx_hash, TxAlreadyKnown) and tx_hash.tx_hash:
        tx_hash = tx_hash.tx_hash  # already pending: idempotent
    elif isinstance(tx_hash, MempoolError):
        raise mempool_error_to_api(tx_hash)
    if wait is None:
        return json_response({"tx_hash": tx_hash, "status": "pending"}, status=202)
    outcome = await state.node.wait_for_commit(tx_hash, state.commit_timeout_s)
    if outcome is None:
        return json_response({"tx_hash": tx_hash, "status": "pending"}, status=202)
    if not outcome.committed:
        raise outcome_error(outcome)
    return json_response(
        {"tx_hash": tx_hash, "status": "committed", "height": outcome.height, "code": outcome.code, "log": outcome.log}
    )


def compute_post_tx_route() -> Route:
    """`POST /v1/txs`, its body described by the chain's schema of a signed transaction (a oneOf over
    every message declared at this call)."""
    return Route(
        "public",
        "POST",
        "/v1/txs",
        post_tx,
        "Submit a signed transaction (the JSON that sign_tx returns; any JSON spelling of it: the node submits its "
        "canonical encoding, whose hash is the tx hash)",
        {
            200: obj(
                {
                    "tx_hash": STR,
                    "status": {"type": "string", "enum": ["committed"]},
                    "height": INT,
                    "code": STR,
                    "log": STR,
                }
            ),
            202: PENDING,
        },
        (param("wait", "query", {"type": "string", "enum": ["commit"]}),),
        get_tx_schema(),
    )


async def post_simulate(request: web.Request) -> web.Response:
    node = get_state(request).node
    result = node.simulate_tx(canonical_bytes(parse_json_object(await read_body(request))))
    if not result.ok:
        raise ApiRequestError(compute_tx_error_status(result.code), result.code, result.log or result.code)
    return json_response({"gas_used": result.gas_used, "min_gas_price": describe_gas_price(node.get_gas_price())})


def compute_simulate_route() -> Route:
    """`POST /v1/txs/simulate`: the gas a signed transaction would use now, for `--gas auto`."""
    return Route(
        "public",
        "POST",
        "/v1/txs/simulate",
        post_simulate,
        "The gas a signed transaction would use on top of the pending ones (its gas limit, fee and "
        "signature are not checked; nothing is written), and the least fee per gas this node admits",
        {200: obj({"gas_used": INT, "min_gas_price": STR})},
        (),
        get_tx_schema(),
    )


async def get_tx(request: web.Request) -> web.Response:
    node = get_state(request).node
    tx_hash = request.match_info["hash"]
    if tx_hash == "simulate":  # GET (or HEAD) of POST /v1/txs/simulate, which this templated route also matches
        raise web.HTTPMethodNotAllowed(request.method, ["POST"])
    if len(tx_hash) != 64 or not all(c in "0123456789abcdefABCDEF" for c in tx_hash):
        raise bad_request("invalid_hash", f"hash must be 64 hex characters, got {tx_hash[:80]!r}")
    outcome = node.get_tx_outcome(tx_hash.upper())
    raw = node.get_tx_raw(tx_hash.upper()) if outcome is not None else None
    if outcome is None or raw is None:
        raise ApiRequestError(404, "not_found", f"no committed transaction has hash {tx_hash.upper()}")
    return json_response(
        {
            "tx_hash": outcome.tx_hash,
            "height": outcome.height,
            "index": outcome.index,
            "code": outcome.code,
            "log": outcome.log,
            "tx": json.loads(raw),
        }
    )


TX_DOC = obj({"tx_hash": STR, "height": INT, "index": INT, "code": STR, "log": STR, "tx": ANY_OBJ})
GET_TX = Route(
    "public",
    "GET",
    "/v1/txs/{hash}",
    get_tx,
    "A committed transaction and its result",
    {200: TX_DOC},
    (param("hash", "path", {"type": "string", "pattern": "^[0-9A-Fa-f]{64}$"}),),
)


TXS_ARGS = (
    Arg("sender", ADDRESS, "the sender whose committed transactions to list", metavar="ADDRESS"),
    *TXS_PAGE_ARGS,
)


async def get_txs(request: web.Request) -> web.Response:
    values = compute_query_values(request, (), TXS_ARGS)
    if "sender" not in values:
        raise bad_request("missing_parameter", "sender is required: transactions are listed by their sender")
    key = values.get(PAGE_KEY)
    txs, next_position = get_state(request).node.get_sender_txs(
        values["sender"],
        None if key is None else decode_page_key(key),
        values.get(PAGE_LIMIT, MAX_TXS_PAGE),
        values.get(PAGE_REVERSE, False),
    )
    next_key = None if next_position is None else encode_page_key(next_position)
    return json_response({"txs": txs, "pagination": {"next_key": next_key}})


GET_TXS = Route(
    "public",
    "GET",
    "/v1/txs",
    get_txs,
    "A sender's committed transactions and their results, oldest first (from the node's sender index)",
    {200: obj({"txs": {"type": "array", "items": TX_DOC}, "pagination": PAGINATION})},
    tuple(param(a.name, "query", a.schema(), required=a.required) for a in TXS_ARGS),
)


async def get_block(request: web.Request) -> web.Response:
    text = request.match_info["height"]
    try:
        height = HEIGHT_ARG.parse_text(text)
    except FieldError:
        raise bad_request("invalid_height", f"height must be an integer from 1 to 2^63-1, got {text[:80]!r}") from None
    found = get_state(request).node.get_block_doc(height)
    if found is None:
        raise ApiRequestError(404, "not_found", f"this node has no block at height {height}")
    return json_response(found)


GET_BLOCK = Route(
    "public",
    "GET",
    "/v1/blocks/{height}",
    get_block,
    "A committed block: its id, header, transactions and evidence, and the commit that decided it",
    {200: obj({"height": INT, "block_id": STR, "block": ANY_OBJ, "commit": ANY_OBJ})},
    (param("height", "path", {"type": "string", "pattern": "^[1-9][0-9]{0,17}$"}),),
)


# =============================================================================================
# the document and the metrics
# =============================================================================================
async def get_openapi(request: web.Request) -> web.Response:
    document = compute_openapi_document(get_table(request), request.app[LISTENER_KEY])
    return json_response(stamp_chain_id(document, query(request, "status")["chain_id"]))


def stamp_chain_id(value: Any, chain_id: str) -> Any:
    """The document with each schema marked `CHAIN_ID_MARK` (a transaction's chain_id) stating this node's
    chain id as its one value: a transaction for another chain is refused whatever else it holds."""
    if isinstance(value, list):
        return [stamp_chain_id(v, chain_id) for v in value]
    if not isinstance(value, dict):
        return value
    if value.get(CHAIN_ID_MARK):
        return {**{k: v for k, v in value.items() if k != CHAIN_ID_MARK}, "enum": [chain_id]}
    return {k: stamp_chain_id(v, chain_id) for k, v in value.items()}


OPENAPI_ROUTES = tuple(
    Route(listener, "GET", "/openapi.json", get_openapi, "This listener's OpenAPI document", {200: ANY_OBJ})
    for listener in LISTENERS
)
SWAGGER_ASSETS = {  # file of the swagger-ui-bundle package -> its media type (the only files /docs serves)
    "swagger-ui.css": "text/css",
    "swagger-ui-bundle.js": "application/javascript",
    "swagger-ui-standalone-preset.js": "application/javascript",
    "favicon-32x32.png": "image/png",
}
SWAGGER_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>uoc node API</title>
<link rel="stylesheet" href="/docs/swagger-ui.css"><link rel="icon" href="/docs/favicon-32x32.png"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script><script src="/docs/swagger-ui-standalone-preset.js"></script>
<script>window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui",
presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset], layout: "StandaloneLayout"});</script>
</body></html>
"""


async def get_docs(request: web.Request) -> web.Response:
    return web.Response(text=SWAGGER_PAGE, content_type="text/html")


async def get_docs_asset(request: web.Request) -> web.Response:
    name = request.match_info["file"]
    media = SWAGGER_ASSETS.get(name)
    if media is None:
        raise ApiRequestError(404, "not_found", f"no file {name[:80]!r} under /docs; see GET /docs")
    return web.Response(body=read_swagger_asset(name), content_type=media)


@functools.cache
def read_swagger_asset(name: str) -> bytes:
    """A Swagger UI file shipped by the swagger-ui-bundle package (no network needed), read once."""
    import swagger_ui_bundle

    return (Path(swagger_ui_bundle.swagger_ui_path) / name).read_bytes()


DOCS = Route("public", "GET", "/docs", get_docs, "Swagger UI over /openapi.json", {200: STR}, media="text/html")
DOCS_ASSET = Route(
    "public",
    "GET",
    "/docs/{file}",
    get_docs_asset,
    "A file of the Swagger UI",
    {200: STR},
    (param("file", "path", {"type": "string", "enum": sorted(SWAGGER_ASSETS)}),),
    media=tuple(sorted(set(SWAGGER_ASSETS.values()))),
)


async def get_metrics(request: web.Request) -> web.Response:
    body = get_state(request).metrics.render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


METRICS = Route(
    "metrics", "GET", "/metrics", get_metrics, "Prometheus metrics (text format 0.0.4)", {200: STR}, media="text/plain"
)


def compute_public_routes() -> tuple[Route, ...]:
    """Every route of the public listener: the status, the chain's read routes (derived from its query
    declarations at this call), the usage routes written by hand, then transactions and the document;
    and the metrics listener's one route."""
    by_hand = {(r.method, r.path) for r in PUBLIC_USAGE_ROUTES}  # a route written by hand replaces the derived one
    return (
        STATUS,
        *(r for r in compute_query_routes() if (r.method, r.path) not in by_hand),
        *PUBLIC_USAGE_ROUTES,
        compute_post_tx_route(),
        compute_simulate_route(),
        GET_TX,
        GET_TXS,
        GET_BLOCK,
        *OPENAPI_ROUTES,
        DOCS,
        DOCS_ASSET,
        *DASHBOARD_ROUTES,
        METRICS,
    )


__all__ = [
    "compute_post_tx_route",
    "compute_public_routes",
    "compute_query_route",
    "compute_query_routes",
]
