"""SPEC §2 transactions: canonical sign bytes, strict decoding, and every rejection rule.

Each invalid transaction is sent both through `check_tx` (mempool) and `finalize_block` (a block);
both must report the same code with a reason, and neither may change anything: the check state
still admits the sender's next valid transaction, and the committed block changes only meta/height.
"""

from __future__ import annotations

import base64
import copy
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.crypto import PrivateKey, compute_address, verify_signature
from chain.encoding import canonical_bytes
from chain.errors import ChainError, InvalidTx
from chain.tx import (
    MAX_MESSAGES,
    MAX_TX_BYTES,
    SIGN_DOMAIN,
    MsgBond,
    MsgSend,
    MsgSubmitPriceProposal,
    MsgUnbond,
    _b64,
    compute_sign_bytes,
    compute_tx_hash,
    decode_tx,
    make_body,
    sign_tx,
)
from tests.helpers import (
    ADDR,
    CHAIN_ID,
    KEYS,
    balance,
    encode_tx,
    make_app,
    make_genesis,
    run_block,
    seq,
    sign_body,
    signed,
    store_snapshot,
)

# --- helpers --------------------------------------------------------------------------------


def observable(app) -> dict:
    """What queries show: every named account, the validator set, and every price vote."""
    votes = {}
    for name, address in ADDR.items():
        try:
            votes[name] = app.query("price_vote/" + address)
        except ChainError as exc:  # never voted
            votes[name] = exc.code
    return {
        "accounts": {name: app.query("account/" + address) for name, address in ADDR.items()},
        "validators": app.query_all("validators"),
        "votes": votes,
        "epoch": app.query("epoch/current"),
        "history": app.query_all("history"),
    }


def assert_only_height_changed(before: dict, after: dict, height: int) -> None:
    """Two store snapshots differ only in meta/height, which is now `height`."""
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    assert changed == {("meta", "height")}
    assert json.loads(after[("meta", "height")]) == height


def probe_tx(app, name: str = "a") -> bytes:
    """A valid tx that needs the sender's committed sequence and its whole committed balance."""
    return signed(name, seq(app, name), MsgSend(ADDR["e"], balance(app, name)))


def assert_rejected_everywhere(app, raw: bytes, code: str, reason: str = "", sender: str = "a") -> None:
    """`raw` is refused with `code` by check_tx and by a block, and changes nothing."""
    snap, seen = store_snapshot(app.store), observable(app)
    hash_before = app.app_hash

    checked = app.check_tx(raw)
    assert checked.code == code, checked
    assert not checked.ok and checked.log and reason in checked.log
    # The check state is untouched: the sender's next valid tx (same sequence, whole balance) fits.
    assert app.check_tx(probe_tx(app, sender)).ok

    result = app.finalize_block(app.height + 1, [raw])
    assert [r.code for r in result.tx_results] == [code]
    assert result.tx_results[0].log and reason in result.tx_results[0].log
    app.commit()
    assert_only_height_changed(snap, store_snapshot(app.store), app.height)
    after = observable(app)
    assert after == seen
    assert app.app_hash != hash_before
    assert app.recompute_app_hash() == app.app_hash


@pytest.fixture
def app():
    """Validators a, b, c (50, 30, 20); accounts a..e with 1000; block 1 holds a's tx with sequence 0."""
    app = make_app(make_genesis({"a": 50, "b": 30, "c": 20}, epoch_length=100))
    run_block(app, [REPLAYED])
    return app


REPLAYED = signed("a", 0, MsgSend(ADDR["b"], 10))


def body(messages, **fields) -> dict:
    """A tx body from a (sequence 1) with the given raw messages, overriding fields as given."""
    result = {
        "chain_id": CHAIN_ID,
        "sender": ADDR["a"],
        "sequence": 1,
        "fee": 0,
        "gas_limit": 10**6,
        "messages": messages,
    }
    result.update(fields)
    return result


def send_json(**over) -> dict:
    msg = {"@type": "MsgSend", "to": ADDR["b"], "amount": {"amount": 5, "denom": "ngonka"}}
    msg.update(over)
    return msg


def vote_json(**over) -> dict:
    msg = {"@type": "MsgSubmitPriceProposal", "price": 300, "denom": "ngonka"}
    msg.update(over)
    return msg


def without(obj: dict, key: str) -> dict:
    obj = dict(obj)
    del obj[key]
    return obj


def signed_body(b: dict) -> bytes:
    return sign_body(KEYS["a"], b)


