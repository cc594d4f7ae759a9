"""Bounded work from unauthenticated gRPC, against real nodes on loopback (issue 14 item 3): per-peer
budgets (RESOURCE_EXHAUSTED, no work), bytes per BroadcastTxs call, the future-height buffer (known
validators only, within its byte budgets), GetBlocks yielding between blocks and bounded in bytes,
GetEvidence and GetBlock bounded."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import grpc
import pytest
import pytest_asyncio

import node.consensus.engine as engine
from chain.crypto import PrivateKey
from chain.tx import MsgSend, sign_tx
from node import codec, network
from node.blocks import (
    Block,
    Commit,
    Header,
    compute_commit_hash,
    compute_txs_hash,
    make_evidence,
    sign_proposal,
    sign_vote,
)
from node.config import compute_genesis_time_ms, load_home
from node.ledger import open_ledger
from node.network import (
    MAX_BATCH_BYTES,
    MAX_BATCH_TXS,
    MAX_BLOCKS_BYTES_PER_REQUEST,
    MAX_EVIDENCE_PER_REQUEST,
    MAX_OPEN_BLOCK_STREAMS,
    PeerBudgets,
    PeerLimits,
)
from node.node import Node
from node.pb import services_pb2 as spb
from node.pb import types_pb2 as pb
from node.tls import build_channel_credentials, compute_channel_options
from tests.node.netutil import load_tls_identity, make_homes

pytestmark = pytest.mark.asyncio

H = "ab" * 32
OWN_CONNECTION = [("grpc.use_local_subchannel_pool", 1)]  # a channel of its own: another peer to the server


def raw_call(channel, path: str, response=spb.Ack):
    return channel.unary_unary(path, request_serializer=None, response_deserializer=response.FromString)


async def expect_code(call, code: grpc.StatusCode, match: str = "") -> str:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    assert info.value.code() == code, info.value.details()
    assert match in (info.value.details() or "")
    return info.value.details() or ""


def peer_channel(server: Path, client: Path, address: str, options=OWN_CONNECTION) -> grpc.aio.Channel:
    """A channel of its own to the node of home `server` at `address`, authenticated as the node of home
    `client` (whose certificate that node must have pinned)."""
    identity, target = load_tls_identity(client), load_tls_identity(server)
    credentials = build_channel_credentials(identity, target.cert_pem)
    return grpc.aio.secure_channel(address, credentials, options=[*compute_channel_options(target.node_id), *options])


@pytest.fixture
def homes(tmp_path) -> list[Path]:
    """Two validators' homes."""
    return make_homes(tmp_path, 2)


@pytest_asyncio.fixture
async def stuck(homes):
    """node0 of two validators (node1 never runs, so height 1 never commits), node1's key, and a channel to
    node0 as node0 itself (mutual TLS: the one identity a node with no running peer accepts)."""
    node = Node(load_home(homes[0]))
    await node.start()
    try:
        async with peer_channel(homes[0], homes[0], f"127.0.0.1:{node.port}") as channel:
            yield node, load_home(homes[1]).validator_key, channel
    finally:
        await node.stop(0.1)


def future_proposal(key: PrivateKey, chain_id: str, height: int, round: int, tx_bytes: int):
    """A well-formed signed proposal at `height` whose block carries one tx of `tx_bytes` (not a valid block)."""
    txs = (bytes([round % 256]) * tx_bytes,)
    header = Header(
        chain_id=chain_id,
        height=height,
        time_ms=1,
        last_block_id=H,
        last_commit_hash=compute_commit_hash(None),
        txs_hash=compute_txs_hash(txs),
        app_hash=H,
        validators_hash=H,
        proposer=key.address,
    )
    return sign_proposal(key, chain_id, height, round, -1, Block(header, txs, None), 1)


