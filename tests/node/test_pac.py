"""The PAC (acp-1) documents of `node.api.usage`: the price model and the charge report validate against
the schemas of the PAC document, and a report's lines sum exactly (integers) to the amount charged, for
any token counts and price, up to the chain's limits."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema_rs
from hypothesis import example, given
from hypothesis import strategies as st

from node.api.usage import compute_charge_report, compute_price_model, compute_timestamp

SCHEMAS = json.loads((Path(__file__).parent / "acp_schemas.json").read_text())
PRICE_MODEL = jsonschema_rs.Draft7Validator(SCHEMAS["price_model"])
CHARGE_REPORT = jsonschema_rs.Draft7Validator(SCHEMAS["charge_report"])


def money(amount: int) -> dict:
    return {"amount": amount, "currency": "NGONKA"}


def settlement(tokens_in: int, tokens_out: int, price: int, fee: int) -> dict:
    charged = (tokens_in + tokens_out) * price
    return {
        "request_id": "r-1",
        "model": "Qwen/Qwen2.5-7B",
        "tokens": {"in": tokens_in, "out": tokens_out},
        "pricePerToken": money(price),
        "amountCharged": money(charged),
        "providerPayout": money(charged - min(fee, charged)),
        "exchangeFee": money(min(fee, charged)),
        "epoch": 4,
        "height": 41,
        "tx_hash": "AB" * 32,
        "price_record": {"epoch": 4, "unit_of_compute_price": price, "units_per_token": 1},
    }


@given(
    st.integers(0, 2**40),
    st.integers(0, 2**40),
    st.integers(1, 2**62),
    st.integers(0, 2**20),
    st.sampled_from(["summary", "full"]),
)
@example(0, 2**40, 2**62, 0, "full")  # regression: a line past 28 digits was rounded by Decimal, E-notation out
def test_a_charge_report_is_schema_valid_and_its_lines_sum_exactly_to_the_charge(
    tokens_in, tokens_out, price, fee, mode
):
    s = settlement(tokens_in, tokens_out, price, fee)
    report = compute_charge_report("uoc-test", s, 1_765_000_000_123, mode)
    CHARGE_REPORT.validate(report)
    lines = [int(line["amount"]["value"]) for line in report["charges"]]  # integer strings, exact at any size
    assert sum(lines) == int(report["total"]["amount"]["value"]) == s["amountCharged"]["amount"]
    assert lines == [tokens_in * price, tokens_out * price]
    assert ("audit" in report) == (mode == "full") and all(("rate" in c) == (mode == "full") for c in report["charges"])


@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b/c", "d:e"]), st.integers(1, 2**126)), min_size=1, unique_by=lambda m: m[0]
    )
)
def test_a_price_model_has_one_component_per_model_and_direction_and_is_schema_valid(models):
    pricing = {"epoch": 7, "models": [{"id": m, "price_per_token_str": str(p)} for m, p in models]}
    model = compute_price_model("uoc-test", pricing)
    PRICE_MODEL.validate(model)
    assert [(c["resource"]["token_model_id"], c["resource"]["direction"]) for c in model["components"]] == [
        (m, d) for m, _ in models for d in ("in", "out")
    ]
    assert [c["rate"]["amount"] for c in model["components"]] == [str(p) for _, p in models for _ in range(2)]


def test_a_block_time_is_an_rfc_3339_utc_timestamp_to_the_millisecond():
    assert compute_timestamp(1_765_000_000_123) == "2025-12-06T05:46:40.123Z"
