"""A byzantine validator for the chaos suite: a real node process whose `NodeCore` lies.

    python -m devnet.adversary --home H --seed S [--attacks all|KIND,…] [--t0 UNIX_S] [--log-level info]

It runs `node.node.open_node(home, make_core=AdversaryCore)`: the store, ledger, engine, mempool, relay,
block sync, gRPC server and HTTP API of an honest node, with its validator key, and overrides only the
points where an adversary lies (the node's seams: `NodeCore._execute`, `NodeCore.receive_consensus`,
`NodeCore.grpc_handlers`, and the relay's `relay_consensus` and `gossip` on this instance). The attacks come in the
seeded windows of `devnet.adversary_plan.compute_attack_plan(seed, …)`, timed from `--t0` or, without it,
from the unix time in HOME/attack_clock once that file exists (the chaos runner writes it when its load
starts, after the first block): so no attack runs before the network is up, and a restarted adversary
resumes the schedule where it was. What each kind does:

- equivocate: each own prevote and precommit gets a twin (nil for a block, a made-up id for nil) signed
  with the validator key, sent to every other peer right after the honest copy (so that a peer that takes
  the twin as new holds both halves: one that only ever saw the twin, or saw the honest copy only after it
  had moved heights, could not tell); each own proposal a twin block (other transactions), sent first to
  every other peer; the honest copies go to every peer as usual. Each twin vote that a peer took as new
  is a delivered equivocation, recorded with its evidence key (validator/height/round/type).
- time_future, time_past: own new proposals re-signed with block time 2^63−1 or 1 ms.
- tamper_relay: proposals this node relays go out with their transactions swapped.
- flood_txs: every FLOOD_TXS_EVERY_S, a `BroadcastTxs` of MAX_BATCH_TXS junk entries (garbage and
  well-formed transactions with bad signatures) to every peer.
- flood_future: FLOOD_FUTURE_PER_TICK signed nil prevotes for heights h+1 and h+2 per tick, to every peer.
- pad: own, re-sent and relayed messages carry PAD_BYTES of an unknown protobuf field.
- lie_height: `Status` answers height LIE_HEIGHT; `GetBlocks` sends nothing until the caller's deadline.
- withhold: own prevotes and precommits are not sent while the window is open (the node's relay keeps them,
  and re-sends those of its last two rounds once it closes, as it does for any lost message). A vote
  withheld for good, while an honest node is down, would stall any BFT chain: two of four out.
- replay: consensus messages of past heights and transactions of committed blocks are sent again.

Everything it did goes to HOME/adversary.jsonl, one JSON object a line: `{"t", "counts": {kind: n}}`
every second (actions since the last line) and `{"t", "equivocation": {…}}` for each delivered twin
vote. The chaos runner reads it for the summary and the verdict (`devnet.chaos_verdict`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import logging
import random
import signal
import sys
import time
from collections import Counter, deque
from collections.abc import AsyncIterator
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import grpc

from chain.tx import MsgSend, compute_sign_bytes, compute_tx_bytes, make_body
from node import codec
from node.blocks import Block, Proposal, Vote, compute_txs_hash, sign_proposal, sign_vote
from node.config import Home, load_home
from node.consensus import Action, Broadcast
from node.errors import NodeError
from node.logs import DEFAULT_LOG_FORMAT, DEFAULT_LOG_LEVEL, LOG_FORMATS, LOG_LEVELS, configure_logging
from node.network import MAX_BATCH_TXS, Handlers, PeerClient
from node.node import NodeCore, open_node
from node.pb import services_pb2 as spb
from node.pb import types_pb2 as pb

from .adversary_plan import ATTACK_KINDS, AttackWindow, compute_attack_plan, get_active_kinds, parse_attack_kinds

log = logging.getLogger("uoc.adversary")

RECORD_FILE = "adversary.jsonl"
CLOCK_FILE = "attack_clock"  # the unix time the schedule counts from (without --t0)
TICK_S = 0.1
LIE_HEIGHT = 2**62
STALL_S = 600.0  # GetBlocks under lie_height sleeps this long: the caller's deadline ends it first
FAR_FUTURE_MS = 2**63 - 1
FAR_PAST_MS = 1
PAD_FIELD = 1000  # a field number no uoc message has
PAD_BYTES = 64 * 1024
FLOOD_TXS_EVERY_S = 0.5
JUNK_SIGNED_SHARE = 10  # one junk entry in this many is a well-formed tx with a bad signature
FLOOD_FUTURE_PER_TICK = 10
FLOOD_FUTURE_ROUNDS = (40, 63)  # far rounds, within the engine's MAX_ROUND_AHEAD: buffered and kept
REPLAY_PER_TICK = 5
REPLAY_KEEP = 2000  # consensus messages remembered for replay
REPLAY_TXS_EVERY_S = 0.5
REPLAY_TXS_DEPTH = 5  # replay the transactions of the block this far below the tip


# =============================================================================================
# forging (pure)
# =============================================================================================
def encode_varint(value: int) -> bytes:
    """Protobuf base-128 varint."""
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def compute_padded(raw: bytes, size: int = PAD_BYTES) -> bytes:
    """`raw` with an unknown length-delimited field PAD_FIELD of `size` bytes appended (parsers keep or skip it)."""
    return raw + encode_varint(PAD_FIELD << 3 | 2) + encode_varint(size) + b"\x00" * size


def compute_fake_block_id(salt: str) -> str:
    """A block id no block has."""
    return hashlib.sha256(f"uoc/adversary/fake/{salt}".encode()).hexdigest()


def compute_twin_vote_block_id(vote: Vote) -> str | None:
    """The block id of an equivocating twin of `vote`: nil for a block, a made-up block for nil."""
    if vote.block_id is not None:
        return None
    return compute_fake_block_id(f"{vote.validator}/{vote.height}/{vote.round}/{vote.type}")


def compute_other_txs(txs: tuple[bytes, ...]) -> tuple[bytes, ...]:
    """Other transactions than `txs`: the last one dropped, or one junk entry when there are none."""
    return txs[:-1] if txs else (b'{"junk":1}',)


def compute_twin_block(block: Block) -> Block:
    """Another block of the same height and proposer: other transactions, its header's hash recomputed."""
    txs = compute_other_txs(block.txs)
    return Block(replace(block.header, txs_hash=compute_txs_hash(txs)), txs, block.last_commit)