def wire(doc: dict) -> bytes:
    """Encode a raw tx document as-is (keys sorted, floats allowed)."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def valid_doc() -> dict:
    return json.loads(signed("a", 1, MsgSend(ADDR["b"], 5)))


def doc_with(**over) -> bytes:
    doc = valid_doc()
    for key, value in over.items():
        if value is _DELETE:
            del doc[key]
        else:
            doc[key] = value
    return wire(doc)


_DELETE = object()

# --- signature, sequence, chain id, pubkey -------------------------------------------------------


def _bad_signature_flipped() -> bytes:
    b = make_body(CHAIN_ID, ADDR["a"], 1, [MsgSend(ADDR["b"], 5)])
    sig = bytearray(KEYS["a"].sign(compute_sign_bytes(b)))
    sig[10] ^= 0x40
    return encode_tx(b, KEYS["a"].pubkey, bytes(sig))


def _bad_signature_other_signer() -> bytes:
    b = make_body(CHAIN_ID, ADDR["a"], 1, [MsgSend(ADDR["b"], 5)])
    return encode_tx(b, KEYS["a"].pubkey, KEYS["b"].sign(compute_sign_bytes(b)))


def _bad_signature_other_body() -> bytes:
    signed_over = make_body(CHAIN_ID, ADDR["a"], 1, [MsgSend(ADDR["b"], 5)])
    carried = make_body(CHAIN_ID, ADDR["a"], 1, [MsgSend(ADDR["b"], 900)])
    return encode_tx(carried, KEYS["a"].pubkey, KEYS["a"].sign(compute_sign_bytes(signed_over)))


def _bad_signature_without_domain() -> bytes:
    b = make_body(CHAIN_ID, ADDR["a"], 1, [MsgSend(ADDR["b"], 5)])
    return encode_tx(b, KEYS["a"].pubkey, KEYS["a"].sign(canonical_bytes(b)))


def _pubkey_of_another_account() -> bytes:
    b = make_body(CHAIN_ID, ADDR["a"], 1, [MsgSend(ADDR["b"], 5)])
    return encode_tx(b, KEYS["b"].pubkey, KEYS["b"].sign(compute_sign_bytes(b)))


REJECTIONS = [
    pytest.param(_bad_signature_flipped, "bad_signature", "signature", id="bad-signature-flipped-bit"),
    pytest.param(_bad_signature_other_signer, "bad_signature", "signature", id="bad-signature-other-signer"),
    pytest.param(_bad_signature_other_body, "bad_signature", "signature", id="bad-signature-over-another-body"),
    pytest.param(_bad_signature_without_domain, "bad_signature", "signature", id="bad-signature-without-domain-tag"),
    pytest.param(lambda: REPLAYED, "wrong_sequence", "sequence is 0, account expects 1", id="replay-of-committed-tx"),
    pytest.param(lambda: signed("a", 0, MsgSend(ADDR["b"], 1)), "wrong_sequence", "expects 1", id="old-sequence"),
    pytest.param(lambda: signed("a", 2, MsgSend(ADDR["b"], 1)), "wrong_sequence", "expects 1", id="future-sequence"),
    pytest.param(
        lambda: signed("a", 1, MsgSend(ADDR["b"], 1), chain_id="other-chain"),
        "wrong_chain_id",
        "other-chain",
        id="wrong-chain-id",
    ),
    pytest.param(_pubkey_of_another_account, "pubkey_mismatch", ADDR["a"], id="pubkey-not-matching-sender"),
]


@pytest.mark.parametrize(("build", "code", "reason"), REJECTIONS)
def test_invalid_tx_is_rejected_with_its_code_by_check_tx_and_block_and_changes_nothing(app, build, code, reason):
    assert_rejected_everywhere(app, build(), code, reason)


def test_a_tx_from_the_identity_key_signed_with_identity_r_and_zero_s_is_refused_as_bad_signature():
    """Regression: the small-order identity key verified any message, so its address was anyone-can-spend."""
    identity = (1).to_bytes(32, "little")
    victim = compute_address(identity)
    genesis = make_genesis({"a": 50})
    genesis["accounts"].append({"address": victim, "balance": 1000})
    app = make_app(genesis)
    raw = encode_tx(make_body(CHAIN_ID, victim, 0, [MsgSend(ADDR["e"], 1000)]), identity, identity + bytes(32))
    assert app.check_tx(raw).code == "bad_signature"
    result = app.finalize_block(app.height + 1, [raw])
    assert [r.code for r in result.tx_results] == ["bad_signature"]
    app.commit()
    assert app.query("account/" + victim)["balance"] == 1000


# --- malformed transactions --------------------------------------------------------------------

MALFORMED = [
    # messages
    pytest.param(
        lambda: signed_body(body([{"@type": "MsgMint", "amount": {"amount": 5, "denom": "ngonka"}}])),
        "is not a known message",
        id="unknown-type",
    ),
    pytest.param(lambda: signed_body(body([without(send_json(), "@type")])), "'@type'", id="missing-type"),
    pytest.param(lambda: signed_body(body([send_json(**{"@type": 7})])), "'@type'", id="type-not-a-string"),
    pytest.param(lambda: signed_body(body(["MsgSend"])), "'@type'", id="message-not-an-object"),
    pytest.param(lambda: signed_body(body([without(send_json(), "to")])), "missing field(s): to", id="send-missing-to"),
    pytest.param(
        lambda: signed_body(body([without(vote_json(), "denom")])), "missing field(s): denom", id="vote-missing-denom"
    ),
    pytest.param(
        lambda: signed_body(body([send_json(amount={"amount": 5})])), "missing field(s): denom", id="coin-missing-denom"
    ),
    pytest.param(lambda: signed_body(body([send_json(amount=5)])), "must be a JSON object", id="coin-not-an-object"),
    pytest.param(lambda: signed_body(body([vote_json(note="hi")])), "unknown field(s): note", id="vote-extra-field"),
    pytest.param(
        lambda: signed_body(body([send_json(amount={"amount": 5, "denom": "ngonka", "x": 1})])),
        "unknown field(s): x",
        id="coin-extra-field",
    ),
    pytest.param(
        lambda: signed_body(body([send_json(amount={"amount": 1.5, "denom": "ngonka"})])),
        "floats are not allowed",
        id="float-amount",
    ),
    pytest.param(
        lambda: signed_body(body([vote_json(price=300.0)])), "floats are not allowed", id="integral-float-price"
    ),
    pytest.param(
        lambda: signed_body(body([vote_json()])).replace(b'"price":300', b'"price":3e2'),
        "floats are not allowed",
        id="exponent-price",
    ),
    pytest.param(lambda: signed_body(body([vote_json(price=0)])), "price must be an integer > 0", id="zero-price"),
    pytest.param(
        lambda: signed_body(body([vote_json(price=-300)])), "price must be an integer > 0", id="negative-price"
    ),
    pytest.param(lambda: signed_body(body([vote_json(price="300")])), "price must be an integer", id="string-price"),
    pytest.param(lambda: signed_body(body([vote_json(price=True)])), "price must be an integer", id="bool-price"),
    pytest.param(lambda: signed_body(body([vote_json(price=None)])), "got null", id="null-price"),
    pytest.param(lambda: signed_body(body([vote_json(price=2**63)])), "overflows", id="price-overflow-ngonka"),
    pytest.param(
        lambda: signed_body(body([vote_json(price=9_223_372_037, denom="icoin")])),
        "overflows",
        id="price-overflow-icoin",
    ),
    pytest.param(
        lambda: signed_body(body([vote_json(denom="ICOIN")])), "not a known denomination", id="upper-case-denom"
    ),
    pytest.param(lambda: signed_body(body([vote_json(denom="btc")])), "not a known denomination", id="unknown-denom"),
    pytest.param(
        lambda: signed_body(body([send_json(amount={"amount": 5, "denom": "usd"})])),
        "not a known denomination",
        id="send-unknown-denom",
    ),
    pytest.param(
        lambda: signed_body(body([send_json(amount={"amount": 0, "denom": "ngonka"})])), "> 0", id="send-zero-amount"
    ),
    pytest.param(
        lambda: signed_body(body([{"@type": "MsgBond", "amount": {"amount": -5, "denom": "ngonka"}}])),
        "> 0",
        id="bond-negative-amount",
    ),
    pytest.param(lambda: signed_body(body([send_json(to="uoc1qqqqqqqq")])), "bech32", id="send-to-bad-address"),
    pytest.param(
        lambda: signed_body(body([send_json(to=ADDR["b"].upper())])), "bech32", id="send-to-upper-case-address"
    ),
    pytest.param(
        lambda: signed_body(body([send_json(to=ADDR["b"][:-1] + ("q" if ADDR["b"][-1] != "q" else "p"))])),
        "bech32",
        id="send-to-bad-checksum",
    ),
    pytest.param(
        lambda: signed_body(body([send_json(to="cosmos1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq")])),
        "bech32",
        id="send-to-wrong-prefix",
    ),
    pytest.param(lambda: signed_body(body([send_json(to=None)])), "bech32", id="send-to-null"),
    # body
    pytest.param(
        lambda: signed_body(body([send_json()], sender="uoc1notanaddress")), "tx.body.sender", id="bad-sender-address"
    ),
    pytest.param(lambda: signed_body(body([send_json()], sequence=-1)), "sequence", id="negative-sequence"),
    pytest.param(lambda: signed_body(body([send_json()], sequence="1")), "sequence", id="string-sequence"),
    pytest.param(lambda: signed_body(body([send_json()], sequence=True)), "sequence", id="bool-sequence"),
    pytest.param(lambda: signed_body(body([send_json()], sequence=1.0)), "floats are not allowed", id="float-sequence"),
    pytest.param(lambda: signed_body(body([send_json()], sequence=2**63)), "sequence", id="sequence-overflow"),
    pytest.param(lambda: signed_body(body([send_json()], chain_id="")), "chain_id", id="empty-chain-id"),
    pytest.param(lambda: signed_body(body([send_json()], chain_id=5)), "chain_id", id="chain-id-not-a-string"),
    pytest.param(lambda: signed_body(body([])), "messages", id="no-messages"),
    pytest.param(lambda: signed_body(body([send_json()] * (MAX_MESSAGES + 1))), "messages", id="too-many-messages"),
    pytest.param(lambda: signed_body(body(send_json())), "messages", id="messages-not-a-list"),
    pytest.param(
        lambda: signed_body(body([send_json()], zzz_extra=1)), "unknown field(s): zzz_extra", id="body-extra-field"
    ),
    pytest.param(
        lambda: signed_body(without(body([send_json()]), "sequence")),
        "missing field(s): sequence",
        id="body-missing-sequence",
    ),
    # envelope
    pytest.param(lambda: doc_with(zzz_extra="x"), "unknown field(s): zzz_extra", id="tx-extra-field"),
    pytest.param(lambda: doc_with(signature=_DELETE), "missing field(s): signature", id="tx-missing-signature"),
    pytest.param(lambda: doc_with(pubkey="!!not base64!!"), "tx.pubkey", id="pubkey-not-base64"),
    pytest.param(
        lambda: doc_with(pubkey=base64.b64encode(bytes(31)).decode()),
        "tx.pubkey must be 32 bytes",
        id="pubkey-31-bytes",
    ),
    pytest.param(
        lambda: doc_with(signature=base64.b64encode(bytes(63)).decode()),
        "tx.signature must be 64 bytes",
        id="signature-63-bytes",
    ),
    pytest.param(lambda: doc_with(signature=12345), "tx.signature", id="signature-not-a-string"),
    pytest.param(lambda: doc_with(body="text"), "tx.body must be a JSON object", id="body-not-an-object"),
    # bytes that are not a JSON transaction
    pytest.param(lambda: b"\xff\xfe\x00garbage", "not valid JSON", id="non-utf8-bytes"),
    pytest.param(lambda: b"not json at all", "not valid JSON", id="non-json-text"),
    pytest.param(lambda: b"", "not valid JSON", id="empty-bytes"),
    pytest.param(lambda: b"[]", "tx must be a JSON object", id="json-array"),
    pytest.param(lambda: b"null", "tx must be a JSON object", id="json-null"),
    pytest.param(lambda: b"[" * 20_000, "", id="deeply-nested"),
    pytest.param(lambda: b'{"body":NaN,"pubkey":"","signature":""}', "NaN", id="nan"),
    pytest.param(lambda: b'{"body":Infinity,"pubkey":"","signature":""}', "Infinity", id="infinity"),
    pytest.param(
        lambda: doc_with(zzz_extra={"deep": [0.5]}), "floats are not allowed", id="float-anywhere-in-envelope"
    ),
    pytest.param(
        lambda: signed_body(body([send_json()], zzz_extra=[1, {"x": 1e-06}])),
        "floats are not allowed",
        id="float-anywhere-in-body",
    ),
    pytest.param(lambda: doc_with(zzz_extra="x" * MAX_TX_BYTES), "over the limit", id="oversized"),
]


@pytest.mark.parametrize(("build", "reason"), MALFORMED)
def test_malformed_tx_is_rejected_as_malformed_by_check_tx_and_block_and_changes_nothing(app, build, reason):
    assert_rejected_everywhere(app, build(), "malformed", reason)


def test_decode_tx_raises_invalid_tx_malformed_for_a_non_bytes_transaction():
    with pytest.raises(InvalidTx) as info:
        decode_tx("a string")  # type: ignore[arg-type]
    assert info.value.code == "malformed"


def test_price_with_thousands_of_digits_is_rejected_as_malformed_by_check_tx(app):
    # A 4299-digit integer is legal JSON for Python; × 10^9 (icoin) it overflows, and formatting the
    # overflow message must not crash the node.
    raw = signed_body(body([vote_json(price=10**4299, denom="icoin")]))
    assert len(raw) < MAX_TX_BYTES
    result = app.check_tx(raw)
    assert result.code == "malformed"


def test_price_with_thousands_of_digits_is_rejected_as_malformed_by_finalize_block(app):
    raw = signed_body(body([send_json(amount={"amount": 10**4299, "denom": "gonka"})]))
    snap = store_snapshot(app.store)
    result = app.finalize_block(app.height + 1, [raw])
    assert [r.code for r in result.tx_results] == ["malformed"]
    app.commit()
    assert_only_height_changed(snap, store_snapshot(app.store), app.height)


# --- a block of rejected transactions ----------------------------------------------------------


def test_block_whose_txs_are_all_rejected_changes_nothing_but_meta_height(app):
    txs = [build() for build, _, _ in (p.values for p in REJECTIONS)]
    txs += [
        signed_body(body([vote_json(price=0)])),
        b"not json",
        signed("a", 1, MsgSend(ADDR["b"], 5000)),  # insufficient funds
        signed("d", 0, MsgSubmitPriceProposal.of(300)),  # not a validator
        signed("b", 0, MsgUnbond(31)),  # more than its stake
        signed("c", 0, MsgSubmitPriceProposal.of(300), MsgSend(ADDR["a"], 10**6)),  # second message fails
    ]
    snap, seen = store_snapshot(app.store), observable(app)
    result = app.finalize_block(app.height + 1, txs)
    assert not any(r.ok for r in result.tx_results)
    assert all(r.log for r in result.tx_results)
    assert [r.code for r in result.tx_results][-6:] == [
        "malformed",
        "malformed",
        "insufficient_funds",
        "not_validator",
        "insufficient_stake",
        "insufficient_funds",
    ]
    app.commit()
    assert_only_height_changed(snap, store_snapshot(app.store), 2)
    assert observable(app) == seen


# --- atomicity -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("messages", "code"),
    [
        pytest.param(
            [MsgSend(ADDR["b"], 100), MsgSend(ADDR["c"], 5000)], "insufficient_funds", id="send-then-overdraw"
        ),
        pytest.param(
            [MsgSubmitPriceProposal.of(777), MsgUnbond(10**6)], "insufficient_stake", id="vote-then-overunbond"
        ),
        pytest.param(
            [MsgBond(100), MsgSubmitPriceProposal.of(5), MsgSend(ADDR["b"], 950)],
            "insufficient_funds",
            id="bond-vote-then-overdraw",
        ),
    ],
)
def test_tx_whose_later_message_fails_leaves_no_trace_of_earlier_messages_or_sequence_bump(app, messages, code):
    raw = signed("a", 1, *messages)
    assert_rejected_everywhere(app, raw, code)
    assert seq(app, "a") == 1
    assert balance(app, "a") == 990
    assert {v["address"]: v["pending_stake"] for v in app.query_all("validators")}[ADDR["a"]] == 50
    with pytest.raises(ChainError) as info:
        app.query("price_vote/" + ADDR["a"])
    assert info.value.code == "not_found"


def test_failed_tx_in_a_block_does_not_undo_the_valid_txs_around_it(app):
    txs = [
        signed("a", 1, MsgSend(ADDR["b"], 100)),
        signed("a", 2, MsgSend(ADDR["b"], 10_000)),  # fails: the sequence stays at 2
        signed("a", 2, MsgSend(ADDR["c"], 40)),
    ]
    result = run_block(app, txs, expect_ok=False)
    assert [r.code for r in result.tx_results] == ["ok", "insufficient_funds", "ok"]
    assert balance(app, "a") == 1000 - 10 - 100 - 40
    assert balance(app, "b") == 1000 + 10 + 100
    assert balance(app, "c") == 1000 + 40
    assert seq(app, "a") == 3


# --- sends, bonds, votes ---------------------------------------------------------------------------


def test_send_moves_the_amount_bumps_the_sequence_and_records_the_pubkey(app):
    result = run_block(app, [signed("a", 1, MsgSend(ADDR["b"], 250))])
    assert result.tx_results[0].ok and len(result.tx_results[0].hash) == 64
    a = app.query("account/" + ADDR["a"])
    assert a == {"address": ADDR["a"], "balance": 1000 - 10 - 250, "sequence": 2, "pubkey": KEYS["a"].pubkey.hex()}
    assert balance(app, "b") == 1000 + 10 + 250


def test_send_to_a_new_address_creates_the_account(app):
    newcomer = PrivateKey.from_name("newcomer").address
    run_block(app, [signed("a", 1, MsgSend(newcomer, 5))])
    assert app.query("account/" + newcomer) == {"address": newcomer, "balance": 5, "sequence": 0, "pubkey": None}


def test_send_of_one_ugonka_moves_one_thousand_ngonka():
    app = make_app(make_genesis({"a": 50}, {"a": 1000, "b": 0}))
    raw = sign_body(
        KEYS["a"],
        {
            "chain_id": CHAIN_ID,
            "sender": ADDR["a"],
            "sequence": 0,
            "fee": 0,
            "gas_limit": 10**6,
            "messages": [send_json(amount={"amount": 1, "denom": "ugonka"})],
        },
    )
    run_block(app, [raw])
    assert balance(app, "a") == 0
    assert balance(app, "b") == 1000


def test_send_of_more_than_the_balance_is_rejected_with_insufficient_funds(app):
    assert_rejected_everywhere(app, signed("a", 1, MsgSend(ADDR["b"], 991)), "insufficient_funds", "insufficient funds")


def test_send_of_exactly_the_balance_empties_the_account(app):
    run_block(app, [signed("a", 1, MsgSend(ADDR["b"], 990))])
    assert balance(app, "a") == 0


def test_send_to_self_keeps_the_balance_and_bumps_the_sequence(app):
    run_block(app, [signed("a", 1, MsgSend(ADDR["a"], 990))])
    assert balance(app, "a") == 990
    assert seq(app, "a") == 2


def test_send_from_an_account_that_does_not_exist_is_rejected_with_insufficient_funds(app):
    ghost = PrivateKey.from_name("ghost")
    raw = sign_tx(ghost, CHAIN_ID, 0, [MsgSend(ADDR["a"], 1)])
    assert app.check_tx(raw).code == "insufficient_funds"
    snap = store_snapshot(app.store)
    assert app.finalize_block(app.height + 1, [raw]).tx_results[0].code == "insufficient_funds"
    app.commit()
    assert_only_height_changed(snap, store_snapshot(app.store), app.height)


def test_bond_of_more_than_the_balance_is_rejected_with_insufficient_funds(app):
    assert_rejected_everywhere(app, signed("a", 1, MsgBond(991)), "insufficient_funds")


def test_unbond_of_more_than_the_next_epoch_stake_is_rejected_with_insufficient_stake(app):
    assert_rejected_everywhere(app, signed("a", 1, MsgUnbond(51)), "insufficient_stake", "next-epoch stake is 50")


def test_price_vote_from_a_non_validator_is_rejected_with_not_validator(app):
    assert_rejected_everywhere(
        app, signed("d", 0, MsgSubmitPriceProposal.of(300)), "not_validator", ADDR["d"], sender="d"
    )


def test_price_vote_from_a_non_validator_is_accepted_once_it_has_pending_stake(app):
    run_block(app, [signed("d", 0, MsgBond(10))])
    assert ADDR["d"] not in {v["address"] for v in app.query_all("validators")}
    result = run_block(app, [signed("d", 1, MsgSubmitPriceProposal.of(300))])
    assert result.tx_results[0].ok
    vote = app.query("price_vote/" + ADDR["d"])
    assert vote == {"price": 300, "denom": "ngonka", "price_ngonka": 300, "height": 3, "epoch": 0}


def test_bond_and_price_vote_in_one_tx_are_accepted_from_a_non_validator(app):
    run_block(app, [signed("d", 0, MsgBond(10), MsgSubmitPriceProposal.of(2, "icoin"))])
    assert app.query("price_vote/" + ADDR["d"])["price_ngonka"] == 2_000_000_000
    assert balance(app, "d") == 990


def test_price_vote_is_stored_as_given_and_in_ngonka_with_height_and_epoch(app):
    run_block(app, [signed("b", 0, MsgSubmitPriceProposal.of(3, "mgonka"))])
    assert app.query("price_vote/" + ADDR["b"]) == {
        "price": 3,
        "denom": "mgonka",
        "price_ngonka": 3_000_000,
        "height": 2,
        "epoch": 0,
    }


def test_a_later_price_vote_replaces_the_earlier_one(app):
    run_block(app, [signed("b", 0, MsgSubmitPriceProposal.of(300)), signed("b", 1, MsgSubmitPriceProposal.of(400))])
    run_block(app, [signed("b", 2, MsgSubmitPriceProposal.of(5, "uicoin"))])
    assert app.query("price_vote/" + ADDR["b"]) == {
        "price": 5,
        "denom": "uicoin",
        "price_ngonka": 5000,
        "height": 3,
        "epoch": 0,
    }


# --- mempool ---------------------------------------------------------------------------------------


def test_check_tx_admits_consecutive_sequences_and_refuses_a_duplicate(app):
    first = signed("a", 1, MsgSend(ADDR["b"], 1))
    second = signed("a", 2, MsgSend(ADDR["b"], 1))
    assert app.check_tx(first).ok
    assert app.check_tx(second).ok
    duplicate = app.check_tx(first)
    assert duplicate.code == "wrong_sequence"


def test_check_tx_does_not_change_committed_state(app):
    snap = store_snapshot(app.store)
    assert app.check_tx(signed("a", 1, MsgSend(ADDR["b"], 500))).ok
    assert store_snapshot(app.store) == snap
    assert balance(app, "a") == 990


def test_same_tx_twice_in_one_block_applies_once(app):
    raw = signed("a", 1, MsgSend(ADDR["b"], 100))
    result = run_block(app, [raw, raw], expect_ok=False)
    assert [r.code for r in result.tx_results] == ["ok", "wrong_sequence"]
    assert balance(app, "a") == 890


def test_tx_admitted_by_check_tx_is_applied_identically_in_the_block(app):
    raw = signed("a", 1, MsgSend(ADDR["b"], 100))
    checked = app.check_tx(raw)
    result = run_block(app, [raw])
    assert result.tx_results[0].hash == checked.hash == compute_tx_hash(raw)
    assert balance(app, "a") == 890


# --- sign bytes and encoding ------------------------------------------------------------------------


def _reversed_keys(value):
    """The same JSON value with every object's keys in reverse order."""
    if isinstance(value, dict):
        return {k: _reversed_keys(value[k]) for k in sorted(value, reverse=True)}
    if isinstance(value, list):
        return [_reversed_keys(v) for v in value]
    return value


