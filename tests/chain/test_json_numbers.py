"""Numbers every JSON client reads exactly: a price that can pass 2^53 - 1 (a price per token reaches
2^126) is served as a number while it fits and always as its exact decimal string beside it."""

from __future__ import annotations

import pytest

from chain.queries import MAX_JSON_SAFE_INT, QUERIES, compute_number_with_twin
from chain.tx import MsgSubmitProposal, RegisterModel
from tests.chain.test_governance import gov_chain, pass_proposal
from tests.helpers import run_until


@pytest.mark.parametrize(
    ("value", "number"),
    [
        (0, 0),
        (1000, 1000),
        (2**53 - 1, 2**53 - 1),  # the largest integer a double holds exactly
        (2**53, None),
        (2**63 - 1, None),
        ((2**63 - 1) ** 2, None),  # units x unit price at their limits
    ],
)
def test_a_number_is_served_while_every_client_reads_it_exactly_and_its_string_always(value, number):
    assert compute_number_with_twin("price_per_token", value) == {
        "price_per_token": number,
        "price_per_token_str": str(value),
    }
    assert MAX_JSON_SAFE_INT == 9_007_199_254_740_991


def test_pricing_and_models_serve_a_price_per_token_past_2_to_the_63_exactly_as_a_string():
    price, units = 2**62, 2**62 + 3
    app, w = gov_chain(default_unit_of_compute_price=price)
    pass_proposal(app, w, MsgSubmitProposal(RegisterModel("big", units), 100))
    run_until(app, 20)  # the model is active from the next epoch
    pricing = app.query("pricing")
    assert pricing["unit_of_compute_price"] is None and pricing["unit_of_compute_price_str"] == str(price)
    assert pricing["models"] == [
        {
            "id": "big",
            "units_of_compute_per_token": units,
            "price_per_token": None,
            "price_per_token_str": str(units * price),
            "inputPricePerMTok": None,
            "inputPricePerMTok_str": str(units * price * 10**6),
            "outputPricePerMTok": None,
            "outputPricePerMTok_str": str(units * price * 10**6),
        }
    ]
    (model,) = app.query_all("models")
    assert model["price_per_token"] is None and int(model["price_per_token_str"]) == units * price > 2**124


def test_the_declared_schemas_state_the_rule():
    pricing = QUERIES["pricing"].response["properties"]
    assert pricing["unit_of_compute_price"]["nullable"] and pricing["unit_of_compute_price"]["maximum"] == 2**53 - 1
    assert pricing["unit_of_compute_price_str"]["pattern"] == "^[0-9]+$"
    model = pricing["models"]["items"]["properties"]
    assert model["price_per_token"]["nullable"] and model["price_per_token_str"]["type"] == "string"
    assert "price_per_token_str" in QUERIES["models"].response["properties"]["models"]["items"]["required"]
