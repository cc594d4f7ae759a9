"""Transactions: messages, canonical sign bytes, encoding, decoding and signing.

Wire form (canonical JSON, see `chain.encoding`):

    {"body": {"chain_id": str, "sender": "uoc1…", "sequence": int, "messages": [{"@type": …}, …]},
     "pubkey": base64(32 bytes), "signature": base64(64 bytes)}

Sign bytes are `SIGN_DOMAIN + canonical_json(body)`. The tx hash is the upper-case hex sha256 of the
canonical encoding of the whole tx. Messages are parsed strictly: unknown or missing fields, wrong
types and invalid amounts are refused with `InvalidTx(code="malformed")`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple, TypeGuard

from .crypto import PUBKEY_SIZE, SIGNATURE_SIZE, PrivateKey, is_valid_address, verify_signature
from .encoding import canonical_bytes, parse_json
from .errors import InvalidTx, MoneyError
from .money import is_int, to_ngonka

SIGN_DOMAIN = b"uoc/tx/v1\n"
MAX_TX_BYTES = 64 * 1024
MAX_MESSAGES = 32


def _malformed(message: str) -> InvalidTx:
    """An InvalidTx for a structurally bad transaction."""
    return InvalidTx(message, code="malformed")


def _require_fields(obj: Any, where: str, fields: tuple[str, ...]) -> dict[str, Any]:
    """Check that `obj` is an object with exactly `fields`; name the missing or extra ones."""
    if not isinstance(obj, dict):
        raise _malformed(f"{where} must be a JSON object")
    if len(obj) == len(fields) and all(f in obj for f in fields):
        return obj
    missing = [f for f in fields if f not in obj]
    extra = sorted(k for k in obj if k not in fields)
    if missing:
        raise _malformed(f"{where} is missing field(s): {', '.join(missing)}")
    if extra:
        raise _malformed(f"{where} has unknown field(s): {', '.join(extra)}")
    return obj


def _parse_address(value: Any, where: str) -> str:
    """A bech32 `uoc` address, or InvalidTx."""
    if not is_valid_address(value):
        raise _malformed(f"{where} must be a bech32 'uoc1…' address, got {value!r}")
    return value


def _parse_coin(value: Any, where: str) -> int:
    """A money object {"amount": int > 0, "denom": str} converted to ngonka."""
    _require_fields(value, where, ("amount", "denom"))
    try:
        return to_ngonka(value["amount"], value["denom"], field=f"{where}.amount")
    except MoneyError as exc:
        raise _malformed(str(exc)) from None


@dataclass(frozen=True)
class Msg:
    """Base class of messages; `TYPE` is the `@type` tag on the wire."""

    TYPE: ClassVar[str] = ""
    FIELDS: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def parse(cls, obj: dict[str, Any], where: str) -> Msg:
        """Build the message from its JSON fields (already checked for exact field names)."""
        raise NotImplementedError

    def to_json(self) -> dict[str, Any]:
        """The JSON form of the message, with its `@type`."""
        raise NotImplementedError


@dataclass(frozen=True)
class MsgSend(Msg):
    """Bank transfer of `amount` ngonka to `to`."""

    to: str
    amount: int
    TYPE: ClassVar[str] = "MsgSend"
    FIELDS: ClassVar[tuple[str, ...]] = ("to", "amount")

    @classmethod
    def parse(cls, obj: dict[str, Any], where: str) -> MsgSend:
        return cls(_parse_address(obj["to"], f"{where}.to"), _parse_coin(obj["amount"], f"{where}.amount"))

    def to_json(self) -> dict[str, Any]:
        return {"@type": self.TYPE, "to": self.to, "amount": {"amount": self.amount, "denom": "ngonka"}}


@dataclass(frozen=True)
class MsgBond(Msg):
    """Bond `amount` ngonka from the sender's balance; power changes at the next epoch boundary."""

    amount: int
    TYPE: ClassVar[str] = "MsgBond"
    FIELDS: ClassVar[tuple[str, ...]] = ("amount",)

    @classmethod
    def parse(cls, obj: dict[str, Any], where: str) -> MsgBond:
        return cls(_parse_coin(obj["amount"], f"{where}.amount"))

    def to_json(self) -> dict[str, Any]:
        return {"@type": self.TYPE, "amount": {"amount": self.amount, "denom": "ngonka"}}


