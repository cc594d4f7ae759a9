"""Gas: the table of what a transaction's work costs, the meter that counts it, and fees.

Every transaction names a `gas_limit` and pays a `fee` in ngonka. The state machine meters the gas
it uses while it runs the transaction, from this table:

| what | gas |
|---|---|
| a transaction (decoding, signature, chain id, sequence) | `GAS_PER_TX` |
| each byte of the transaction's canonical encoding | `GAS_PER_TX_BYTE` |
| each message, by kind | `GAS_PER_MESSAGE[@type]` (`GAS_PER_MESSAGE_DEFAULT` for a kind not listed) |
| each state entry read (a point read, hit or miss) | `GAS_PER_READ` + `GAS_PER_READ_BYTE` × its bytes |
| each state entry written or deleted | `GAS_PER_WRITE` + `GAS_PER_WRITE_BYTE` × its new bytes |
| each counter delta (a fee into the fee pool, a held usage fee: `State.add_delta`), read never | `GAS_PER_WRITE` |
| each credit to a balance (`State.credit`: the recipient of a transfer, a payout), read never | `GAS_PER_CREDIT` |

Reads and writes are counted by the block's `State` overlay while a meter is attached (the
transaction's own work only: the end-of-block and epoch steps are not charged to anyone). Using more
than the limit raises `InvalidTx(code="out_of_gas")`, and the transaction changes nothing. The fee
must be at least `ceil(gas_limit × min_gas_price)` (the genesis param, a decimal string in ngonka
per gas): the fee pays for the limit, not for the use, as in Cosmos.
"""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from functools import lru_cache

from .errors import InvalidTx

GAS_PER_TX = 2_000
GAS_PER_TX_BYTE = 10
GAS_PER_READ = 100
GAS_PER_READ_BYTE = 1
GAS_PER_WRITE = 500
GAS_PER_WRITE_BYTE = 10
CREDIT_ENTRY_BYTES = 128  # a credit is charged as the read and write of an account this long, whatever its length
GAS_PER_CREDIT = GAS_PER_READ + GAS_PER_WRITE + (GAS_PER_READ_BYTE + GAS_PER_WRITE_BYTE) * CREDIT_ENTRY_BYTES
GAS_PER_MESSAGE: dict[str, int] = {
    "MsgSend": 500,
    "MsgBond": 1_000,
    "MsgUnbond": 1_000,
    "MsgSubmitPriceProposal": 500,
    "MsgCommitPrice": 500,
    "MsgRevealPrice": 500,  # a hash of under 100 bytes: as cheap as a vote
    "MsgSubmitProposal": 20_000,  # it also costs end-of-block work: a queue entry and a tally
    "MsgDeposit": 1_000,
    "MsgVote": 500,
    "MsgUnjail": 1_000,
    "MsgFundEscrow": 1_000,
    "MsgWithdrawEscrow": 1_000,  # it also costs end-of-block work: a queue entry and a payout
    # a second signature check (the requester's), its queue entry, and the end-of-block work of adding it to
    # nine groups' totals (a read and a write of about 40 bytes each, charged here as the block does them)
    "MsgSettleUsage": GAS_PER_TX + 2_000 + 9 * 1_000,
    "MsgDispute": 500,
    "MsgRefund": 1_000,
}
GAS_PER_MESSAGE_DEFAULT = 1_000  # a kind declared without an entry above
MAX_GAS_LIMIT = 10**9  # a gas limit is an integer from 1 to this
DEFAULT_GAS_PRICE = "0.01"  # ngonka per gas: the default min_gas_price of chain.params

# What `compute_gas_estimate` allows for a message's state access without running it: more reads and
# writes than any message rule makes (tests/chain/test_fees.py runs each kind's worst case), each
# entry read or written at most ESTIMATE_ENTRY_BYTES long, plus written bytes of twice the tx's size.
ESTIMATE_READS_PER_MESSAGE = 20
ESTIMATE_WRITES_PER_MESSAGE = 10
ESTIMATE_ENTRY_BYTES = 256
ESTIMATE_TX_READS = 6  # chain id, params, the sender's account, the fee pool and the epoch's fees
ESTIMATE_TX_WRITES = 3  # the sender's account, the fee pool, the epoch's fees
# kinds that touch more entries than the per-message allowance: a settlement writes its record, three
# index entries, its queue entry and nine aggregates, and reads the escrow, the model and the epoch
ESTIMATE_ACCESS_BY_MESSAGE: dict[str, tuple[int, int]] = {"MsgSettleUsage": (40, 24), "MsgRefund": (40, 24)}


