"""Block sync: catch up with peers that are ahead, without ever stopping consensus.

Peers' `Status` is polled every `status_interval_ms` (or at once after `wake()`); when a peer says it
is more than one block ahead (or one block ahead while this node makes no progress for `STALL_POLLS`
polls), blocks are streamed with `GetBlocks` from the peers that say so, highest first, each checked
to follow ours and its commit verified with `verify_commit` against the validator set of its height
(known: blocks apply in order), then applied one by one (the node moves its consensus engine past
each). Consensus keeps running meanwhile: a peer's word alone never stops it.

A claimed height is only a reason to ask: a peer is believed when it serves the next block with a
verifying commit. Each block of the stream must arrive within `block_wait_s` (the first one
included). A peer that claims to be ahead and then stalls, serves nothing, or serves a malformed or
invalid block is penalized (`PeerClient.penalize`): backed off as a sync source, then dropped as one
for `PEER_BAN_S`; serving a verified block clears its record.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import grpc

from chain.errors import InvalidBlock, InvalidEvidence

from . import codec
from .blocks import Block, Commit, compute_commit_hash, compute_txs_hash
from .consensus import compute_block_time, verify_commit
from .errors import InvalidCommit, InvalidMessage, SyncError
from .ledger import Ledger
from .network import PeerClient
from .pb import services_pb2 as spb

log = logging.getLogger(__name__)

SYNC_BATCH = 500
STALL_POLLS = 4  # polls one block behind without progress before syncing that block


class PeerFault(SyncError):
    """A peer failed to serve what it claimed, or served an invalid block (it is penalized)."""


def get_peer_height(peer: PeerClient) -> int:
    """The height a peer last said it has (-1 before it answered Status)."""
    return peer.status.height if peer.status is not None else -1


class BlockSync:
    """Polls peers' status and applies the verified blocks of peers that are ahead."""

    def __init__(
        self,
        ledger: Ledger,
        peers: list[PeerClient],
        *,
        status_interval_s: float,
        apply: Callable[[Block, Commit], None],
        genesis_time_ms: int,
        block_wait_s: float = 2.0,
    ) -> None:
        self.ledger = ledger
        self.genesis_time_ms = genesis_time_ms
        self.peers = peers
        self.status_interval_s = status_interval_s
        self.block_wait_s = block_wait_s
        self.apply = apply
        self.syncing = False
        self.reachable_peers = 0
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Poll peers now (a message showed a height well above ours)."""
        self._wake.set()

    async def run(self) -> None:
        """Poll peers' status; sync from the peers that say they are ahead."""
        ledger = self.ledger
        stalled, last_height = 0, ledger.height
        while True:
            try:
                # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation that comes as
                # what it waits for ends (the node's stop would then wait for this task forever)
                async with asyncio.timeout(self.status_interval_s):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            answered = await self.poll_peers()
            if not answered:
                continue
            best = max(answered, key=get_peer_height)
            behind = get_peer_height(best) - ledger.height
            stalled = stalled + 1 if ledger.height == last_height and behind >= 1 else 0
            last_height = ledger.height
            if behind > 1 or (behind == 1 and stalled >= STALL_POLLS):
                try:
                    await self.sync_from(answered)
                except (SyncError, grpc.aio.AioRpcError) as exc:
                    log.warning("block sync stopped: %s", exc)
                stalled = 0

    async def poll_peers(self) -> list[PeerClient]:
        """Refresh the status of every reachable peer not dropped as a sync source; return those that answered."""
        peers = [p for p in self.peers if not p.is_backed_off() and not p.is_penalized()]
        results = await asyncio.gather(*(p.get_status() for p in peers), return_exceptions=True)
        answered = []
        for peer, result in zip(peers, results):
            if isinstance(result, spb.StatusResponse) and result.chain_id == self.ledger.chain_id:
                answered.append(peer)
        self.reachable_peers = len(answered)  # backed-off and dropped peers count as unreachable
        return answered

    async def sync_from(self, peers: list[PeerClient]) -> int:
        """Fetch, verify and apply blocks from the peers (highest claim first) until none is ahead of us.
        Returns the number of blocks applied."""
        ledger = self.ledger
        applied = 0
        self.syncing = True
        try:
            while peers:
                ranked = sorted(peers, key=lambda p: -get_peer_height(p))
                target = get_peer_height(ranked[0])
                if target <= ledger.height:
                    break
                first, last = ledger.height + 1, min(target, ledger.height + SYNC_BATCH)
                got = 0
                for peer in ranked:
                    if get_peer_height(peer) < first:
                        break
                    if peer.is_penalized():
                        continue
                    try:
                        got = await self._sync_range(peer, first, last)
                    except PeerFault as exc:
                        peer.penalize(str(exc))
                    except (grpc.aio.AioRpcError, SyncError) as exc:
                        log.info("sync from %s failed: %s", peer.address, exc)
                    if got:
                        break
                if not got:
                    raise SyncError(f"no peer served blocks {first}..{last}")
                applied += got
                peers = await self.poll_peers()
        finally:
            self.syncing = False
            if applied:
                log.info("block sync applied %d blocks; now at height %d", applied, ledger.height)
        return applied

    async def _sync_range(self, peer: PeerClient, first: int, last: int) -> int:
        """Apply the verified blocks first..last streamed by `peer`; return how many were applied. PeerFault
        if it claimed block `first` and served none within `block_wait_s`, or served an invalid block."""
        applied = served = 0
        claimed = get_peer_height(peer)
        stream = peer.get_blocks(first, last)
        try:
            while True:
                try:
                    # not wait_for: a cancellation (the node stopping) that came as the peer's call failed
                    # would turn into that failure, be taken for the peer's fault, and the task run on
                    async with asyncio.timeout(self.block_wait_s):
                        item = await anext(stream)
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    if applied:
                        break  # it served what it could in time; ask again from where we are
                    raise PeerFault(
                        f"claimed height {claimed} but served no block {first} within {self.block_wait_s:.1f} s"
                    ) from None
                except grpc.aio.AioRpcError as exc:
                    if applied:
                        break
                    if exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                        raise SyncError(f"peer {peer.address} is busy: {exc.details()}") from None  # our budget
                    fault = f"claimed height {claimed} but failed to serve block {first}: {exc.code().name}"
                    raise PeerFault(fault) from None
                try:
                    block, commit = codec.block_with_commit_from_pb(item)
                except InvalidMessage as exc:
                    raise PeerFault(f"served a malformed block: {exc}") from None
                if block.height != first + served or block.height > last:
                    due = first + served
                    raise PeerFault(f"served block {block.height} when block {due} of {first}..{last} was due")
                served += 1
                if block.height <= self.ledger.height:
                    continue  # consensus applied it meanwhile
                try:
                    self.check_block(block, commit)
                except SyncError as exc:
                    raise PeerFault(f"served an invalid block: {exc}") from None
                self.apply(block, commit)
                peer.credit()
                applied += 1
                await asyncio.sleep(0)  # let consensus and the gRPC handlers run between blocks
        finally:
            await stream.aclose()
        if not applied and self.ledger.height < first <= claimed:
            raise PeerFault(f"claimed height {claimed} but served no block {first}")
        return applied

    def check_block(self, block: Block, commit: Commit) -> None:
        """SyncError unless `block` is the next block of our chain (its hashes, app hash, validators hash
        and BFT time: the engine's valid(v) without the application's verdict) and `commit` decides it
        with +2/3 of the validator set of its height."""
        ledger = self.ledger
        chain_id, height, app_hash = ledger.chain_id, ledger.height + 1, ledger.app.app_hash
        hd = block.header
        if hd.height != height or hd.chain_id != chain_id:
            raise SyncError(f"expected block {height} of {chain_id}, got {hd.height} of {hd.chain_id}")
        if hd.last_block_id != ledger.last_block_id:
            raise SyncError(f"block {height} does not follow our block {height - 1}")
        if hd.app_hash != app_hash:
            raise SyncError(f"block {height} claims app hash {hd.app_hash}, ours after {height - 1} is {app_hash}")
        if hd.txs_hash != compute_txs_hash(block.txs) or hd.last_commit_hash != compute_commit_hash(block.last_commit):
            raise SyncError(f"block {height}: the header does not match its transactions or last commit")
        try:
            ledger.app.check_block_limits(block.txs, block.get_evidence_json())
        except (InvalidBlock, InvalidEvidence) as exc:
            raise SyncError(f"block {height}: {exc}") from None
        vset = ledger.get_validator_set(height)
        if hd.validators_hash != vset.hash:
            raise SyncError(f"block {height}: validators hash is not the set's of this height")
        self._check_time(block)
        try:
            verify_commit(chain_id, commit, vset)
        except InvalidCommit as exc:
            raise SyncError(f"block {height}: {exc}") from None

    def _check_time(self, block: Block) -> None:
        """SyncError unless the block's last commit commits our last block with +2/3 of the set of h−1 and
        the block's time is its BFT time (`compute_block_time`), after our last block's."""
        ledger, height, time_ms = self.ledger, block.height, block.header.time_ms
        last = ledger.last
        if height == 1 or last is None:
            if block.last_commit is not None:
                raise SyncError(f"block {height} carries a last commit, but there is no block before it here")
            expected = compute_block_time(None, None, self.genesis_time_ms)
        else:
            commit = block.last_commit
            if commit is None or commit.height != height - 1 or commit.block_id != last[0].id:
                raise SyncError(f"block {height}: its last commit does not commit our block {height - 1}")
            last_vset = ledger.get_validator_set(height - 1)
            try:
                known = {v.signature: v for v in last[1].precommits}  # verified when block h−1 was applied
                verify_commit(ledger.chain_id, commit, last_vset, verified=known)
                expected = compute_block_time(commit, last_vset, self.genesis_time_ms)
            except InvalidCommit as exc:
                raise SyncError(f"block {height}: last commit: {exc}") from None
            if time_ms <= last[0].header.time_ms:
                raise SyncError(f"block {height}: time {time_ms} is not after block {height - 1}'s")
        if time_ms != expected:
            raise SyncError(f"block {height}: time {time_ms} is not its BFT time {expected}")