@dataclass(frozen=True)
class MsgUnbond(MsgBond):
    """Unbond `amount` ngonka of the sender's stake at the next epoch boundary."""

    TYPE: ClassVar[str] = "MsgUnbond"


@dataclass(frozen=True)
class MsgSubmitPriceProposal(Msg):
    """The sender's vote for the unit-of-compute price, as given and in ngonka."""

    price: int
    denom: str
    price_ngonka: int
    TYPE: ClassVar[str] = "MsgSubmitPriceProposal"
    FIELDS: ClassVar[tuple[str, ...]] = ("price", "denom")

    @classmethod
    def parse(cls, obj: dict[str, Any], where: str) -> MsgSubmitPriceProposal:
        try:
            ngonka = to_ngonka(obj["price"], obj["denom"], field=f"{where}.price")
        except MoneyError as exc:
            raise _malformed(str(exc)) from None
        return cls(obj["price"], obj["denom"], ngonka)

    @classmethod
    def of(cls, price: int, denom: str = "ngonka") -> MsgSubmitPriceProposal:
        """Build a vote, validating the price as SPEC §1 requires."""
        return cls(price, denom, to_ngonka(price, denom))

    def to_json(self) -> dict[str, Any]:
        return {"@type": self.TYPE, "price": self.price, "denom": self.denom}


# -- governance ------------------------------------------------------------------------------

MAX_MODEL_ID = 128
MAX_TEXT_FIELD = 256
VOTE_OPTIONS = ("yes", "no", "abstain", "no_with_veto")
_MODEL_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_./:")


def parse_model_id(value: Any, where: str) -> str:
    """A model id: 1 to 128 characters of letters, digits and `-_./:` (Hugging Face style)."""
    if not isinstance(value, str) or not value:
        raise InvalidTx(f"{where} must be a non-empty string", code="invalid_model_id")
    if len(value) > MAX_MODEL_ID:
        too_long = f"{where} is {len(value)} characters, over the limit of {MAX_MODEL_ID}"
        raise InvalidTx(too_long, code="invalid_model_id")
    if not set(value) <= _MODEL_ID_CHARS:
        raise InvalidTx(f"{where} {value!r} may only hold letters, digits and - _ . / :", code="invalid_model_id")
    return value


def parse_units(value: Any, where: str) -> int:
    """Units of compute per token: an integer > 0 and < 2^63."""
    if not is_int(value) or not 0 < value < 2**63:
        shown = f"{value!r}"[:40]
        raise InvalidTx(f"{where} must be an integer > 0 and < 2^63, got {shown}", code="invalid_units")
    return value


def _parse_optional(obj: dict[str, Any], where: str, name: str, kind: str) -> Any:
    """An optional RegisterModel field: a short string, an integer ≥ 0, or a decimal string."""
    if name not in obj:
        return None
    value, field = obj[name], f"{where}.{name}"
    if kind == "int":
        if not is_int(value) or not 0 <= value < 2**63:
            raise _malformed(f"{field} must be an integer ≥ 0 and < 2^63")
    elif not isinstance(value, str) or len(value) > MAX_TEXT_FIELD:
        raise _malformed(f"{field} must be a string of at most {MAX_TEXT_FIELD} characters")
    elif kind == "decimal" and not is_decimal(value):
        raise _malformed(f'{field} must be a decimal string such as "0.95", got {value!r}')
    return value


def is_decimal(value: object) -> TypeGuard[str]:
    """True for a plain non-negative decimal string: digits, at most one point, digits on both sides."""
    if not isinstance(value, str) or not value.isascii():
        return False
    whole, dot, frac = value.partition(".")
    return whole.isdigit() and (not dot or frac.isdigit())