def _key_orders(value, seen=None):
    """All object keys in encounter order (to check canonical ordering)."""
    seen = [] if seen is None else seen
    if isinstance(value, dict):
        seen.append(list(value))
        for v in value.values():
            _key_orders(v, seen)
    elif isinstance(value, list):
        for v in value:
            _key_orders(v, seen)
    return seen


MESSAGES = st.one_of(
    st.builds(MsgSend, st.sampled_from(sorted(ADDR.values())), st.integers(1, 2**62)),
    st.builds(MsgBond, st.integers(1, 2**62)),
    st.builds(MsgUnbond, st.integers(1, 2**62)),
    st.builds(
        MsgSubmitPriceProposal.of,
        st.integers(1, 10**9),
        st.sampled_from(["ngonka", "nicoin", "uicoin", "ugonka", "micoin", "mgonka", "icoin", "gonka"]),
    ),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(MESSAGES, min_size=1, max_size=4), st.integers(0, 2**63 - 1), st.sampled_from(sorted(KEYS)))
def test_sign_bytes_are_canonical_whatever_the_key_order(messages, sequence, name):
    b = make_body(CHAIN_ID, ADDR[name], sequence, messages)
    sb = compute_sign_bytes(b)
    assert sb == compute_sign_bytes(_reversed_keys(b)) == compute_sign_bytes(copy.deepcopy(b))
    assert sb.startswith(SIGN_DOMAIN)
    text = sb[len(SIGN_DOMAIN) :].decode("ascii")
    assert json.loads(text) == b
    assert " " not in text and "\n" not in text
    assert all(keys == sorted(keys) for keys in _key_orders(json.loads(text)))


