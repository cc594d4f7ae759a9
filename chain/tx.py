"""Transactions: messages, canonical sign bytes, encoding, decoding and signing.

Wire form (canonical JSON, see `chain.encoding`):

    {"body": {"chain_id": str, "sender": "uoc1…", "sequence": int, "fee": int, "gas_limit": int,
              "messages": [{"@type": …}, …]},
     "pubkey": base64(32 bytes), "signature": base64(64 bytes)}

`fee` is in ngonka (≥ 0), `gas_limit` in gas (1 to `chain.gas.MAX_GAS_LIMIT`); see `chain.gas`.

Sign bytes are `SIGN_DOMAIN + canonical_json(body)`. The tx hash is the upper-case hex sha256 of the
canonical encoding of the whole tx. Messages are parsed strictly: unknown or missing fields, wrong
types and invalid amounts are refused with `InvalidTx(code="malformed")` (a `FieldError`; model ids,
units and vote options have codes of their own).

Each message and governance content kind is declared once, here: a `Msg` or `Content` subclass with
a `TYPE`, its fields (`wire(kind, description)`, kinds from `chain.fields`) and how the command line
spells it (`CLI`). Declaring it is its registration: the wire parser, the schemas and the `uocd tx`
commands (`chain.catalog`) know it at once; its state rule goes in `chain.rules.MESSAGE_RULES`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from fractions import Fraction
from functools import lru_cache
from typing import Any, ClassVar, NamedTuple

from .crypto import PUBKEY_SIZE, SIGNATURE_SIZE, PrivateKey, verify_signature
from .encoding import canonical_bytes, parse_json
from .errors import InvalidTx
from .fields import (
    MAX_HF_COMMIT,
    MAX_HF_REPO,
    MAX_MODEL_ID,
    AddressKind,
    AmountKind,
    Cli,
    DecimalKind,
    Declared,
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
    compute_base64_pattern,
    compute_ngonka,
    parse_int_text,
    require_object,
    show,
    wire,
)
from .fields import is_decimal as is_decimal  # governance reads decimal params with it
from .gas import DEFAULT_GAS_PRICE as DEFAULT_GAS_PRICE
from .gas import MAX_GAS_LIMIT, compute_gas_estimate, compute_gas_price, compute_min_fee
from .money import MAX_NGONKA, is_int
from .params import ParamChanges, ParamChangesKind

SIGN_DOMAIN = b"uoc/tx/v1\n"
BODY_FIELDS = ("chain_id", "sender", "sequence", "fee", "gas_limit", "messages")
MAX_TX_BYTES = 64 * 1024
MAX_MESSAGES = 32


def _malformed(message: str) -> InvalidTx:
    """An InvalidTx for a structurally bad transaction."""
    return InvalidTx(message, code="malformed")


# -- field kinds of the messages ------------------------------------------------------------------

VOTE_OPTIONS = ("yes", "no", "abstain", "no_with_veto")
ADDRESS = AddressKind()
AMOUNT = AmountKind()
DENOM = DenomKind()
PRICE = PriceKind()
MODEL_ID = IdentifierKind("a model id", MAX_MODEL_ID, "-_./:", code="invalid_model_id", reason="invalid_model_id")
HF_REPO = IdentifierKind("a Hugging Face repository", MAX_HF_REPO, "-_./", "Qwen/Qwen2.5-7B-Instruct")
HF_COMMIT = IdentifierKind("a repository revision (commit hash, tag or branch)", MAX_HF_COMMIT, "-_./", "a09a3545")
UNITS = IntKind(1, text="units of compute per token", code="invalid_units", reason="invalid_units")
PROPOSAL_ID = IntKind(1, text="a proposal id")
COUNT = IntKind(0, text="a count")
DECIMAL = DecimalKind()
VOTE_OPTION = EnumKind(VOTE_OPTIONS, code="invalid_option", reason="invalid_option")
COMMIT_HASH = HexKind(32, "a sha256 price commitment", code="invalid_commit_hash", reason="invalid_commit_hash")
SALT = HexKind(32, "a 32-byte salt", code="invalid_salt", reason="invalid_salt")
PARAM_CHANGES = ParamChangesKind()


def parse_model_id(value: Any, where: str) -> str:
    """A model id: 1 to 128 characters of letters, digits and `-_./:` (Hugging Face style)."""
    return MODEL_ID.check(value, where)


def parse_units(value: Any, where: str) -> int:
    """Units of compute per token: an integer > 0 and < 2^63."""
    return UNITS.check(value, where)


# -- messages and governance content ------------------------------------------------------------

MESSAGE_TYPES: dict[str, type[Msg]] = {}
CONTENT_TYPES: dict[str, type[Content]] = {}


def register_type(registry: dict[str, Any], cls: type[Declared]) -> None:
    """Add a declared kind to its registry under its `@type` (once)."""
    if cls.TYPE in registry and registry[cls.TYPE] is not cls:
        raise TypeError(
            f"@type {cls.TYPE!r} is declared twice: {registry[cls.TYPE].__qualname__} and {cls.__qualname__}"
        )
    registry[cls.TYPE] = cls


class Msg(Declared):
    """Base class of messages: a subclass that sets `TYPE` is a message kind, known to the wire parser,
    the schemas and (with `CLI`) the command line as soon as it is declared."""

    CLI: ClassVar[Cli | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "TYPE" in cls.__dict__:
            register_type(MESSAGE_TYPES, cls)
        if "CLI" not in cls.__dict__:
            cls.CLI = None  # a command line is not inherited


class Content(Declared):
    """Base class of governance content: a subclass that sets `TYPE` may be proposed (with `CLI`,
    from the command line as `uocd tx PATH…`, with a --deposit)."""

    CLI: ClassVar[Cli | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "TYPE" in cls.__dict__:
            register_type(CONTENT_TYPES, cls)
        if "CLI" not in cls.__dict__:
            cls.CLI = None


CONTENT = NestedKind(Content, CONTENT_TYPES, "governance content")


class MsgSend(Msg):
    """Bank transfer of `amount` ngonka to `to`."""

    TYPE = "MsgSend"
    CLI = Cli(("send",), "send ngonka", "Send AMOUNT ngonka to ADDRESS.", ("to", "amount"), {"to": "ADDRESS"})
    to: str = wire(ADDRESS, "the recipient")
    amount: int = wire(AMOUNT, "the amount sent")


class MsgBond(Msg):
    """Bond `amount` ngonka from the sender's balance; power changes at the next epoch boundary."""

    TYPE = "MsgBond"
    CLI = Cli(("bond",), "bond stake", "Bond AMOUNT ngonka of stake (power from the next epoch).", ("amount",))
    amount: int = wire(AMOUNT, "the stake bonded, from the sender's balance")


