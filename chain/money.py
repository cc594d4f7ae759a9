"""Money: the denomination table of SPEC §1 and the conversion of prices to ngonka."""

from __future__ import annotations

from typing import TypeGuard

from .errors import MoneyError

MAX_NGONKA = 2**63  # every amount in ngonka must be strictly below this

# denom -> ngonka per unit; the four canonical names first, then the aliases (case-sensitive).
DENOMS: dict[str, int] = {
    "ngonka": 1,
    "uicoin": 1_000,
    "micoin": 1_000_000,
    "icoin": 1_000_000_000,
    "nicoin": 1,
    "ugonka": 1_000,
    "mgonka": 1_000_000,
    "gonka": 1_000_000_000,
}
CANONICAL_DENOMS = ("ngonka", "uicoin", "micoin", "icoin")


def is_int(value: object) -> TypeGuard[int]:
    """True for a real integer (a bool is not one)."""
    return isinstance(value, int) and not isinstance(value, bool)


def get_denom_factor(denom: object, field: str = "denom") -> int:
    """Return the ngonka per unit of `denom`, or raise a MoneyError naming the field."""
    if not isinstance(denom, str):
        raise MoneyError(
            f"{field} must be a string, one of {', '.join(CANONICAL_DENOMS)}; got {type(denom).__name__}",
            code="invalid_denom",
        )
    factor = DENOMS.get(denom)
    if factor is None:
        raise MoneyError(
            f"{field} {denom!r} is not a known denomination; use one of {', '.join(sorted(DENOMS))} (case-sensitive)",
            code="invalid_denom",
        )
    return factor


def describe_int(value: int) -> str:
    """An integer for an error message, abbreviated when it is huge."""
    return str(value) if value.bit_length() <= 256 else f"a {value.bit_length()}-bit integer"


def to_ngonka(amount: object, denom: object, *, field: str = "price", allow_zero: bool = False) -> int:
    """Convert `amount` of `denom` to ngonka; it must be an int > 0 (or ≥ 0) and < 2^63 ngonka."""
    if not is_int(amount):
        kind = "null" if amount is None else type(amount).__name__
        shown = f"{amount!r}"[:40]
        raise MoneyError(f"{field} must be an integer, got {kind} {shown}", code="invalid_amount")
    if amount < 0 or (amount == 0 and not allow_zero):
        rule = "≥ 0" if allow_zero else "> 0"
        raise MoneyError(f"{field} must be an integer {rule}, got {describe_int(amount)}", code="invalid_amount")
    ngonka = amount * get_denom_factor(denom)
    if ngonka >= MAX_NGONKA:
        raise MoneyError(
            f"{field} {describe_int(amount)} {denom} is {describe_int(ngonka)} ngonka, "
            "which overflows the limit of 2^63 - 1 ngonka",
            code="amount_overflow",
        )
    return ngonka
