"""The public listener's routes ([api] public): chain reads, the prepared pricing body, transaction
submission and lookup, the OpenAPI document and the metrics. Each handler is followed by its route."""

from __future__ import annotations

import json

from aiohttp import web

from chain.crypto import is_valid_address

from ..errors import ApiRequestError, MempoolError, NodeError, TxAlreadyKnown
from .http import (
    bad_request,
    get_int_param,
    get_int_path,
    json_response,
    mempool_error_to_api,
    outcome_error,
    parse_json_object,
    query,
    read_body,
)
from .metrics import render_limit_metrics
from .openapi import (
    ANY_OBJ,
    BOOL,
    INT,
    INT_PARAM,
    JSON_TYPE,
    MAX_INT64,
    MODEL_PRICE,
    PENDING,
    STR,
    Route,
    compute_openapi_document,
    obj,
    param,
)
from .state import get_state, get_table


# =============================================================================================
# status and pricing
# =============================================================================================
async def get_status(request: web.Request) -> web.Response:
    node = get_state(request).node
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
)


async def get_pricing(request: web.Request) -> web.Response:
    state = get_state(request)
    if state.node.app is not None and state.pricing_height != state.node.app.height:
        state.refresh_pricing()  # a block applied before the listener registered (startup)
    return web.Response(body=state.pricing_body, content_type=JSON_TYPE)


PRICING = Route(
    "public",
    "GET",
    "/v1/pricing",
    get_pricing,
    "Unit-of-compute price and active models' price per token",
    {
        200: obj(
            {
                "unit_of_compute_price": INT,
                "denom": {"type": "string", "enum": ["ngonka"]},
                "epoch": INT,
                "models": {"type": "array", "items": MODEL_PRICE},
            }
        )
    },
)


async def get_pricing_history(request: web.Request) -> web.Response:
    from_epoch = get_int_param(request, "from_epoch", default=0)
    to_epoch = get_int_param(request, "to_epoch")
    return json_response({"epochs": query(request, "history", from_epoch=from_epoch, to_epoch=to_epoch)})


PRICING_HISTORY = Route(
    "public",
    "GET",
    "/v1/pricing/history",
    get_pricing_history,
    "Epoch records (SPEC §3)",
    {200: obj({"epochs": {"type": "array", "items": ANY_OBJ}})},
    (param("from_epoch", "query", INT_PARAM), param("to_epoch", "query", INT_PARAM)),
)


# =============================================================================================
# epochs, params, models, validators, accounts
# =============================================================================================
async def get_epoch_current(request: web.Request) -> web.Response:
    return json_response(query(request, "epoch/current"))


EPOCH_CURRENT = Route("public", "GET", "/v1/epochs/current", get_epoch_current, "The current epoch", {200: ANY_OBJ})


async def get_params(request: web.Request) -> web.Response:
    return json_response(query(request, "params"))


PARAMS = Route(
    "public",
    "GET",
    "/v1/params",
    get_params,
    "The chain params: epochs, the default price and governance (min_deposit, periods, thresholds)",
    {200: obj({"epoch_length": INT, "min_deposit": INT, "voting_period": INT, "max_deposit_period": INT})},
)


async def get_epoch(request: web.Request) -> web.Response:
    return json_response(query(request, f"epoch/{get_int_path(request, 'n')}"))


EPOCH = Route(
    "public",
    "GET",
    "/v1/epochs/{n}",
    get_epoch,
    "The record of epoch n",
    {200: ANY_OBJ},
    (param("n", "path", INT_PARAM),),
)


async def get_models(request: web.Request) -> web.Response:
    status = query(request, "status")
    registry = query(request, "registry")
    return json_response(
        {
            "epoch": status["epoch"],
            "models": query(request, "models"),
            "registry_version": registry["version"],
            "registered": registry["models"],
        }
    )


MODELS = Route(
    "public",
    "GET",
    "/v1/models",
    get_models,
    "Active models (with price per token) and the registry",
    {
        200: obj(
            {
                "epoch": INT,
                "models": {"type": "array", "items": MODEL_PRICE},
                "registry_version": INT,
                "registered": {"type": "array", "items": ANY_OBJ},
            }
        )
    },
)


async def get_validators(request: web.Request) -> web.Response:
    validators = [
        {"address": v["address"], "power": v["power"], "stake": v["stake"], "pending_stake": v["pending_stake"]}
        for v in query(request, "validators")
    ]
    return json_response({"validators": validators})


VALIDATORS = Route(
    "public",
    "GET",
    "/v1/validators",
    get_validators,
    "The current epoch's validators",
    {
        200: obj(
            {
                "validators": {
                    "type": "array",
                    "items": obj({"address": STR, "power": INT, "stake": INT, "pending_stake": INT}),
                }
            }
        )
    },
)


