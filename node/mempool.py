"""The mempool: signed transactions admitted by `check_tx`, waiting for a block.

- **Admission** runs `app.check_txs` against the app's check state (the committed state plus the
  transactions already admitted), with this node's `min_gas_price` besides the chain's, so a
  transaction is admitted only if it applies on top of the pool. Only canonical bytes are valid
  (`chain.tx.decode_tx` refuses any other encoding), so the pool stores and gossips exactly what
  blocks carry. A rejection is a typed `MempoolError` (`TxRejected` with the chain's code,
  `TxAlreadyKnown`, `MempoolFull` and its kinds `SenderQuotaExceeded` and `FeeTooLow`) and changes
  nothing.
- **Dedup** by the chain's tx hash (and by the exact raw bytes before any work). The hashes of the
  last `RECENT_COMMITTED` committed transactions are kept (CometBFT's mempool cache): a late copy of
  a committed tx, which peers relay while the block commits, is refused (`wrong_sequence`: its
  sequence is used) before it is decoded or its signature checked. A tx whose signature this node
  verified before (a proposal carried it first, or an earlier copy was refused by its checks) is
  taken from the app's verify cache, not verified again: each distinct tx is verified once per node.
- **Lanes.** The priority lane holds this node's own transactions (`own=True`: the operator's
  votes and proposals) and price votes from validators of the current epoch (every message a
  `MsgSubmitPriceProposal`, `MsgCommitPrice` or `MsgRevealPrice`, the sender with power). They are
  exempt from the per-sender quota, are reaped first, and when the pool is full they evict the
  cheapest ordinary transaction whatever they pay, so no spammer can starve the validators' votes.
  Every other tx is in the ordinary lane.
- **Limits** on the number of transactions and their total bytes, and per sender in the ordinary
  lane (`max_txs_per_sender`, `max_bytes_per_sender`): one account cannot fill the pool.
- **Eviction.** When the pool is full, an ordinary tx that pays more per gas than the cheapest
  evictable tx (the last pending tx of some sender, so no sender is left with a sequence gap)
  takes its place; one that pays as little or less is refused (`FeeTooLow`). An evicted tx's effect
  stays in the check state until the next commit's re-check, so its sender's txs are refused
  (`MempoolFull`, "send again after the next block") until then: none can follow a gap.
- **Reaping** (for a proposal): senders' pending txs in sequence order, the senders interleaved by
  their next tx's lane, then fee per gas (highest first), then admission order. The proposer then
  drops the txs that would fail in that order (`Application.prepare_proposal`).
- **Re-check after each commit** (`update`): the app resets its check state at commit, so the pool
  drops the committed transactions and re-runs `check_txs` on the rest, in admission order,
  dropping those that no longer apply.
- **Relay**: only admitted transactions are handed to the `on_admit` callback, with the node id of
  the peer they came from (None: a client, or this node); the network relays them to every other peer.
"""

from __future__ import annotations

import hashlib
import heapq
import logging
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from fractions import Fraction

from chain.app import Application
from chain.errors import InvalidTx
from chain.tx import MsgCommitPrice, MsgRevealPrice, MsgSubmitPriceProposal, Tx

from .errors import FeeTooLow, MempoolError, MempoolFull, SenderQuotaExceeded, TxAlreadyKnown, TxRejected

log = logging.getLogger(__name__)

DEFAULT_MAX_TXS = 20_000
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_TXS_PER_SENDER = 100
DEFAULT_MAX_BYTES_PER_SENDER = 1024 * 1024
PRIORITY_LANE, ORDINARY_LANE = 0, 1
RECENT_COMMITTED = 65_536  # committed tx digests kept to refuse late copies (32 B each: about 8 MiB with the dict)


@dataclass(frozen=True)
class MempoolTx:
    """An admitted transaction: its chain hash, canonical raw bytes, sender, sequence, lane and fee per gas."""

    hash: str
    raw: bytes
    sender: str = ""
    sequence: int = 0
    lane: int = ORDINARY_LANE
    price: Fraction = Fraction(0)  # fee / gas_limit
    order: int = 0  # admission counter
    rank: int = 0  # −price in units of 10^-12 ngonka per gas, rounded: the heaps' integer key


def compute_raw_digest(raw: bytes) -> bytes:
    """The sha256 of a transaction's exact bytes (dedup before decoding)."""
    return hashlib.sha256(raw).digest()