# =============================================================================================
# the future-height buffer
# =============================================================================================
async def test_a_flood_of_future_height_messages_from_a_non_validator_buffers_nothing(stuck):
    """Regression: any key's messages for h+1 and h+2 were buffered, 4,096 per height."""
    node, _, channel = stuck
    stranger = PrivateKey.from_name("stranger")
    send = raw_call(channel, "/uoc.v1.Gossip/SendConsensus")
    height = node.consensus.height
    for i in range(200):
        vote = sign_vote(stranger, node.chain_id, "prevote", height + 1 + i % 2, i // 2, None, 1)
        await expect_code(
            send(codec.consensus_message_to_pb(vote).SerializeToString(), timeout=5),
            grpc.StatusCode.INVALID_ARGUMENT,
            "not a validator at height",
        )
    assert node.consensus.future.count(height + 1) == node.consensus.future.count(height + 2) == 0


async def test_a_message_no_validator_could_have_sent_is_refused_before_it_is_decoded_or_hashed(stuck):
    """Regression: a stranger's proposal was decoded, its body hashed (16 MiB: about a second of loop time
    here) and its signature checked before its signer was looked at."""
    node, _, channel = stuck
    stranger = PrivateKey.from_name("stranger")
    proposal = future_proposal(stranger, node.chain_id, node.consensus.height, 0, 1000)
    message = codec.consensus_message_to_pb(proposal)
    message.proposal.block.txs[0] = b"swapped"  # decoding it would fail on the txs hash
    await expect_code(
        raw_call(channel, "/uoc.v1.Gossip/SendConsensus")(message.SerializeToString(), timeout=5),
        grpc.StatusCode.INVALID_ARGUMENT,
        "is not a validator at height",
    )


async def test_a_validator_flooding_the_future_buffer_stays_within_its_byte_share(stuck, monkeypatch):
    """Regression: one validator could buffer 4,096 messages of up to the message limit per height."""
    node, other, channel = stuck
    monkeypatch.setattr(engine, "MAX_FUTURE_SIGNER_BYTES", 100 * 1024)
    send = raw_call(channel, "/uoc.v1.Gossip/SendConsensus")
    height = node.consensus.height + 1
    refused = 0
    for round in range(12):  # 12 proposals of 30 KiB: 360 KiB offered
        proposal = future_proposal(other, node.chain_id, height, round, 30 * 1024)
        try:
            await send(codec.consensus_message_to_pb(proposal).SerializeToString(), timeout=5)
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT and "share of the buffer" in exc.details()
            refused += 1
    buffered = node.consensus.future.get_bytes(height)
    assert 60 * 1024 < buffered <= 100 * 1024 and refused == 12 - node.consensus.future.count(height)
    for block_id in ("cd" * 32, "ef" * 32, "12" * 32):  # three conflicting prevotes of one round: two kept
        vote = sign_vote(other, node.chain_id, "prevote", height + 1, 0, block_id, 1)
        try:
            await send(codec.consensus_message_to_pb(vote).SerializeToString(), timeout=5)
        except grpc.aio.AioRpcError as exc:
            assert "2 messages of this signer, round and type" in exc.details()
    assert node.consensus.future.count(height + 1) == engine.MAX_FUTURE_PER_SLOT


# =============================================================================================
# per-peer budgets
# =============================================================================================
async def test_a_peer_over_its_gossip_budget_gets_resource_exhausted_and_others_are_still_served(stuck, homes):
    """Regression: a peer's calls were limited only per call (entries, message size), never per peer."""
    node, other, channel = stuck
    node.server.handlers.budgets = PeerBudgets(PeerLimits(items_per_s=1.0, items_burst=5, bytes_burst=1 << 20))
    send = raw_call(channel, "/uoc.v1.Gossip/SendConsensus")
    codes = []
    for i in range(8):
        vote = sign_vote(other, node.chain_id, "prevote", node.consensus.height, node.consensus.round, None, 10 + i)
        try:
            await send(codec.consensus_message_to_pb(vote).SerializeToString(), timeout=5)
            codes.append("ok")
        except grpc.aio.AioRpcError as exc:
            codes.append(exc.code().name)
    assert codes[:5] == ["ok"] * 5 and set(codes[5:]) == {"RESOURCE_EXHAUSTED"}
    log = node.consensus._votes.get_vote_set(node.consensus.round, "prevote").votes.get(other.address, [])
    assert len(log) <= 3  # refused calls did no work (the vote log holds only what was admitted)
    second_peer = load_tls_identity(homes[1])
    node.peers[0].pins.pin(second_peer.node_id, second_peer.cert_pem)  # as dialing node1 would
    async with peer_channel(homes[0], homes[1], f"127.0.0.1:{node.port}") as second:
        await expect_code(
            raw_call(second, "/uoc.v1.Gossip/SendConsensus")(b"\xff\xff", timeout=5),
            grpc.StatusCode.INVALID_ARGUMENT,
            "malformed",
        )  # another peer has its own budget: it reaches the parser
    await asyncio.sleep(1.1)
    vote = sign_vote(other, node.chain_id, "precommit", node.consensus.height, node.consensus.round, None, 99)
    assert (await send(codec.consensus_message_to_pb(vote).SerializeToString(), timeout=5)) is not None  # refilled


async def test_a_peer_over_its_byte_budget_is_refused_before_its_batch_is_parsed(stuck):
    node, _, channel = stuck
    node.server.handlers.budgets = PeerBudgets(PeerLimits(bytes_per_s=1.0, bytes_burst=100_000))
    call = raw_call(channel, "/uoc.v1.Gossip/BroadcastTxs", spb.TxBatchAck)
    batch = spb.TxBatch(txs=[bytes([i]) * 1000 for i in range(60)]).SerializeToString()  # 60 KB each
    await call(batch, timeout=5)
    await expect_code(call(batch, timeout=5), grpc.StatusCode.RESOURCE_EXHAUSTED, "budget")
    assert node.server.handlers.rejected["BroadcastTxs"] == 1


async def test_a_broadcast_txs_call_over_the_byte_cap_is_refused_whole(stuck):
    """Regression: only the entry count was capped, so 2,000 entries of 8 KiB (16 MiB) were all checked."""
    node, _, channel = stuck
    key = PrivateKey.from_name("r")
    good = sign_tx(node.signer, node.chain_id, 0, [MsgSend(to=key.address, amount=1)])
    entries = MAX_BATCH_BYTES // 2000 + 100
    over = spb.TxBatch(txs=[good] + [bytes([i % 251]) * entries for i in range(1999)])
    assert len(over.txs) <= MAX_BATCH_TXS and len(over.SerializeToString()) > MAX_BATCH_BYTES
    call = raw_call(channel, "/uoc.v1.Gossip/BroadcastTxs", spb.TxBatchAck)
    await expect_code(call(over.SerializeToString(), timeout=10), grpc.StatusCode.RESOURCE_EXHAUSTED, "bytes")
    assert len(node.mempool) == 0  # none admitted


# =============================================================================================
# serving: GetBlocks, GetEvidence, GetBlock
# =============================================================================================
def build_big_chain(home_path, blocks: int, txs: int, tx_bytes: int) -> None:
    """Commit `blocks` blocks of `txs` junk transactions of `tx_bytes` each to a one-validator home (junk
    txs fail in the block; the block still applies), each with a commit signed by the validator."""
    home = load_home(home_path)
    key, chain_id = home.validator_key, home.genesis["chain_id"]
    time_ms = compute_genesis_time_ms(home.genesis)
    with open_ledger(home) as ledger:
        for height in range(1, blocks + 1):
            body = tuple(bytes([height, i % 256]) * (tx_bytes // 2) for i in range(txs))
            last = ledger.last
            header = Header(
                chain_id=chain_id,
                height=height,
                time_ms=time_ms + height,
                last_block_id=last[0].id if last else "",
                last_commit_hash=compute_commit_hash(last[1] if last else None),
                txs_hash=compute_txs_hash(body),
                app_hash=ledger.app.app_hash,
                validators_hash=ledger.get_validator_set(height).hash,
                proposer=key.address,
            )
            block = Block(header, body, last[1] if last else None)
            precommit = sign_vote(key, chain_id, "precommit", height, 0, block.id, time_ms + height + 1)
            ledger.apply(block, Commit(height, 0, block.id, (precommit,)))


async def test_get_blocks_of_big_blocks_yields_between_blocks_and_stops_at_its_byte_bound(tmp_path):
    """Regression: GetBlocks converted 50 blocks at a time without yielding (the event loop stalled for
    all of them) and streamed up to 500 whatever their size."""
    (home,) = make_homes(tmp_path, 1)
    build_big_chain(home, blocks=10, txs=64, tx_bytes=60 * 1024)  # about 3.75 MiB a block
    node = Node(load_home(home))
    await node.start()
    try:
        started = time.perf_counter()
        next(node.iterate_blocks_pb(5, 5))
        one_block_s = time.perf_counter() - started  # reading and converting one block
        loop = asyncio.get_running_loop()
        lags: list[float] = []
        done = asyncio.Event()

        async def ticker() -> None:
            while not done.is_set():
                at = loop.time()
                await asyncio.sleep(0.001)
                lags.append(loop.time() - at - 0.001)

        address = f"127.0.0.1:{node.port}"
        async with peer_channel(home, home, address, [("grpc.max_receive_message_length", 16 << 20)]) as channel:
            stream = channel.unary_stream(
                "/uoc.v1.BlockSync/GetBlocks",
                request_serializer=None,
                response_deserializer=pb.BlockWithCommit.FromString,
            )
            observer = peer_channel(home, home, address)
            status = raw_call(observer, "/uoc.v1.Status/GetStatus", spb.StatusResponse)
            await status(b"", timeout=5)
            tick = loop.create_task(ticker())
            heights: list[int] = []
            waits: list[float] = []
            async for item in stream(spb.BlockRange(from_height=1, to_height=10).SerializeToString(), timeout=60):
                heights.append(item.block.header.height)
                if len(heights) == 1:
                    at = loop.time()
                    await status(b"", timeout=5)  # another peer's Status is answered while the stream is served
                    waits.append(loop.time() - at)
            done.set()
            await tick
            await observer.close()
        per_block = codec.block_with_commit_to_pb(*_stored(node, 1)).ByteSize()
        expected = -(-MAX_BLOCKS_BYTES_PER_REQUEST // per_block)  # the block that passes the bound is the last
        stall = max(lags)
        assert stall < 4 * one_block_s + 0.05, f"loop stalled {stall:.3f} s; one block takes {one_block_s:.3f} s"
        assert waits[0] < 4 * one_block_s + 0.1
        assert heights == list(range(1, expected + 1)) and expected < 10
    finally:
        await node.stop(0.1)


async def test_a_peer_holds_at_most_max_open_block_streams_that_it_does_not_read(tmp_path):
    """Each GetBlocks stream a peer never reads (nor cancels, nor bounds by a deadline) keeps its next block
    and gRPC's window of it in memory on the server: the fifth at once is refused, and a cancelled one frees
    its place."""
    (home,) = make_homes(tmp_path, 1)
    build_big_chain(home, blocks=3, txs=16, tx_bytes=60 * 1024)  # about 1 MiB a block: past gRPC's window
    node = Node(load_home(home))
    await node.start()
    try:
        address = f"127.0.0.1:{node.port}"
        window = [  # a reader that keeps gRPC's stream window at 64 KiB, as a peer that reads nothing may
            ("grpc.max_receive_message_length", 16 << 20),
            ("grpc.http2.lookahead_bytes", 64 * 1024),
            ("grpc.http2.bdp_probe", 0),
        ]
        async with peer_channel(home, home, address, window) as channel:
            stream = channel.unary_stream(
                "/uoc.v1.BlockSync/GetBlocks",
                request_serializer=None,
                response_deserializer=pb.BlockWithCommit.FromString,
            )
            request = spb.BlockRange(from_height=1, to_height=3).SerializeToString()
            held = [stream(request) for _ in range(MAX_OPEN_BLOCK_STREAMS)]  # no deadline, as a hostile peer
            for call in held:
                assert (await call.read()).block.header.height == 1  # then never read again
            assert list(node.server.handlers.open_block_streams.values()) == [MAX_OPEN_BLOCK_STREAMS]  # all still open
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stream(request, timeout=5).read()
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "streams open" in info.value.details()
            held.pop().cancel()
            for _ in range(100):  # the server sees the cancellation at its next loop turns
                await asyncio.sleep(0.01)
                if sum(node.server.handlers.open_block_streams.values()) < MAX_OPEN_BLOCK_STREAMS:
                    break
            freed = stream(request, timeout=5)
            assert (await freed.read()).block.header.height == 1
            freed.cancel()
            for call in held:
                call.cancel()
    finally:
        await node.stop(0.1)


def _stored(node: Node, height: int):
    row = node.store.get_block_row(height)
    return Block.from_json(row[1]), Commit.from_json(row[2])


async def test_get_evidence_answers_at_most_a_page_and_get_block_refuses_a_malformed_request(stuck):
    node, other, channel = stuck
    for height in range(1, MAX_EVIDENCE_PER_REQUEST + 21):
        a = sign_vote(other, node.chain_id, "prevote", height, 0, "cd" * 32, 1)
        b = sign_vote(other, node.chain_id, "prevote", height, 0, "ef" * 32, 1)
        evidence = make_evidence(a, b)
        node.store.add_evidence(evidence.key, height, evidence.to_json())
    get_evidence = raw_call(channel, "/uoc.v1.Status/GetEvidence", spb.EvidenceList)
    page = await get_evidence(spb.EvidenceRequest(from_height=0).SerializeToString(), timeout=5)
    assert len(page.evidence) == MAX_EVIDENCE_PER_REQUEST
    last = page.evidence[-1].vote_a.height
    rest = await get_evidence(spb.EvidenceRequest(from_height=last + 1).SerializeToString(), timeout=5)
    assert len(rest.evidence) == 20
    get_block = raw_call(channel, "/uoc.v1.BlockSync/GetBlock", pb.Block)
    for request in (spb.GetBlockRequest(height=0), spb.GetBlockRequest(height=1, block_id="x" * 5000)):
        await expect_code(get_block(request.SerializeToString(), timeout=5), grpc.StatusCode.INVALID_ARGUMENT, "bad")


# =============================================================================================
# the budgets themselves (unit)
# =============================================================================================
async def test_a_budget_refuses_without_spending_refills_with_time_and_tracks_a_bounded_number_of_peers(
    monkeypatch,
):
    now = [0.0]
    budgets = PeerBudgets(
        PeerLimits(items_per_s=2.0, items_burst=4, bytes_per_s=100.0, bytes_burst=1000), lambda: now[0]
    )
    assert budgets.take("p", "gossip", 4, 1000)
    assert not budgets.take("p", "gossip", 1, 0)  # items spent
    assert budgets.take("q", "gossip", 1, 0) and budgets.take("p", "serve", 1, 0)  # per peer and per kind
    now[0] = 1.0
    assert not budgets.take("p", "gossip", 1, 101)  # 2 items are back but only 100 bytes: nothing spent
    assert budgets.take("p", "gossip", 2, 100)
    assert budgets.take_bytes_after("q", "serve", 5000)  # an answer may overdraw once …
    assert not budgets.take_bytes_after("q", "serve", 1)  # … and is refused until it is paid back
    monkeypatch.setattr(network, "MAX_TRACKED_PEERS", 3)
    for i in range(10):
        budgets.take(f"peer{i}", "gossip", 1, 0)
    assert len(budgets._budgets) == 6