async def get_account(request: web.Request) -> web.Response:
    address = request.match_info["address"]
    if not is_valid_address(address):
        raise bad_request("invalid_address", f"address must be a bech32 'uoc1…' address, got {address[:80]!r}")
    account = query(request, f"account/{address}")
    return json_response({k: account[k] for k in ("address", "balance", "sequence", "pubkey")})


ACCOUNT = Route(
    "public",
    "GET",
    "/v1/accounts/{address}",
    get_account,
    "An account (balance, sequence, pubkey)",
    {200: obj({"address": STR, "balance": INT, "sequence": INT, "pubkey": {"type": "string", "nullable": True}})},
    (param("address", "path", STR),),
)


# =============================================================================================
# governance
# =============================================================================================
async def get_proposals(request: web.Request) -> web.Response:
    status = request.query.get("status")
    return json_response({"proposals": query(request, "proposals", status=status)})


PROPOSALS = Route(
    "public",
    "GET",
    "/v1/governance/proposals",
    get_proposals,
    "Governance proposals",
    {200: obj({"proposals": {"type": "array", "items": ANY_OBJ}})},
    (
        param(
            "status",
            "query",
            {
                "type": "string",
                "enum": ["deposit_period", "voting_period", "passed", "rejected", "failed", "dropped"],
            },
        ),
    ),
)


async def get_proposal(request: web.Request) -> web.Response:
    return json_response(query(request, f"proposal/{get_int_path(request, 'id', minimum=1)}"))


PROPOSAL = Route(
    "public",
    "GET",
    "/v1/governance/proposals/{id}",
    get_proposal,
    "A proposal with tally, deposits, votes",
    {
        200: obj(
            {
                "id": INT,
                "status": STR,
                "tally": {"nullable": True},
                "deposits": {"type": "array"},
                "votes": {"type": "array"},
            }
        )
    },
    (param("id", "path", {"type": "integer", "minimum": 1, "maximum": MAX_INT64}),),
)


# =============================================================================================
# transactions
# =============================================================================================
async def post_tx(request: web.Request) -> web.Response:
    state = get_state(request)
    wait = request.query.get("wait")
    if wait not in (None, "commit"):
        raise bad_request("invalid_parameter", f"wait must be 'commit' or absent, got {wait[:40]!r}")
    raw = await read_body(request)
    parse_json_object(raw)
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


POST_TX = Route(
    "public",
    "POST",
    "/v1/txs",
    post_tx,
    "Submit a signed transaction (the JSON that sign_tx returns)",
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
    obj({"body": ANY_OBJ, "pubkey": STR, "signature": STR}),
)


async def get_tx(request: web.Request) -> web.Response:
    node = get_state(request).node
    tx_hash = request.match_info["hash"]
    if len(tx_hash) != 64 or not all(c in "0123456789abcdefABCDEF" for c in tx_hash):
        raise bad_request("invalid_hash", f"hash must be 64 hex characters, got {tx_hash[:80]!r}")
    outcome = node.get_tx_outcome(tx_hash.upper())
    raw = node.get_tx_raw(outcome.height, outcome.index) if outcome is not None and outcome.height is not None else None
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


GET_TX = Route(
    "public",
    "GET",
    "/v1/txs/{hash}",
    get_tx,
    "A committed transaction and its result",
    {200: obj({"tx_hash": STR, "height": INT, "index": INT, "code": STR, "log": STR, "tx": ANY_OBJ})},
    (param("hash", "path", {"type": "string", "pattern": "^[0-9A-Fa-f]{64}$"}),),
)


# =============================================================================================
# the document and the metrics
# =============================================================================================
async def get_openapi(request: web.Request) -> web.Response:
    return json_response(compute_openapi_document(get_table(request)))


OPENAPI = Route("public", "GET", "/openapi.json", get_openapi, "This document", {200: ANY_OBJ})


async def get_metrics(request: web.Request) -> web.Response:
    state = get_state(request)
    return web.Response(
        text=state.metrics.render(state.node, render_limit_metrics(state.node, state.limiter, state.gates)),
        content_type="text/plain",
        charset="utf-8",
        headers={"X-Prometheus-Format": "0.0.4"},
    )


METRICS = Route("public", "GET", "/metrics", get_metrics, "Prometheus metrics", {200: STR}, media="text/plain")


PUBLIC_ROUTES: tuple[Route, ...] = (
    STATUS,
    PRICING,
    PRICING_HISTORY,
    EPOCH_CURRENT,  # before EPOCH, whose {n} would match "current"
    PARAMS,
    EPOCH,
    MODELS,
    VALIDATORS,
    ACCOUNT,
    PROPOSALS,
    PROPOSAL,
    POST_TX,
    GET_TX,
    OPENAPI,
    METRICS,
)

__all__ = ["PUBLIC_ROUTES"]