@dataclass(frozen=True)
class RegisterModel:
    """Governance content: register a model, or update the units of an existing id."""

    id: str
    units_of_compute_per_token: int
    hf_repo: str | None = None
    hf_commit: str | None = None
    v_ram: int | None = None
    throughput_per_nonce: int | None = None
    validation_threshold: str | None = None
    TYPE: ClassVar[str] = "RegisterModel"
    REQUIRED: ClassVar[tuple[str, ...]] = ("id", "units_of_compute_per_token")
    OPTIONAL: ClassVar[dict[str, str]] = {
        "hf_repo": "str",
        "hf_commit": "str",
        "v_ram": "int",
        "throughput_per_nonce": "int",
        "validation_threshold": "decimal",
    }

    @classmethod
    def parse(cls, obj: dict[str, Any], where: str) -> RegisterModel:
        return cls(
            parse_model_id(obj["id"], f"{where}.id"),
            parse_units(obj["units_of_compute_per_token"], f"{where}.units_of_compute_per_token"),
            **{name: _parse_optional(obj, where, name, kind) for name, kind in cls.OPTIONAL.items()},
        )

    def to_json(self) -> dict[str, Any]:
        optional = {name: getattr(self, name) for name in self.OPTIONAL if getattr(self, name) is not None}
        units = self.units_of_compute_per_token
        return {"@type": self.TYPE, "id": self.id, "units_of_compute_per_token": units, **optional}


@dataclass(frozen=True)
class RemoveModel:
    """Governance content: remove a registered model."""

    id: str
    TYPE: ClassVar[str] = "RemoveModel"
    REQUIRED: ClassVar[tuple[str, ...]] = ("id",)
    OPTIONAL: ClassVar[dict[str, str]] = {}

    @classmethod
    def parse(cls, obj: dict[str, Any], where: str) -> RemoveModel:
        return cls(parse_model_id(obj["id"], f"{where}.id"))

    def to_json(self) -> dict[str, Any]:
        return {"@type": self.TYPE, "id": self.id}


Content = RegisterModel | RemoveModel
CONTENT_TYPES: dict[str, type[RegisterModel] | type[RemoveModel]] = {c.TYPE: c for c in (RegisterModel, RemoveModel)}


def parse_content(obj: Any, where: str) -> Content:
    """Parse governance content by its `@type`, with its required and optional fields."""
    if not isinstance(obj, dict) or not isinstance(obj.get("@type"), str):
        raise _malformed(f"{where} must be an object with a string '@type'")
    cls = CONTENT_TYPES.get(obj["@type"])
    if cls is None:
        known = ", ".join(sorted(CONTENT_TYPES))
        raise _malformed(f"{where}.@type {obj['@type']!r} is not known governance content; known: {known}")
    missing = [f for f in cls.REQUIRED if f not in obj]
    extra = sorted(k for k in obj if k != "@type" and k not in cls.REQUIRED and k not in cls.OPTIONAL)
    if missing:
        raise _malformed(f"{where} is missing field(s): {', '.join(missing)}")
    if extra:
        raise _malformed(f"{where} has unknown field(s): {', '.join(extra)}")
    return cls.parse(obj, where)


def _parse_proposal_id(value: Any, where: str) -> int:
    """A proposal id: an integer ≥ 1."""
    if not is_int(value) or not 1 <= value < 2**63:
        raise _malformed(f"{where} must be an integer ≥ 1")
    return value


@dataclass(frozen=True)
class MsgSubmitProposal(Msg):
    """A governance proposal; `initial_deposit` ngonka leave the sender's balance at once."""

    content: Content
    initial_deposit: int
    TYPE: ClassVar[str] = "MsgSubmitProposal"
    FIELDS: ClassVar[tuple[str, ...]] = ("content", "initial_deposit")

    @classmethod
    def parse(cls, obj: dict[str, Any], where: str) -> MsgSubmitProposal:
        content = parse_content(obj["content"], f"{where}.content")
        return cls(content, _parse_coin(obj["initial_deposit"], f"{where}.initial_deposit"))

    def to_json(self) -> dict[str, Any]:
        deposit = {"amount": self.initial_deposit, "denom": "ngonka"}
        return {"@type": self.TYPE, "content": self.content.to_json(), "initial_deposit": deposit}


