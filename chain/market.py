"""Market data of the price history, in integers only: the fixed-point log2 that the geometric TWAP
accumulates, its inverse, and the decimal strings rationals are served as (see docs/design.md,
"Market data: ballot shape, status, TWAP, point-in-time reads").

Each epoch record carries two running sums over every epoch from 0 to its own: `price_cumulative`
(the prices) and `log2_price_cumulative` (`compute_log2_fixed` of the prices, in units of
2^-LOG2_FRACTION_BITS). A TWAP over epochs a..b is then two point reads: (S[b] − S[a−1]) / (b − a + 1).

`compute_log2_fixed(p)` is floor(log2(p) · 2^96) up to a few units of its last bit: the integer part
is p's bit length − 1, the 96 fraction bits come from repeated squaring of p / 2^n in [1, 2) held with
LOG2_WORK_BITS = 192 bits (each squaring truncates below 2^-192; doubling the error 96 times leaves
it below 2^-90). `compute_exp2_fixed` multiplies the constants 2^(2^-i) (integer square roots) for the
bits set, with the same working precision. A geometric TWAP is so within a relative 2^-88 of the
exact geometric mean of the window's prices, and is served rounded to GEOMETRIC_DIGITS significant
digits: every price a record can hold (< 2^63, 19 digits) comes back exactly for a one-price window.
"""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache
from math import isqrt

LOG2_FRACTION_BITS = 96  # the accumulated log2 is in units of 2^-96
LOG2_WORK_BITS = 192  # working precision of the squarings and products
DECIMAL_PLACES = 18  # a rational that does not terminate is served rounded down at this place (Cosmos Dec)
GEOMETRIC_DIGITS = 24  # significant digits of a geometric TWAP


def compute_log2_fixed(value: int) -> int:
    """Return log2(value) · 2^LOG2_FRACTION_BITS rounded down (to within a few units), for an int value >= 1."""
    if value < 1:
        raise ValueError(f"log2 needs a positive integer, got {value}")
    whole = value.bit_length() - 1
    work = LOG2_WORK_BITS
    x = (value << work) >> whole  # value / 2^whole in [1, 2), in units of 2^-work
    result = whole << LOG2_FRACTION_BITS
    two = 2 << work
    for bit in range(LOG2_FRACTION_BITS - 1, -1, -1):
        x = (x * x) >> work
        if x >= two:
            x >>= 1
            result |= 1 << bit
    return result


@lru_cache(maxsize=1)
def compute_exp2_constants() -> tuple[int, ...]:
    """Return 2^(2^-i) for i = 1 … LOG2_FRACTION_BITS, each rounded down in units of 2^-LOG2_WORK_BITS."""
    work = LOG2_WORK_BITS
    constants = []
    root = 2 << work
    for _ in range(LOG2_FRACTION_BITS):
        root = isqrt(root << work)
        constants.append(root)
    return tuple(constants)


def compute_exp2_fixed(log2_value: Fraction) -> Fraction:
    """Return 2^log2_value (within a relative 2^-88) for a non-negative log2 given in plain units."""
    fixed = log2_value.numerator * (1 << LOG2_FRACTION_BITS) // log2_value.denominator
    whole, fraction = fixed >> LOG2_FRACTION_BITS, fixed & ((1 << LOG2_FRACTION_BITS) - 1)
    work = LOG2_WORK_BITS
    result = 1 << work
    for index, constant in enumerate(compute_exp2_constants()):
        if fraction >> (LOG2_FRACTION_BITS - 1 - index) & 1:
            result = (result * constant) >> work
    return Fraction(result << whole, 1 << work)


def compute_decimal_text(value: Fraction, places: int = DECIMAL_PLACES) -> str:
    """Return a non-negative rational as a decimal string: exact when it terminates within `places`
    decimals, else rounded down there; no trailing zeros ("2", "0.5", "0.333333333333333333")."""
    if value < 0:
        raise ValueError(f"a decimal string holds a non-negative value, got {value}")
    scaled = value.numerator * 10**places // value.denominator
    whole, fraction = divmod(scaled, 10**places)
    digits = str(fraction).rjust(places, "0").rstrip("0")
    return f"{whole}.{digits}" if digits else str(whole)


def compute_significant_text(value: Fraction, digits: int = GEOMETRIC_DIGITS) -> str:
    """Return a positive rational rounded half up to `digits` significant digits, as a decimal string."""
    if value <= 0:
        raise ValueError(f"expected a positive value, got {value}")
    whole_digits = len(str(value.numerator // value.denominator)) if value >= 1 else 0
    if value < 1:  # count the zeros after the point: 10^-k <= value < 10^(1-k)
        while value * 10 ** (-whole_digits + 1) < 1:
            whole_digits -= 1
    scale = digits - whole_digits
    if scale >= 0:
        rounded = Fraction((2 * value.numerator * 10**scale + value.denominator) // (2 * value.denominator), 10**scale)
        return compute_decimal_text(rounded, max(scale, 0))
    unit = 10**-scale
    return str((2 * value.numerator + unit * value.denominator) // (2 * unit * value.denominator) * unit)


def compute_arithmetic_mean(sum_after: int, sum_before: int, epochs: int) -> Fraction:
    """Return the arithmetic TWAP of a window from the running price sums at its ends."""
    return Fraction(sum_after - sum_before, epochs)


def compute_geometric_mean(log2_after: int, log2_before: int, epochs: int) -> Fraction:
    """Return the geometric TWAP of a window from the running log2 sums at its ends."""
    return compute_exp2_fixed(Fraction(log2_after - log2_before, epochs << LOG2_FRACTION_BITS))
