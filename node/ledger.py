"""The node's chain: its store and application, the last block, the validator sets, and applying a
decided block.

    with open_ledger(home) as ledger:   # lock the home, open and check the store and app, init genesis, recover
        ledger.apply(block, commit)     # finalize_block, then ONE store transaction (store.apply_block)

`Ledger.apply` runs `finalize_block`, then `SqliteStore.apply_block` writes the state changes, the
block, its commit, the tx results and (when its powers change, or at a checkpoint) the validator set
of the next height in one SQLite transaction, and prunes the sets older than the retention.
Priorities advance one step per height whatever happens, so the set of any height is the last stored
one stepped forward (`get_validator_set`). Block sync and consensus both apply through it; what
follows a block (mempool, commit waiters) is the caller's. Opening checks the store first
(`open_checked_store`: `PRAGMA quick_check`, then the state re-hashed against the stored app hash).
"""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from chain.app import Application, BlockResult
from chain.errors import InvalidTx
from chain.tx import Tx, decode_and_verify

from .blocks import Block, Commit
from .config import DB_FILE, Home
from .consensus import ValidatorSet
from .errors import ConfigError, ConsensusError, NodeError, StoreError, SyncError
from .store import BlockWrite, SqliteStore

log = logging.getLogger(__name__)

VALIDATOR_SET_CACHE = 16
VALIDATOR_SET_CHECKPOINT = 1000  # a set is stored at least every this many heights: a cold read steps fewer
DEFAULT_VALIDATOR_SET_RETENTION = 100_000  # heights back from the tip whose set stays computable


def compute_next_validator_set(vset: ValidatorSet, result: BlockResult, commit_round: int) -> ValidatorSet:
    """The validator set of the height after `result`: the chain's next powers if the block ended an
    epoch (else the same powers), with proposer priorities advanced from `vset`."""
    powers = list(vset.powers if result.next_powers is None else result.next_powers)
    return vset.next_height(powers, commit_round)


def compute_stepped_validator_set(vset: ValidatorSet, steps: int) -> ValidatorSet:
    """The set `steps` heights after `vset` with the same powers (priorities advance one step per height)."""
    for _ in range(steps):
        vset = vset.next_height(list(vset.powers), 0)
    return vset


def is_validator_set_stored(height: int, vset: ValidatorSet, previous: ValidatorSet) -> bool:
    """True if the set of `height` is written to the store: its powers changed, or a checkpoint height."""
    return vset.powers != previous.powers or height % VALIDATOR_SET_CHECKPOINT == 0


class CountingAdmit:
    """The chain's admission step (`decode_and_verify`) as the node's `Application.admit`, counting the
    signatures it verifies (a tx that does not decode is not verified): the node's
    `uoc_tx_signature_verifications_total`."""

    def __init__(self) -> None:
        self.verified = 0

    def __call__(self, raws: list[bytes]) -> list[Tx | InvalidTx]:
        out = decode_and_verify(raws)
        self.verified += sum(1 for tx in out if isinstance(tx, Tx) or tx.code == "bad_signature")
        return out