class MsgUnbond(MsgBond):
    """Unbond `amount` ngonka of the sender's stake at the next epoch boundary."""

    TYPE = "MsgUnbond"
    CLI = Cli(("unbond",), "unbond stake", "Unbond AMOUNT ngonka of stake (at the epoch end).", ("amount",))


class MsgSubmitPriceProposal(Msg):
    """The sender's vote for the unit-of-compute price, as given and in ngonka.

    `price_ngonka` is derived from `price` and `denom` (leave it out, or give the same value)."""

    TYPE = "MsgSubmitPriceProposal"
    CLI = Cli(
        ("price-proposal",),
        "vote the unit-of-compute price",
        "Vote PRICE DENOM as this validator's unit-of-compute price (it counts at the epoch end).",
        ("price", "denom"),
        defaults={"denom": "ngonka"},
    )
    price: int = wire(PRICE, "the price of a unit of compute, in `denom`")
    denom: str = wire(DENOM, "the denomination of `price`")
    price_ngonka: int = 0

    def validate(self) -> None:
        """The price in ngonka must be below 2^63 (and match `price_ngonka` when given)."""
        compute_ngonka_of_vote(self)

    @classmethod
    def of(cls, price: int, denom: str = "ngonka") -> MsgSubmitPriceProposal:
        """Build a vote, validating the price as SPEC §1 requires."""
        return cls(price, denom)


def compute_ngonka_of_vote(msg: MsgSubmitPriceProposal | MsgRevealPrice) -> None:
    """Derive a price vote's `price_ngonka` from its price and denom (or check the one given)."""
    ngonka = compute_ngonka(f"{msg.TYPE}.price", msg.price, msg.denom)
    if msg.price_ngonka == 0:
        object.__setattr__(msg, "price_ngonka", ngonka)
    elif msg.price_ngonka != ngonka:
        raise FieldError(f"{msg.TYPE}.price_ngonka is {msg.price_ngonka}, but {msg.price} {msg.denom} is {ngonka}")


PRICE_COMMIT_SALT_BYTES = 32


