"""The admin listener's routes ([api] admin, behind the bearer token): the operator's price vote and model
proposals, signed with the node's validator key, submitted (relayed) and waited for until their commit
(202 "pending" after the commit timeout, 422 with the chain's code on a rejection). Each handler is
followed by its route."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from chain.epochs import compute_effective_epoch
from chain.errors import ChainError, InvalidTx, MoneyError
from chain.fields import compute_money_schema
from chain.money import to_ngonka
from chain.params import Params
from chain.tx import MODEL_ID, MsgSubmitPriceProposal, MsgSubmitProposal, RegisterModel, parse_model_id, parse_units

from ..errors import ApiRequestError, MempoolError
from ..outcomes import TxOutcome
from .http import (
    bad_request,
    json_response,
    mempool_error_to_api,
    outcome_error,
    parse_json_object,
    read_body,
    require_fields,
)
from .openapi import COIN, INT, MAX_INT64, PENDING, STR, Route, obj
from .ports import ApiNode
from .state import get_state

FEEDER_POLL_S = 0.05  # how often a price proposal waiting for the next epoch's commit looks for it


def get_operator(request: web.Request) -> ApiNode:
    """The node, which must hold a validator key (the operator's)."""
    node = get_state(request).node
    if node.signer is None:
        raise ApiRequestError(404, "no_validator_key", "this node has no validator key (HOME/validator_key.json)")
    return node


async def submit_and_wait(request: web.Request, msgs: list[Any]) -> tuple[str, TxOutcome | None]:
    """Sign with the operator key, submit (relayed) and wait for the commit; 422 on a rejection."""
    state = get_state(request)
    node = get_operator(request)
    try:
        tx_hash = node.submit_own(msgs)
    except MempoolError as exc:
        raise mempool_error_to_api(exc) from None
    outcome = await node.wait_for_commit(tx_hash, state.commit_timeout_s)
    if outcome is not None and (not outcome.committed or outcome.code != "ok"):
        raise outcome_error(outcome)
    return tx_hash, outcome


# =============================================================================================
# the price vote
# =============================================================================================
async def post_price_proposal(request: web.Request) -> web.Response:
    node = get_operator(request)
    assert node.feeder is not None  # every node with a validator key has one
    doc = parse_json_object(await read_body(request))
    require_fields(doc, ("price", "denom"))
    try:
        price_ngonka = to_ngonka(doc["price"], doc["denom"], field="price")
    except MoneyError as exc:
        raise bad_request(exc.code, str(exc)) from None
    node.feeder.set_price(doc["price"], doc["denom"])  # the standing price, should the mode become commit_reveal
    params = Params.from_json(node.query("params"))
    reveal_later = params.vote_mode == "commit_reveal"
    if reveal_later:
        tx_hash, outcome = await commit_price(request)
    else:
        msg = MsgSubmitPriceProposal(doc["price"], doc["denom"], price_ngonka)
        tx_hash, outcome = await submit_and_wait(request, [msg])
    if outcome is None:
        return json_response({"tx_hash": tx_hash, "status": "pending"}, status=202)
    assert outcome.height is not None
    # a commit counts from two epochs after the one it landed in (not the one the node was in when it
    # sent it: a node a block behind sends in the epoch before)
    effective = compute_effective_epoch(params, outcome.height) + (1 if reveal_later else 0)
    return json_response(
        {
            "tx_hash": tx_hash,
            "height": outcome.height,
            "price": doc["price"],
            "denom": doc["denom"],
            "price_ngonka": price_ngonka,
            "effective_epoch": effective,
        }
    )


async def commit_price(request: web.Request) -> tuple[str, TxOutcome | None]:
    """In vote_mode commit_reveal: have the feeder commit the standing price (now if this epoch has no
    commit of the operator's yet, else at the next epoch's start) and wait for its commit; the tx hash
    ("" if not sent within the commit timeout) and the outcome (None: pending)."""
    state = get_state(request)
    node = get_operator(request)
    feeder = node.feeder
    assert feeder is not None and node.app is not None
    epoch = node.query("epoch/current")["index"]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + state.commit_timeout_s
    if epoch not in feeder.get_commits() and not feeder.is_in_flight("commit", epoch):
        try:
            sent = feeder.tick(node.app.height, commit_now=True)
        except MempoolError as exc:
            raise mempool_error_to_api(exc) from None
        if sent is None:
            raise ApiRequestError(422, *feeder.explain_no_commit())
        tx_hash = sent
    else:
        epoch += 1
        feeder.commit_next = True
        while (found := feeder.get_sent_commit(epoch)) is None:
            if loop.time() > deadline:
                return "", None
            await asyncio.sleep(FEEDER_POLL_S)
        tx_hash = found
    outcome = node.get_tx_outcome(tx_hash) or await node.wait_for_commit(tx_hash, max(0.0, deadline - loop.time()))
    if outcome is not None and (not outcome.committed or outcome.code != "ok"):
        raise outcome_error(outcome)
    return tx_hash, outcome


POST_PRICE_PROPOSAL = Route(
    "admin",
    "POST",
    "/v1/admin/unit-of-compute-price-proposal",
    post_price_proposal,
    "Set or update this operator's unit-of-compute price vote (signed with the validator key)",
    {
        200: obj(
            {"tx_hash": STR, "height": INT, "price": INT, "denom": STR, "price_ngonka": INT, "effective_epoch": INT}
        ),
        202: PENDING,
    },
    body=compute_money_schema("price"),  # the handler refuses unknown fields and a price of 2^63 ngonka or more
)


async def get_price_proposal(request: web.Request) -> web.Response:
    node = get_operator(request)
    assert node.signer is not None and node.feeder is not None
    try:
        vote = node.query(f"price_vote/{node.signer.address}")
    except ChainError:
        vote = None
    commits = node.query(f"price_commits/{node.signer.address}")
    shown = []
    for commit in commits["commits"]:
        price = node.feeder.get_known_commit(commit["epoch"], commit["hash"])
        shown.append(
            {
                "epoch": commit["epoch"],
                "height": commit["height"],
                "hash": commit["hash"],
                "price": price and price["price"],
                "denom": price and price["denom"],
                "price_ngonka": price and to_ngonka(price["price"], price["denom"]),
                "reveal_epoch": commit["reveal_epoch"],
                "in_force_epoch": commit["in_force_epoch"],
            }
        )
    if vote is None and not shown:
        raise ApiRequestError(404, "never_voted", f"the operator {node.signer.address} never voted a price")
    return json_response(
        {
            "price": vote and vote["price"],
            "denom": vote and vote["denom"],
            "price_ngonka": vote and vote["price_ngonka"],
            "proposed_at_height": vote and vote["height"],
            "proposed_at_epoch": vote and vote["epoch"],
            "vote_mode": commits["vote_mode"],
            "commits": shown,
        }
    )


NULLABLE_INT = {**INT, "nullable": True}
NULLABLE_STR = {**STR, "nullable": True}
GET_PRICE_PROPOSAL = Route(
    "admin",
    "GET",
    "/v1/admin/unit-of-compute-price-proposal",
    get_price_proposal,
    "This operator's price vote in force (null before its first) and, in vote_mode commit_reveal, its unrevealed "
    "commits: each with its price, the epoch its reveal makes it public and the epoch it is in force from",
    {
        200: obj(
            {
                "price": NULLABLE_INT,
                "denom": NULLABLE_STR,
                "price_ngonka": NULLABLE_INT,
                "proposed_at_height": NULLABLE_INT,
                "proposed_at_epoch": NULLABLE_INT,
                "vote_mode": STR,
                "commits": {
                    "type": "array",
                    "items": obj(
                        {
                            "epoch": INT,
                            "height": INT,
                            "hash": STR,
                            "price": NULLABLE_INT,
                            "denom": NULLABLE_STR,
                            "price_ngonka": NULLABLE_INT,
                            "reveal_epoch": INT,
                            "in_force_epoch": INT,
                        }
                    ),
                },
            }
        )
    },
)


# =============================================================================================
# model proposals
# =============================================================================================
def find_own_proposal(node: ApiNode, height: int, model_id: str) -> dict[str, Any]:
    """The operator's proposal for `model_id` submitted at `height`, newest first: the pages read stop at
    the first proposal submitted before `height` (ids follow submission order)."""
    assert node.signer is not None
    params: dict[str, Any] = {"pagination.reverse": True}
    while True:
        answer = node.query("proposals", **params)
        for p in answer["proposals"]:
            if (p["proposer"], p["submit_height"], p["content"].get("id")) == (node.signer.address, height, model_id):
                return p
            if p["submit_height"] < height:
                break
        else:
            if answer["pagination"]["next_key"] is not None:
                params["pagination.key"] = answer["pagination"]["next_key"]
                continue
        raise ApiRequestError(500, "internal", f"the proposal committed at height {height} is not in the state")


async def post_model(request: web.Request) -> web.Response:
    node = get_operator(request)
    assert node.signer is not None
    doc = parse_json_object(await read_body(request))
    require_fields(doc, ("id", "units_of_compute_per_token"))
    try:
        model_id = parse_model_id(doc["id"], "id")
        units = parse_units(doc["units_of_compute_per_token"], "units_of_compute_per_token")
    except InvalidTx as exc:
        raise bad_request(exc.code, str(exc)) from None
    deposit = node.query("params")["min_deposit"]
    msg = MsgSubmitProposal(RegisterModel(model_id, units), deposit)
    tx_hash, outcome = await submit_and_wait(request, [msg])
    if outcome is None:
        return json_response({"tx_hash": tx_hash, "status": "pending"}, status=202)
    assert outcome.height is not None  # submit_and_wait returns committed outcomes only
    proposal = find_own_proposal(node, outcome.height, model_id)
    return json_response(
        {
            "proposal_id": proposal["id"],
            "tx_hash": tx_hash,
            "deposit": {"amount": deposit, "denom": "ngonka"},  # a money object (SPEC §1)
            "voting_end_height": proposal["voting_end_height"],
        }
    )


POST_MODEL = Route(
    "admin",
    "POST",
    "/v1/admin/models",
    post_model,
    "Propose a model (a RegisterModel governance proposal with min_deposit)",
    {
        200: obj({"proposal_id": INT, "tx_hash": STR, "deposit": COIN, "voting_end_height": INT}),
        202: PENDING,
    },
    body=obj(
        {
            "id": MODEL_ID.schema(),
            "units_of_compute_per_token": {"type": "integer", "minimum": 1, "maximum": MAX_INT64},
        }
    )
    | {"additionalProperties": False},  # the handler refuses unknown fields
)


ADMIN_ROUTES: tuple[Route, ...] = (POST_PRICE_PROPOSAL, GET_PRICE_PROPOSAL, POST_MODEL)

__all__ = ["ADMIN_ROUTES"]