@settings(max_examples=60, deadline=None)
@given(st.lists(MESSAGES, min_size=1, max_size=4), st.integers(0, 2**63 - 1), st.sampled_from(sorted(KEYS)))
def test_decode_then_reencode_is_stable(messages, sequence, name):
    raw = sign_tx(KEYS[name], CHAIN_ID, sequence, messages)
    tx = decode_tx(raw)
    assert tx.raw == raw
    assert tx.messages == tuple(messages)
    assert tx.sender == ADDR[name] and tx.sequence == sequence and tx.chain_id == CHAIN_ID
    assert tx.hash == compute_tx_hash(raw)
    body = make_body(CHAIN_ID, ADDR[name], sequence, messages, fee=tx.fee, gas_limit=tx.gas_limit)
    assert tx.sign_bytes == compute_sign_bytes(body)
    assert verify_signature(tx.pubkey, tx.signature, tx.sign_bytes)
    again = decode_tx(encode_tx(body, tx.pubkey, tx.signature))
    assert again == tx


CANONICAL = signed("a", 1, MsgSend(ADDR["b"], 5), MsgSubmitPriceProposal.of(300))


def _flip_base64_padding_bits(raw: bytes) -> bytes:
    """The same tx with the unused low bits of the pubkey's last base64 digit set (same bytes decoded)."""
    doc = json.loads(raw)
    b64 = doc["pubkey"]  # 32 bytes: 43 digits and one "=", the last digit carries 2 unused bits
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    doc["pubkey"] = b64[:42] + alphabet[alphabet.index(b64[42]) | 1] + b64[43:]
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