def compute_price_commit_hash(salt: str, price: int, denom: str, validator: str) -> str:
    """The commitment of a price vote: lower-case hex sha256 of salt (32 bytes) ‖ price (8 bytes, big
    endian) ‖ len(denom) (1 byte) ‖ denom (ASCII) ‖ validator (its bech32 address, ASCII)."""
    data = bytes.fromhex(salt)
    if len(data) != PRICE_COMMIT_SALT_BYTES:
        raise ValueError(f"a salt is {PRICE_COMMIT_SALT_BYTES} bytes, got {len(data)}")
    encoded = denom.encode("ascii")
    payload = data + price.to_bytes(8, "big") + len(encoded).to_bytes(1, "big") + encoded + validator.encode("ascii")
    return hashlib.sha256(payload).hexdigest()


class MsgCommitPrice(Msg):
    """A commitment to a price vote (vote_mode commit_reveal), to reveal next epoch; one per epoch.

    `hash` is `compute_price_commit_hash(salt, price, denom, sender)`."""

    TYPE = "MsgCommitPrice"
    CLI = Cli(
        ("price-commit",),
        "commit a unit-of-compute price vote (commit_reveal mode)",
        "Commit HASH = sha256(salt ‖ price ‖ denom ‖ validator) this epoch; reveal it with price-reveal next epoch.",
        ("hash",),
        {"hash": "HASH"},
    )
    hash: str = wire(COMMIT_HASH, "sha256(salt ‖ price ‖ denom ‖ validator), 64 lower-case hex digits")


class MsgRevealPrice(Msg):
    """The reveal of last epoch's price commit: if it matches, the price is this epoch's vote.

    In vote_mode commit_reveal: the salt, price and denom of the sender's commit of the previous
    epoch; if they hash to it, the price is the sender's vote, cast in this epoch.

    `price_ngonka` is derived from `price` and `denom` (leave it out, or give the same value)."""

    TYPE = "MsgRevealPrice"
    CLI = Cli(
        ("price-reveal",),
        "reveal last epoch's committed price vote (commit_reveal mode)",
        "Reveal SALT PRICE DENOM committed last epoch: the price counts in this epoch's ballot.",
        ("salt", "price", "denom"),
        {"salt": "SALT"},
        defaults={"denom": "ngonka"},
    )
    salt: str = wire(SALT, "the 32-byte salt of the commit, 64 lower-case hex digits")
    price: int = wire(PRICE, "the committed price of a unit of compute, in `denom`")
    denom: str = wire(DENOM, "the denomination of `price`")
    price_ngonka: int = 0

    def validate(self) -> None:
        """The price in ngonka must be below 2^63 (and match `price_ngonka` when given)."""
        compute_ngonka_of_vote(self)


class RegisterModel(Content):
    """Governance content: register a model, or update the units of an existing id."""

    TYPE = "RegisterModel"
    CLI = Cli(
        ("register-model",),
        "propose to register (or update) a model",
        "Submit a RegisterModel governance proposal: model ID at UNITS units of compute per token.",
        ("id", "units_of_compute_per_token"),
        {"id": "ID", "units_of_compute_per_token": "UNITS"},
    )
    id: str = wire(MODEL_ID, "the model id (Hugging Face style)")
    units_of_compute_per_token: int = wire(UNITS, "units of compute one token costs")
    hf_repo: str | None = wire(HF_REPO, "the Hugging Face repository", default=None)
    hf_commit: str | None = wire(HF_COMMIT, "the repository commit", default=None)
    v_ram: int | None = wire(COUNT, "the GPU memory it needs", default=None)
    throughput_per_nonce: int | None = wire(COUNT, "the throughput per nonce", default=None)
    validation_threshold: str | None = wire(DECIMAL, "the validation threshold", default=None)


class RemoveModel(Content):
    """Governance content: remove a registered model."""

    TYPE = "RemoveModel"
    CLI = Cli(
        ("remove-model",),
        "propose to remove a model",
        "Submit a RemoveModel governance proposal.",
        ("id",),
        {"id": "ID"},
    )
    id: str = wire(MODEL_ID, "the model id")


class ParamChange(Content):
    """Governance content: change chain params (of CHANGEABLE_PARAMS) from the epoch after it passes."""

    TYPE = "ParamChange"
    CLI = Cli(
        ("param-change",),
        "propose to change chain params",
        "Submit a ParamChange governance proposal: CHANGES as name=value[,name=value…] (such as "
        "vote_mode=commit_reveal); in force from the epoch after it passes.",
        ("changes",),
        {"changes": "CHANGES"},
    )
    changes: ParamChanges = wire(PARAM_CHANGES, "the params to change and their new values")


def parse_content(obj: Any, where: str) -> Content:
    """Parse governance content by its `@type`, with its required and optional fields."""
    return CONTENT.parse(obj, where)


