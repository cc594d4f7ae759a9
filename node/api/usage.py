"""The usage routes written by hand (the lists, escrows and cost-record totals are derived from the
chain's query declarations like every read route):

- `GET /v1/settlements/{request_id}?requester=…`: one settlement; with `PAC-Charge-Report: summary`
  or `full` it carries its acp-1 charge report (`charge_report`), whose lines sum exactly to the total;
- `GET /.well-known/acp-price-model`: the node's price model in acp-1 form (one component per active
  model and direction), constant for an epoch with voted pricing: its `ETag` names the chain and the
  epoch, and `Cache-Control` lets a client keep it until about when the epoch ends (then revalidate:
  304); with dynamic or hybrid pricing it changes each block: its `ETag` and `model_id` name the block
  its prices apply to and `max-age` is 0;
- `POST /v1/admin/usage` (admin): settle a requester-signed receipt with the operator's key and
  answer once the settlement is committed, with the settlement (or 422 with the chain's rule).

Money in the PAC documents is in NGONKA (integer ngonka) as exact decimal strings of Python integers
(never a float; not `Decimal` arithmetic either, which rounds past 28 digits)."""

from __future__ import annotations

import datetime
from typing import Any

from aiohttp import web

from chain.errors import InvalidTx
from chain.queries import REQUEST_ID_ARG, REQUESTER_ARG, SETTLEMENT
from chain.tx import SIGNATURE, MsgSettleUsage, Receipt

from ..errors import ApiRequestError
from .admin import get_operator, submit_and_wait
from .http import bad_request, json_response, parse_json_object, query, read_body, require_fields
from .openapi import ANY_OBJ, INT, PENDING, STR, Route, obj, param
from .ports import ApiNode
from .state import get_state

ACP_VERSION = "acp-1"
CURRENCY = "NGONKA"
DIRECTIONS = (("in", "input"), ("out", "output"))
CHARGE_REPORT_HEADER = "PAC-Charge-Report"
CHARGE_REPORT_MODES = ("none", "summary", "full")
MAX_PRICE_MODEL_AGE_S = 3600  # the longest Cache-Control max-age of the price model


def compute_price_model_id(chain_id: str, epoch: int, height: int | None = None) -> str:
    """The acp-1 model id of a chain's price model in one epoch (voted pricing: it holds for the whole
    epoch) or, outside pricing_mode "voted", for the block at `height` (dynamic prices move each block)."""
    model_id = f"urn:uoc:price-model:{chain_id}:epoch-{epoch}"
    return model_id if height is None else f"{model_id}:height-{height}"


def compute_component_id(model: str, direction: str) -> str:
    """The id of the price component of one model and direction."""
    return f"{model}:tokens-{direction}"


def compute_rate(price_per_token: int) -> dict[str, Any]:
    """An acp-1 rate: ngonka per token as an exact decimal string."""
    return {"amount": str(price_per_token), "currency": CURRENCY, "per": {"quantity": 1}}


def compute_price_model(chain_id: str, pricing: dict[str, Any], height: int | None = None) -> dict[str, Any]:
    """The acp-1 price model of an epoch's pricing (outside voted pricing, of the block at `height`): a
    token of either direction costs the model's price per token (an integer of ngonka: rounding never
    changes an amount; it is stated as floor)."""
    components = [
        {
            "id": compute_component_id(m["id"], direction),
            "description": f"{name} tokens of {m['id']}",
            "resource": {"kind": "tokens", "direction": direction, "token_model_id": m["id"]},
            "rate": compute_rate(int(m["price_per_token_str"])),
            "unit_label": "token",
            "minimum_granularity": 1,
            "rounding": "floor",
        }
        for m in pricing["models"]
        for direction, name in DIRECTIONS
    ]
    return {
        "acp_version": ACP_VERSION,
        "model_id": compute_price_model_id(chain_id, pricing["epoch"], height),
        "components": components,
    }


def compute_money_amount(value: int) -> dict[str, Any]:
    """An acp-1 money amount."""
    return {"value": str(value), "currency": CURRENCY}