class GasMeter:
    """Counts gas up to a limit; `consume` raises InvalidTx(code="out_of_gas") past it."""

    __slots__ = ("limit", "used")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def consume(self, amount: int, what: str) -> None:
        """Add `amount` gas for `what`; out of gas if the total passes the limit."""
        self.used += amount
        if self.used > self.limit:
            raise InvalidTx(
                f"out of gas: {what} brings the use to {self.used}, over the limit of {self.limit}", code="out_of_gas"
            )

    def consume_read(self, size: int) -> None:
        """Charge one state read of an entry of `size` bytes (0 if absent)."""
        self.consume(GAS_PER_READ + GAS_PER_READ_BYTE * size, "a state read")

    def consume_write(self, size: int) -> None:
        """Charge one state write of `size` bytes (0 for a deletion)."""
        self.consume(GAS_PER_WRITE + GAS_PER_WRITE_BYTE * size, "a state write")

    def consume_credit(self) -> None:
        """Charge one credit to an entry (a flat price: the gas of a transaction may not depend on what it
        never reads)."""
        self.consume(GAS_PER_CREDIT, "a credit")


def compute_intrinsic_gas(message_types: Iterable[str], tx_bytes: int) -> int:
    """The gas a transaction costs before it touches the state: per tx, per byte and per message kind."""
    return (
        GAS_PER_TX
        + GAS_PER_TX_BYTE * tx_bytes
        + sum(GAS_PER_MESSAGE.get(t, GAS_PER_MESSAGE_DEFAULT) for t in message_types)
    )


def compute_gas_estimate(message_types: Iterable[str], tx_bytes: int) -> int:
    """An upper bound of a transaction's gas without running it (for signing offline): the intrinsic
    gas and the most state access the table allows for its messages."""
    types = list(message_types)
    default = (ESTIMATE_READS_PER_MESSAGE, ESTIMATE_WRITES_PER_MESSAGE)
    access = [ESTIMATE_ACCESS_BY_MESSAGE.get(t, default) for t in types]
    reads = ESTIMATE_TX_READS + sum(r for r, _ in access)
    writes = ESTIMATE_TX_WRITES + sum(w for _, w in access)
    cost = (
        reads * (GAS_PER_READ + GAS_PER_READ_BYTE * ESTIMATE_ENTRY_BYTES)
        + writes * (GAS_PER_WRITE + GAS_PER_WRITE_BYTE * ESTIMATE_ENTRY_BYTES)
        + GAS_PER_WRITE_BYTE * 2 * tx_bytes
    )
    return min(MAX_GAS_LIMIT, compute_intrinsic_gas(types, tx_bytes) + cost)


@lru_cache(maxsize=64)
def compute_gas_price(text: str) -> Fraction:
    """The exact value of a gas price, a decimal string in ngonka per gas such as "0.01"."""
    return Fraction(text)


def describe_gas_price(price: Fraction) -> str:
    """A gas price as the decimal string `compute_gas_price` reads back (rounded up to 18 places if
    it has no finite decimal form)."""
    scaled = price * 10**18
    units = -(-scaled.numerator // scaled.denominator)
    whole, frac = divmod(units, 10**18)
    return f"{whole}.{frac:018d}".rstrip("0").rstrip(".") if frac else str(whole)


def compute_min_fee(gas_limit: int, gas_price: Fraction) -> int:
    """The least fee, in ngonka, for `gas_limit` at `gas_price`: the product rounded up."""
    return -(-gas_limit * gas_price.numerator // gas_price.denominator)


def compute_adjusted_gas(gas_used: int, adjustment: Fraction = Fraction(6, 5)) -> int:
    """A gas limit for a simulated use: `gas_used × adjustment`, rounded up (gaiad's --gas-adjustment)."""
    product = adjustment * gas_used
    return min(MAX_GAS_LIMIT, -(-product.numerator // product.denominator))
