"""The sockmap splicer: user-space side of native/xdp/splice.bpf.c (see docs/splice.md).

One ``Splicer`` per worker process: it loads the BPF object, attaches the stream verdict
to the worker's SOCKHASH, and offers what the shell needs:

* ``attach(sock)`` puts a socket in the map (and creates its zeroed counters); from then on
  every byte it receives goes through the verdict. Offsets of a socket's stream count from
  this moment: bytes still queued at attach time go through the verdict too (tcp_bpf reads
  the old receive queue through it), so "bytes user space read since attach" and the BPF
  program's ``seen`` count the same stream.
* ``arm(src, peer, start, end)`` asks the kernel to send ``src``'s stream bytes
  [start, end) out of ``peer``; returns the arming's ``gen``.
* ``events()``: the ring buffer's fd is added to the event loop; each completed bounded
  arming calls ``on_end(cookie, gen, end)``.
* ``redirected_in(cookie)`` + ``queued_bytes(sock)`` answer "has every byte the kernel
  redirected out of this socket reached its TCP send queue?", which the shell checks before
  it writes, shuts down or closes that socket itself (redirected bytes travel through a
  kernel work queue and could otherwise be overtaken or lost).

``open_splicer(mode)`` returns None where BPF is not permitted (mode "auto"), logging one
line; mode "sockmap" raises instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import errno
import fcntl
import itertools
import logging
import socket
import struct
import termios
from collections.abc import Callable
from typing import Any, cast

from ..api import Address
from ..bpf import BpfError, BpfObject, build_object
from ..errors import MiresgaError
from .splice_layout import (
    ARM_RANGE,
    ARM_RESPONSE,
    CTL,
    EV_HEAD,
    EVENT,
    MAP_CTL,
    MAP_EVENTS,
    MAP_SOCKS,
    MAP_STATE,
    PROG_VERDICT,
    STATE,
)

__all__ = [
    "SO_RCVBUFFORCE", "SO_SNDBUFFORCE", "SPLICE_BUF", "SPLICE_MIN_BODY", "SpliceSide", "Splicer",
    "connect_for_splice", "forget_side", "open_splicer", "queued_bytes", "quickack",
    "raw_socket", "socket_cookie",
]

log = logging.getLogger("miresga.kernel")

SO_COOKIE = 57  # asm-generic/socket.h
SO_SNDBUFFORCE, SO_RCVBUFFORCE = 32, 33  # asm-generic/socket.h; need CAP_NET_ADMIN
SPLICE_BUF = 4 << 20  # socket buffers of spliced sockets (see connect_for_splice)
# Default of [dataplane.kernel] splice_min_body: shorter response bodies are relayed.
SPLICE_MIN_BODY = 16 << 10
BPF_SK_SKB_STREAM_VERDICT = 5  # enum bpf_attach_type
_TCP_INFO_BYTES_ACKED = 120  # offsetof(struct tcp_info, tcpi_bytes_acked)
_SIOCOUTQ = termios.TIOCOUTQ  # same number as SIOCOUTQ on Linux

_SAMPLE_CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)


def _libbpf() -> ctypes.CDLL:
    """Our own handle on libbpf for the calls miresga_core.bpf does not wrap (yet)."""
    so = ctypes.CDLL(ctypes.util.find_library("bpf") or "libbpf.so.1", use_errno=True)
    protos = {
        "bpf_prog_attach": (ctypes.c_int, [ctypes.c_int, ctypes.c_int, ctypes.c_int,
                                           ctypes.c_uint]),
        "ring_buffer__new": (ctypes.c_void_p, [ctypes.c_int, _SAMPLE_CB, ctypes.c_void_p,
                                               ctypes.c_void_p]),
        "ring_buffer__consume": (ctypes.c_int, [ctypes.c_void_p]),
        "ring_buffer__epoll_fd": (ctypes.c_int, [ctypes.c_void_p]),
        "ring_buffer__free": (None, [ctypes.c_void_p]),
    }
    for name, (restype, argtypes) in protos.items():
        fn = getattr(so, name)
        fn.restype, fn.argtypes = restype, argtypes
    return so


def socket_cookie(sock: socket.socket) -> int:
    return int.from_bytes(sock.getsockopt(socket.SOL_SOCKET, SO_COOKIE, 8), "little")


def _key(cookie: int) -> bytes:
    return cookie.to_bytes(8, "little")


class Splicer:
    """One loaded splice program and its maps (one per worker process)."""

    def __init__(self) -> None:
        self.lib = _libbpf()
        self.obj = BpfObject.load_file(build_object("splice"))
        try:
            self.socks = self.obj.map(MAP_SOCKS)
            self.ctl = self.obj.map(MAP_CTL)
            self.state = self.obj.map(MAP_STATE)
            ret = self.lib.bpf_prog_attach(self.obj.program(PROG_VERDICT).fd, self.socks.fd,
                                           BPF_SK_SKB_STREAM_VERDICT, 0)
            if ret < 0:
                raise BpfError(-ret, f"attach {PROG_VERDICT} to {MAP_SOCKS}")
            self._events: list[tuple[int, int, int, int, bytes]] = []
            self._polling = False
            self._cb = _SAMPLE_CB(self._sample)  # keep a reference: libbpf holds the pointer
            self.rb = self.lib.ring_buffer__new(self.obj.map(MAP_EVENTS).fd, self._cb, None,
                                                None)
            if not self.rb:
                raise BpfError(ctypes.get_errno() or errno.EINVAL, "ring_buffer__new")
        except BaseException:
            self.obj.close()
            raise
        self._gens = itertools.count(1)
        self.on_end: Callable[[int, int, int], None] = lambda cookie, gen, end: None
        self.on_head: Callable[[int, int, int, bytes], None] = \
            lambda cookie, gen, end, head: None

    # ----------------------------------------------------------------- sockets

    def attach(self, sock: socket.socket) -> int:
        """Put ``sock`` in the sockhash; returns its cookie."""
        cookie = socket_cookie(sock)
        self.state.update(_key(cookie), bytes(STATE.size))
        try:
            self.socks.update(_key(cookie), sock.fileno().to_bytes(8, "little"))
        except BpfError:
            self.state.delete(_key(cookie))
            raise
        return cookie

    def forget(self, cookie: int) -> None:
        """The socket is closing: drop its arming and counters (the sockhash drops it)."""
        if self.rb is None:
            return  # the splicer is closed (worker shutting down)
        self.ctl.delete(_key(cookie))
        self.state.delete(_key(cookie))

    def arm(self, src: int, peer: int, start: int, end: int) -> int:
        gen = next(self._gens)
        self.ctl.update(_key(src), CTL.pack(peer=peer, start=start, end=end, gen=gen,
                                            mode=ARM_RANGE))
        return gen

    def arm_response(self, src: int, peer: int, start: int, min_body: int) -> int:
        """Splice the next HTTP/1.1 response of ``src`` (at stream offset ``start``) whole,
        if the program can parse its head and its body has >= ``min_body`` bytes."""
        gen = next(self._gens)
        self.ctl.update(_key(src), CTL.pack(peer=peer, start=start, end=start, gen=gen,
                                            mode=ARM_RESPONSE, min_body=min_body))
        return gen

    def disarm(self, src: int) -> None:
        if self.rb is not None:
            self.ctl.delete(_key(src))

    def counters(self, cookie: int) -> dict[str, int]:
        raw = self.state.lookup(_key(cookie))
        return STATE.unpack(raw) if raw is not None else {}

    def redirected_in(self, cookie: int) -> int:
        raw = self.state.lookup(_key(cookie))
        return STATE.unpack(raw)["redirected_in"] if raw is not None else 0

    # ----------------------------------------------------------------- events

    @property
    def events_fd(self) -> int:
        return int(self.lib.ring_buffer__epoll_fd(self.rb))

    def poll_events(self) -> None:
        """Drain the ring buffer; call ``on_head`` / ``on_end`` for each event, in order
        (the event-loop reader, and called before reading counters). Not re-entrant."""
        if self._polling or self.rb is None:
            return
        self._polling = True
        try:
            self.lib.ring_buffer__consume(self.rb)
            while self._events:
                kind, cookie, gen, end, head = self._events.pop(0)
                if kind == EV_HEAD:
                    self.on_head(cookie, gen, end, head)
                else:
                    self.on_end(cookie, gen, end)
        finally:
            self._polling = False

    def _sample(self, ctx: int, data: int, size: int) -> int:
        raw = ctypes.string_at(data, EVENT.size)
        f = EVENT.unpack(raw)
        head = raw[8 * len(EVENT.fields): 8 * len(EVENT.fields) + f["head_len"]]
        self._events.append((f["kind"], f["cookie"], f["gen"], f["end"], head))
        return 0

    def close(self) -> None:
        if self.rb:
            self.lib.ring_buffer__free(self.rb)
            self.rb = None
        self.obj.close()


_TCP_ESTABLISHED, _TCP_CLOSE_WAIT = 1, 8  # include/net/tcp_states.h


def queued_bytes(sock: socket.socket, syn: int = 0) -> int | None:
    """Bytes this TCP socket ever queued for sending: acked + still in the send queue;
    None when the socket can no longer send (reset, or closed: tcpi_state is neither
    ESTABLISHED nor CLOSE_WAIT). Then redirected bytes still in the kernel's work queue are
    dropped, nothing can be overtaken any more, and waiting for them would spin until the
    drain deadline (it did, for 5 s after every benchmark cell whose client went away).

    tcp_info is read before SIOCOUTQ: an ACK in between only makes the sum smaller, so the
    answer never exceeds the truth ("drained" is never claimed early). ``tcpi_bytes_acked``
    of a socket that connected (active open) counts its SYN: pass ``syn=1`` for those.
    """
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_BYTES_ACKED + 8)
    if info[0] not in (_TCP_ESTABLISHED, _TCP_CLOSE_WAIT):
        return None
    acked = struct.unpack_from("<Q", info, _TCP_INFO_BYTES_ACKED)[0]
    outq = struct.unpack("i", fcntl.ioctl(sock.fileno(), _SIOCOUTQ, b"\0\0\0\0"))[0]
    return int(acked) - syn + outq


def open_splicer(mode: str) -> Splicer | None:
    """The splicer for ``mode`` ("auto" | "sockmap" | "relay"); None means relay."""
    if mode == "relay":
        return None
    try:
        return Splicer()
    except (BpfError, MiresgaError, OSError) as exc:
        if mode == "sockmap":
            raise MiresgaError(f"splice = \"sockmap\" but the splice program cannot be "
                               f"loaded: {exc}") from None
        log.info("sockmap splice not available (%s): relaying in user space",
                 str(exc).splitlines()[0])
        return None


# --------------------------------------------------------------------------- shell side


class SpliceSide:
    """One socket's part in splicing: its cookie and where user space is in its stream.

    ``rx`` counts bytes user space read since the socket joined the sockhash and ``spliced``
    the bytes the kernel redirected out of its peer that we have accounted for, so
    ``rx + spliced`` is the stream offset the BPF program calls ``seen`` once nothing is in
    flight. ``written`` counts bytes we wrote to the socket ourselves.
    """

    __slots__ = ("cookie", "pending_in", "rx", "spliced", "syn", "written")

    def __init__(self, syn: int = 0) -> None:
        self.cookie: int | None = None
        self.syn = syn  # 1 for a socket we connected: its tcpi_bytes_acked counts the SYN
        self.rx = 0
        self.spliced = 0
        self.written = 0
        self.pending_in = False  # the kernel may have redirected bytes out of this socket

    @property
    def pos(self) -> int:
        return self.rx + self.spliced


async def connect_for_splice(loop: asyncio.AbstractEventLoop, address: Address
                             ) -> socket.socket:
    """A backend socket whose receive buffer is set *before* connecting.

    Bytes redirected in the kernel stay charged to this socket until a kernel worker has
    sent them on, and nothing reads the socket, so receive-window autotuning never grows
    it and window updates wait for the delayed-ACK timer (40 ms stalls per window on a
    veth). The window clamp is fixed at connect time, so the buffer must be large then.
    """
    family = socket.AF_INET6 if address.family_v6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, SPLICE_BUF)
        await loop.sock_connect(sock, (address.host, address.port))
    except BaseException:
        sock.close()
        raise
    return sock


def quickack(transport: Any) -> None:
    """ACK the backend at once for a while. Redirected bytes free their receive memory
    later (when a kernel worker has sent them), which sends no window update; with
    delayed ACKs the backend then stalls up to 40 ms per window (measured: 1 MiB keep-alive
    responses over veth went from 29 to 77 per second with this)."""
    with contextlib.suppress(OSError, AttributeError):
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)


def forget_side(splicer: Splicer | None, side: SpliceSide) -> None:
    if splicer is not None and side.cookie is not None:
        splicer.forget(side.cookie)
        side.cookie = None


def raw_socket(sock: Any) -> socket.socket:
    """asyncio hands out a TransportSocket wrapper; the splicer needs getsockopt/fileno,
    which both have. (uvloop gives a real socket.)"""
    return cast(socket.socket, sock)
