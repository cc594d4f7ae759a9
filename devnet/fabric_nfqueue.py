"""Delay by NFQUEUE: the netlink protocol of the kernel's packet queues, and `Delayer`, which holds
each queued packet for delay±jitter before accepting it (used by the netns fabric)."""

from __future__ import annotations

import ctypes
import errno
import heapq
import logging
import os
import selectors
import socket
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

from .errors import DevnetError
from .fabric import draw_delay

log = logging.getLogger(__name__)

CLONE_NEWNET = 0x40000000


def open_netns_socket(ns: str, family: int, kind: int, proto: int) -> socket.socket:
    """A socket created inside network namespace `ns` (by a short-lived thread that enters it)."""
    libc = ctypes.CDLL(None, use_errno=True)
    result: dict[str, Any] = {}

    def make() -> None:
        """Enter the namespace (this thread only) and create the socket."""
        try:
            fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns({ns}): {os.strerror(err)}")
            finally:
                os.close(fd)
            result["sock"] = socket.socket(family, kind, proto)
        except OSError as exc:
            result["error"] = exc

    thread = threading.Thread(target=make, name=f"netns-{ns}")
    thread.start()
    thread.join()
    if "error" in result:
        raise DevnetError(f"cannot open a socket in namespace {ns}: {result['error']}")
    return result["sock"]


NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET = 0
NFQNL_MSG_VERDICT = 1
NFQNL_MSG_CONFIG = 2
NFQA_PACKET_HDR = 1
NFQA_VERDICT_HDR = 2
NFQA_CFG_CMD = 1
NFQA_CFG_PARAMS = 2
NFQA_CFG_QUEUE_MAXLEN = 3
QUEUE_MAXLEN = 8192
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_META = 1
NF_ACCEPT = 1
NLM_F_REQUEST = 1
NLM_F_ACK = 4
NLMSG_ERROR = 2


def nl_attr(kind: int, payload: bytes) -> bytes:
    """One netlink attribute, padded to 4 bytes."""
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


def nfq_message(msg: int, queue: int, attrs: bytes, flags: int = NLM_F_REQUEST) -> bytes:
    """A nfnetlink queue message: netlink header, nfgenmsg (AF_UNSPEC, v0, queue) and attributes."""
    body = struct.pack("=BBH", socket.AF_UNSPEC, 0, socket.htons(queue)) + attrs
    return struct.pack("=IHHII", 16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | msg, flags, 0, 0) + body


def nfq_config(sock: socket.socket, queue: int, attr: bytes) -> None:
    """Send one queue config message and wait for its ack; OSError if the kernel refuses it."""
    sock.send(nfq_message(NFQNL_MSG_CONFIG, queue, attr, NLM_F_REQUEST | NLM_F_ACK))
    while True:
        data = sock.recv(65536)
        for kind, payload in nl_messages(data):
            if kind == NLMSG_ERROR:
                code = struct.unpack_from("=i", payload)[0]
                if code:
                    raise OSError(-code, f"NFQUEUE config: {os.strerror(-code)}")
                return


def nl_messages(data: bytes) -> Iterator[tuple[int, bytes]]:
    """The (type, payload) of each netlink message in a datagram."""
    offset = 0
    while offset + 16 <= len(data):
        length, kind = struct.unpack_from("=IH", data, offset)
        if length < 16:
            return
        yield kind, data[offset + 16 : offset + length]
        offset += (length + 3) & ~3


def nfq_packet_id(payload: bytes) -> int | None:
    """The packet id of a queued-packet message payload (nfgenmsg + attributes)."""
    offset = 4
    while offset + 4 <= len(payload):
        length, kind = struct.unpack_from("=HH", payload, offset)
        if length < 4:
            return None
        if kind & 0x7FFF == NFQA_PACKET_HDR:
            return struct.unpack_from("!I", payload, offset + 4)[0]
        offset += (length + 3) & ~3
    return None