def compute_tampered_block(block: Block) -> Block:
    """The block with its transactions swapped and its header (so its id) unchanged: a body that lies."""
    return Block(block.header, compute_other_txs(block.txs), block.last_commit)


def compute_retimed_block(block: Block, time_ms: int) -> Block:
    """The block with another header time."""
    return Block(replace(block.header, time_ms=time_ms), block.txs, block.last_commit)


def encode_message(msg: Proposal | Vote) -> bytes:
    """The canonical protobuf of a consensus message (what an honest node sends)."""
    return codec.consensus_message_to_pb(msg).SerializeToString()


def compute_junk_txs(rng: random.Random, chain_id: str, key_seed: bytes, count: int) -> list[bytes]:
    """`count` junk BroadcastTxs entries: random bytes, and one in JUNK_SIGNED_SHARE a well-formed transaction
    of a made-up sender whose signature is wrong (it costs the receiver a signature check)."""
    from chain.crypto import PrivateKey

    key = PrivateKey(hashlib.sha256(key_seed).digest())
    out = []
    for i in range(count):
        if i % JUNK_SIGNED_SHARE:
            out.append(rng.randbytes(rng.randint(16, 300)))
            continue
        body = make_body(chain_id, key.address, rng.randint(0, 2**32), [MsgSend(to=key.address, amount=1)])
        out.append(compute_tx_bytes(compute_sign_bytes(body), key.pubkey, rng.randbytes(64)))
    return out