@dataclass(frozen=True)
class MsgDeposit(Msg):
    """Add `amount` ngonka to a proposal's deposit during its deposit period."""

    proposal_id: int
    amount: int
    TYPE: ClassVar[str] = "MsgDeposit"
    FIELDS: ClassVar[tuple[str, ...]] = ("proposal_id", "amount")

    @classmethod
    def parse(cls, obj: dict[str, Any], where: str) -> MsgDeposit:
        proposal_id = _parse_proposal_id(obj["proposal_id"], f"{where}.proposal_id")
        return cls(proposal_id, _parse_coin(obj["amount"], f"{where}.amount"))

    def to_json(self) -> dict[str, Any]:
        amount = {"amount": self.amount, "denom": "ngonka"}
        return {"@type": self.TYPE, "proposal_id": self.proposal_id, "amount": amount}


@dataclass(frozen=True)
class MsgVote(Msg):
    """A validator's vote on a proposal in its voting period; a later vote replaces it."""

    proposal_id: int
    option: str
    TYPE: ClassVar[str] = "MsgVote"
    FIELDS: ClassVar[tuple[str, ...]] = ("proposal_id", "option")

    @classmethod
    def parse(cls, obj: dict[str, Any], where: str) -> MsgVote:
        proposal_id = _parse_proposal_id(obj["proposal_id"], f"{where}.proposal_id")
        if obj["option"] not in VOTE_OPTIONS:
            shown = f"{obj['option']!r}"[:40]
            bad = f"{where}.option must be one of {', '.join(VOTE_OPTIONS)}, got {shown}"
            raise InvalidTx(bad, code="invalid_option")
        return cls(proposal_id, obj["option"])

    def to_json(self) -> dict[str, Any]:
        return {"@type": self.TYPE, "proposal_id": self.proposal_id, "option": self.option}


MESSAGE_TYPES: dict[str, type[Msg]] = {
    m.TYPE: m for m in (MsgSend, MsgBond, MsgUnbond, MsgSubmitPriceProposal, MsgSubmitProposal, MsgDeposit, MsgVote)
}


def parse_message(obj: Any, where: str) -> Msg:
    """Parse one message object by its `@type`."""
    if not isinstance(obj, dict) or not isinstance(obj.get("@type"), str):
        raise _malformed(f"{where} must be an object with a string '@type'")
    cls = MESSAGE_TYPES.get(obj["@type"])
    if cls is None:
        raise _malformed(
            f"{where}.@type {obj['@type']!r} is not a known message; known: {', '.join(sorted(MESSAGE_TYPES))}"
        )
    _require_fields(obj, where, ("@type", *cls.FIELDS))
    return cls.parse(obj, where)


class Tx(NamedTuple):
    """A decoded, structurally valid transaction (its signature is checked by the state machine)."""

    chain_id: str
    sender: str
    sequence: int
    messages: tuple[Msg, ...]
    pubkey: bytes
    signature: bytes
    sign_bytes: bytes
    raw: bytes
    hash: str


def compute_sign_bytes(body: dict[str, Any]) -> bytes:
    """The bytes a sender signs: a domain tag and the canonical JSON of the body."""
    return SIGN_DOMAIN + canonical_bytes(body)


def compute_tx_bytes(sign_bytes: bytes, pubkey: bytes, signature: bytes) -> bytes:
    """The canonical tx encoding, assembled around the body's canonical bytes (keys in sorted order)."""
    return b"".join(
        (
            b'{"body":',
            sign_bytes[len(SIGN_DOMAIN) :],
            b',"pubkey":"',
            base64.b64encode(pubkey),
            b'","signature":"',
            base64.b64encode(signature),
            b'"}',
        )
    )


