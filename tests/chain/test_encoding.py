"""canonical_json: the fast path (orjson) writes exactly the reference encoder's bytes."""

from __future__ import annotations

import json
from types import MappingProxyType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain import encoding
from chain.encoding import canonical_bytes, canonical_json, decode_canonical, decode_value, parse_json
from chain.errors import InvalidTx

REFERENCE = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)

values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**80), max_value=2**80) | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=25,
)


@settings(max_examples=400)
@given(values)
def test_canonical_json_equals_the_reference_encoder_on_any_value(value: object) -> None:
    assert canonical_json(value) == REFERENCE.encode(value)
    assert canonical_bytes(value) == REFERENCE.encode(value).encode()


@pytest.mark.parametrize(
    "value",
    [
        {"\x7f": 1},  # DEL: the reference escapes it, orjson does not
        {"é": "ü"},  # non-ASCII: escaped
        {"k": "\x00\n\t\x1f"},  # control characters
        {"big": 2**64, "neg": -(2**63) - 1},  # past orjson's 64-bit integers
        {"b": 1, "a": [True, None, {"z": 0, "y": "x"}]},  # key order at every depth
    ],
)
def test_canonical_json_falls_back_to_the_reference_where_orjson_differs(value: object) -> None:
    assert canonical_json(value) == REFERENCE.encode(value)


def test_decoded_read_only_mappings_encode_as_objects() -> None:
    value = decode_canonical('{"b":{"d":1,"c":2},"a":[{"x":null}]}')
    assert isinstance(value, MappingProxyType)
    assert canonical_json(value) == '{"a":[{"x":null}],"b":{"c":2,"d":1}}'


def test_a_value_that_is_not_json_is_refused_by_both_paths() -> None:
    with pytest.raises(TypeError):
        canonical_json({"x": object()})


@settings(max_examples=400)
@given(values)
def test_decode_value_reads_any_canonical_text_as_the_reference_decoder_does(value: object) -> None:
    text = canonical_json(value)
    decoded = decode_value(text)
    assert decoded == json.loads(text)
    assert canonical_json(decoded) == text  # no integer came back as a float
    assert canonical_json(decode_value(text.encode())) == text


@pytest.mark.parametrize(
    "text",
    [
        '{"a":18446744073709551616}',  # orjson: a float
        '{"a":-9223372036854775809}',  # orjson: a float
        '{"a":9223372036854775807,"b":-9223372036854775808}',  # 19 digits, within 64 bits
        '{"a":"\\ud800x"}',  # a lone surrogate: orjson refuses it
        '{"id":"1234567890123456789012"}',  # 22 digits inside a string
    ],
)
def test_decode_value_takes_the_reference_decoder_where_orjson_differs(text: str) -> None:
    assert decode_value(text) == json.loads(text)
    assert canonical_json(decode_value(text)) == canonical_json(json.loads(text))


def shape(value: object) -> object:
    """The value with each mapping's type named (the reference decoder's read-only mappings)."""
    if isinstance(value, (dict, MappingProxyType)):
        return (type(value).__name__, {k: shape(v) for k, v in value.items()})
    if isinstance(value, list):
        return [shape(v) for v in value]
    return (type(value).__name__, value)


@settings(max_examples=300)
@given(values)
def test_decode_value_gives_the_reference_decoders_read_only_mappings(value: object) -> None:
    text = canonical_json(value)
    assert shape(decode_value(text)) == shape(encoding._DECODER.decode(text))  # the reference


@settings(max_examples=300)
@given(values, st.sampled_from(["", " ", "\n"]))
def test_parse_json_reads_what_the_strict_decoder_reads(value: object, space: str) -> None:
    text = json.dumps(value, indent=1 if space else None).replace("\n", space or "\n")
    assert shape(parse_json(text.encode())) == shape(json.loads(text))


@pytest.mark.parametrize(
    "text",
    ["1.5", '{"a":1e2}', "NaN", '{"a":Infinity}', '{"a":"\x01"}', "\ufeff{}", "[1,]", '{"a":1}x', "01"],
)
def test_parse_json_refuses_floats_constants_and_bad_json_with_invalid_tx(text: str) -> None:
    with pytest.raises(InvalidTx):
        parse_json(text.encode())


def test_parse_json_reads_integers_past_64_bits_and_lone_surrogates_exactly() -> None:
    assert parse_json(b'{"a":18446744073709551616,"b":-9223372036854775809}') == {"a": 2**64, "b": -(2**63) - 1}
    assert parse_json(b'"\\ud800"') == "\ud800"
