"""What a request schema allows, the field kinds accept: the patterns and bounds the OpenAPI documents state
for base64, fractions, gas prices, money and addresses agree with the checks the handlers run (the property
`schemathesis run --checks all` tests against a live node, here for every value a generator can draw)."""

from __future__ import annotations

import base64
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chain.crypto import ADDRESS_PREFIX, bech32_encode
from chain.errors import InvalidGenesis, MoneyError
from chain.fields import ADDRESS_PATTERN, AddressKind, compute_base64_pattern, compute_money_schema
from chain.money import DENOMS, to_ngonka
from chain.params import FRACTION, GAS_PRICE


@pytest.mark.parametrize("size", [1, 2, 3, 32, 64])
@given(data=st.data())
def test_the_base64_pattern_of_n_bytes_allows_exactly_their_canonical_base64(size, data):
    pattern = compute_base64_pattern(size)
    text = data.draw(st.from_regex(pattern, fullmatch=True))
    decoded = base64.b64decode(text, validate=True)
    assert len(decoded) == size and base64.b64encode(decoded).decode() == text
    raw = data.draw(st.binary(min_size=size, max_size=size))
    assert re.fullmatch(pattern, base64.b64encode(raw).decode())


@pytest.mark.parametrize("validator", [FRACTION, GAS_PRICE], ids=["fraction", "gas_price"])
@given(data=st.data())
def test_every_param_value_its_pattern_allows_passes_its_check(validator, data):
    validator.check(data.draw(st.from_regex(validator.schema["pattern"], fullmatch=True)), "p")


@pytest.mark.parametrize(("text", "fraction_ok"), [("1.0001", False), ("01", True), ("0.", False), (".5", False)])
def test_a_fraction_pattern_refuses_what_its_check_refuses(text, fraction_ok):
    assert bool(re.fullmatch(FRACTION.schema["pattern"], text)) == fraction_ok
    if not fraction_ok:
        with pytest.raises(InvalidGenesis):
            FRACTION.check(text, "p")


@pytest.mark.parametrize("denom", sorted(DENOMS))
def test_each_money_branch_allows_the_largest_amount_below_2_63_ngonka_and_no_more(denom):
    (branch,) = [b for b in compute_money_schema("amount")["oneOf"] if b["properties"]["denom"]["enum"] == [denom]]
    top = branch["properties"]["amount"]["maximum"]
    assert to_ngonka(top, denom) <= 2**63 - 1
    with pytest.raises(MoneyError):
        to_ngonka(top + 1, denom)


@given(st.binary(min_size=20, max_size=20))
def test_an_address_of_any_20_bytes_matches_the_documented_pattern_and_length(payload):
    address = bech32_encode(ADDRESS_PREFIX, payload)
    schema = AddressKind().schema()
    assert AddressKind().check(address, "a") == address and re.fullmatch(ADDRESS_PATTERN, address)
    assert schema["minLength"] == len(address) == schema["maxLength"] and ADDRESS_PATTERN in schema["description"]