# -- the ledger ---------------------------------------------------------------------------------
class Ledger:
    """The committed chain of one node: store, application, last block and validator sets."""

    def __init__(
        self,
        store: SqliteStore,
        app: Application,
        chain_id: str,
        validator_set_retention: int = DEFAULT_VALIDATOR_SET_RETENTION,
    ) -> None:
        self.store = store
        self.app = app
        self.chain_id = chain_id
        self.validator_set_retention = validator_set_retention
        self._sets: dict[int, ValidatorSet] = {}
        self.last: tuple[Block, Commit] | None = None
        if app.height > 0:
            row = store.get_block_row(app.height)
            if row is not None:
                self.last = (Block.from_json(row[1]), Commit.from_json(row[2]))

    @property
    def height(self) -> int:
        return self.app.height

    @property
    def last_block_id(self) -> str:
        return self.last[0].id if self.last else ""

    @property
    def signature_verifications(self) -> int:
        """Transaction signatures this node has verified since it started (`CountingAdmit`)."""
        admit = self.app.admit
        return admit.verified if isinstance(admit, CountingAdmit) else 0

    def get_validator_set(self, height: int) -> ValidatorSet:
        """The validator set of `height`: the last one stored at or below it (or a cached one in
        between), its priorities stepped to `height`; cached."""
        vset = self._sets.get(height)
        if vset is None:
            row = self.store.get_validator_set_row(height)
            if row is None:
                raise SyncError(f"no validator set is known for height {height}")
            base, doc = row
            start = max((h for h in self._sets if base <= h < height), default=None)
            if start is None:
                start, vset = base, ValidatorSet.from_json(doc)
            else:
                vset = self._sets[start]
            vset = compute_stepped_validator_set(vset, height - start)
            self._cache_validator_set(height, vset)
        return vset

    def _cache_validator_set(self, height: int, vset: ValidatorSet) -> None:
        self._sets[height] = vset
        if len(self._sets) > VALIDATOR_SET_CACHE:
            self._sets.pop(min(self._sets))

    def apply(self, block: Block, commit: Commit) -> BlockResult:
        """finalize_block, then the state changes, the block, its commit, its tx results and the next
        validator set in one store transaction; ConsensusError if the chain leaves no valid next set."""
        height, store = block.height, self.store
        vset = self.get_validator_set(height)
        result = self.app.finalize_block(height, list(block.txs), block.get_evidence_json())
        try:
            next_vset = compute_next_validator_set(vset, result, commit.round)
        except ConsensusError as exc:  # every validator jailed or unbonded: no later block can be decided
            halt = f"the chain halts after height {height}: its next validator set is not valid ({exc})"
            raise ConsensusError(halt) from None
        stored = is_validator_set_stored(height + 1, next_vset, vset)
        write = BlockWrite(
            height=height,
            next_validator_set=lambda: next_vset.to_json() if stored else None,
            block_id=block.id,
            block=block.to_json(),
            commit=commit.to_json(),
            tx_results=tuple((r.hash, r.code, r.log, r.sender) for r in result.tx_results),
            keep_validator_sets_from=max(0, height + 1 - self.validator_set_retention),
            txs=tuple(block.txs),
            evidence=tuple((e.key, e.height, e.to_json()) for e in block.evidence),
        )
        store.apply_block(write, self.app.commit)
        self._cache_validator_set(height + 1, next_vset)
        self.last = (block, commit)
        return result

    def recover(self) -> None:
        """Apply the blocks stored above the applied height (decided before a restart, not applied)."""
        for height in self.store.get_unapplied_heights():
            row = self.store.get_block_row(height)
            assert row is not None
            log.info("applying stored block %d (decided before a restart)", height)
            self.apply(Block.from_json(row[1]), Commit.from_json(row[2]))


@contextmanager
def lock_home(home: Path) -> Iterator[None]:
    """Hold an exclusive lock on HOME/data/LOCK: one process per home."""
    data = (home / DB_FILE).parent
    data.mkdir(parents=True, exist_ok=True)
    with open(data / "LOCK", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise NodeError(f"{home} is in use by another uocd process") from None
        yield  # closing the file releases the flock


def compute_store_fix(home: Path) -> str:
    """What to do about a damaged store of `home` (one clause)."""
    data = (home / DB_FILE).parent
    return f"restore {data} from a backup, or move it aside and restart to sync the chain from the peers"


def check_app_hash(app: Application, home: Path) -> None:
    """StoreError naming the home and the height unless the committed state hashes to the stored app hash."""
    if app.height >= 0 and app.recompute_app_hash() != app.app_hash:
        raise StoreError(
            f"{home}: the state stored at height {app.height} does not match its app hash "
            f"{app.app_hash[:16]}…; {compute_store_fix(home)}"
        )


def open_checked_store(home: Path) -> tuple[SqliteStore, Application]:
    """The store of `home` (integrity checked: `PRAGMA quick_check`) and its app (app hash checked);
    StoreError naming the file or the home, and the fix, otherwise (the store closed)."""
    store = SqliteStore(home / DB_FILE)
    try:
        answer = store.run_quick_check()
        if answer != "ok":
            raise StoreError(f"{store.path} is corrupt (PRAGMA quick_check: {answer[:200]}); {compute_store_fix(home)}")
        app = Application(store, admit=CountingAdmit())
        check_app_hash(app, home)
    except BaseException:
        store.close()
        raise
    return store, app


@contextmanager
def open_ledger(home: Home) -> Iterator[Ledger]:
    """Lock the home and open its store and app (both checked: `open_checked_store`): init genesis on an
    empty store, refuse another chain's store, apply decided-but-unapplied blocks. The store closes and
    the lock is released on exit."""
    chain_id: str = home.genesis["chain_id"]
    with lock_home(home.path):
        store, app = open_checked_store(home.path)
        try:
            if app.height < 0:
                genesis = home.genesis
                store.apply_block(
                    BlockWrite(
                        height=0,
                        next_validator_set=lambda: ValidatorSet.from_powers(list(app.get_validator_powers())).to_json(),
                    ),
                    lambda: app.init_chain(genesis),
                )
            elif app.query("status")["chain_id"] != chain_id:
                raise ConfigError(f"{home.db_path} holds chain {app.query('status')['chain_id']!r}, not {chain_id!r}")
            ledger = Ledger(store, app, chain_id, home.config.validator_set_retention)
            ledger.recover()
            yield ledger
        finally:
            store.close()
