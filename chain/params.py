"""The chain params: each declared once, with its default, its validator and a one-line description.

`Params` is frozen and typed; genesis fixes it (`Params.from_json`), the state stores its canonical
dict (`to_json`) under `meta/params`, and the rules read its attributes. A `ParamChange` proposal may
change the few `CHANGEABLE_PARAMS` (`compute_changed_params`), from the epoch after it passes. A new
param is one field:

    max_validators: int = param(100, COUNT, "Validators with the most stake that get power in an epoch.")

`describe_params()` lists every param with its default, JSON schema and description, for the API's
`/v1/params` and the docs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from fractions import Fraction
from functools import lru_cache
from typing import Any, TypeVar

from .encoding import decode_canonical
from .errors import InvalidGenesis, MoneyError
from .fields import Kind, is_decimal
from .gas import DEFAULT_GAS_PRICE
from .money import MAX_NGONKA, is_int, to_ngonka

MAX_GAS_PRICE = 10**9  # ngonka per gas: with gas limits ≤ 10^9, every fee stays below 2^63

T = TypeVar("T")
WHERE = "genesis.params"  # errors name the genesis field (a ParamChange's name its own)


@dataclass(frozen=True)
class Validator:
    """How a param's value is checked (`check(value, where)` raises InvalidGenesis) and its JSON schema."""

    check: Callable[[object, str], None]
    schema: Mapping[str, Any]


def _check_count(value: object, where: str) -> None:
    """An integer ≥ 1 and < 2^63."""
    if not is_int(value) or not 1 <= value < MAX_NGONKA:
        raise InvalidGenesis(f"{where} must be an integer ≥ 1 and < 2^63, got {value!r}")


def _check_fraction(value: object, where: str) -> None:
    """A decimal string from "0" to "1", such as "0.334"."""
    if not is_decimal(value) or compute_fraction(value) > 1:
        raise InvalidGenesis(f'{where} must be a decimal string from "0" to "1", got {value!r}')


def _check_bool(value: object, where: str) -> None:
    """true or false."""
    if not isinstance(value, bool):
        raise InvalidGenesis(f"{where} must be true or false, got {value!r}")


def _check_price(value: object, where: str) -> None:
    """A price in ngonka: an integer > 0 and < 2^63 (the money rules of SPEC §1)."""
    try:
        to_ngonka(value, "ngonka", field=where)
    except MoneyError as exc:
        raise InvalidGenesis(str(exc)) from None


def _check_gas_price(value: object, where: str) -> None:
    """A decimal string of ngonka per gas from "0" to 10^9, such as "0.01"."""
    if not is_decimal(value) or compute_fraction(value) > MAX_GAS_PRICE:
        raise InvalidGenesis(
            f'{where} must be a decimal string of ngonka per gas from "0" to {MAX_GAS_PRICE}, got {value!r}'
        )


MAX_MISS_WINDOW = 10_000  # epochs: a validator's miss window is stored as one character per epoch


def _check_window(value: object, where: str) -> None:
    """An integer from 0 to MAX_MISS_WINDOW (0: off)."""
    if not is_int(value) or not 0 <= value <= MAX_MISS_WINDOW:
        raise InvalidGenesis(f"{where} must be an integer from 0 to {MAX_MISS_WINDOW}, got {value!r}")


VOTE_MODES = ("open", "commit_reveal")


def _check_vote_mode(value: object, where: str) -> None:
    """One of VOTE_MODES."""
    if not isinstance(value, str) or value not in VOTE_MODES:
        raise InvalidGenesis(f"{where} must be one of {', '.join(VOTE_MODES)}, got {value!r}")


COUNT = Validator(_check_count, {"type": "integer", "minimum": 1, "maximum": MAX_NGONKA - 1})
FRACTION = Validator(_check_fraction, {"type": "string", "pattern": r"^0*(?:0(?:\.[0-9]+)?|1(?:\.0+)?)$"})
BOOLEAN = Validator(_check_bool, {"type": "boolean"})
GAS_PRICE = Validator(
    _check_gas_price, {"type": "string", "pattern": r"^0*(?:[0-9]{1,9}(?:\.[0-9]+)?|1000000000(?:\.0+)?)$"}
)
WINDOW = Validator(_check_window, {"type": "integer", "minimum": 0, "maximum": MAX_MISS_WINDOW})
PRICE = Validator(_check_price, {"type": "integer", "minimum": 1, "maximum": MAX_NGONKA - 1})
VOTE_MODE = Validator(_check_vote_mode, {"type": "string", "enum": list(VOTE_MODES)})