# =============================================================================================
# the lying node
# =============================================================================================
class LyingHandlers(Handlers):
    """The gRPC handlers of an adversary: under lie_height, Status claims LIE_HEIGHT and GetBlocks stalls."""

    node: AdversaryCore

    async def get_status(self, request: bytes, context: grpc.aio.ServicerContext) -> spb.StatusResponse:
        status = await super().get_status(request, context)
        if self.node.is_active("lie_height"):
            self.node.count("lie_height")
            status.height = LIE_HEIGHT
        return status

    async def get_blocks(self, request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[pb.BlockWithCommit]:
        if self.node.is_active("lie_height"):
            self.node.count("lie_height")
            await asyncio.sleep(STALL_S)
            return
        async for item in super().get_blocks(request, context):
            yield item


class AdversaryCore(NodeCore):
    """A NodeCore that runs the attacks of its plan's open windows (see the module docstring)."""

    grpc_handlers = LyingHandlers

    def __init__(self, *args: Any, plan: list[AttackWindow], t0: float | None, seed: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.plan, self.t0 = plan, t0
        self.rng = random.Random(f"adversary/{seed}")
        self.active: frozenset[str] = frozenset()
        self.counts: Counter[str] = Counter()
        self.equivocations: list[dict[str, Any]] = []
        self._history: deque[tuple[int, bytes]] = deque(maxlen=REPLAY_KEEP)  # (height, raw) of peers' messages
        self._tasks: set[asyncio.Task] = set()
        self._honest_relay, self._honest_gossip = self.relay.relay_consensus, self.relay.gossip
        setattr(self.relay, "relay_consensus", self._relay_consensus)  # noqa: B010 - this instance only
        setattr(self.relay, "gossip", self._gossip_out)  # noqa: B010
        self._junk = compute_junk_txs(self.rng, self.chain_id, f"junk/{seed}".encode(), MAX_BATCH_TXS)

    # -- the schedule ---------------------------------------------------------------------------
    def is_active(self, kind: str) -> bool:
        """True while a window with `kind` is open."""
        return kind in self.active

    def count(self, kind: str, n: int = 1) -> None:
        """Count `n` actions of `kind`."""
        self.counts[kind] += n

    def get_elapsed_s(self) -> float:
        """Seconds since the schedule's start (negative before the clock is known)."""
        return -1.0 if self.t0 is None else time.time() - self.t0

    def read_clock(self) -> None:
        """Take the schedule's start from HOME/attack_clock once it exists (unless --t0 gave it)."""
        path = self.home.path / CLOCK_FILE
        if self.t0 is None and path.exists():
            self.t0 = float(path.read_text())

    def update_active(self) -> None:
        """Switch the kinds of the windows open now on, the others off (logged when it changes)."""
        self.read_clock()
        active = get_active_kinds(self.plan, self.get_elapsed_s())
        if active != self.active:
            log.warning("adversary attacks now: %s", ", ".join(sorted(active)) or "none")
        self.active = active

    # -- own messages ---------------------------------------------------------------------------
    def _execute(self, actions: list[Action]) -> None:
        """Run the engine's actions in order; our own broadcasts first go through `_forge_own` (and are sent by
        the node's own Broadcast handling, whatever its relay's interface)."""
        for action in actions:
            if isinstance(action, Broadcast):
                super()._execute([replace(action, message=self._forge_own(action.message))])
            else:
                super()._execute([action])

    def _forge_own(self, msg: Proposal | Vote) -> Proposal | Vote:
        """A message our engine signed, as the open windows say: retimed, or sent after its twin (padding
        and withholding happen on the way out, in `_gossip_out`)."""
        if isinstance(msg, Proposal) and msg.pol_round == -1:
            for kind, time_ms in (("time_future", FAR_FUTURE_MS), ("time_past", FAR_PAST_MS)):
                if self.is_active(kind):
                    self.count(kind)
                    msg = self._sign_proposal(msg, compute_retimed_block(msg.block, time_ms))
                    break
        if self.is_active("equivocate"):
            self._equivocate(msg)
        return msg

    def _sign_proposal(self, msg: Proposal, block: Block) -> Proposal:
        """`msg` re-signed with our validator key for another block."""
        assert self.signer is not None
        return sign_proposal(self.signer, self.chain_id, msg.height, msg.round, msg.pol_round, block, msg.timestamp_ms)

    def _equivocate(self, msg: Proposal | Vote) -> None:
        """Sign a conflicting twin of our message and send it to every other peer (see `_send_twin`)."""
        assert self.signer is not None
        twin: Proposal | Vote
        if isinstance(msg, Vote):
            block_id = compute_twin_vote_block_id(msg)
            twin = sign_vote(self.signer, self.chain_id, msg.type, msg.height, msg.round, block_id, msg.timestamp_ms)
        else:
            twin = self._sign_proposal(msg, compute_twin_block(msg.block))
        self.count("equivocate")
        self._spawn(self._send_twin(msg, twin, self.peers[::2]))

    async def _send_twin(self, honest: Proposal | Vote, twin: Proposal | Vote, peers: list[PeerClient]) -> None:
        """Send a twin to each of `peers` (a vote's right after its honest copy, a proposal's first); a twin vote
        that a peer took as new (`Ack.relayed`: at its height, not dropped while it stops) lands where the
        honest copy already is, so it is a delivered equivocation, recorded."""
        raws = [encode_message(twin)] if isinstance(twin, Proposal) else [encode_message(honest), encode_message(twin)]

        async def send(peer: PeerClient) -> spb.Ack:
            for raw in raws[:-1]:
                with contextlib.suppress(grpc.aio.AioRpcError):
                    await peer.call("SendConsensus", raw)
            return await peer.call("SendConsensus", raws[-1])

        results = await asyncio.gather(*(send(p) for p in peers), return_exceptions=True)
        if isinstance(twin, Vote) and any(isinstance(r, spb.Ack) and r.relayed for r in results):
            entry = {"validator": twin.validator, "height": twin.height, "round": twin.round, "type": twin.type}
            entry["key"] = f"{twin.validator}/{twin.height}/{twin.round}/{twin.type}"
            self.equivocations.append(entry)

    # -- relayed messages -----------------------------------------------------------------------
    def receive_consensus(self, raw: bytes, origin: str | None = None) -> bool:
        """A peer's message, taken as an honest node does; kept for replay."""
        relayed = super().receive_consensus(raw, origin)
        if relayed:
            self._history.append((self.consensus.height, raw))
        return relayed

    def _relay_consensus(self, canonical: bytes, origin: str | None = None) -> None:
        """Relay a verified message, a proposal's body tampered while tamper_relay is on."""
        if self.is_active("tamper_relay"):
            msg = codec.consensus_message_from_pb(codec.parse_pb(pb.ConsensusMessage, canonical))
            if isinstance(msg, Proposal):
                self.count("tamper_relay")
                canonical = encode_message(replace(msg, block=compute_tampered_block(msg.block)))
        self._honest_relay(canonical, origin)

    def _gossip_out(self, what: str, payload: bytes, origin: str | None = None) -> None:
        """The relay's gossip to every peer (own messages, their re-sends and relayed ones), consensus messages
        padded with an unknown field while pad is on."""
        if what == "SendConsensus" and self.is_active("withhold") and self._is_own_vote(payload):
            self.count("withhold")
            return
        if what == "SendConsensus" and self.is_active("pad"):
            self.count("pad")
            payload = compute_padded(payload)
        self._honest_gossip(what, payload, origin)

    def _is_own_vote(self, payload: bytes) -> bool:
        """True if a consensus message is a vote this node signed."""
        parsed = pb.ConsensusMessage.FromString(payload)
        return parsed.WhichOneof("message") == "vote" and parsed.vote.validator == self.consensus.address

    # -- floods and replays -----------------------------------------------------------------------
    def _gossip(self, what: str, payload: bytes) -> None:
        """Queue one message for every peer."""
        for peer in self.peers:
            peer.send(what, payload)

    def flood_txs(self) -> None:
        """One BroadcastTxs of MAX_BATCH_TXS junk entries to every peer."""
        self.count("flood_txs")
        self._gossip("BroadcastTxs", spb.TxBatch(txs=self._junk).SerializeToString())

    def flood_future(self) -> None:
        """Signed nil prevotes for the next two heights, at far rounds, to every peer."""
        if self.signer is None:
            return
        now = time.time_ns() // 1_000_000
        for i in range(FLOOD_FUTURE_PER_TICK):
            height = self.consensus.height + 1 + i % 2
            round_ = self.rng.randint(*FLOOD_FUTURE_ROUNDS)
            vote = sign_vote(self.signer, self.chain_id, "prevote", height, round_, None, now + i)
            self._gossip("SendConsensus", encode_message(vote))
        self.count("flood_future", FLOOD_FUTURE_PER_TICK)

    def replay(self, with_txs: bool) -> None:
        """Send again some consensus messages of past heights (and, `with_txs`, the txs of an old block)."""
        old = [raw for height, raw in self._history if height < self.consensus.height]
        for raw in self.rng.sample(old, min(REPLAY_PER_TICK, len(old))):
            self._gossip("SendConsensus", raw)
            self.count("replay")
        if with_txs and self.app.height > REPLAY_TXS_DEPTH:
            row = self.store.get_block_row(self.app.height - REPLAY_TXS_DEPTH)
            txs = [bytes.fromhex(t) for t in row[1].get("txs", [])] if row is not None else []
            if txs:
                self._gossip("BroadcastTxs", spb.TxBatch(txs=txs[:MAX_BATCH_TXS]).SerializeToString())
                self.count("replay")

    async def run_attacks(self, record: Path) -> None:
        """Every TICK_S: update the open windows and run the periodic attacks; every second, record counts."""
        ticks = 0
        every_half_s = max(1, round(FLOOD_TXS_EVERY_S / TICK_S))
        while True:
            await asyncio.sleep(TICK_S)
            ticks += 1
            self.update_active()
            if self.running and not self.syncing:
                if self.is_active("flood_txs") and ticks % every_half_s == 0:
                    self.flood_txs()
                if self.is_active("flood_future"):
                    self.flood_future()
                if self.is_active("replay"):
                    self.replay(with_txs=ticks % every_half_s == 0)
            if ticks % round(1 / TICK_S) == 0:
                self.write_record(record)

    def write_record(self, record: Path) -> None:
        """Append the counts since the last line and the equivocations delivered since, then reset them."""
        t = round(self.get_elapsed_s(), 1)
        lines = [{"t": t, "equivocation": e} for e in self.equivocations]
        if self.counts:
            lines.append({"t": t, "counts": dict(sorted(self.counts.items()))})
        if lines:
            with record.open("a") as f:
                f.writelines(json.dumps(line) + "\n" for line in lines)
        self.counts.clear()
        self.equivocations.clear()

    def _spawn(self, coro: Any) -> None:
        """Run a coroutine in the background (kept referenced until done)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


# =============================================================================================
# the program
# =============================================================================================
async def run_adversary(home: Home, seed: int, kinds: tuple[str, ...], t0: float | None, until_s: float) -> None:
    """Run the adversary node of `home` until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    plan = compute_attack_plan(seed, until_s, kinds)
    make_core = partial(AdversaryCore, plan=plan, t0=t0, seed=seed)
    async with open_node(home, make_core=make_core) as node:
        assert isinstance(node, AdversaryCore)
        windows = "; ".join(w.describe() for w in plan)
        log.warning("adversary %s: %d attack windows: %s", home.config.moniker, len(plan), windows)
        record = home.path / RECORD_FILE
        task = loop.create_task(node.run_attacks(record))
        try:
            await stop.wait()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            node.write_record(record)


def build_parser() -> argparse.ArgumentParser:
    """The adversary's command line."""
    parser = argparse.ArgumentParser(prog="python -m devnet.adversary", description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", required=True, metavar="DIR", help="the node home (a validator's)")
    parser.add_argument("--seed", type=int, required=True, metavar="S", help="the attack schedule's seed")
    parser.add_argument("--attacks", default="all", metavar="KINDS", help=f"all, or some of {','.join(ATTACK_KINDS)}")
    parser.add_argument(
        "--t0", type=float, default=None, metavar="UNIX_S", help=f"the schedule's start (default: HOME/{CLOCK_FILE})"
    )
    parser.add_argument("--until", type=float, default=3600.0, metavar="S", help="no window ends later (default 3600)")
    parser.add_argument("--log-level", default=DEFAULT_LOG_LEVEL, choices=LOG_LEVELS)
    parser.add_argument("--log-format", default=DEFAULT_LOG_FORMAT, choices=LOG_FORMATS)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the adversary; a bad argument or home is one line on stderr and exit 2."""
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level, args.log_format)
    try:
        kinds = parse_attack_kinds(args.attacks)
        home = load_home(Path(args.home))
    except (ValueError, NodeError, OSError) as exc:
        print(f"adversary: {exc}", file=sys.stderr)
        return 2
    asyncio.run(run_adversary(home, args.seed, kinds, args.t0, args.until))
    return 0


if __name__ == "__main__":
    sys.exit(main())