class MsgSubmitProposal(Msg):
    """A governance proposal; `initial_deposit` ngonka leave the sender's balance at once."""

    TYPE = "MsgSubmitProposal"
    content: Content = wire(CONTENT, "what the proposal changes if it passes")
    initial_deposit: int = wire(AMOUNT, "the deposit paid at once")


class MsgDeposit(Msg):
    """Add `amount` ngonka to a proposal's deposit during its deposit period."""

    TYPE = "MsgDeposit"
    CLI = Cli(
        ("gov", "deposit"),
        "add to a proposal's deposit",
        "Deposit AMOUNT ngonka on a proposal.",
        ("proposal_id", "amount"),
        {"proposal_id": "PROPOSAL"},
    )
    proposal_id: int = wire(PROPOSAL_ID, "the proposal, in its deposit period")
    amount: int = wire(AMOUNT, "the amount added to its deposit")


class MsgVote(Msg):
    """A validator's vote on a proposal in its voting period; a later vote replaces it."""

    TYPE = "MsgVote"
    CLI = Cli(
        ("gov", "vote"),
        "vote on a proposal",
        "Vote on a proposal in its voting period (validators only).",
        ("proposal_id", "option"),
        {"proposal_id": "PROPOSAL"},
    )
    proposal_id: int = wire(PROPOSAL_ID, "the proposal, in its voting period")
    option: str = wire(VOTE_OPTION, "the vote")


class MsgUnjail(Msg):
    """Release the sender, a validator jailed (double sign or missed price votes), once `jail_blocks`
    have passed since its jailing; it rejoins the validator set at the next epoch boundary."""

    TYPE = "MsgUnjail"
    CLI = Cli(
        ("unjail",),
        "release this validator from jail",
        "Unjail the sender (after jail_blocks; it rejoins the validator set at the next epoch boundary).",
    )


# -- usage: escrow, receipts and settlements (the rules are in chain.usage) -----------------------

RECEIPT_DOMAIN = b"uoc/receipt/v1\n"
MAX_REQUEST_ID = 128
MAX_ATTRIBUTION = 64
ATTRIBUTION_FIELDS = ("workforce", "function", "intent", "role", "worker")  # the chain, widest first
REQUEST_ID = IdentifierKind(
    "a request id", MAX_REQUEST_ID, "-_.:", "req-0001", code="invalid_request_id", reason="invalid_request_id"
)
ATTRIBUTION = IdentifierKind(
    "an attribution name", MAX_ATTRIBUTION, "-_.:@", "team-a", code="invalid_attribution", reason="invalid_attribution"
)
HEIGHT = IntKind(1, text="a block height")


class Tokens(NamedTuple):
    """The tokens one inference job used: its prompt (`input`) and its completion (`output`)."""

    input: int
    output: int


class TokensKind(Kind[Tokens]):
    """Token counts `{"in": int ≥ 0, "out": int ≥ 0}` on the wire, each below 2^63."""

    code = "invalid_tokens"
    reason = "invalid_tokens"

    def check(self, value: Any, where: str) -> Tokens:
        if not isinstance(value, Tokens) or not all(is_int(v) and 0 <= v < MAX_NGONKA for v in value):
            raise self.fail(f"{where} must be token counts: integers from 0 to 2^63-1, got {show(value)}")
        return value

    def parse(self, value: Any, where: str) -> Tokens:
        if not isinstance(value, dict) or set(value) != {"in", "out"}:
            raise self.fail(f'{where} must be an object {{"in": int, "out": int}}, got {show(value)}')
        for name in ("in", "out"):
            if not is_int(value[name]) or not 0 <= value[name] < MAX_NGONKA:
                raise self.fail(f"{where}.{name} must be an integer from 0 to 2^63-1, got {show(value[name])}")
        return Tokens(value["in"], value["out"])

    def dump(self, value: Tokens) -> Any:
        return {"in": value.input, "out": value.output}

    def parse_text(self, text: str, where: str) -> Tokens:
        """`IN,OUT`, such as `1200,350`."""
        parts = text.split(",")
        if len(parts) != 2:
            raise self.fail(f"{where} must be IN,OUT token counts such as 1200,350, got {text[:40]!r}")
        counts = [parse_int_text(p.strip(), where, self.fail(f"{where} must be IN,OUT integers")) for p in parts]
        return self.check(Tokens(counts[0], counts[1]), where)

    def schema(self) -> dict[str, Any]:
        count = {"type": "integer", "minimum": 0, "maximum": MAX_NGONKA - 1}
        return {
            "type": "object",
            "required": ["in", "out"],
            "properties": {"in": count, "out": count},
            "additionalProperties": False,
        }

    def describe(self) -> str:
        return 'token counts {"in": int ≥ 0, "out": int ≥ 0}'

    def example(self) -> Tokens:
        return Tokens(1200, 350)