def _check_bps(value: object, where: str) -> None:
    """An integer of basis points from 0 to 10000."""
    if not is_int(value) or not 0 <= value <= 10_000:
        raise InvalidGenesis(f"{where} must be an integer of basis points from 0 to 10000, got {value!r}")


def _check_nonnegative(value: object, where: str) -> None:
    """An integer ≥ 0 and < 2^63."""
    if not is_int(value) or not 0 <= value < MAX_NGONKA:
        raise InvalidGenesis(f"{where} must be an integer ≥ 0 and < 2^63, got {value!r}")


BPS = Validator(_check_bps, {"type": "integer", "minimum": 0, "maximum": 10_000})
NONNEGATIVE = Validator(_check_nonnegative, {"type": "integer", "minimum": 0, "maximum": MAX_NGONKA - 1})

PRICING_MODES = ("voted", "dynamic", "hybrid")
MAX_UTILIZATION_WINDOW = 10_000  # blocks: the window keeps one entry per model and block with settlements


def _check_pricing_mode(value: object, where: str) -> None:
    """One of PRICING_MODES."""
    if not isinstance(value, str) or value not in PRICING_MODES:
        raise InvalidGenesis(f"{where} must be one of {', '.join(PRICING_MODES)}, got {value!r}")


def _check_utilization_window(value: object, where: str) -> None:
    """An integer of blocks from 1 to MAX_UTILIZATION_WINDOW."""
    if not is_int(value) or not 1 <= value <= MAX_UTILIZATION_WINDOW:
        raise InvalidGenesis(f"{where} must be an integer of blocks from 1 to {MAX_UTILIZATION_WINDOW}, got {value!r}")


def _check_elasticity(value: object, where: str) -> None:
    """A decimal string above "0" and below "1", such as "0.02"."""
    if not is_decimal(value) or not 0 < compute_fraction(value) < 1:
        raise InvalidGenesis(f'{where} must be a decimal string above "0" and below "1", got {value!r}')


PRICING_MODE = Validator(_check_pricing_mode, {"type": "string", "enum": list(PRICING_MODES)})
UTILIZATION_WINDOW = Validator(
    _check_utilization_window, {"type": "integer", "minimum": 1, "maximum": MAX_UTILIZATION_WINDOW}
)
ELASTICITY = Validator(_check_elasticity, {"type": "string", "pattern": r"^0+\.[0-9]*[1-9][0-9]*$"})


def param(default: T, validator: Validator, description: str, *, stored_at_default: bool = True) -> T:
    """Declare a field of `Params`: its default, its validator and what it means. A param added after
    chains were started is declared with `stored_at_default=False`: the state stores it only when
    it differs from its default, so a chain that leaves it alone keeps its app hash."""
    metadata = {"validator": validator, "description": description, "stored_at_default": stored_at_default}
    result: T = field(default=default, metadata=metadata)
    return result


def compute_fraction(text: str) -> Fraction:
    """The exact value of a decimal string param such as "0.334" or "0.01"."""
    if not is_decimal(text):
        raise ValueError(f'{text!r} is not a decimal string such as "0.334"')
    return Fraction(text)


