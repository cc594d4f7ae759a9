"""The ABCI-shaped application: the one object that consensus, the simulator and tests drive.

    app = Application(store)
    app.init_chain(genesis)                 # once, on an empty store: commits height 0
    app.check_tx(raw)                       # mempool admission against the check state
    app.process_proposal(h, txs, evidence)  # would every tx of a proposed block apply? (no writes;
                                            # a finalize_block of the same block reuses its work)
    result = app.finalize_block(h, txs, evidence)  # run a block; nothing is persisted yet
    app.check_evidence(obj)                 # may this double sign be committed in the next block?
    app.commit()                            # write the block in one store transaction
    app.query("epoch/current")              # also: status, account/<a>, validators, history,
                                            # price_vote/<a>, params, proposals, proposal/<id>,
                                            # models (active this epoch), registry (all + log)

Decoding and signature verification (`decode_and_verify`, pure and stateless) run once per
transaction: every transaction whose signature verifies is remembered by its raw bytes in the verify
cache (a `ByteBoundedCache` of ADMITTED_CACHE_BYTES), whatever its checks then say, so neither its
block, nor a copy from gossip or a client's retry, nor the mempool's re-check after a commit verifies
it again; a block's transactions leave the cache when it is finalized (the node's mempool then
refuses late copies of them by its recently-committed filter, before decoding). Only an eviction
from the full cache makes a transaction be verified a second time. The application takes the batch
`admit` function as a parameter, so a node can count what it verifies and the simulator can run it
in other processes.

Each transaction's rules run once per node: its admission on the check state records what it read
and wrote (`store.Execution`, kept by tx hash in the execution cache, a `ByteBoundedCache` of
EXECUTION_CACHE_BYTES); a block applies that record's writes instead of running the rules again when
every entry it read has the same text on the block's state (else the rules run). The check state is
the next block's state before its transactions (`process_block_start` at the next height), so the
reads of the height match. `executions` counts the rules' runs, `reused` the records applied
(docs/design.md, "One execution per transaction").

A block's evidence (double signs, as JSON: `chain.evidence`) is processed after the height advances
and before the transactions: each piece is verified (signatures included) and punishes its
validator (`rules.process_evidence`); one invalid piece makes the whole block invalid (InvalidEvidence).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from . import machine, rules
from .cache import ByteBoundedCache
from .epochs import compute_epoch_at_height, is_epoch_end
from .errors import InvalidBlock, InvalidEvidence, InvalidTx, StoreError
from .evidence import DoubleSign, is_signed_double_sign, parse_evidence
from .gas import compute_min_fee
from .genesis import process_genesis
from .params import Params
from .queries import QueryContext, run_query, run_query_all
from .store import Change, CommitInfo, Execution, State, Store, compute_lthash
from .tx import Tx, decode_and_verify, decode_tx

ADMITTED_CACHE_BYTES = 256 * 1024 * 1024  # the verify cache: decoded, signature-verified txs by raw bytes
EXECUTION_CACHE_BYTES = 64 * 1024 * 1024  # the execution cache: admitted txs' recorded reads and writes by hash
Admit = Callable[[list[bytes]], "list[Tx | InvalidTx]"]


@dataclass(frozen=True)
class TxResult:
    """The outcome of one transaction: code "ok" or the rule it broke, with a reason."""

    hash: str
    code: str = "ok"
    log: str = ""
    gas_used: int = 0  # 0 for a tx refused before it ran
    sender: str | None = None  # its body's sender, once decoded (None: refused before, or not told)

    @property
    def ok(self) -> bool:
        return self.code == "ok"


def compute_admitted_size(tx: Tx) -> int:
    """The bytes a verified tx keeps alive in the verify cache: its raw and sign bytes, and its decoded
    messages (estimated at the raw size again, plus 256 bytes per message object)."""
    return 2 * len(tx.raw) + len(tx.sign_bytes) + 256 * len(tx.messages)


Powers = tuple[tuple[str, int], ...]  # (address, power) sorted by address


@dataclass(frozen=True)
class BlockResult:
    """The outcome of a block: per-tx results, the new app hash, the epoch it ran in, and whether it
    ended that epoch; if it did, `next_powers` is the validator set from the next height on (else
    None: the set does not change)."""

    height: int
    tx_results: tuple[TxResult, ...]
    app_hash: str
    epoch_ended: bool = False
    epoch: int = 0
    next_powers: Powers | None = None


class Application:
    """The uoc state machine behind an ABCI-shaped interface."""

    def __init__(self, store: Store, *, admit: Admit = decode_and_verify) -> None:
        machine.compose()  # the rules of usage, dynamic pricing and the index in the dispatch tables, in order
        self.store = store
        self.admit = admit
        self.verify_cache: ByteBoundedCache[bytes, Tx] = ByteBoundedCache(ADMITTED_CACHE_BYTES)  # raw -> verified tx
        self._pending: tuple[CommitInfo, list[Change]] | None = None
        info = store.last_commit()
        self._proposal: tuple[int, list[bytes], list[Any], State, list[TxResult]] | None = None  # last process_proposal
        self.height = info.height if info else -1
        self.app_hash = info.app_hash if info else ""
        self._lthash = info.lthash if info else None
        # tx hash -> what its admission did (`store.Execution`), for its block to apply without running it again
        self.execution_cache: ByteBoundedCache[str, Execution] = ByteBoundedCache(EXECUTION_CACHE_BYTES)
        self.executions = 0  # transactions whose rules ran (admission and blocks; not `simulate`)
        self.reused = 0  # transactions of blocks applied from their admission's record
        self._check_state = self._new_check_state()

    def _new_state(self) -> State:
        return State(self.store, self.height, self._lthash)

    def _new_check_state(self) -> State:
        """The state mempool admission runs on: the next block's, before its transactions."""
        if self.height < 0:
            return self._new_state()
        state = State(self.store, self.height + 1, self._lthash)
        rules.process_block_start(state, self.height + 1)
        return state

    # -- ABCI -------------------------------------------------------------------------------
    def init_chain(self, genesis: dict[str, Any]) -> str:
        """Write genesis on an empty store, commit it as height 0, and return the app hash."""
        if self.height >= 0:
            raise StoreError(f"the store already holds a chain at height {self.height}")
        state = State(self.store, 0)
        process_genesis(state, genesis)
        info, changes = state.compute_commit()
        self.store.write_block(info, changes)
        self._after_commit(info)
        return info.app_hash

    def check_tx(self, raw: bytes) -> TxResult:
        """Admit a transaction to the mempool if it applies on top of the pending ones."""
        return self.check_txs([raw])[0]

    def check_txs(self, raws: list[bytes], *, min_gas_price: Fraction | None = None) -> list[TxResult]:
        """check_tx for a batch, decoding and verifying the new ones in one `admit` call.

        `min_gas_price` is a node's own admission minimum (ngonka per gas), checked besides the chain's."""
        return [
            tx if isinstance(tx, TxResult) else self.check_verified(tx, min_gas_price=min_gas_price)
            for tx in self._admit(raws, keep=True)
        ]

    def check_verified(self, tx: Tx, *, min_gas_price: Fraction | None = None) -> TxResult:
        """check_tx for a tx that `admit` decoded and verified (`decode_verified`): apply it to the
        check state if it pays `min_gas_price` and applies."""
        least = 0 if min_gas_price is None else compute_min_fee(tx.gas_limit, min_gas_price)
        if tx.fee < least:
            log = f"fee is {tx.fee} ngonka; this node admits a gas limit of {tx.gas_limit} for at least {least}"
            return TxResult(tx.hash, "insufficient_fee", log)
        return self._apply(self._check_state, tx, record=True)

    def simulate(self, raw: bytes) -> TxResult:
        """Run a transaction on top of the check state without its gas limit, fee minimum or signature
        check, and discard what it wrote: the gas it would use (`gas_used`) or why it would fail."""
        try:
            tx = decode_tx(raw)
        except InvalidTx as exc:
            return TxResult(exc.tx_hash, exc.code, str(exc))
        state = self._check_state
        state.begin()
        try:
            gas_used = rules.process_tx(state, tx, simulate=True)
        except InvalidTx as exc:
            return TxResult(tx.hash, exc.code, str(exc))
        finally:
            state.discard()
        return TxResult(tx.hash, gas_used=gas_used)

    def prepare_proposal(self, height: int, txs: list[bytes], evidence: list[Any] | None = None) -> list[bytes]:
        """The proposer's block of `evidence` then `txs`: the txs in order without those that would fail
        on the state after h−1 and the evidence (a slashed validator's own tx may).

        A failing tx changes nothing, so the kept txs give the same results without them; the run is
        kept for the `process_proposal` and `finalize_block` of the returned block."""
        results = self.process_proposal(height, txs, evidence)
        kept = [raw for raw, result in zip(txs, results) if result.ok]
        assert self._proposal is not None
        _, _, ran_evidence, state, _ = self._proposal
        self._proposal = (height, kept, ran_evidence, state, [r for r in results if r.ok])
        return kept

    def process_proposal(self, height: int, txs: list[bytes], evidence: list[Any] | None = None) -> list[TxResult]:
        """Run a proposed block's evidence, then its transactions in order, on a copy of the state;
        nothing is written.

        Consensus calls a proposal valid only when every result is ok; InvalidBlock if the block is
        over the params' block limits, InvalidEvidence if a piece of evidence is invalid. The copy is
        kept for a `finalize_block` of the same block, which goes on from it (and for a second
        `process_proposal` of it, which answers at once)."""
        self._check_next_height(height)
        evidence = list(evidence or [])
        parsed = [parse_evidence(e) for e in evidence]
        self.check_block_limits(txs, parsed)
        proposal = self._proposal
        if proposal is not None and proposal[0] == height and proposal[1] == txs and proposal[2] == evidence:
            return list(proposal[4])
        state = State(self.store, height, self._lthash)
        rules.process_block_start(state, height)
        rules.process_block_evidence(state, parsed)
        results = []
        for tx in self._admit(txs, keep=True):  # verified once: kept for the block's finalize_block
            results.append(tx if isinstance(tx, TxResult) else self._apply(state, tx))
        self._proposal = (height, list(txs), evidence, state, results)  # finalize_block of this block goes on here
        return list(results)

    def get_params(self) -> Params:
        """The params in force for the next block (those of the committed state)."""
        return rules.get_params(self._new_state())

    def check_block_limits(
        self, txs: list[bytes] | tuple[bytes, ...], evidence: list[Any] | tuple[Any, ...] = ()
    ) -> None:
        """Raise InvalidBlock unless the next block's transactions and evidence (JSON or parsed) fit the
        params' block limits; InvalidEvidence if a piece of evidence is malformed."""
        parsed = [e if isinstance(e, DoubleSign) else parse_evidence(e) for e in evidence]
        rules.check_block_limits(self.get_params(), txs, parsed)

    def check_evidence(self, obj: Any, *, height: int | None = None, verify_signatures: bool = True) -> DoubleSign:
        """The parsed evidence if it may be committed in a block at `height` (default: the next one) on
        the committed state, else InvalidEvidence; `verify_signatures=False` when the caller already
        verified them."""
        evidence = parse_evidence(obj)
        height = self.height + 1 if height is None else height
        state = State(self.store, height, self._lthash)
        rules.process_block_start(state, height)
        if verify_signatures and not is_signed_double_sign(rules.get_chain_id(state), evidence):
            raise InvalidEvidence(
                f"evidence {evidence.key}: a vote is not signed by its validator", code="bad_signature"
            )
        rules.check_evidence(state, evidence)
        return evidence

    def finalize_block(self, height: int, txs: list[bytes], evidence: list[Any] | None = None) -> BlockResult:
        """Run a block's evidence, its transactions and the epoch transition; keep the result until commit."""
        self._check_next_height(height)
        evidence = list(evidence or [])
        proposal, self._proposal = self._proposal, None
        if proposal is not None and proposal[0] == height and proposal[1] == txs and proposal[2] == evidence:
            _, _, _, state, results = proposal  # the block already ran on this state in process_proposal
            for raw in txs:
                self.verify_cache.pop(raw)  # committed: the mempool's recently-committed filter answers copies
        else:
            state = State(self.store, height, self._lthash)
            rules.process_block_start(state, height)
            rules.process_block_evidence(state, [parse_evidence(e) for e in evidence])
            results = [
                tx if isinstance(tx, TxResult) else self._apply(state, tx) for tx in self._admit(txs, keep=False)
            ]
        for result in results:
            self.execution_cache.pop(result.hash)  # committed (or refused: its record is stale)
        rules.process_block_end(state)
        info, changes = state.compute_commit()
        self._pending = (info, changes)
        params = rules.get_params(state)
        epoch_ended = is_epoch_end(params, height)
        return BlockResult(
            height,
            tuple(results),
            info.app_hash,
            epoch_ended,
            epoch=compute_epoch_at_height(params, height),
            next_powers=tuple(rules.get_validator_set(state)) if epoch_ended else None,
        )

    def commit(self) -> str:
        """Persist the finalized block in one store transaction and return its app hash."""
        if self._pending is None:
            raise InvalidBlock("commit without a finalized block")
        info, changes = self._pending
        self.store.write_block(info, changes)
        self._pending = None
        self._after_commit(info)
        return info.app_hash

    def get_validator_powers(self) -> Powers:
        """The committed validator set: the powers of the next height (after init_chain: of height 1)."""
        return tuple(rules.get_validator_set(self._new_state()))

    def query(self, path: str, **params: Any) -> Any:
        """Read committed state: "name" or "name/arg" with keyword arguments (see chain.queries)."""
        return run_query(QueryContext(self._new_state(), self.height, self.app_hash), path, **params)

    def query_all(self, path: str, **params: Any) -> list[Any]:
        """The whole list of a list query, every page read (in-process callers: the simulator, tests)."""
        return run_query_all(QueryContext(self._new_state(), self.height, self.app_hash), path, **params)

    # -- helpers ----------------------------------------------------------------------------
    def _check_next_height(self, height: int) -> None:
        if self.height < 0:
            raise InvalidBlock("init_chain has not run")
        if height != self.height + 1:
            raise InvalidBlock(f"block height {height} does not follow the committed height {self.height}")

    def decode_verified(self, raws: list[bytes]) -> list[Tx | InvalidTx]:
        """Each raw tx decoded with its signature verified, or the InvalidTx refusing it: from the
        verify cache if this node verified it before (a proposal, an earlier copy), else through one
        `admit` call for all the new ones, each verified tx then remembered."""
        return self._verify(raws, keep=True)

    def _verify(self, raws: list[bytes], *, keep: bool) -> list[Tx | InvalidTx]:
        """`decode_verified`; without `keep`, for a block being finalized: its txs leave the cache and
        the new ones are not remembered."""
        cache = self.verify_cache
        out: list[Tx | InvalidTx | None] = [cache.get(raw) if keep else cache.pop(raw) for raw in raws]
        fresh = [i for i, tx in enumerate(out) if tx is None]
        if fresh:
            for i, tx in zip(fresh, self.admit([raws[i] for i in fresh])):
                out[i] = tx
                if keep and isinstance(tx, Tx):
                    cache.put(tx.raw, tx, compute_admitted_size(tx))
        return out  # type: ignore[return-value]

    def _admit(self, raws: list[bytes], *, keep: bool) -> list[Tx | TxResult]:
        """Each raw tx decoded with its signature verified (`_verify`), or the TxResult that rejects it."""
        return [
            TxResult(tx.tx_hash, tx.code, str(tx)) if isinstance(tx, InvalidTx) else tx
            for tx in self._verify(raws, keep=keep)
        ]

    def _apply(self, state: State, tx: Tx, *, record: bool = False) -> TxResult:
        """Apply a transaction whose signature is verified to `state`: from its admission's record if
        every entry that read has the same text here (`State.is_unchanged`), else by its rules; with
        `record` (admission, the check state), keep the record of that run in the execution cache."""
        execution = self.execution_cache.get(tx.hash)
        if execution is not None and state.is_unchanged(execution.reads):
            state.apply_execution(execution)  # a re-check after a commit too: the record holds
            state.tx_hash = tx.hash
            self.reused += 1
            return TxResult(hash=tx.hash, gas_used=execution.gas_used, sender=tx.sender)
        self.executions += 1
        execution = state.start_recording() if record else None
        try:
            gas_used = rules.process_tx(state, tx)
        except InvalidTx as exc:
            return TxResult(hash=tx.hash, code=exc.code, log=str(exc), sender=tx.sender)
        finally:
            state.stop_recording()
        if execution is not None:
            if execution.reusable and execution.writes is not None:
                execution.gas_used = gas_used
                self.execution_cache.put(tx.hash, execution, execution.compute_size())
            else:
                self.execution_cache.pop(tx.hash)
        return TxResult(hash=tx.hash, gas_used=gas_used, sender=tx.sender)

    def _after_commit(self, info: CommitInfo) -> None:
        self.height, self.app_hash, self._lthash = info.height, info.app_hash, info.lthash
        self._proposal = None
        self._check_state = self._new_check_state()

    def recompute_app_hash(self) -> str:
        """Recompute the app hash from every committed entry (slow; for export and audits)."""
        return compute_lthash(self.store.entries()).app_hash()