def compute_tx_hash(raw: bytes) -> str:
    """Upper-case hex sha256 of the canonical tx bytes."""
    return hashlib.sha256(raw).hexdigest().upper()


def _b64(value: Any, where: str, size: int) -> bytes:
    """Decode a base64 string of exactly `size` bytes."""
    if not isinstance(value, str):
        raise _malformed(f"{where} must be a base64 string")
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _malformed(f"{where} is not valid base64") from None
    if len(data) != size:
        raise _malformed(f"{where} must be {size} bytes, got {len(data)}")
    return data


def decode_tx(raw: bytes) -> Tx:
    """Decode and structurally validate a transaction; raise InvalidTx(code='malformed')."""
    if not isinstance(raw, (bytes, bytearray)):
        raise _malformed("a transaction is bytes")
    if len(raw) > MAX_TX_BYTES:
        raise _malformed(f"transaction is {len(raw)} bytes, over the limit of {MAX_TX_BYTES}")
    doc = _require_fields(parse_json(bytes(raw)), "tx", ("body", "pubkey", "signature"))
    body = _require_fields(doc["body"], "tx.body", ("chain_id", "sender", "sequence", "messages"))
    if not isinstance(body["chain_id"], str) or not body["chain_id"]:
        raise _malformed("tx.body.chain_id must be a non-empty string")
    sender = _parse_address(body["sender"], "tx.body.sender")
    if not is_int(body["sequence"]) or not 0 <= body["sequence"] < 2**63:
        raise _malformed("tx.body.sequence must be an integer ≥ 0")
    msgs = body["messages"]
    if not isinstance(msgs, list) or not 1 <= len(msgs) <= MAX_MESSAGES:
        raise _malformed(f"tx.body.messages must be a list of 1 to {MAX_MESSAGES} messages")
    messages = tuple(parse_message(m, f"tx.body.messages[{i}]") for i, m in enumerate(msgs))
    pubkey = _b64(doc["pubkey"], "tx.pubkey", PUBKEY_SIZE)
    signature = _b64(doc["signature"], "tx.signature", SIGNATURE_SIZE)
    sign_bytes = compute_sign_bytes(body)
    canonical = compute_tx_bytes(sign_bytes, pubkey, signature)
    return Tx(
        chain_id=body["chain_id"],
        sender=sender,
        sequence=body["sequence"],
        messages=messages,
        pubkey=pubkey,
        signature=signature,
        sign_bytes=sign_bytes,
        raw=canonical,
        hash=compute_tx_hash(canonical),
    )


def make_body(chain_id: str, sender: str, sequence: int, messages: list[Msg] | tuple[Msg, ...]) -> dict[str, Any]:
    """The JSON body of a transaction."""
    return {"chain_id": chain_id, "sender": sender, "sequence": sequence, "messages": [m.to_json() for m in messages]}


def sign_tx(key: PrivateKey, chain_id: str, sequence: int, messages: list[Msg] | tuple[Msg, ...]) -> bytes:
    """Build, sign and encode a transaction from `key`'s account."""
    sign_bytes = compute_sign_bytes(make_body(chain_id, key.address, sequence, messages))
    return compute_tx_bytes(sign_bytes, key.pubkey, key.sign(sign_bytes))


def decode_and_verify(raws: list[bytes]) -> list[Tx | InvalidTx]:
    """Decode each raw tx and verify its signature: the Tx, or the InvalidTx that rejects it.

    The one stateless admission step; pure, so it may run in any process."""
    out: list[Tx | InvalidTx] = []
    for raw in raws:
        try:
            tx = decode_tx(raw)
        except InvalidTx as exc:
            out.append(exc)
            continue
        if verify_signature(tx.pubkey, tx.signature, tx.sign_bytes):
            out.append(tx)
        else:
            error = InvalidTx("signature does not verify against the sign bytes", code="bad_signature")
            error.tx_hash = tx.hash
            out.append(error)
    return out