def open_queue(ns: str, queue: int) -> socket.socket:
    """A netlink socket in `ns` bound to NFQUEUE `queue`, copying packet metadata only."""
    sock = open_netns_socket(ns, socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    try:
        sock.bind((0, 0))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        nfq_config(sock, queue, nl_attr(NFQA_CFG_CMD, struct.pack("!BBH", NFQNL_CFG_CMD_BIND, 0, 0)))
        nfq_config(sock, queue, nl_attr(NFQA_CFG_PARAMS, struct.pack("!IB", 0, NFQNL_COPY_META)))
        nfq_config(sock, queue, nl_attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", QUEUE_MAXLEN)))
    except OSError as exc:
        sock.close()
        raise DevnetError(f"cannot bind NFQUEUE {queue} in namespace {ns}: {exc}") from None
    return sock


QueueKey = tuple[int, int]


class Delayer:
    """Holds the packets of NFQUEUE sockets (one per delayed namespace) for delay±jitter, in a thread.

    Each packet is accepted at max(arrival + delay±jitter, the previous packet's release): delays
    are drawn per packet but a queue never reorders its packets, so TCP sees delay and jitter, not
    reordering. The iptables rules use --queue-bypass, so with no listener packets pass undelayed.
    """

    def __init__(self) -> None:
        """An idle delayer; the thread starts with the first queue."""
        self.selector = selectors.DefaultSelector()
        self.lock = threading.Lock()
        self.settings: dict[QueueKey, tuple[int, int]] = {}
        self.sockets: dict[QueueKey, socket.socket] = {}
        self.last_release: dict[QueueKey, float] = {}
        self.pending: list[tuple[float, int, QueueKey, int]] = []
        self.seq = 0
        self.wake_r, self.wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self.selector.register(self.wake_r, selectors.EVENT_READ, None)
        self.thread: threading.Thread | None = None
        self.stopping = False

    def set(self, key: QueueKey, ns: str, queue: int, delay_ms: int, jitter_ms: int) -> None:
        """Delay queue `key` (opened in `ns` on first use) by delay±jitter ms; 0 releases at once."""
        with self.lock:
            if key not in self.sockets and delay_ms > 0:
                sock = open_queue(ns, queue)
                sock.setblocking(False)
                self.sockets[key] = sock
                self.selector.register(sock, selectors.EVENT_READ, key)
            self.settings[key] = (delay_ms, jitter_ms)
            if delay_ms == 0:
                now = time.monotonic()
                self.pending = [(now if k == key else t, s, k, p) for t, s, k, p in self.pending]
                heapq.heapify(self.pending)
        if self.thread is None and self.sockets:
            self.thread = threading.Thread(target=self.loop, name="fabric-delayer", daemon=True)
            self.thread.start()
        self.wake_w.send(b"x")

    def clear(self) -> None:
        """Stop delaying: release every held packet now."""
        for key in list(self.settings):
            self.set(key, "", key[1], 0, 0)

    def loop(self) -> None:
        """Read queued packets, release them when due."""
        while not self.stopping:
            with self.lock:
                timeout = max(0.0, self.pending[0][0] - time.monotonic()) if self.pending else 1.0
            for selected, _ in self.selector.select(timeout):
                if selected.data is None:
                    try:
                        self.wake_r.recv(4096)
                    except BlockingIOError:
                        pass
                else:
                    self.receive(selected.data)
            self.release_due()

    def receive(self, key: QueueKey) -> None:
        """Queue every packet waiting on socket `key` for its release time."""
        with self.lock:
            sock = self.sockets.get(key)
            if sock is None:
                return
            while True:
                try:
                    data = sock.recv(65536)
                except BlockingIOError:
                    return
                except OSError as exc:
                    if exc.errno == errno.ENOBUFS:
                        continue
                    return
                now = time.monotonic()
                delay_ms, jitter_ms = self.settings.get(key, (0, 0))
                for kind, payload in nl_messages(data):
                    if kind != (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
                        continue
                    packet_id = nfq_packet_id(payload)
                    if packet_id is None:
                        continue
                    queue = socket.ntohs(struct.unpack_from("=H", payload, 2)[0])
                    release = max(now + draw_delay(delay_ms, jitter_ms), self.last_release.get(key, 0.0))
                    self.last_release[key] = release
                    self.seq += 1
                    heapq.heappush(self.pending, (release, self.seq, key, (queue << 32) | packet_id))

    def release_due(self) -> None:
        """Accept every held packet whose time has come."""
        with self.lock:
            now = time.monotonic()
            while self.pending and self.pending[0][0] <= now:
                _, _, key, tagged = heapq.heappop(self.pending)
                sock = self.sockets.get(key)
                if sock is None:
                    continue
                verdict = nl_attr(NFQA_VERDICT_HDR, struct.pack("!II", NF_ACCEPT, tagged & 0xFFFFFFFF))
                try:
                    sock.send(nfq_message(NFQNL_MSG_VERDICT, tagged >> 32, verdict))
                except OSError as exc:
                    log.debug("NFQUEUE verdict lost: %s", exc)

    def close(self) -> None:
        """Release every held packet, stop the thread and close the queues."""
        self.clear()
        time.sleep(0.05)
        self.stopping = True
        self.wake_w.send(b"x")
        if self.thread is not None:
            self.thread.join(timeout=5)
        self.release_due()
        with self.lock:
            for sock in self.sockets.values():
                self.selector.unregister(sock)
                sock.close()
            self.sockets.clear()
        self.selector.close()
        self.wake_r.close()
        self.wake_w.close()