@dataclass(frozen=True)
class Params:
    """The chain params, set at genesis (a few changed by governance). Each field is checked when built."""

    epoch_length: int = param(10, COUNT, "Blocks per epoch; the price and the validator set change at its last block.")
    min_deposit: int = param(25_000_000, COUNT, "Ngonka of deposit that moves a proposal into its voting period.")
    max_deposit_period: int = param(20, COUNT, "Blocks a proposal may wait for min_deposit before it is dropped.")
    voting_period: int = param(20, COUNT, "Blocks from a proposal's min_deposit to its tally.")
    quorum: str = param("0.334", FRACTION, "Share of the epoch's power that must vote for a tally to count.")
    threshold: str = param("0.5", FRACTION, "Share of non-abstain voted power that yes must exceed to pass.")
    veto_threshold: str = param("0.334", FRACTION, "Share of voted power that no_with_veto must exceed to veto.")
    burn_vote_veto: bool = param(True, BOOLEAN, "Whether a vetoed proposal's deposits are burned (else refunded).")
    default_unit_of_compute_price: int = param(
        100, PRICE, "Ngonka per unit of compute in epoch 0, and while no validator has voted."
    )
    max_block_txs: int = param(20_000, COUNT, "Transactions a block may hold; a block with more is invalid.")
    max_block_bytes: int = param(
        16 * 1024 * 1024, COUNT, "Bytes of transactions (the sum of their lengths) a block may hold; more is invalid."
    )
    min_self_bond: int = param(
        1, COUNT, "Least next-epoch stake, in ngonka, that a bond may leave; an unbond leaves at least this or 0."
    )
    max_validators: int = param(
        100,
        COUNT,
        "Validators with the most stake (ties: lower address) that get power in an epoch; the rest keep their bond.",
    )
    min_initial_deposit: int = param(1, COUNT, "Least initial_deposit, in ngonka, of a new proposal.")
    max_open_proposals_per_account: int = param(
        16, COUNT, "Proposals one account may have in its deposit or voting period at once."
    )
    burn_proposal_deposit_prevote: bool = param(
        True, BOOLEAN, "Whether the deposits of a proposal dropped for lack of deposit are burned (else refunded)."
    )

    max_block_evidence: int = param(
        50, COUNT, "Pieces of double-sign evidence a block may hold (their bytes count toward max_block_bytes)."
    )
    max_evidence_age_blocks: int = param(
        1000, COUNT, "Blocks after a double sign during which its evidence may be committed; older is refused."
    )
    slash_fraction_double_sign: str = param(
        "0.05", FRACTION, "Share of a double-signing validator's bonded tokens that is slashed (burned)."
    )
    jail_blocks: int = param(100, COUNT, "Blocks a jailed validator must wait before MsgUnjail is accepted.")
    min_gas_price: str = param(
        DEFAULT_GAS_PRICE, GAS_PRICE, "Ngonka per gas a fee must pay at least: fee ≥ ceil(gas_limit × this)."
    )
    vote_reward_share: str = param(
        "0",
        FRACTION,
        "Share of each epoch's fees paid, by power, to the validators whose price vote lies in the reward band.",
        stored_at_default=False,
    )
    reward_band: str = param(
        "0.01",
        FRACTION,
        "Half-width of the reward band around the median, as a fraction of it (the band is at least the ballot's "
        "weighted interquartile range).",
        stored_at_default=False,
    )
    miss_window: int = param(
        0,
        WINDOW,
        "Epochs in a validator's sliding window of price votes (fresh or missed); 0 counts no misses.",
        stored_at_default=False,
    )
    min_valid_per_window: int = param(
        0,
        WINDOW,
        "Fresh votes a validator must be able to reach in its miss window; with more misses it is jailed (0: never).",
        stored_at_default=False,
    )
    slash_fraction_miss: str = param(
        "0",
        FRACTION,
        "Share of a validator's bonded tokens slashed (burned) when it is jailed for missing votes.",
        stored_at_default=False,
    )
    vote_mode: str = param(
        "open",
        VOTE_MODE,
        'How price votes are cast: "open" (MsgSubmitPriceProposal, public at once) or "commit_reveal" '
        "(MsgCommitPrice in one epoch, MsgRevealPrice in the next).",
        stored_at_default=False,
    )

    protocol_fee_bps: int = param(
        0,
        BPS,
        "Basis points of a usage settlement's charge taken as the protocol fee (into the fee pool once its "
        "dispute window ends).",
        stored_at_default=False,
    )
    fee_min: int = param(
        0,
        NONNEGATIVE,
        "Least protocol fee of a usage settlement, in ngonka (never more than the charge itself).",
        stored_at_default=False,
    )
    dispute_window: int = param(
        100,
        COUNT,
        "Blocks after a usage settlement during which its requester may dispute it and its provider refund it.",
        stored_at_default=False,
    )
    dispute_resolution_window: int = param(
        100,
        COUNT,
        "Blocks after a dispute during which its provider may refund it or a RefundSettlement proposal pass; "
        "then the dispute lapses: the charge stands and its fee enters the fee pool. Keep it above "
        "max_deposit_period + voting_period so that a refund proposal made at the dispute can pass.",
        stored_at_default=False,
    )
    escrow_withdraw_delay: int = param(
        100,
        COUNT,
        "Blocks from a MsgWithdrawEscrow to the payout of the escrow it withdraws (still chargeable meanwhile).",
        stored_at_default=False,
    )
    min_participation: str = param(
        "0",
        FRACTION,
        "Share of the ballot's power that must have voted during the epoch for its price to be flagged ok "
        '(below: status low_participation; "0": never).',
        stored_at_default=False,
    )
    max_change_per_epoch: str = param(
        "0",
        FRACTION,
        "Largest move of the price in one epoch, as a fraction of the previous price (rounded outward, at least "
        '1 ngonka); a median beyond it sets the price at the bound, flagged capped ("0": no cap).',
        stored_at_default=False,
    )
    stale_epochs: int = param(
        0,
        WINDOW,
        "Epochs without a fresh vote after which the price is flagged stale (0: never).",
        stored_at_default=False,
    )

    pricing_mode: str = param(
        "voted",
        PRICING_MODE,
        'How a settlement prices a token: "voted" (units × the voted unit price), "dynamic" (a per-model price '
        'moved each block by utilization) or "hybrid" (the dynamic move, kept within hybrid_band of the voted '
        "price); see chain.dynamic.",
        stored_at_default=False,
    )
    utilization_window: int = param(
        10,
        UTILIZATION_WINDOW,
        "Blocks over which a model's utilization (tokens settled / capacity) is measured.",
        stored_at_default=False,
    )
    utilization_band_low: str = param(
        "0.4",
        FRACTION,
        "Utilization below which a dynamic price falls (it holds from here to the high bound).",
        stored_at_default=False,
    )
    utilization_band_high: str = param(
        "0.6", FRACTION, "Utilization above which a dynamic price rises.", stored_at_default=False
    )
    price_elasticity: str = param(
        "0.02",
        ELASTICITY,
        "Most a dynamic price moves in one block, as a share of it (rounded up to at least 1 ngonka).",
        stored_at_default=False,
    )
    dynamic_price_floor: int = param(1, PRICE, "Least dynamic price per token, in ngonka.", stored_at_default=False)
    hybrid_band: str = param(
        "0.2",
        FRACTION,
        "In hybrid mode, how far (a share of it) the price may stray from the voted price per token.",
        stored_at_default=False,
    )
    power_per_nonce: int = param(
        1,
        COUNT,
        "Validator power per nonce: a block serves throughput_per_nonce × total power / this tokens.",
        stored_at_default=False,
    )
    default_throughput_per_nonce: int = param(
        1,
        COUNT,
        "Tokens per block and nonce of a model registered without throughput_per_nonce (for its capacity).",
        stored_at_default=False,
    )

    def __post_init__(self) -> None:
        for f in fields(self):
            f.metadata["validator"].check(getattr(self, f.name), f"{WHERE}.{f.name}")
        check_params_consistency(self.to_json(), WHERE)

    @classmethod
    def from_json(cls, obj: object) -> Params:
        """The params of a genesis `params` object (a genesis without one: `{}`, the defaults), or InvalidGenesis
        (null too: it is not an object, and a genesis that means the defaults omits the field)."""
        if not isinstance(obj, Mapping):
            raise InvalidGenesis(f"{WHERE} must be an object" + (" (omit it for the defaults)" if obj is None else ""))
        names = {f.name for f in fields(cls)}
        unknown = sorted(k for k in obj if k not in names)
        if unknown:
            raise InvalidGenesis(f"{WHERE} has unknown field(s): {', '.join(unknown)}")
        return cls(**obj)

    def to_json(self) -> dict[str, Any]:
        """The canonical dict of every param, as `/v1/params` shows it."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def to_state_json(self) -> dict[str, Any]:
        """The params as the state stores them: every param, except those declared
        `stored_at_default=False` while at their default (`from_json` gives them back)."""
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.metadata["stored_at_default"] or getattr(self, f.name) != f.default
        }


def check_params_consistency(values: Mapping[str, Any], where: str) -> None:
    """Raise InvalidGenesis if params that are each valid do not hold together (the rules between them)."""
    if values["min_valid_per_window"] > values["miss_window"]:
        raise InvalidGenesis(
            f"{where}.min_valid_per_window must be at most miss_window ({values['miss_window']}), "
            f"got {values['min_valid_per_window']}"
        )
    if compute_fraction(values["utilization_band_low"]) > compute_fraction(values["utilization_band_high"]):
        raise InvalidGenesis(
            f"{where}.utilization_band_low must be at most utilization_band_high "
            f"({values['utilization_band_high']}), got {values['utilization_band_low']}"
        )


DEFAULT_PARAMS = Params()

# The params a ParamChange proposal may change: none that the node or the epoch arithmetic reads
# once (epoch_length, block limits, gas price), so a change needs nothing but the state machine.
CHANGEABLE_PARAMS = (
    "vote_mode",
    "vote_reward_share",
    "reward_band",
    "miss_window",
    "min_valid_per_window",
    "slash_fraction_miss",
    "pricing_mode",
    "utilization_window",
    "utilization_band_low",
    "utilization_band_high",
    "price_elasticity",
    "dynamic_price_floor",
    "hybrid_band",
    "power_per_nonce",
    "default_throughput_per_nonce",
    "min_participation",
    "max_change_per_epoch",
    "stale_epochs",
)


def check_param_changes(changes: Mapping[str, object], where: str) -> None:
    """Raise InvalidGenesis unless each name is one of CHANGEABLE_PARAMS and each value is valid as
    genesis checks it (errors name `where`.name)."""
    declared = {f.name: f for f in fields(Params)}
    for name in sorted(changes):
        if name not in CHANGEABLE_PARAMS:
            raise InvalidGenesis(
                f"{where}.{name}: {name!r} is not a param governance may change; changeable: "
                f"{', '.join(CHANGEABLE_PARAMS)}"
            )
        declared[name].metadata["validator"].check(changes[name], f"{where}.{name}")


def compute_changed_params(params: Params, changes: Mapping[str, object], where: str) -> Params:
    """`params` with `changes` applied: each change checked (`check_param_changes`) and the result
    consistent (`check_params_consistency`); or InvalidGenesis."""
    check_param_changes(changes, where)
    values = {**params.to_json(), **changes}
    check_params_consistency(values, where)
    return Params(**values)


def compute_param_text_value(name: str, text: str) -> object:
    """The value of a changeable param given as command-line text: an integer param's digits as an
    int, a boolean's true/false as a bool, any other as the string itself."""
    default = next((f.default for f in fields(Params) if f.name == name), None)
    if isinstance(default, bool):
        return {"true": True, "false": False}.get(text, text)
    if isinstance(default, int) and text.isascii() and text.isdigit():
        return int(text)
    return text


