"""Declared once, derived everywhere: every message and governance content round-trips through its
declaration, validates when built exactly as the wire parser does, and has a valid JSON schema;
every query answers in the shape it declares, and each public read route is bound to a query."""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema_rs
import pytest

from chain.catalog import (
    describe_commands,
    get_cli_queries,
    get_commands,
    get_message_schemas,
    get_routes,
    get_tx_schema,
)
from chain.errors import ChainError
from chain.fields import (
    AddressKind,
    AmountKind,
    DecimalKind,
    DenomKind,
    EnumKind,
    FieldError,
    HexKind,
    IdentifierKind,
    IntKind,
    Kind,
    MapKind,
    NestedKind,
    PriceKind,
    TextKind,
)
from chain.params import ParamChangesKind
from chain.queries import QUERIES
from chain.tx import (
    CONTENT_TYPES,
    MESSAGE_TYPES,
    CapKind,
    Declared,
    MsgBond,
    MsgDeposit,
    MsgFundEscrow,
    MsgSend,
    MsgSettleUsage,
    MsgSubmitPriceProposal,
    MsgSubmitProposal,
    MsgVote,
    MsgWithdrawEscrow,
    Receipt,
    RegisterModel,
    SignatureKind,
    Tokens,
    TokensKind,
    decode_tx,
    parse_message,
    sign_receipt,
    sign_tx,
)
from chain.usage import DIMENSIONS
from tests.helpers import ADDR, CHAIN_ID, KEYS, make_app, make_genesis, run_block, run_until, sign_body, signed

DECLARED: list[type[Declared]] = [*MESSAGE_TYPES.values(), *CONTENT_TYPES.values()]


def full_example(cls: type[Declared]) -> Declared:
    """An instance with every field set (optional ones too) from the kinds' examples."""
    return cls(**{s.name: s.kind.example() for s in cls.FIELDS})


def body_with(message: dict[str, Any]) -> dict[str, Any]:
    return {
        "chain_id": CHAIN_ID,
        "sender": ADDR["a"],
        "sequence": 0,
        "fee": 0,
        "gas_limit": 10**6,
        "messages": [message],
    }


# --- round trips --------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", DECLARED, ids=lambda c: c.TYPE)
@pytest.mark.parametrize("build", [lambda c: c.example(), full_example], ids=["required-fields", "every-field"])
def test_every_declared_kind_round_trips_build_to_json_parse(cls, build):
    built = build(cls)
    doc = built.to_json()
    assert doc["@type"] == cls.TYPE
    assert json.loads(json.dumps(doc)) == doc  # plain JSON, no float
    assert cls.parse(doc, "x") == built
    assert cls.parse(doc, "x").to_json() == doc


@pytest.mark.parametrize("cls", list(MESSAGE_TYPES.values()), ids=lambda c: c.TYPE)
def test_every_message_round_trips_through_a_signed_transaction(cls):
    msg = full_example(cls)
    raw = sign_tx(KEYS["a"], CHAIN_ID, 7, [msg])
    tx = decode_tx(raw)
    assert tx.messages == (msg,)
    assert parse_message(msg.to_json(), "m") == msg


def test_wire_forms_are_unchanged():
    assert MsgSend(ADDR["b"], 5).to_json() == {
        "@type": "MsgSend",
        "to": ADDR["b"],
        "amount": {"amount": 5, "denom": "ngonka"},
    }
    assert MsgSubmitPriceProposal.of(3, "icoin").to_json() == {
        "@type": "MsgSubmitPriceProposal",
        "price": 3,
        "denom": "icoin",
    }
    assert MsgSubmitPriceProposal(3, "icoin") == MsgSubmitPriceProposal(3, "icoin", 3_000_000_000)
    assert MsgSubmitProposal(RegisterModel("m", 2), 9).to_json() == {
        "@type": "MsgSubmitProposal",
        "content": {"@type": "RegisterModel", "id": "m", "units_of_compute_per_token": 2},
        "initial_deposit": {"amount": 9, "denom": "ngonka"},
    }


# --- building validates with the wire parser's code -------------------------------------------------