class SignatureKind(Kind[bytes]):
    """An ed25519 signature: 64 bytes, standard base64 on the wire."""

    code = "malformed"
    reason = "invalid_signature"

    def check(self, value: Any, where: str) -> bytes:
        if not isinstance(value, bytes) or len(value) != SIGNATURE_SIZE:
            raise self.fail(f"{where} must be a {SIGNATURE_SIZE}-byte signature")
        return value

    def parse(self, value: Any, where: str) -> bytes:
        if not isinstance(value, str):
            raise self.fail(f"{where} must be a base64 string")
        try:
            data = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise self.fail(f"{where} is not valid base64") from None
        if base64.b64encode(data).decode() != value:
            raise self.fail(f"{where} is not canonical base64")
        return self.check(data, where)

    def dump(self, value: bytes) -> Any:
        return base64.b64encode(value).decode()

    def parse_text(self, text: str, where: str) -> bytes:
        return self.parse(text, where)

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "pattern": compute_base64_pattern(SIGNATURE_SIZE)}

    def describe(self) -> str:
        return f"a {SIGNATURE_SIZE}-byte ed25519 signature in base64"

    def example(self) -> bytes:
        return bytes(SIGNATURE_SIZE)


TOKENS = TokensKind()
SIGNATURE = SignatureKind()


class Receipt(Declared):
    """A requester's receipt for one inference job, signed off chain and settled by its provider."""

    TYPE = "UsageReceipt"
    request_id: str = wire(REQUEST_ID, "the job's id, unique per requester")
    requester: str = wire(ADDRESS, "who pays, from its escrow")
    provider: str = wire(ADDRESS, "who ran the job and is paid")
    model: str = wire(MODEL_ID, "the model that ran (active at settlement)")
    tokens: Tokens = wire(TOKENS, "the tokens it used")
    price_ceiling: int = wire(AMOUNT, "the most the requester pays for it")
    expires_at: int = wire(HEIGHT, "the last height at which it may be settled")
    workforce: str | None = wire(ATTRIBUTION, "attribution: the workforce", default=None)
    function: str | None = wire(ATTRIBUTION, "attribution: the function", default=None)
    intent: str | None = wire(ATTRIBUTION, "attribution: the intent", default=None)
    role: str | None = wire(ATTRIBUTION, "attribution: the role", default=None)
    worker: str | None = wire(ATTRIBUTION, "attribution: the worker", default=None)

    @property
    def attribution(self) -> tuple[str | None, ...]:
        """The attribution chain, widest first (workforce … worker); None where not given."""
        return (self.workforce, self.function, self.intent, self.role, self.worker)  # ATTRIBUTION_FIELDS


RECEIPT = NestedKind(Receipt, {Receipt.TYPE: Receipt}, "a usage receipt")


@lru_cache(maxsize=8192)  # pure: a settlement's mempool check and its block's run share it
def compute_receipt_sign_bytes(chain_id: str, receipt: Receipt) -> bytes:
    """The bytes a requester signs: a domain tag and the canonical JSON of the chain id and the receipt."""
    return RECEIPT_DOMAIN + canonical_bytes({"chain_id": chain_id, "receipt": receipt.to_json()})


def sign_receipt(key: PrivateKey, chain_id: str, receipt: Receipt) -> bytes:
    """The requester's signature of a receipt."""
    return key.sign(compute_receipt_sign_bytes(chain_id, receipt))


class MsgFundEscrow(Msg):
    """Move `amount` from the sender's balance into its usage escrow."""

    TYPE = "MsgFundEscrow"
    CLI = Cli(
        ("escrow", "fund"), "fund the usage escrow", "Move AMOUNT ngonka into this account's escrow.", ("amount",)
    )
    amount: int = wire(AMOUNT, "the amount escrowed, from the sender's balance")


class MsgWithdrawEscrow(Msg):
    """Withdraw `amount` of the sender's escrow after escrow_withdraw_delay blocks (it stays chargeable
    until then; a later withdrawal replaces a pending one)."""

    TYPE = "MsgWithdrawEscrow"
    CLI = Cli(
        ("escrow", "withdraw"),
        "withdraw from the usage escrow",
        "Withdraw AMOUNT ngonka of this account's escrow after escrow_withdraw_delay blocks.",
        ("amount",),
    )
    amount: int = wire(AMOUNT, "the amount withdrawn (at most the escrow when it is paid out)")