# (case, a non-canonical encoding of CANONICAL): each decodes to the same signed content
NON_CANONICAL = [
    ("keys-reversed", lambda: json.dumps(_reversed_keys(json.loads(CANONICAL)), separators=(",", ":")).encode()),
    ("indented", lambda: json.dumps(json.loads(CANONICAL), indent=2, sort_keys=True).encode()),
    ("trailing-space", lambda: CANONICAL + b" "),
    ("leading-newline", lambda: b"\n" + CANONICAL),
    ("duplicate-key", lambda: CANONICAL.replace(b'{"body":{', b'{"body":{"chain_id":"other",', 1)),
    ("escaped-letter", lambda: CANONICAL.replace(b'"chain_id":"uoc-test"', b'"chain_id":"\\u0075oc-test"')),
    ("escaped-denom", lambda: CANONICAL.replace(b'"denom":"ngonka"', b'"denom":"ngonk\\u0061"', 1)),
    ("base64-padding-bits", lambda: _flip_base64_padding_bits(CANONICAL)),
]


@pytest.mark.parametrize("make", [c[1] for c in NON_CANONICAL], ids=[c[0] for c in NON_CANONICAL])
def test_a_non_canonical_encoding_of_a_signed_tx_is_refused_everywhere_and_changes_nothing(app, make):
    loose = make()
    assert loose != CANONICAL
    with pytest.raises(InvalidTx) as info:
        decode_tx(loose)
    assert info.value.code in ("non_canonical", "malformed")
    assert_rejected_everywhere(app, loose, info.value.code, "")
    assert app.check_tx(CANONICAL).ok