BAD_VALUES: dict[type[Kind[Any]], list[Any]] = {
    AddressKind: ["uoc1qqqqqqqq", None, 5, "UOC1" + "Q" * 38],
    AmountKind: [0, -5, 2**63, True, "5", None],
    DenomKind: ["btc", "ICOIN", None, 5],
    PriceKind: [0, -1, 2**63, "300", True, None],
    IntKind: [0, -1, 2**63, "1", True, None],
    IdentifierKind: ["", "a b", "m" * 257, 7, None, "a\x07b", "<b>x</b>", "caf\u00e9", "a\u202eb"],
    EnumKind: ["maybe", None, 1],
    TextKind: ["x" * 257, 5, "a\nb"],
    DecimalKind: ["1e-3", "0.", ".5", 0, "x" * 257],
    NestedKind: ["x", 5],
    HexKind: ["ab" * 31, "AB" * 32, "zz" * 32, "ab" * 33, 5, None],
    ParamChangesKind: [(), (("epoch_length", 5),), (("vote_mode", "secret"),), (("miss_window", "3"),), 5, None],
    TokensKind: [{"in": -1, "out": 0}, {"in": 1}, {"in": "12", "out": 0}, {"in": 2**63, "out": 0}, 5, None],
    SignatureKind: ["x", "AAAA", 5, None],
    MapKind: [(), (("standard", "a b"),), (("standard", ""),), 5, "x"],
    CapKind: ["0.5", "0", "1e-3", 5],
}


def _bad_cases() -> list[Any]:
    cases = []
    for cls in DECLARED:
        for spec in cls.FIELDS:
            for bad in BAD_VALUES[type(spec.kind)]:
                if bad is None and spec.optional:
                    continue  # None is an absent optional field in Python; null on the wire is refused
                if isinstance(spec.kind, IntKind) and bad == 0 and spec.kind.minimum == 0:
                    bad = -1
                cases.append(pytest.param(cls, spec.name, bad, id=f"{cls.TYPE}.{spec.name}={bad!r}"[:80]))
    return cases


def _wire(kind: Kind[Any], value: Any) -> Any:
    """The wire form of a (bad) Python value: an amount is a money object in ngonka, param changes an object."""
    if isinstance(kind, (ParamChangesKind, MapKind)) and isinstance(value, tuple):
        return dict(value)
    return {"amount": value, "denom": "ngonka"} if isinstance(kind, AmountKind) else value


@pytest.mark.parametrize(("cls", "name", "bad"), _bad_cases())
def test_building_with_a_bad_value_raises_the_error_the_wire_parser_raises(cls, name, bad):
    spec = next(s for s in cls.FIELDS if s.name == name)
    good = full_example(cls)
    values = {s.name: getattr(good, s.name) for s in cls.FIELDS}
    with pytest.raises(FieldError) as built:
        cls(**{**values, name: bad})
    doc = {**good.to_json(), name: _wire(spec.kind, bad)}
    with pytest.raises(FieldError) as parsed:
        if cls.TYPE in MESSAGE_TYPES:
            decode_tx(sign_body(KEYS["a"], body_with(doc)))
        else:
            decode_tx(sign_body(KEYS["a"], body_with(MsgSubmitProposal(good, 5).to_json() | {"content": doc})))
    assert (type(built.value), built.value.code, built.value.reason) == (
        type(parsed.value),
        parsed.value.code,
        parsed.value.reason,
    )
    assert name in str(built.value) and name in str(parsed.value)


def test_a_price_that_overflows_in_its_denomination_is_refused_when_built_and_on_the_wire():
    with pytest.raises(FieldError) as built:
        MsgSubmitPriceProposal(9_223_372_037, "icoin")
    with pytest.raises(FieldError) as parsed:
        decode_tx(
            sign_body(
                KEYS["a"], body_with({"@type": "MsgSubmitPriceProposal", "price": 9_223_372_037, "denom": "icoin"})
            )
        )
    assert built.value.code == parsed.value.code == "malformed"
    assert built.value.reason == parsed.value.reason == "amount_overflow"
    with pytest.raises(FieldError, match="price_ngonka"):
        MsgSubmitPriceProposal(3, "icoin", 3)


def test_field_errors_keep_the_codes_a_transaction_reports_and_survive_pickling():
    import pickle

    codes = {
        "units": (lambda: RegisterModel("m", 0), "invalid_units"),
        "model id": (lambda: RegisterModel("a b", 1), "invalid_model_id"),
        "option": (lambda: MsgVote(1, "maybe"), "invalid_option"),
        "proposal id": (lambda: MsgDeposit(0, 5), "malformed"),
        "amount": (lambda: MsgBond(0), "malformed"),
    }
    for build, code in codes.values():
        with pytest.raises(FieldError) as info:
            build()
        assert info.value.code == code
        again = pickle.loads(pickle.dumps(info.value))
        assert (type(again), again.code, again.reason, str(again)) == (
            FieldError,
            code,
            info.value.reason,
            str(info.value),
        )


