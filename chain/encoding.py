"""Canonical JSON: the one deterministic encoding used for sign bytes, stored state and hashes."""

from __future__ import annotations

import json
import sys
from types import MappingProxyType
from typing import Any

import orjson

from .cache import ByteBoundedCache
from .errors import InvalidTx


def _reject_float(text: str) -> Any:
    """Refuse a JSON number with a fraction or exponent (SPEC §1: no floats)."""
    raise InvalidTx(f"floats are not allowed, got {text}", code="malformed")


def _reject_constant(text: str) -> Any:
    """Refuse NaN and Infinity."""
    raise InvalidTx(f"{text} is not allowed", code="malformed")


def _thaw(value: Any) -> Any:
    """Let the encoder write the read-only mappings that `decode_canonical` returns."""
    if isinstance(value, MappingProxyType):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not canonical JSON")


_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False, default=_thaw)
_DECODER = json.JSONDecoder(object_hook=MappingProxyType)


def canonical_json(value: Any) -> str:
    """Encode with sorted keys, no whitespace and ASCII only: equal values give equal text."""
    return canonical_bytes(value).decode()


def canonical_bytes(value: Any) -> bytes:
    """canonical_json as UTF-8 bytes.

    orjson writes the same bytes as the reference encoder (`_ENCODER`) wherever its output is
    printable ASCII; it is 7 times faster. Where it is not (a non-ASCII or DEL character, which the
    reference escapes as \\uXXXX) or orjson cannot encode the value (an integer past 64 bits), the
    reference encodes it. `tests/chain/test_encoding.py` holds the two equal on arbitrary values."""
    try:
        data = orjson.dumps(value, default=_thaw, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return _ENCODER.encode(value).encode()
    if data.isascii() and b"\x7f" not in data:
        return data
    return _ENCODER.encode(value).encode()


def thaw(value: Any) -> Any:
    """A plain, mutable copy of a decoded value (for query results)."""
    if isinstance(value, (dict, MappingProxyType)):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, list):
        return [thaw(v) for v in value]
    return value


DECODE_CACHE_BYTES = 4 * 1024 * 1024  # decoded state values kept, counted as below
DECODE_CACHE_MAX_TEXT = 4096  # longer texts are decoded afresh
DECODED_BYTES_PER_CHAR = 10  # a text and its decoded objects, per character (tracemalloc: 10 to 17 on state values)
DECODE_CACHE: ByteBoundedCache[str, Any] = ByteBoundedCache(DECODE_CACHE_BYTES)


class _Inexact(Exception):
    """orjson read an integer past 64 bits as a float."""


_LOOK_INTO = (dict, list, float)  # the values `_freeze` and `_refuse_floats` go into (a float: to refuse it)


def _freeze(value: Any) -> Any:
    """orjson's value with every object a read-only mapping (lists stay lists), as `_DECODER` gives it;
    _Inexact at a float: stored state holds none, so it is an integer past 64 bits that orjson rounded."""
    kind = type(value)
    if kind is dict:
        for k, v in value.items():
            if type(v) in _LOOK_INTO:
                value[k] = _freeze(v)
        return MappingProxyType(value)
    if kind is list:
        for i, v in enumerate(value):
            if type(v) in _LOOK_INTO:
                value[i] = _freeze(v)
        return value
    if kind is float:
        raise _Inexact
    return value


def decode_value(text: str | bytes) -> Any:
    """Decode canonical JSON (stored state, a tx's bytes) into read-only mappings, new objects.

    orjson and a walk over its result take about half the standard decoder's time on a settlement
    record (0.85 of it on a small account); where orjson reads
    otherwise (an integer past 64 bits becomes a float; a lone surrogate escaped in a string is refused)
    the standard decoder reads the text. `tests/chain/test_encoding.py` holds the two equal."""
    try:
        return _freeze(orjson.loads(text))
    except (orjson.JSONDecodeError, _Inexact):
        return _DECODER.decode(text if isinstance(text, str) else text.decode())


def decode_canonical(text: str, keep: bool = True) -> Any:
    """Decode stored state into read-only mappings; equal short text gives the same shared object
    (from DECODE_CACHE, bounded in bytes: each text counts DECODED_BYTES_PER_CHAR per character).
    With `keep` false (a bulk read of values used once) a text the cache lacks does not enter it."""
    if len(text) > DECODE_CACHE_MAX_TEXT:
        return decode_value(text)
    value = DECODE_CACHE.get(text)
    if value is None:
        value = decode_value(text)
        if keep:
            DECODE_CACHE.put(text, value, DECODED_BYTES_PER_CHAR * len(text))
    return value


_STRICT_DECODER = json.JSONDecoder(parse_float=_reject_float, parse_constant=_reject_constant)


def _refuse_floats(value: Any) -> Any:
    """`value`, or _Inexact if a float is in it (orjson reads an integer past 64 bits as one)."""
    kind = type(value)
    if kind is dict:
        for v in value.values():
            if type(v) in _LOOK_INTO:
                _refuse_floats(v)
    elif kind is list:
        for v in value:
            if type(v) in _LOOK_INTO:
                _refuse_floats(v)
    elif kind is float:
        raise _Inexact
    return value


def parse_json(data: bytes | str) -> Any:
    """Decode JSON strictly: floats, NaN and Infinity are refused with InvalidTx.

    orjson reads what it can (it refuses what the strict decoder does, and more); a text it refuses or
    reads with a float in it goes to the strict decoder, which names the fault or reads the large integer."""
    try:
        return _refuse_floats(orjson.loads(data))
    except (orjson.JSONDecodeError, _Inexact):
        pass
    try:
        return _STRICT_DECODER.decode(data.decode() if isinstance(data, bytes) else data)
    except (ValueError, RecursionError) as exc:
        raise InvalidTx(f"not valid JSON: {describe_json_error(exc)}", code="malformed") from None


def describe_json_error(exc: ValueError | RecursionError) -> str:
    """What is wrong with a JSON text the standard decoder refused, in the sender's terms (not the
    interpreter's: its digit limit and its recursion limit are not the sender's business)."""
    if isinstance(exc, RecursionError):
        return "it nests arrays or objects too deeply"
    if "int_max_str_digits" in str(exc):
        return f"a number has more than {sys.get_int_max_str_digits()} digits"
    return str(exc)