def test_the_canonical_form_is_refused_only_for_its_encoding(app):
    with pytest.raises(InvalidTx, match="canonical") as info:
        decode_tx(CANONICAL.replace(b'"chain_id":"uoc-test"', b'"chain_id":"\\u0075oc-test"'))
    assert info.value.code == "non_canonical"
    assert decode_tx(CANONICAL).raw == CANONICAL


def test_sign_bytes_cover_every_body_field():
    base = make_body(CHAIN_ID, ADDR["a"], 1, [MsgSend(ADDR["b"], 5)])
    variants = [
        make_body("other", ADDR["a"], 1, [MsgSend(ADDR["b"], 5)]),
        make_body(CHAIN_ID, ADDR["b"], 1, [MsgSend(ADDR["b"], 5)]),
        make_body(CHAIN_ID, ADDR["a"], 2, [MsgSend(ADDR["b"], 5)]),
        make_body(CHAIN_ID, ADDR["a"], 1, [MsgSend(ADDR["c"], 5)]),
        make_body(CHAIN_ID, ADDR["a"], 1, [MsgSend(ADDR["b"], 6)]),
        make_body(CHAIN_ID, ADDR["a"], 1, [MsgBond(5)]),
        make_body(CHAIN_ID, ADDR["a"], 1, [MsgSend(ADDR["b"], 5), MsgSend(ADDR["b"], 5)]),
        make_body(CHAIN_ID, ADDR["a"], 1, [MsgSend(ADDR["b"], 5)], fee=1),
        make_body(CHAIN_ID, ADDR["a"], 1, [MsgSend(ADDR["b"], 5)], gas_limit=12_345),
    ]
    all_bytes = {compute_sign_bytes(v) for v in variants} | {compute_sign_bytes(base)}
    assert len(all_bytes) == len(variants) + 1