def compute_timestamp(time_ms: int) -> str:
    """An RFC 3339 UTC timestamp of a block time in milliseconds."""
    moment = datetime.datetime.fromtimestamp(time_ms // 1000, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{time_ms % 1000:03d}Z"


def compute_charge_report(chain_id: str, settlement: dict[str, Any], time_ms: int, mode: str) -> dict[str, Any]:
    """The acp-1 charge report of a settlement: one measure and one charge line per direction, each
    `quantity × rate` exactly (integers), summing to the amount charged; `full` adds each line's
    quantity and rate and an audit block naming the settlement's transaction and price record."""
    rate: int = settlement["pricePerToken"]["amount"]
    model = settlement["model"]
    lines = []
    measures = []
    total = 0
    for direction, _ in DIRECTIONS:
        quantity = settlement["tokens"][direction]
        amount = quantity * rate
        resource = {"kind": "tokens", "direction": direction, "token_model_id": model}
        measures.append({"resource": resource, "quantity": quantity})
        line: dict[str, Any] = {
            "component_id": compute_component_id(model, direction),
            "amount": compute_money_amount(amount),
        }
        total += amount
        if mode == "full":
            line = {**line, "quantity": quantity, "rate": compute_rate(rate)}
        lines.append(line)
    assert total == settlement["amountCharged"]["amount"], "charge lines must sum to the charge"
    report: dict[str, Any] = {
        "acp_version": ACP_VERSION,
        "model_id": compute_price_model_id(
            chain_id,
            settlement["epoch"],
            settlement["height"] if "pricing_mode" in settlement["price_record"] else None,
        ),
        "request_id": settlement["request_id"],
        "timestamp": compute_timestamp(time_ms),
        "measures": measures,
        "charges": lines,
        "total": {"amount": compute_money_amount(total)},
    }
    if mode == "full":
        report["audit"] = {
            "measurement_method": "token counts of a receipt signed by the requester, settled on chain",
            "tx_hash": settlement["tx_hash"],
            "height": settlement["height"],
            "price_record": settlement["price_record"],
            "provider_payout": settlement["providerPayout"],
            "exchange_fee": settlement["exchangeFee"],
        }
    return report


def get_block_time_ms(node: ApiNode, height: int) -> int:
    """The time of a committed block, or a 500 if the node no longer has it."""
    time_ms = node.get_block_time_ms(height)
    if time_ms is None:
        raise ApiRequestError(500, "internal", f"the block at height {height} is not in this node's store")
    return time_ms


# =============================================================================================
# GET /v1/settlements/{request_id}
# =============================================================================================
async def get_settlement(request: web.Request) -> web.Response:
    mode = request.headers.get(CHARGE_REPORT_HEADER, "none").strip().lower()
    if mode not in CHARGE_REPORT_MODES:
        raise bad_request("invalid_header", f"{CHARGE_REPORT_HEADER} must be none, summary or full, got {mode[:40]!r}")
    requester = request.query.get("requester")
    if requester is None:
        raise bad_request("missing_parameter", "requester is required: request ids are unique per requester")
    settlement = query(request, f"settlement/{request.match_info['request_id']}", requester=requester)
    if mode != "none":
        node = get_state(request).node
        time_ms = get_block_time_ms(node, settlement["height"])
        chain_id = query(request, "status")["chain_id"]
        settlement = {**settlement, "charge_report": compute_charge_report(chain_id, settlement, time_ms, mode)}
    response = json_response(settlement)
    response.headers[CHARGE_REPORT_HEADER] = mode
    return response


GET_SETTLEMENT = Route(
    "public",
    "GET",
    "/v1/settlements/{request_id}",
    get_settlement,
    "A usage settlement (request ids are unique per requester: give it); with the header PAC-Charge-Report: "
    "summary or full, its acp-1 charge report as charge_report",
    {200: {**SETTLEMENT, "properties": {**SETTLEMENT["properties"], "charge_report": ANY_OBJ}}},
    (
        param("request_id", "path", REQUEST_ID_ARG.schema()),
        param("requester", "query", REQUESTER_ARG.schema(), required=True),
        param(CHARGE_REPORT_HEADER, "header", {"type": "string", "enum": list(CHARGE_REPORT_MODES)}),
    ),
)


# =============================================================================================
# GET /.well-known/acp-price-model
# =============================================================================================
def compute_max_age(node: ApiNode, epoch: dict[str, Any], height: int) -> int:
    """Seconds a client may keep the price model: the blocks left in the epoch at the node's block
    interval (an estimate, at most MAX_PRICE_MODEL_AGE_S)."""
    epoch_length = node.query("params")["epoch_length"]
    left = max(epoch["start_height"] + epoch_length - 1 - height, 0)
    return min(left * node.config.timeouts.commit_ms // 1000, MAX_PRICE_MODEL_AGE_S)


async def get_price_model(request: web.Request) -> web.StreamResponse:
    node = get_state(request).node
    status = query(request, "status")
    epoch = query(request, "epoch/current")
    per_block = query(request, "params")["pricing_mode"] != "voted"  # dynamic prices move each block
    block = status["height"] + 1 if per_block else None  # the block the prices apply to
    etag = (
        f'"{status["chain_id"]}:{epoch["index"]}"'
        if block is None
        else f'"{status["chain_id"]}:{epoch["index"]}:{block}"'
    )
    max_age = 0 if per_block else compute_max_age(node, epoch, status["height"])
    headers = {"ETag": etag, "Cache-Control": f"public, max-age={max_age}, must-revalidate"}
    if request.headers.get("If-None-Match") == etag:
        return web.Response(status=304, headers=headers)
    pricing = query(request, "pricing")
    if not pricing["models"]:
        raise ApiRequestError(404, "not_found", f"no model is active in epoch {pricing['epoch']}: no price model")
    response = json_response(compute_price_model(status["chain_id"], pricing, block))
    response.headers.update(headers)
    return response


GET_PRICE_MODEL = Route(
    "public",
    "GET",
    "/.well-known/acp-price-model",
    get_price_model,
    "The price model in acp-1 form (one component per active model and token direction). With voted pricing it "
    "changes only at an epoch boundary: ETag names the epoch, Cache-Control keeps it until about the epoch's end; "
    "with dynamic or hybrid pricing it changes each block: ETag and model_id name the block, max-age is 0",
    {200: obj({"acp_version": STR, "model_id": STR, "components": {"type": "array", "items": ANY_OBJ}})},
)


# =============================================================================================
# POST /v1/admin/usage
# =============================================================================================
async def post_usage(request: web.Request) -> web.Response:
    node = get_operator(request)
    doc = parse_json_object(await read_body(request))
    require_fields(doc, ("receipt", "requester_signature"))
    try:
        msg = MsgSettleUsage.parse({"@type": MsgSettleUsage.TYPE, **doc}, "body")
    except InvalidTx as exc:
        raise bad_request(exc.code, str(exc)) from None
    tx_hash, outcome = await submit_and_wait(request, [msg])
    if outcome is None:
        return json_response({"tx_hash": tx_hash, "status": "pending"}, status=202)
    receipt = msg.receipt
    settlement = node.query(f"settlement/{receipt.request_id}", requester=receipt.requester)
    return json_response({"tx_hash": tx_hash, "height": outcome.height, "settlement": settlement})


POST_USAGE = Route(
    "admin",
    "POST",
    "/v1/admin/usage",
    post_usage,
    "Settle a requester-signed receipt naming this operator as provider (signed with the validator key); "
    "answers once committed with the settlement, or 422 with the rule the chain applied",
    {200: obj({"tx_hash": STR, "height": INT, "settlement": SETTLEMENT}), 202: PENDING},
    body=obj({"receipt": Receipt.schema(), "requester_signature": SIGNATURE.schema()})
    | {"additionalProperties": False},
)

PUBLIC_USAGE_ROUTES = (GET_SETTLEMENT, GET_PRICE_MODEL)
ADMIN_USAGE_ROUTES = (POST_USAGE,)

__all__ = ["ADMIN_USAGE_ROUTES", "PUBLIC_USAGE_ROUTES", "compute_charge_report", "compute_price_model"]