@dataclass(frozen=True)
class ParamInfo:
    """One param's declaration, for the API and the docs."""

    name: str
    default: Any
    schema: Mapping[str, Any]
    description: str


def describe_params() -> tuple[ParamInfo, ...]:
    """Every param in declaration order, with its default, JSON schema and description."""
    return tuple(
        ParamInfo(f.name, f.default, f.metadata["validator"].schema, f.metadata["description"]) for f in fields(Params)
    )


@lru_cache(maxsize=16)
def compute_params_of_text(text: str) -> Params:
    """The params stored as canonical JSON `text` (cached by text: they change only by governance)."""
    return Params.from_json(decode_canonical(text))


ParamChanges = tuple[tuple[str, Any], ...]  # (name, value) pairs, by name


class ParamChangesKind(Kind[ParamChanges]):
    """The changes of a ParamChange proposal: a JSON object {name: value} of 1 or more of
    CHANGEABLE_PARAMS, each value valid as genesis requires (code "invalid_param_change")."""

    code = "invalid_param_change"
    reason = "invalid_param_change"

    def check(self, value: Any, where: str) -> ParamChanges:
        pairs = tuple(value) if isinstance(value, tuple) else ()
        if not pairs or not all(isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str) for p in pairs):
            raise self.fail(f"{where} must be one or more (name, value) pairs")
        return self.parse(dict(pairs), where)

    def parse(self, value: Any, where: str) -> ParamChanges:
        if not isinstance(value, dict) or not value:
            raise self.fail(f"{where} must be a JSON object of one or more {{name: value}} changes")
        if len(value) > len(CHANGEABLE_PARAMS):
            raise self.fail(f"{where} names {len(value)} params; at most {len(CHANGEABLE_PARAMS)} may change")
        try:
            check_param_changes(value, where)
        except InvalidGenesis as exc:
            raise self.fail(str(exc)) from None
        return tuple(sorted(value.items()))

    def dump(self, value: ParamChanges) -> Any:
        return dict(value)

    def parse_text(self, text: str, where: str) -> ParamChanges:
        """`name=value[,name=value…]`, such as `vote_mode=commit_reveal,miss_window=10`."""
        changes: dict[str, Any] = {}
        for item in text.split(","):
            name, eq, raw = item.strip().partition("=")
            if not eq or not name:
                raise self.fail(f"{where} must be name=value[,name=value…], got {text[:60]!r}")
            changes[name] = compute_param_text_value(name, raw)
        return self.parse(changes, where)

    def schema(self) -> dict[str, Any]:
        info = {f.name: f for f in fields(Params)}
        return {
            "type": "object",
            "minProperties": 1,
            "properties": {name: dict(info[name].metadata["validator"].schema) for name in CHANGEABLE_PARAMS},
            "additionalProperties": False,
        }

    def describe(self) -> str:
        return f"params to change, name=value[,…]; changeable: {', '.join(CHANGEABLE_PARAMS)}"

    def example(self) -> ParamChanges:
        return (("vote_mode", "commit_reveal"),)