def _with_nonzero_base64_padding_bits(text: str) -> str:
    """The same bytes in base64, with the unused low bits of the last character set."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    stripped = text.rstrip("=")
    pad = len(text) - len(stripped)
    assert pad in (1, 2)  # 32- and 64-byte values leave 2 or 4 unused bits in the last character
    last = alphabet.index(stripped[-1])
    assert last & 1 == 0  # canonical base64 leaves the unused bits at zero
    changed = stripped[:-1] + alphabet[last | 1] + "=" * pad
    assert base64.b64decode(changed) == base64.b64decode(text)
    return changed


@pytest.mark.parametrize("field", ["signature", "pubkey"])
def test_tx_hash_cannot_be_changed_by_reencoding_base64_without_the_key(app, field):
    # Anyone relaying a signed tx could otherwise give it a new hash (mempool dedup and clients
    # waiting for their tx hash would be fooled): the decoder must refuse non-canonical base64 or
    # hash the decoded bytes.
    raw = signed("a", 1, MsgSend(ADDR["b"], 5))
    doc = json.loads(raw)
    doc[field] = _with_nonzero_base64_padding_bits(doc[field])
    mauled = wire(doc)
    assert mauled != raw
    try:
        tx = decode_tx(mauled)
    except InvalidTx as exc:
        assert exc.code in ("malformed", "non_canonical")
        return
    assert tx.hash == decode_tx(raw).hash


def test_block_applies_transactions_in_block_order_so_only_in_sequence_ones_succeed(app):
    txs = [signed("b", i, MsgSend(ADDR["c"], 1)) for i in range(5)]
    shuffled = [txs[i] for i in (1, 0, 1, 3, 2)]
    result = run_block(app, shuffled, expect_ok=False)
    assert [r.code for r in result.tx_results] == ["wrong_sequence", "ok", "ok", "wrong_sequence", "ok"]
    assert seq(app, "b") == 3
    assert balance(app, "c") == 1003


@settings(max_examples=500)
@given(st.text(alphabet="ABCDab019+/=-_ \n\u00e9", max_size=12))
def test_a_base64_field_is_read_as_the_validating_standard_decoder_reads_it(text):
    try:
        expected = base64.b64decode(text, validate=True)
    except ValueError:  # binascii.Error is a ValueError
        expected = None
    try:
        got = _b64(text, "tx.pubkey", len(expected) if expected is not None else 0)
    except InvalidTx:
        got = None
    assert got == expected
