"""The proxy fault fabric: every node on 127.0.0.1, node `src` dialing node `dst` through a relay
listener of its own (`src`, `dst`) pair, run by asyncio in a background thread, which applies the
faults to the relayed bytes. Only node-to-node gRPC goes through relays, never the runner's HTTP.
Needs no privilege: the fallback when network namespaces are refused."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Callable
from typing import Any

from node.config import find_free_port

from .errors import DevnetError
from .fabric import COMMAND_TIMEOUT, Fabric, are_split, check_delay, check_groups, check_probability, draw_delay


class Relay:
    """One relayed connection from node src to node dst."""

    def __init__(self, src: int, dst: int, writers: list[asyncio.StreamWriter]) -> None:
        """A relay between these two nodes' streams."""
        self.src, self.dst, self.writers = src, dst, writers
        self.closed = False

    def cut(self) -> None:
        """Reset both sides at once."""
        self.closed = True
        for writer in self.writers:
            writer.transport.abort()


class ProxyFabric(Fabric):
    """Nodes on 127.0.0.1, node-to-node traffic through per-(src, dst) asyncio relays with faults.

    Loss: each chunk a relay reads is, with the probability (the larger of its two ends' settings),
    dropped and both connections reset; gRPC then reconnects, so loss shows as broken connections
    and retries rather than stalls. Delay: each chunk is forwarded delay±jitter ms after it was
    read (the sender's setting), in order, pipelined (not cumulative).
    """

    kind = "proxy"

    def __init__(self, run_id: str) -> None:
        """A proxy fabric with no relay yet (its thread starts in `setup`)."""
        self.run_id = run_id
        self.n = 0
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None
        self.servers: dict[tuple[int, int], tuple[asyncio.base_events.Server, int, int]] = {}
        self.relays: set[Relay] = set()
        self.groups: dict[int, int] = {}
        self.loss: dict[int, float] = {}
        self.delay: dict[int, tuple[int, int]] = {}

    def setup(self, n: int) -> None:
        """Start the relay thread and its event loop."""
        self.teardown()
        self.n = n
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fabric-proxy", daemon=True)
        self.thread.start()

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run fn on the relay loop and return its result (fn may return a coroutine, awaited)."""
        if self.loop is None:
            raise DevnetError("the proxy fabric is not set up")

        async def runner() -> Any:
            """fn's result, awaited if it is a coroutine."""
            result = fn()
            return await result if asyncio.iscoroutine(result) else result

        return asyncio.run_coroutine_threadsafe(runner(), self.loop).result(timeout=COMMAND_TIMEOUT)

    def check_node(self, i: int) -> None:
        """DevnetError unless i is a node slot."""
        if not 0 <= i < self.n:
            raise DevnetError(f"node {i} is not in the fabric (nodes 0..{self.n - 1})")

    def node_host(self, i: int) -> str:
        """Every node listens on loopback."""
        self.check_node(i)
        return "127.0.0.1"

    def free_port(self, i: int) -> int:
        """A loopback port never handed out before by this process."""
        self.check_node(i)
        return find_free_port("127.0.0.1")

    def peer_address(self, src: int, dst: int, dst_port: int) -> str:
        """The loopback address of the (src, dst) relay to dst_port, started on first use."""
        self.check_node(src)
        self.check_node(dst)
        known = self.servers.get((src, dst))
        if known is not None and known[2] == dst_port:
            return f"127.0.0.1:{known[1]}"
        port = find_free_port("127.0.0.1")

        async def start() -> asyncio.base_events.Server:
            """Listen for src's connections to dst."""
            return await asyncio.start_server(
                lambda r, w: self.relay(src, dst, dst_port, r, w), "127.0.0.1", port, reuse_address=True
            )

        try:
            server = self.call(start)
        except OSError as exc:
            raise DevnetError(f"cannot listen on 127.0.0.1:{port} for relay {src}->{dst}: {exc}") from None
        if known is not None:
            self.call(known[0].close)
        self.servers[(src, dst)] = (server, port, dst_port)
        return f"127.0.0.1:{port}"

    def wrap_command(self, i: int, argv: list[str]) -> list[str]:
        """argv unchanged: the node runs in the root namespace."""
        self.check_node(i)
        return list(argv)

    async def relay(
        self, src: int, dst: int, dst_port: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Relay one connection from src to dst unless they are partitioned."""
        if are_split(self.groups, src, dst):
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", dst_port)
        except OSError:
            writer.transport.abort()
            return
        relay = Relay(src, dst, [writer, up_writer])
        self.relays.add(relay)
        try:
            await asyncio.gather(self.pump(relay, src, reader, up_writer), self.pump(relay, dst, up_reader, writer))
        except asyncio.CancelledError:
            pass  # teardown
        finally:
            self.relays.discard(relay)
            relay.cut()

    def loss_of(self, relay: Relay) -> float:
        """The loss probability of a relay: the larger of its two ends' settings."""
        return max(self.loss.get(relay.src, 0.0), self.loss.get(relay.dst, 0.0))

    async def pump(self, relay: Relay, sender: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Forward sender's chunks with its delay, dropping-and-resetting with the loss probability."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(self.forward(relay, queue, writer))
        last = 0.0
        try:
            while True:
                try:
                    chunk = await reader.read(65536)
                except OSError:
                    relay.cut()
                if relay.closed:
                    break
                if chunk and random.random() < self.loss_of(relay):
                    relay.cut()
                    break
                delay_ms, jitter_ms = self.delay.get(sender, (0, 0))
                last = max(loop.time() + draw_delay(delay_ms, jitter_ms), last) if delay_ms else loop.time()
                queue.put_nowait((last, chunk))
                if not chunk:
                    break
        finally:
            if relay.closed:
                task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def forward(
        self, relay: Relay, queue: asyncio.Queue[tuple[float, bytes]], writer: asyncio.StreamWriter
    ) -> None:
        """Write each queued chunk at its release time; an empty chunk is the sender's EOF."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                release, chunk = await queue.get()
                if not chunk:
                    break
                await asyncio.sleep(max(0.0, release - loop.time()))
                writer.write(chunk)
                await writer.drain()
            if writer.can_write_eof() and not writer.is_closing():
                writer.write_eof()
        except OSError:
            relay.cut()

    def partition(self, groups: list[list[int]]) -> None:
        """Refuse new relays between groups and reset the existing ones."""
        group_of = check_groups(groups, self.n)

        def apply() -> None:
            """Swap the groups in and cut the relays they split."""
            self.groups = group_of
            for relay in list(self.relays):
                if are_split(group_of, relay.src, relay.dst):
                    relay.cut()

        self.call(apply)

    def set_loss(self, nodes: list[int], probability: float) -> None:
        """Each chunk to/from those nodes resets its connection with that probability."""
        check_probability(probability)
        for i in nodes:
            self.check_node(i)
        self.call(lambda: self.loss.update({i: probability for i in nodes}))

    def set_delay(self, nodes: list[int], delay_ms: int, jitter_ms: int) -> None:
        """Chunks those nodes send are forwarded delay±jitter ms after they were read."""
        check_delay(delay_ms, jitter_ms)
        for i in nodes:
            self.check_node(i)
        self.call(lambda: self.delay.update({i: (delay_ms, jitter_ms) for i in nodes}))

    def heal(self) -> None:
        """No partition, loss or delay from now on."""

        def apply() -> None:
            """Clear every fault."""
            self.groups, self.loss, self.delay = {}, {}, {}

        self.call(apply)

    def teardown(self) -> None:
        """Close every listener and relay, stop the loop and its thread."""
        if self.loop is None:
            return

        async def close_all() -> None:
            """Close the listeners, cut the relays and finish their tasks."""
            for server, _, _ in self.servers.values():
                server.close()
            for relay in list(self.relays):
                relay.cut()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            self.call(close_all)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            if self.thread is not None:
                self.thread.join(timeout=5)
            self.loop.close()
            self.loop, self.thread = None, None
            self.servers.clear()
            self.relays.clear()
            self.groups, self.loss, self.delay = {}, {}, {}

    def describe(self) -> str:
        """E.g. "proxy: 5 nodes on 127.0.0.1, 20 relays"."""
        return f"proxy: {self.n} nodes on 127.0.0.1, {len(self.servers)} relays (TCP fault proxy)"
