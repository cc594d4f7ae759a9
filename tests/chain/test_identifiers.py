"""Identifiers (model ids, hf_repo, hf_commit) are a stated character set and length, checked by the
state machine when a transaction decodes; a bad one is refused naming the field, and nothing changes."""

from __future__ import annotations

import pytest

from chain.fields import FieldError, TextKind, is_free_text, is_identifier
from chain.tx import HF_COMMIT, HF_REPO, MODEL_ID, MsgSubmitProposal, RegisterModel, make_body
from tests.helpers import ADDR, CHAIN_ID, KEYS, make_app, make_genesis, run_block, sign_body, store_snapshot

IDENTIFIER_CASES = [
    # (kind, value, accepted)
    (MODEL_ID, "Qwen/Qwen2.5-7B", True),
    (MODEL_ID, "org:model_v1.2", True),
    (MODEL_ID, "m" * 128, True),
    (MODEL_ID, "m" * 129, False),
    (MODEL_ID, "", False),
    (MODEL_ID, "a b", False),
    (MODEL_ID, "model\x00", False),
    (MODEL_ID, "model\x1b[2J", False),
    (MODEL_ID, "<img src=x onerror=alert(1)>", False),
    (MODEL_ID, "mod\u00e8le", False),  # letters are ASCII only
    (MODEL_ID, "a\u202eb", False),  # a bidirectional override
    (HF_REPO, "Qwen/Qwen2.5-7B-Instruct", True),
    (HF_REPO, "r" * 256, True),
    (HF_REPO, "r" * 257, False),
    (HF_REPO, "org/repo:tag", False),  # ':' is a model id's, not a repository's
    (HF_REPO, "org/repo\n", False),
    (HF_REPO, "org/<b>repo</b>", False),
    (HF_REPO, "org/repo&x=1", False),
    (HF_COMMIT, "a09a35458c702241f6bc5d2b4a4b8e6e8b8c5a1f", True),
    (HF_COMMIT, "refs/pr/1", True),
    (HF_COMMIT, "c" * 128, True),
    (HF_COMMIT, "c" * 129, False),
    (HF_COMMIT, "main\t", False),
    (HF_COMMIT, "\u2066main", False),
    (HF_COMMIT, "'; drop", False),
]


@pytest.mark.parametrize(("kind", "value", "accepted"), IDENTIFIER_CASES, ids=lambda v: repr(v)[:30])
def test_identifiers_are_ascii_letters_digits_and_stated_punctuation_within_a_length(kind, value, accepted):
    if accepted:
        assert kind.check(value, "field") == value
    else:
        with pytest.raises(FieldError, match="^field "):
            kind.check(value, "field")


@pytest.mark.parametrize(
    ("value", "punctuation", "expected"),
    [("a-b_c", "-_", True), ("a-b", "_", False), ("", "-", True), ("é", "", False), ("a/b", "/", True)],
)
def test_is_identifier(value, punctuation, expected):
    assert is_identifier(value, punctuation) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain text, with <markup> & 'quotes'", True),
        ("caf\u00e9 \u4e2d\u6587", True),
        ("tab\there", False),
        ("nul\x00", False),
        ("del\x7f", False),
        ("c1\x9b", False),
        ("rlo\u202e", False),
        ("isolate\u2068", False),
    ],
)
def test_is_free_text_refuses_control_characters_and_bidi_overrides(value, expected):
    assert is_free_text(value) is expected
    if not expected:
        with pytest.raises(FieldError, match="control character"):
            TextKind().check(value, "note")


def test_the_schemas_state_the_character_sets_and_lengths():
    assert MODEL_ID.schema() == {"type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[A-Za-z0-9_./:-]+$"}
    assert HF_REPO.schema()["pattern"] == "^[A-Za-z0-9_./-]+$" and HF_REPO.schema()["maxLength"] == 256
    assert HF_COMMIT.schema()["pattern"] == "^[A-Za-z0-9_./-]+$" and HF_COMMIT.schema()["maxLength"] == 128


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("id", "m\x07", "invalid_model_id"),
        ("hf_repo", "<script>alert(1)</script>", "malformed"),
        ("hf_commit", "abc\r\ndef", "malformed"),
    ],
)
def test_a_block_with_a_bad_identifier_rejects_the_tx_naming_the_field_and_changes_nothing(field, value, code):
    app = make_app(make_genesis({"a": 50}))
    run_block(app)
    good = MsgSubmitProposal(RegisterModel("m", 1), 100).to_json()
    message = {**good, "content": {**good["content"], field: value}}
    body = make_body(CHAIN_ID, ADDR["a"], 0, []) | {"messages": [message]}
    before = {k: v for k, v in store_snapshot(app.store).items() if k[0] != "meta"}  # meta: the block height
    result = app.finalize_block(app.height + 1, [sign_body(KEYS["a"], body)])
    (tx,) = result.tx_results
    assert not tx.ok and tx.code == code and field in tx.log
    app.commit()
    assert {k: v for k, v in store_snapshot(app.store).items() if k[0] != "meta"} == before
    assert app.query_all("proposals") == []