# --- schemas ---------------------------------------------------------------------------------------


def as_json_schema(schema: Any) -> Any:
    """An OpenAPI 3.0 schema as JSON Schema (`nullable` becomes a type list)."""
    if isinstance(schema, list):
        return [as_json_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: as_json_schema(v) for k, v in schema.items() if k not in ("nullable", "discriminator")}
    if schema.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


def assert_valid(schema: dict[str, Any], instance: Any) -> None:
    jsonschema_rs.validator_for(as_json_schema(schema)).validate(instance)


OPENAPI_TYPES = {"object", "array", "string", "integer", "boolean", "number"}


def assert_openapi_shape(schema: Any, where: str = "schema") -> None:
    """A schema uses only OpenAPI 3.0 forms: one `type` string, nested schemas all well formed."""
    assert isinstance(schema, dict), where
    if "type" in schema:
        assert schema["type"] in OPENAPI_TYPES, where
    for key in ("oneOf", "anyOf", "allOf"):
        for i, sub in enumerate(schema.get(key, ())):
            assert_openapi_shape(sub, f"{where}.{key}[{i}]")
    for name, sub in schema.get("properties", {}).items():
        assert_openapi_shape(sub, f"{where}.{name}")
    if "items" in schema:
        assert_openapi_shape(schema["items"], f"{where}[]")
    assert set(schema.get("required", ())) <= set(schema.get("properties", {})) or "properties" not in schema, where
    jsonschema_rs.meta.validate(as_json_schema(schema))


@pytest.mark.parametrize("name", sorted(get_message_schemas()))
def test_every_message_schema_is_a_valid_schema_that_its_examples_satisfy(name):
    schema = get_message_schemas()[name]
    assert_openapi_shape(schema, name)
    cls = MESSAGE_TYPES[name]
    assert_valid(schema, cls.example().to_json())
    assert_valid(schema, full_example(cls).to_json())
    with pytest.raises(jsonschema_rs.ValidationError):
        assert_valid(schema, {**cls.example().to_json(), "zzz_extra": 1})


def test_the_tx_schema_accepts_a_signed_transaction_of_every_message():
    schema = get_tx_schema()
    assert_openapi_shape(schema, "tx")
    raw = sign_tx(KEYS["a"], CHAIN_ID, 3, [full_example(cls) for cls in MESSAGE_TYPES.values()])
    assert_valid(schema, json.loads(raw))
    items = schema["properties"]["body"]["properties"]["messages"]["items"]["oneOf"]
    assert [s["title"] for s in items] == list(MESSAGE_TYPES)


# --- queries and routes ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def busy_app():
    """A chain with a passed model proposal, an open one, votes, deposits and price votes."""
    params = {"min_deposit": 100, "max_deposit_period": 4, "voting_period": 4, "epoch_length": 5}
    app = make_app(make_genesis({"a": 50, "b": 30, "c": 20}, **params))
    full = RegisterModel("Qwen/Qwen2.5-7B", 12, "Qwen/Qwen2.5-7B", "abc123", 24, 1000, "0.95")
    run_block(app, [signed("e", 0, MsgSubmitProposal(full, 100)), signed("a", 0, MsgSubmitPriceProposal.of(300))])
    run_block(app, [signed("a", 1, MsgVote(1, "yes")), signed("b", 0, MsgVote(1, "yes"))])
    run_until(app, 10)
    run_block(app, [signed("d", 0, MsgSubmitProposal(RegisterModel("m2", 3), 40))])
    run_block(app, [signed("e", 1, MsgSubmitProposal(RegisterModel("m3", 4), 100))])
    run_block(app, [signed("a", 2, MsgVote(3, "no")), signed("d", 1, MsgFundEscrow(500))])
    r = Receipt("r1", ADDR["d"], ADDR["e"], "Qwen/Qwen2.5-7B", Tokens(0, 0), 10, 100, workforce="w", worker="k")
    run_block(app, [signed("e", 2, MsgSettleUsage(r, sign_receipt(KEYS["d"], CHAIN_ID, r)))])
    run_block(app, [signed("d", 2, MsgWithdrawEscrow(100))])
    return app