class MsgSettleUsage(Msg):
    """A provider settles a requester's signed receipt: the charge moves from the requester's escrow."""

    TYPE = "MsgSettleUsage"
    CLI = Cli(
        ("settle",),
        "settle a requester-signed usage receipt",
        "Settle RECEIPT (its JSON, or @FILE: what `uocd receipt sign --out FILE` writes) signed by its requester "
        "(SIGNATURE, base64); the sender must be the receipt's provider.",
        ("receipt", "requester_signature"),
        {"receipt": "RECEIPT", "requester_signature": "SIGNATURE"},
    )
    receipt: Receipt = wire(RECEIPT, "the requester's receipt, naming the sender as provider")
    requester_signature: bytes = wire(SIGNATURE, "the requester's signature of the receipt's sign bytes")


class MsgDispute(Msg):
    """The requester disputes one of its settlements within dispute_window blocks."""

    TYPE = "MsgDispute"
    CLI = Cli(
        ("dispute",),
        "dispute a usage settlement",
        "Dispute the settlement of REQUEST_ID (this account's) within dispute_window blocks.",
        ("request_id",),
    )
    request_id: str = wire(REQUEST_ID, "the request id of the sender's settlement")


class MsgRefund(Msg):
    """The provider of a settlement refunds it: what it moved goes back to the requester's escrow."""

    TYPE = "MsgRefund"
    CLI = Cli(
        ("refund",),
        "refund a usage settlement",
        "Refund REQUESTER's settlement REQUEST_ID (its provider only).",
        ("requester", "request_id"),
    )
    requester: str = wire(ADDRESS, "the settlement's requester")
    request_id: str = wire(REQUEST_ID, "its request id")


class RefundSettlement(Content):
    """Governance content: refund a disputed usage settlement, as its provider would."""

    TYPE = "RefundSettlement"
    CLI = Cli(
        ("refund-settlement",),
        "propose to refund a disputed usage settlement",
        "Submit a RefundSettlement governance proposal: if it passes, REQUESTER's disputed settlement REQUEST_ID "
        "is refunded (the payout from its provider, the fee from the held fees, back to the escrow).",
        ("requester", "request_id"),
    )
    requester: str = wire(ADDRESS, "the settlement's requester")
    request_id: str = wire(REQUEST_ID, "its request id")


# -- the reference index (the rules are in chain.index) ---------------------------------------------

MAX_INDEX_TIERS = 16
MAX_INDEX_ASSIGNMENTS = 256
NO_TIER = "-"  # an assignment to it takes the model out of the index
INDEX_CODE = "invalid_index_config"
TIER_NAME = IdentifierKind("a tier name", 32, "_", "standard", code=INDEX_CODE, reason=INDEX_CODE)
TIER_OR_NONE = IdentifierKind(
    f"a tier name, or {NO_TIER} for none", 32, "-_", "standard", code=INDEX_CODE, reason=INDEX_CODE
)
TIER_WEIGHTS = MapKind(
    TIER_NAME, DecimalKind(32), MAX_INDEX_TIERS, "TIER=WEIGHT", (("standard", "1"),), INDEX_CODE, INDEX_CODE
)
TIER_ASSIGNMENTS = MapKind(
    MODEL_ID,
    TIER_OR_NONE,
    MAX_INDEX_ASSIGNMENTS,
    "MODEL=TIER",
    (("Qwen/Qwen2.5-7B", "standard"),),
    INDEX_CODE,
    INDEX_CODE,
)


class CapKind(DecimalKind):
    """The index's band k: a decimal string of at least 1."""

    def check(self, value: Any, where: str) -> str:
        text = super().check(value, where)
        if Fraction(text) < 1:
            raise self.fail(f"{where} is {text}: the band k must be at least 1")
        return text

    def schema(self) -> dict[str, Any]:
        pattern = r"^0*[1-9][0-9]*(\.[0-9]+)?$"  # an integer part of 1 at least: exactly the decimals ≥ 1
        return {**super().schema(), "pattern": pattern, "description": "a decimal string of at least 1"}

    def describe(self) -> str:
        return 'a decimal string of at least 1, such as "2"'

    def example(self) -> str:
        return "2"


INDEX_CAP = CapKind(32)
INDEX_BASELINE = EnumKind(("keep", "reset"), code=INDEX_CODE, reason=INDEX_CODE)


