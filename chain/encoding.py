"""Canonical JSON: the one deterministic encoding used for sign bytes, stored state and hashes."""

from __future__ import annotations

import json
from typing import Any

from .errors import InvalidTx


def _reject_float(text: str) -> Any:
    """Refuse a JSON number with a fraction or exponent (SPEC §1: no floats)."""
    raise InvalidTx(f"floats are not allowed, got {text}", code="malformed")


def _reject_constant(text: str) -> Any:
    """Refuse NaN and Infinity."""
    raise InvalidTx(f"{text} is not allowed", code="malformed")


def canonical_json(value: Any) -> str:
    """Encode with sorted keys, no whitespace and ASCII only: equal values give equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def canonical_bytes(value: Any) -> bytes:
    """canonical_json as UTF-8 bytes."""
    return canonical_json(value).encode()


def parse_json(data: bytes | str) -> Any:
    """Decode JSON strictly: floats, NaN and Infinity are refused with InvalidTx."""
    try:
        return json.loads(data, parse_float=_reject_float, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise InvalidTx(f"not valid JSON: {exc}", code="malformed") from None
