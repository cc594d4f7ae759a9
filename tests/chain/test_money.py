"""SPEC §1 money: the denomination table, its aliases, and every rejected amount."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chain.errors import ChainError, MoneyError
from chain.money import DENOMS, MAX_NGONKA, get_denom_factor, to_ngonka

LIMIT = 2**63

TABLE = [
    ("ngonka", 1),
    ("nicoin", 1),
    ("uicoin", 1_000),
    ("ugonka", 1_000),
    ("micoin", 1_000_000),
    ("mgonka", 1_000_000),
    ("icoin", 1_000_000_000),
    ("gonka", 1_000_000_000),
]


def test_denomination_table_has_exactly_the_spec_denoms_and_aliases():
    assert DENOMS == dict(TABLE)
    assert MAX_NGONKA == LIMIT


@pytest.mark.parametrize(("denom", "factor"), TABLE)
def test_to_ngonka_multiplies_by_the_denom_factor(denom, factor):
    assert to_ngonka(1, denom) == factor
    assert to_ngonka(7, denom) == 7 * factor
    assert get_denom_factor(denom) == factor


@pytest.mark.parametrize(("denom", "factor"), TABLE)
def test_to_ngonka_accepts_the_largest_amount_below_2_pow_63_ngonka(denom, factor):
    largest = (LIMIT - 1) // factor
    assert to_ngonka(largest, denom) == largest * factor
    assert largest * factor < LIMIT


@pytest.mark.parametrize(("denom", "factor"), TABLE)
def test_to_ngonka_rejects_the_smallest_amount_reaching_2_pow_63_ngonka(denom, factor):
    smallest = -(-LIMIT // factor)  # ceil(2^63 / factor)
    with pytest.raises(MoneyError) as info:
        to_ngonka(smallest, denom, field="msg.price")
    assert info.value.code == "amount_overflow"
    assert "msg.price" in str(info.value)
    assert "2^63" in str(info.value)


def test_to_ngonka_accepts_2_pow_63_minus_1_ngonka_and_rejects_exactly_2_pow_63():
    assert to_ngonka(2**63 - 1, "ngonka") == 2**63 - 1
    with pytest.raises(MoneyError) as info:
        to_ngonka(2**63, "ngonka", field="price")
    assert info.value.code == "amount_overflow"
    assert "price" in str(info.value)


@pytest.mark.parametrize(
    "denom", ["ICOIN", "Icoin", "NGONKA", "nGonka", "Gonka", "UICOIN", " icoin", "icoin ", "coin", "btc", ""]
)
def test_to_ngonka_rejects_unknown_or_wrongly_cased_denoms(denom):
    with pytest.raises(MoneyError) as info:
        to_ngonka(1, denom, field="price")
    assert info.value.code == "invalid_denom"
    assert "denom" in str(info.value)
    assert repr(denom) in str(info.value)
    assert "case-sensitive" in str(info.value)


@pytest.mark.parametrize("denom", [None, 1, b"icoin", ["icoin"], {"denom": "icoin"}])
def test_to_ngonka_rejects_a_denom_that_is_not_a_string(denom):
    with pytest.raises(MoneyError) as info:
        to_ngonka(1, denom)
    assert info.value.code == "invalid_denom"
    assert "denom must be a string" in str(info.value)


@pytest.mark.parametrize(
    ("amount", "rule"),
    [
        pytest.param(0, "> 0", id="zero"),
        pytest.param(-1, "> 0", id="negative"),
        pytest.param(-(2**70), "> 0", id="very-negative"),
        pytest.param(1.0, "integer", id="integral-float"),
        pytest.param(0.5, "integer", id="float"),
        pytest.param(float("nan"), "integer", id="nan"),
        pytest.param(float("inf"), "integer", id="inf"),
        pytest.param("100", "integer", id="numeric-string"),
        pytest.param("abc", "integer", id="string"),
        pytest.param(True, "integer", id="bool-true"),
        pytest.param(False, "integer", id="bool-false"),
        pytest.param(None, "integer", id="null"),
        pytest.param([1], "integer", id="list"),
    ],
)
def test_to_ngonka_rejects_non_positive_or_non_integer_amounts_naming_the_field(amount, rule):
    with pytest.raises(MoneyError) as info:
        to_ngonka(amount, "icoin", field="tx.body.messages[0].price")
    error = info.value
    assert isinstance(error, ValueError) and isinstance(error, ChainError)
    assert error.code == "invalid_amount"
    assert "tx.body.messages[0].price" in str(error)
    assert rule in str(error)


def test_to_ngonka_null_amount_is_reported_as_null():
    with pytest.raises(MoneyError, match="got null"):
        to_ngonka(None, "ngonka")


def test_to_ngonka_allow_zero_accepts_zero_but_still_rejects_negative():
    assert to_ngonka(0, "icoin", allow_zero=True) == 0
    with pytest.raises(MoneyError, match="≥ 0"):
        to_ngonka(-1, "icoin", allow_zero=True)


def test_to_ngonka_overflow_of_an_amount_with_thousands_of_digits_is_still_a_money_error():
    # 4299 digits is a legal JSON integer for Python's json module; × 10^9 it has 4308 digits.
    with pytest.raises(MoneyError) as info:
        to_ngonka(10**4299, "icoin", field="price")
    assert info.value.code == "amount_overflow"


def test_money_error_is_a_value_error_and_a_chain_error():
    assert issubclass(MoneyError, ValueError)
    assert issubclass(MoneyError, ChainError)
    assert MoneyError("x").code == "invalid_amount"


@given(
    st.sampled_from(TABLE).flatmap(
        lambda entry: st.tuples(st.just(entry), st.integers(min_value=1, max_value=2 * (LIMIT // entry[1])))
    )
)
def test_to_ngonka_is_exact_multiplication_below_the_limit_and_overflow_above(case):
    (denom, factor), amount = case
    if amount * factor < LIMIT:
        result = to_ngonka(amount, denom)
        assert result == amount * factor
        assert type(result) is int
    else:
        with pytest.raises(MoneyError) as info:
            to_ngonka(amount, denom)
        assert info.value.code == "amount_overflow"