class IndexConfig(Content):
    """Governance content: the reference index's tiers and weights, reference workload, cap, model tiers.

    Every field is optional (at least one is given): `tiers` replaces the tiers and their weights
    (decimal strings above 0 summing to exactly 1), `workload` the reference workload (tokens in and
    out, at least one token), `cap` the band k (at least 1: a model counts clipped to [median/k,
    k × median] of its tier), `assign` sets models' tiers (`-`: out of the index) and `baseline`
    `reset` makes the index 100 at the epoch the change applies."""

    TYPE = "IndexConfig"
    CLI = Cli(
        ("index-config",),
        "propose the reference index's tiers, workload, cap or model tiers",
        "Submit an IndexConfig governance proposal (each option optional, one at least): --tiers "
        "frontier=0.3,standard=0.7 (weights summing to 1), --workload 1000,500, --cap 2, --assign "
        "MODEL=TIER[,…] (TIER - takes it out), --baseline reset; applied at the next epoch boundary.",
    )
    tiers: tuple[tuple[str, str], ...] | None = wire(
        TIER_WEIGHTS, "every tier and its weight (decimal strings above 0 summing to exactly 1)", default=None
    )
    workload: Tokens | None = wire(TOKENS, "the reference workload: tokens in and out (in + out ≥ 1)", default=None)
    cap: str | None = wire(INDEX_CAP, "k ≥ 1: each model counts clipped to [median/k, k × median]", default=None)
    assign: tuple[tuple[str, str], ...] | None = wire(
        TIER_ASSIGNMENTS, f"model id -> its tier ({NO_TIER}: out of the index)", default=None
    )
    baseline: str | None = wire(INDEX_BASELINE, "reset: the index is 100 at the epoch this applies", default=None)

    def validate(self) -> None:
        """Something changes (the rules between fields are checked once the signature is verified:
        `compute_index_config_field_error`, as a schema cannot state them)."""
        if all(getattr(self, s.name) is None for s in self.FIELDS):
            raise FieldError(
                "IndexConfig changes nothing: give tiers, workload, cap, assign or baseline",
                code=INDEX_CODE,
                reason=INDEX_CODE,
            )

    @classmethod
    def schema(cls) -> dict[str, Any]:
        """Its schema, with one field at least besides `@type`."""
        return {**super().schema(), "minProperties": 2}

    @classmethod
    def example(cls) -> IndexConfig:
        """One tier of weight 1."""
        return cls(tiers=TIER_WEIGHTS.example())


def compute_index_config_field_error(content: IndexConfig) -> str | None:
    """Why an IndexConfig's fields do not hold together, state aside (tier names and model ids, weights
    above 0 summing to exactly 1, a workload of a token at least, tiers assigned among those given), or
    None. A schema cannot state these, so they are checked when the proposal is submitted, not decoded."""
    try:
        for field, kind in (("tiers", TIER_WEIGHTS), ("assign", TIER_ASSIGNMENTS)):
            value = getattr(content, field)
            if value is not None:
                kind.check_keys(value, f"IndexConfig.{field}")
    except FieldError as exc:
        return str(exc)
    if content.tiers is not None:
        for name, weight in content.tiers:
            if Fraction(weight) <= 0:
                return f"IndexConfig.tiers.{name} is {weight}: a tier's weight must be above 0"
        total = sum((Fraction(weight) for _, weight in content.tiers), Fraction(0))
        if total != 1:
            return f"IndexConfig.tiers: the weights sum to {total}, not exactly 1"
    if content.workload is not None and content.workload.input + content.workload.output < 1:
        return "IndexConfig.workload: the reference workload must hold a token at least (in + out ≥ 1)"
    if content.tiers is not None and content.assign is not None:
        names = {name for name, _ in content.tiers}
        for model, tier in content.assign:
            if tier != NO_TIER and tier not in names:
                return f"IndexConfig.assign.{model}: tier {tier!r} does not exist (tiers: {', '.join(sorted(names))})"
    return None