EXAMPLE_ARGS: dict[str, list[str]] = {
    "epoch": ["epoch", "epoch/current", "epoch/0", "epoch/2"],
    "account": ["account/" + ADDR["a"], "account/" + ADDR["h"]],
    "price_vote": ["price_vote/" + ADDR["a"]],
    "price_commits": ["price_commits/" + ADDR["a"]],  # none in open mode: tests/chain/test_commit_reveal.py
    "validator": ["validator/" + ADDR["a"], "validator/" + ADDR["h"]],
    "proposal": ["proposal/1", "proposal/2", "proposal/3"],
    "deposits": ["deposits/1", "deposits/2", "deposits/3"],
    "votes": ["votes/1", "votes/3"],
    "escrow": ["escrow/" + ADDR["d"], "escrow/" + ADDR["h"]],
    "settlement": [("settlement/r1", {"requester": ADDR["d"]})],
    "settlements": ["settlements", ("settlements", {"provider": ADDR["e"]}), ("settlements", {"model": "m2"})],
    "cost_records": ["cost_records", ("cost_records", {"requester": ADDR["d"]})],
    "usage_totals": [("usage_totals", {"group_by": d}) for d in DIMENSIONS],
    "history": ["history", ("history", {"model": "Qwen/Qwen2.5-7B"})],
    "twap": [
        "twap",
        ("twap", {"from_epoch": 1, "to_epoch": 2}),
        ("twap", {"model": "Qwen/Qwen2.5-7B", "from_epoch": 2}),
    ],
    "price_at": [("price_at", {"height": 0}), ("price_at", {"height": 7})],
    "index": [],  # not_found before an IndexConfig: tests/chain/test_index.py checks the index queries' shapes
    "index_tiers": [],
}


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_every_query_answers_in_the_shape_it_declares(busy_app, name):
    q = QUERIES[name]
    assert_openapi_shape(q.response, name)
    for example in EXAMPLE_ARGS.get(name, [name]):
        path, params = example if isinstance(example, tuple) else (example, {})
        assert_valid(q.response, busy_app.query(path, **params))


def test_queries_answer_the_same_with_path_text_and_keyword_arguments(busy_app):
    assert busy_app.query("epoch/2") == busy_app.query("epoch", n=2) == busy_app.query_all("history")[2]
    assert busy_app.query("epoch/current") == busy_app.query("epoch") == busy_app.query("epoch", n=None)
    assert busy_app.query("proposal/1") == busy_app.query("proposal", id=1)
    assert busy_app.query_all("history", from_epoch=1, to_epoch=1) == [busy_app.query("epoch/1")]
    assert [p["id"] for p in busy_app.query_all("proposals", status="voting_period")] == [3]
    price = busy_app.query("status")["unit_of_compute_price"]
    assert busy_app.query("pricing")["models"] == [
        {
            "id": "Qwen/Qwen2.5-7B",
            "units_of_compute_per_token": 12,
            "price_per_token": 12 * price,
            "price_per_token_str": str(12 * price),
            "inputPricePerMTok": 12 * price * 10**6,
            "inputPricePerMTok_str": str(12 * price * 10**6),
            "outputPricePerMTok": 12 * price * 10**6,
            "outputPricePerMTok_str": str(12 * price * 10**6),
        }
    ]
    assert [m["id"] for m in busy_app.query_all("models")] == ["Qwen/Qwen2.5-7B"]
    assert busy_app.query_all("registered_models") == [
        {k: v for k, v in m.items() if not k.startswith("price_per_token")} for m in busy_app.query_all("models")
    ]
    assert [(d["depositor"], d["amount"]) for d in busy_app.query_all("deposits/3")] == [(ADDR["e"], 100)]


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("account/not-an-address", {}),
        ("account", {}),
        ("proposal/0", {}),
        ("history", {"from_epoch": -1}),
        ("history", {"to_epoch": "3"}),
        ("proposals", {"status": "bogus"}),
        ("proposals", {"zzz": 1}),
        ("proposals", {"pagination.limit": 0}),
        ("validators", {"pagination.limit": 1001}),
        ("history", {"pagination.key": "not base64!"}),
        ("history", {"pagination.key": "MDA="}),
        ("votes/1", {"pagination.reverse": "true"}),
        ("status/x", {}),
    ],
)
def test_bad_query_arguments_are_bad_query(busy_app, path, params):
    with pytest.raises(ChainError) as info:
        busy_app.query(path, **params)
    assert info.value.code == "bad_query" and str(info.value)