def compute_rank(fee: int, gas_limit: int) -> int:
    """The ordering key of a fee per gas: its negation in 10^-12 ngonka per gas (rounded down), an
    integer so that the heaps compare cheaply (ordering is local to this node, never consensus)."""
    return -(fee * 10**12 // gas_limit)


def compute_fee_per_gas(tx: Tx) -> Fraction:
    """What a transaction pays per unit of its gas limit, in ngonka."""
    return Fraction(tx.fee, tx.gas_limit)


def describe_price(price: Fraction) -> str:
    """A fee per gas for a message: exact, as an integer or a fraction."""
    return str(price.numerator) if price.denominator == 1 else f"{price.numerator}/{price.denominator}"


PRICE_VOTE_MESSAGES = (MsgSubmitPriceProposal, MsgCommitPrice, MsgRevealPrice)


def is_price_vote(tx: Tx) -> bool:
    """True if every message of the transaction is a price vote (open, or a commit or reveal)."""
    return all(isinstance(m, PRICE_VOTE_MESSAGES) for m in tx.messages)


class Mempool:
    """Admitted transactions in two lanes, bounded in count and bytes, in total and per sender."""

    def __init__(
        self,
        app: Application,
        *,
        max_txs: int = DEFAULT_MAX_TXS,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_txs_per_sender: int = DEFAULT_MAX_TXS_PER_SENDER,
        max_bytes_per_sender: int = DEFAULT_MAX_BYTES_PER_SENDER,
        min_gas_price: Fraction | None = None,
        on_admit: Callable[[list[bytes], str | None], None] | None = None,
        on_drop: Callable[[str, str, str], None] | None = None,
    ) -> None:
        self.app = app
        self.max_txs = max_txs
        self.max_bytes = max_bytes
        self.max_txs_per_sender = max_txs_per_sender
        self.max_bytes_per_sender = max_bytes_per_sender
        self.min_gas_price = min_gas_price  # this node's admission minimum, besides the chain's
        self.on_admit = on_admit
        self.on_drop = on_drop  # (hash, code, log) of a tx dropped by the re-check after a commit
        self._txs: OrderedDict[str, MempoolTx] = OrderedDict()  # hash -> tx, admission order
        self._by_sender: dict[str, list[str]] = defaultdict(list)  # sender -> hashes in sequence order
        self._sender_bytes: dict[str, int] = defaultdict(int)  # ordinary-lane bytes per sender
        self._sender_count: dict[str, int] = defaultdict(int)  # ordinary-lane txs per sender
        self._raw_index: dict[bytes, str] = {}  # digest of the submitted bytes -> hash
        self._committed: OrderedDict[bytes, None] = OrderedDict()  # digests of recently committed txs
        self._tails: list[tuple[int, int, int, str]] = []  # heap of (−lane, −rank, −order, hash), lazy
        self._order = 0
        self._evicted: set[str] = set()  # senders with a tx evicted since the last commit
        self._powers: tuple[int, dict[str, int]] = (-1, {})  # (height, validator powers) cache
        self.total_bytes = 0
        self.failed = 0  # txs refused because they failed their checks (the metrics' mempool_failed_txs)

    # -- reads ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._txs)

    def __contains__(self, tx_hash: str) -> bool:
        return tx_hash in self._txs

    def count_of(self, sender: str) -> int:
        """How many of `sender`'s transactions the pool holds."""
        return len(self._by_sender.get(sender, ()))

    def get_hashes(self) -> list[str]:
        """The hashes of the pool's transactions, in admission order."""
        return list(self._txs)

    def reap(self, max_txs: int, max_bytes: int) -> list[bytes]:
        """Transactions for a block within the limits (they stay in the pool): each sender's in
        sequence order, senders interleaved by lane, fee per gas (highest first) and admission order."""
        heads: list[tuple[int, int, int, str, int]] = []
        for sender, hashes in self._by_sender.items():
            tx = self._txs[hashes[0]]
            heads.append((tx.lane, tx.rank, tx.order, sender, 0))
        heapq.heapify(heads)
        out: list[bytes] = []
        size = 0
        while heads and len(out) < max_txs:
            _, _, _, sender, index = heapq.heappop(heads)
            tx = self._txs[self._by_sender[sender][index]]
            if size + len(tx.raw) > max_bytes:
                continue  # this sender's later txs cannot come before this one
            out.append(tx.raw)
            size += len(tx.raw)
            if index + 1 < len(self._by_sender[sender]):
                nxt = self._txs[self._by_sender[sender][index + 1]]
                heapq.heappush(heads, (nxt.lane, nxt.rank, nxt.order, sender, index + 1))
        return out

    # -- admission --------------------------------------------------------------------------
    def add(self, raw: bytes, *, own: bool = False) -> str:
        """Admit one transaction and return its hash, or raise a MempoolError; relays it when admitted.
        `own`: this node's own transaction (the priority lane)."""
        result = self.add_batch([raw], own=own)[0]
        if isinstance(result, Exception):
            raise result
        return result

    def add_batch(
        self, raws: Iterable[bytes], *, own: bool = False, origin: str | None = None
    ) -> list[str | MempoolError]:
        """Admit transactions in order: each entry is the admitted hash or the MempoolError refusing it.
        `origin`: the node id of the peer that sent them (the relay does not send them back to it).

        The new ones are decoded and verified in one `app.decode_verified` call, then placed one by one."""
        raws = [bytes(r) for r in raws]
        out: list[str | MempoolError | None] = [None] * len(raws)
        fresh: list[int] = []
        seen: set[bytes] = set()
        for i, raw in enumerate(raws):
            digest = compute_raw_digest(raw)
            known = self._raw_index.get(digest)
            if known is not None or digest in seen:
                what = f"transaction {known}" if known else "this transaction"
                out[i] = TxAlreadyKnown(f"{what} is already in the mempool", tx_hash=known or "")
                continue
            if digest in self._committed:
                tx_hash = digest.hex().upper()  # canonical bytes only: the chain's tx hash
                message = f"transaction {tx_hash} was committed in a recent block: its sequence is used"
                out[i] = TxRejected(message, tx_hash=tx_hash, code="wrong_sequence")
                continue
            seen.add(digest)
            fresh.append(i)
        admitted: list[bytes] = []
        if fresh:
            for i, tx in zip(fresh, self.app.decode_verified([raws[i] for i in fresh])):
                out[i] = self._add_verified(tx, own)
                if isinstance(out[i], str):
                    admitted.append(raws[i])
        for outcome in out:
            if isinstance(outcome, MempoolError):
                log.debug("mempool rejected tx %s: %s", outcome.tx_hash, outcome)
                self.failed += isinstance(outcome, TxRejected)  # failed its checks (not a duplicate, not room)
        if admitted and self.on_admit is not None:
            self.on_admit(admitted, origin)
        return out  # type: ignore[return-value]

    def _add_verified(self, tx: Tx | InvalidTx, own: bool) -> str | MempoolError:
        """Place one decoded, verified tx: its lane, its sender's quota, room (evicting the cheapest
        if it pays more), then check_tx."""
        if isinstance(tx, InvalidTx):
            return TxRejected(str(tx), tx_hash=tx.tx_hash, code=tx.code)
        if tx.hash in self._txs:
            return TxAlreadyKnown(f"transaction {tx.hash} is already in the mempool", tx_hash=tx.hash)
        if tx.sender in self._evicted:  # its evicted tx is still applied in the check state: a gap
            return MempoolFull(
                f"a transaction of {tx.sender} was evicted from the full mempool; send again after the next block",
                tx_hash=tx.hash,
            )
        lane = self._get_lane(tx, own)
        refusal = self._check_room(tx, lane)
        if refusal is not None:
            return refusal
        result = self.app.check_verified(tx, min_gas_price=self.min_gas_price)
        if not result.ok:
            return TxRejected(result.log or result.code, tx_hash=result.hash, code=result.code)
        self._make_room(len(tx.raw), tx.sender)
        self._insert(tx, lane)
        return tx.hash

    def _get_lane(self, tx: Tx, own: bool) -> int:
        """The priority lane for own txs and validators' price votes; else the ordinary lane."""
        if own:
            return PRIORITY_LANE
        height = self.app.height
        if self._powers[0] != height:
            self._powers = (height, dict(self.app.get_validator_powers()))
        return PRIORITY_LANE if is_price_vote(tx) and self._powers[1].get(tx.sender, 0) > 0 else ORDINARY_LANE

    def _check_room(self, tx: Tx, lane: int) -> MempoolError | None:
        """Why `tx` cannot enter (its sender's quota, or a full pool it cannot buy into), or None."""
        size = len(tx.raw)
        if lane == ORDINARY_LANE:
            if self._sender_count[tx.sender] + 1 > self.max_txs_per_sender:
                return SenderQuotaExceeded(
                    f"sender {tx.sender} has {self._sender_count[tx.sender]} txs in the mempool, its limit",
                    tx_hash=tx.hash,
                )
            if self._sender_bytes[tx.sender] + size > self.max_bytes_per_sender:
                return SenderQuotaExceeded(
                    f"sender {tx.sender} has {self._sender_bytes[tx.sender]} of its {self.max_bytes_per_sender} "
                    f"mempool bytes; this tx is {size}",
                    tx_hash=tx.hash,
                )
        if len(self._txs) + 1 <= self.max_txs and self.total_bytes + size <= self.max_bytes:
            return None
        cheapest = self._peek_cheapest()
        if cheapest is None:
            return MempoolFull(f"the mempool is full ({self.max_txs} txs, {self.max_bytes} bytes) of priority txs")
        if cheapest.sender == tx.sender:
            return FeeTooLow(
                f"the mempool is full and the cheapest pending tx is this sender's own {cheapest.hash}", tx_hash=tx.hash
            )
        if lane == ORDINARY_LANE and compute_fee_per_gas(tx) <= cheapest.price:
            return FeeTooLow(
                f"the mempool is full; this tx pays {tx.fee} ngonka for {tx.gas_limit} gas, no more per gas than the "
                f"cheapest pending one ({describe_price(cheapest.price)} ngonka per gas): pay more per gas",
                tx_hash=tx.hash,
            )
        return None

    def _peek_cheapest(self) -> MempoolTx | None:
        """The evictable tx that pays least per gas (latest admitted first among equals): an
        ordinary-lane tx that is its sender's last pending one."""
        while self._tails:
            neg_lane, _, _, tx_hash = self._tails[0]
            tx = self._txs.get(tx_hash)
            if tx is not None and -neg_lane == ORDINARY_LANE and self._by_sender[tx.sender][-1] == tx_hash:
                return tx
            heapq.heappop(self._tails)  # stale: gone, or no longer its sender's last
        return None

    def _make_room(self, size: int, sender: str) -> None:
        """Evict the cheapest evictable txs (never `sender`'s) until one more tx of `size` bytes fits."""
        while len(self._txs) + 1 > self.max_txs or self.total_bytes + size > self.max_bytes:
            cheapest = self._peek_cheapest()
            if cheapest is None or cheapest.sender == sender:
                return
            log.debug("mempool evicts tx %s (%s per gas)", cheapest.hash, cheapest.price)
            self._remove(cheapest.hash)
            self._evicted.add(cheapest.sender)

    def _insert(self, tx: Tx, lane: int) -> None:
        self._order += 1
        entry = MempoolTx(
            tx.hash,
            tx.raw,
            tx.sender,
            tx.sequence,
            lane,
            compute_fee_per_gas(tx),
            self._order,
            compute_rank(tx.fee, tx.gas_limit),
        )
        self._txs[tx.hash] = entry
        self._by_sender[tx.sender].append(tx.hash)
        self._raw_index[compute_raw_digest(tx.raw)] = tx.hash
        self.total_bytes += len(tx.raw)
        if lane == ORDINARY_LANE:
            self._sender_count[tx.sender] += 1
            self._sender_bytes[tx.sender] += len(tx.raw)
            heapq.heappush(self._tails, (-lane, -entry.rank, -entry.order, tx.hash))

    def _remove(self, tx_hash: str) -> None:
        tx = self._txs.pop(tx_hash, None)
        if tx is None:
            return
        self._raw_index.pop(compute_raw_digest(tx.raw), None)
        self.total_bytes -= len(tx.raw)
        hashes = self._by_sender[tx.sender]
        was_last = hashes[-1] == tx_hash
        hashes.remove(tx_hash)  # at most a sender's quota long, usually its first entry
        if not hashes:
            del self._by_sender[tx.sender]
        elif was_last:
            last = self._txs[hashes[-1]]
            if last.lane == ORDINARY_LANE:  # the sender's new last tx becomes evictable
                heapq.heappush(self._tails, (-last.lane, -last.rank, -last.order, last.hash))
        if tx.lane == ORDINARY_LANE:
            self._sender_count[tx.sender] -= 1
            self._sender_bytes[tx.sender] -= len(tx.raw)
            if self._sender_count[tx.sender] == 0:
                del self._sender_count[tx.sender], self._sender_bytes[tx.sender]

    # -- after a commit ---------------------------------------------------------------------
    def update(self, committed_hashes: Iterable[str]) -> int:
        """After a block is committed: drop its applied transactions (`committed_hashes`, remembered as
        committed), re-check the rest in order against the fresh check state, drop those that fail;
        return how many were dropped as invalid."""
        for tx_hash in committed_hashes:
            self._remove(tx_hash)
            self._committed[bytes.fromhex(tx_hash)] = None
        while len(self._committed) > RECENT_COMMITTED:
            self._committed.popitem(last=False)
        self._evicted.clear()  # the check state is rebuilt from the pool: evicted txs are gone from it
        remaining = list(self._txs.values())
        if not remaining:
            self._tails = []
            return 0
        results = self.app.check_txs([tx.raw for tx in remaining], min_gas_price=self.min_gas_price)
        dropped = 0
        for tx, result in zip(remaining, results):
            if not result.ok:
                self._remove(tx.hash)
                dropped += 1
                if self.on_drop is not None:
                    self.on_drop(tx.hash, result.code, result.log)
                log.debug("mempool dropped tx %s after commit: %s", tx.hash, result.code)
        if len(self._tails) > 2 * len(self._txs) + 64:  # stale heap entries: rebuild
            self._tails = [
                (-t.lane, -t.rank, -t.order, t.hash)
                for t in self._txs.values()
                if t.lane == ORDINARY_LANE and self._by_sender[t.sender][-1] == t.hash
            ]
            heapq.heapify(self._tails)
        return dropped