CLI_GROUPS: dict[tuple[str, ...], tuple[str, str]] = {
    ("gov",): ("governance votes and deposits", "Governance votes and deposits."),
    ("escrow",): ("the usage escrow", "Fund or withdraw the escrow that usage settlements charge."),
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
    return cls.parse(obj, where)


class Tx(NamedTuple):
    """A decoded, structurally valid transaction (its signature is checked by the state machine)."""

    chain_id: str
    sender: str
    sequence: int
    fee: int
    gas_limit: int
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
        data = binascii.a2b_base64(value, strict_mode=True)  # b64decode(validate=True) without its regex
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
    raw = bytes(raw)  # the object itself if it is bytes: Tx.raw is then the caller's (one copy to keep or send)
    doc = require_object(parse_json(raw), "tx", ("body", "pubkey", "signature"))
    body = require_object(doc["body"], "tx.body", BODY_FIELDS)
    if not isinstance(body["chain_id"], str) or not body["chain_id"]:
        raise _malformed("tx.body.chain_id must be a non-empty string")
    sender = ADDRESS.check(body["sender"], "tx.body.sender")
    if not is_int(body["sequence"]) or not 0 <= body["sequence"] < 2**63:
        raise _malformed("tx.body.sequence must be an integer ≥ 0 and < 2^63")
    if not is_int(body["fee"]) or not 0 <= body["fee"] < MAX_NGONKA:
        raise _malformed("tx.body.fee must be an integer of ngonka ≥ 0 and < 2^63")
    if not is_int(body["gas_limit"]) or not 1 <= body["gas_limit"] <= MAX_GAS_LIMIT:
        raise _malformed(f"tx.body.gas_limit must be an integer from 1 to {MAX_GAS_LIMIT}")
    msgs = body["messages"]
    if not isinstance(msgs, list) or not 1 <= len(msgs) <= MAX_MESSAGES:
        raise _malformed(f"tx.body.messages must be a list of 1 to {MAX_MESSAGES} messages")
    messages = tuple(parse_message(m, f"tx.body.messages[{i}]") for i, m in enumerate(msgs))
    pubkey = _b64(doc["pubkey"], "tx.pubkey", PUBKEY_SIZE)
    signature = _b64(doc["signature"], "tx.signature", SIGNATURE_SIZE)
    sign_bytes = compute_sign_bytes(body)
    canonical = compute_tx_bytes(sign_bytes, pubkey, signature)
    if canonical != raw:
        raise InvalidTx(
            "transaction is not in canonical form (sorted keys, no whitespace, no duplicate keys, minimal "
            "escapes, canonical base64); sign and send the canonical encoding",
            code="non_canonical",
        )
    return Tx(
        chain_id=body["chain_id"],
        sender=sender,
        sequence=body["sequence"],
        fee=body["fee"],
        gas_limit=body["gas_limit"],
        messages=messages,
        pubkey=pubkey,
        signature=signature,
        sign_bytes=sign_bytes,
        raw=raw,
        hash=compute_tx_hash(raw),
    )


def make_body(
    chain_id: str,
    sender: str,
    sequence: int,
    messages: list[Msg] | tuple[Msg, ...],
    *,
    fee: int = 0,
    gas_limit: int | None = None,
) -> dict[str, Any]:
    """The JSON body of a transaction; without `gas_limit`, the gas table's upper bound for it."""
    body = {
        "chain_id": chain_id,
        "sender": sender,
        "sequence": sequence,
        "fee": fee,
        "gas_limit": 1,
        "messages": [m.to_json() for m in messages],
    }
    body["gas_limit"] = compute_body_gas_estimate(body) if gas_limit is None else gas_limit
    return body


def compute_body_gas_estimate(body: dict[str, Any]) -> int:
    """`chain.gas.compute_gas_estimate` for a body, its bytes counted with the largest fee and gas limit."""
    widest = {**body, "fee": MAX_NGONKA - 1, "gas_limit": MAX_GAS_LIMIT}
    size = len(compute_tx_bytes(compute_sign_bytes(widest), bytes(PUBKEY_SIZE), bytes(SIGNATURE_SIZE)))
    return compute_gas_estimate((m["@type"] for m in body["messages"]), size)


def sign_tx(
    key: PrivateKey,
    chain_id: str,
    sequence: int,
    messages: list[Msg] | tuple[Msg, ...],
    *,
    gas_limit: int | None = None,
    fee: int | None = None,
    gas_price: str = DEFAULT_GAS_PRICE,
) -> bytes:
    """Build, sign and encode a transaction from `key`'s account.

    Without `gas_limit`, the gas table's upper bound for its messages (`compute_body_gas_estimate`);
    without `fee`, the least fee for that limit at `gas_price` (ngonka per gas, a decimal string)."""
    body = make_body(chain_id, key.address, sequence, messages, gas_limit=gas_limit)
    if fee is None:
        fee = compute_min_fee(body["gas_limit"], compute_gas_price(gas_price))
    sign_bytes = compute_sign_bytes({**body, "fee": fee})
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