def test_route_arguments_report_the_codes_the_api_answers_with():
    epoch = QUERIES["epoch"].path_arg
    assert epoch is not None and epoch.parse_text("current") is None and epoch.parse_text("12") == 12
    for text in ("x1", "9" * 5000, "-1"):
        with pytest.raises(FieldError) as info:
            epoch.parse_text(text)
        assert info.value.reason == "invalid_parameter"
    with pytest.raises(FieldError) as info:
        QUERIES["account"].args[0].parse_text("not-an-address")
    assert info.value.reason == "invalid_address"
    with pytest.raises(FieldError) as info:
        QUERIES["proposals"].args[0].parse_text("bogus")
    assert info.value.reason == "bad_query"


def test_every_route_placeholder_is_a_path_argument_of_its_query():
    paths = []
    for http, q in get_routes():
        paths.append(http.path)
        placeholders = re.findall(r"{(\w+)}", http.path)
        path_args = [a.name for a in q.args if a.positional]
        assert placeholders in ([], path_args), http.path
        if not placeholders:
            assert all(not a.required for a in q.args if a.positional), http.path
    assert len(paths) == len(set(paths))
    assert set(paths) >= {
        "/v1/pricing",
        "/v1/pricing/history",
        "/v1/params",
        "/v1/epochs/current",
        "/v1/epochs/{n}",
        "/v1/models",
        "/v1/validators",
        "/v1/validators/{address}",
        "/v1/accounts/{address}",
        "/v1/governance/proposals",
        "/v1/governance/proposals/{id}",
    }


# --- the command line ------------------------------------------------------------------------------


def command(*path: str):
    return next(c for c in get_commands() if c.path == path)


def test_the_tx_commands_are_the_ones_the_cli_has():
    assert {c.path for c in get_commands()} == {
        ("send",),
        ("bond",),
        ("unbond",),
        ("price-proposal",),
        ("price-commit",),
        ("price-reveal",),
        ("register-model",),
        ("param-change",),
        ("remove-model",),
        ("gov", "vote"),
        ("gov", "deposit"),
        ("unjail",),
        ("escrow", "fund"),
        ("escrow", "withdraw"),
        ("dispute",),
        ("refund",),
        ("settle",),
        ("refund-settlement",),
        ("index-config",),
    }
    assert {q.cli for q in get_cli_queries()} >= {
        "pricing",
        "validators",
        "models",
        "params",
        "epoch",
        "history",
        "proposals",
        "proposal",
        "account",
    }
    usages = dict(describe_commands())
    assert "tx send ADDRESS AMOUNT" in usages and "tx gov vote PROPOSAL OPTION" in usages
    assert "tx price-proposal PRICE [DENOM]" in usages and "query epoch [N]" in usages


@pytest.mark.parametrize(
    ("path", "texts", "messages"),
    [
        (("send",), {"to": ADDR["b"], "amount": "1_000"}, [MsgSend(ADDR["b"], 1000)]),
        (("send",), {"to": ADDR["b"], "amount": "5icoin"}, [MsgSend(ADDR["b"], 5_000_000_000)]),
        (("bond",), {"amount": "7 ugonka"}, [MsgBond(7000)]),
        (("price-proposal",), {"price": "300"}, [MsgSubmitPriceProposal(300, "ngonka")]),
        (("price-proposal",), {"price": "2", "denom": "icoin"}, [MsgSubmitPriceProposal(2, "icoin")]),
        (("gov", "vote"), {"proposal_id": "3", "option": "no_with_veto"}, [MsgVote(3, "no_with_veto")]),
        (("gov", "deposit"), {"proposal_id": "3", "amount": "10"}, [MsgDeposit(3, 10)]),
        (
            ("register-model",),
            {"id": "m", "units_of_compute_per_token": "12", "deposit": "100", "v_ram": "24"},
            [MsgSubmitProposal(RegisterModel("m", 12, v_ram=24), 100)],
        ),
    ],
)
def test_commands_build_their_messages_from_command_line_strings(path, texts, messages):
    c = command(*path)
    assert list(c.build(c.parse_texts(texts))) == messages


def test_a_command_refuses_bad_strings_with_field_errors():
    for path, texts in [
        (("send",), {"to": "nobody", "amount": "5"}),
        (("send",), {"to": ADDR["b"], "amount": "5 dollars"}),
        (("send",), {"to": ADDR["b"], "amount": "0"}),
        (("gov", "vote"), {"proposal_id": "1", "option": "maybe"}),
        (("bond",), {}),
    ]:
        c = command(*path)
        with pytest.raises(FieldError):
            c.build(c.parse_texts(texts))
    deposit = next(a for a in command("remove-model").args if a.name == "deposit")
    assert deposit.default_param == "min_deposit" and not deposit.required
