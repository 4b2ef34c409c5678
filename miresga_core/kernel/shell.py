"""The I/O shell of the ``kernel`` data plane: asyncio protocols around sans-I/O sessions.

``ClientConnection`` owns one accepted socket and its session; it carries out the session's
actions (miresga_core/session.py). ``BackendConnection`` is one connection to a backend,
either serving a client or idle in the ``ConnectionPool`` (keep-alive to servers). A
multiplexed session's backend legs are handled by ``mux.Legs`` (HTTP/2 terminated).
Flow control is the transports' own: when one side's write buffer is full, reading from the
other side pauses. Relaying copies each chunk once, from one socket buffer to the other;
the in-kernel splice (sockmap, miresga_core/kernel/splice.py) replaces that copy where BPF
is permitted: ``SpliceResponse(n)`` arms the backend socket for the next ``n`` bytes,
``Tunnel`` arms both sockets without an end. Bytes the kernel redirects never reach
``data_received``; the shell learns about them from the ring buffer (an arming reached its
end) or from the BPF counters, and reports them with ``session.on_spliced``. Ordering: an
arming starts only when the client's user-space write buffer is empty (the BPF side checks
that no unread byte is queued), and nothing is written to, shut down or closed on a socket
before every byte the kernel redirected out of it reached its TCP send queue (``run``
waits: ``_drained``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import typing
from collections import deque
from collections.abc import Callable
from typing import Any

from ..api import Address, Backend
from ..session import (
    Action,
    CloseClient,
    Connect,
    HalfClose,
    Log,
    Pause,
    Release,
    Resume,
    SendBackend,
    SendClient,
    SpliceNextResponse,
    SpliceResponse,
    Stats,
    Timer,
    Tunnel,
)
from .splice import (
    SO_RCVBUFFORCE,
    SO_SNDBUFFORCE,
    SPLICE_BUF,
    SPLICE_MIN_BODY,
    Splicer,
    SpliceSide,
    connect_for_splice,
    forget_side,
    queued_bytes,
    quickack,
    raw_socket,
)
from .splice_layout import END_UNBOUNDED

__all__ = ["BackendConnection", "ClientConnection", "ConnectionPool"]

log = logging.getLogger("miresga.kernel")
_MAX_IDLE_PER_BACKEND = 64
_SPLICE_RCVBUF = 64 * 1024
_DEBUG = bool(os.environ.get("MIRESGA_SPLICE_DEBUG"))
_DRAIN_DEADLINE = 5.0  # seconds to wait for redirected bytes before writing anyway
_DRAIN_POLL = 0.001  # seconds between looks while waiting for them
_WRITES_TO_CLIENT = (SendClient, CloseClient)


class ConnectionPool:
    """Idle keep-alive connections to backends, most recently used first."""

    def __init__(self, splicer: Splicer | None = None, stats: Stats | None = None,
                 splice_min_body: int = SPLICE_MIN_BODY) -> None:
        self.idle: dict[tuple[Address, str], list[BackendConnection]] = {}
        self.splicer = splicer
        self.splice_min_body = splice_min_body  # shorter bodies are relayed (docs/splice.md)
        self.stats = stats if stats is not None else Stats()  # byte counters of the worker
        self.by_cookie: dict[int, BackendConnection] = {}  # attached backend sockets
        if splicer is not None:
            splicer.on_end = self._splice_end
            splicer.on_head = self._splice_head

    def _splice_end(self, cookie: int, gen: int, end: int) -> None:
        conn = self.by_cookie.get(cookie)
        if conn is not None and conn.owner is not None:
            conn.owner.splice_end(conn, gen, end)

    def _splice_head(self, cookie: int, gen: int, end: int, head: bytes) -> None:
        conn = self.by_cookie.get(cookie)
        if conn is not None and conn.owner is not None:
            conn.owner.splice_head(conn, gen, end, head)

    def take(self, address: Address, kind: str = "http1") -> BackendConnection | None:
        conns = self.idle.get((address, kind))  # an h2 connection never serves http1
        while conns:
            conn = conns.pop()
            if conn.usable():
                return conn
        return None

    def give(self, conn: BackendConnection) -> None:
        conns = self.idle.setdefault((conn.address, conn.kind), [])
        if len(conns) >= _MAX_IDLE_PER_BACKEND or not conn.usable():
            conn.close()
            return
        conn.owner = None
        conns.append(conn)

    def forget(self, conn: BackendConnection) -> None:
        conns = self.idle.get((conn.address, conn.kind))
        if conns and conn in conns:
            conns.remove(conn)

    def close_all(self) -> None:
        for conns in self.idle.values():
            for conn in conns:
                conn.close()
        self.idle.clear()


class BackendConnection(asyncio.Protocol):
    def __init__(self, address: Address, pool: ConnectionPool, leg: int = 0,
                 kind: str = "http1") -> None:
        self.address = address
        self.pool = pool
        self.leg, self.kind = leg, kind
        self.state: Any = None  # a multiplexed session's protocol state, while pooled
        self.owner: ClientConnection | None = None
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.side = SpliceSide(syn=1)  # we connect backend sockets
        # A server that speaks first (HTTP/2 SETTINGS) may send before the connecting task
        # has resumed and handed the connection to its session: hold those bytes until then.
        self.ready = True
        self.early = bytearray()
        self.early_eof = False

    def usable(self) -> bool:
        return not self.closed and self.transport is not None and not self.transport.is_closing()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.Transport, transport)  # uvloop's is duck-typed
        _nodelay(transport)

    def data_received(self, data: bytes) -> None:
        self.side.rx += len(data)
        if not self.ready:
            self.early += data
        elif self.owner is not None:
            self.owner.from_backend(self, data)
        else:  # an idle connection must not speak: drop it
            self.close()

    def eof_received(self) -> bool:
        if not self.ready:
            self.early_eof = True
            return True
        if self.owner is not None:
            self.owner.backend_eof(self)
            return True  # half-open: the client side may still send (tunnels)
        self.close()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        owner, self.owner = self.owner, None
        self.pool.forget(self)
        forget_side(self.pool.splicer, self.side)
        if self.side.cookie is not None:
            self.pool.by_cookie.pop(self.side.cookie, None)
        if owner is not None:
            owner.backend_eof(self)

    def pause_writing(self) -> None:
        if self.owner is not None:
            self.owner.pause_client_reading()

    def resume_writing(self) -> None:
        if self.owner is not None:
            self.owner.resume_client_reading()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class ClientConnection(asyncio.Protocol):
    """One client connection: drives its session and carries out the actions."""

    def __init__(self, new_session: Callable[[Address | None], Any], pool: ConnectionPool,
                 registry: set[ClientConnection]) -> None:
        self.new_session = new_session
        self.pool = pool
        self.registry = registry
        self.session: Any = None
        self.mux: Any = None  # mux.Legs of a multiplexed session
        self.transport: asyncio.Transport | None = None
        self.backend: BackendConnection | None = None
        self.connecting: asyncio.Task[Any] | None = None
        # lazy timers: name -> deadline, one loop handle for the earliest (re-arming a timer
        # on every request would otherwise create and cancel several handles per request)
        self.deadlines: dict[str, float] = {}
        self.timer_handle: asyncio.TimerHandle | None = None
        self.timer_at = 0.0
        # writes of one run() are joined into one send per side
        self.client_out: list[bytes] = []
        self.backend_out: list[bytes] = []
        self.queue: deque[Action] = deque()
        self.running = False
        self.closed = False
        self.tunnel = False
        self.reading_paused = False
        self.loop = asyncio.get_event_loop()
        self.side = SpliceSide()
        self.arm_end: int | None = None  # stream offset the backend arming runs to
        self.arm_gen = 0
        # the pending response arming: (backend stream offset it starts at, whether the
        # client socket still had redirected bytes in flight before it)
        self.response_arm: tuple[int, bool] | None = None
        self.client_armed = False  # tunnel: client -> backend armed
        self.blocked = False  # run() waits for redirected bytes to drain
        self.block_since = 0.0
        self.drain_polls = 0  # looks at the send queue since the wait began

    # ----------------------------------------------------------------- client events

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.Transport, transport)
        _nodelay(transport)
        peer = transport.get_extra_info("peername")
        client = Address(peer[0], peer[1]) if peer else None
        self.registry.add(self)
        self.session = self.new_session(client)
        if getattr(self.session, "multiplexed", False):
            from .mux import Legs

            self.mux = Legs(self)
        self.run(self.session.on_start(time.monotonic()))

    def data_received(self, data: bytes) -> None:
        self.side.rx += len(data)
        if _DEBUG:
            log.warning("%.6f client data %d", time.monotonic(), len(data))
        self.run(self.session.on_client_data(data, time.monotonic()))
        if self.client_armed:
            self._arm_client()  # bytes came through user space: the arming was declined

    def eof_received(self) -> bool:
        self.run(self.session.on_client_eof(time.monotonic()))
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.registry.discard(self)
        self.deadlines.clear()
        if self.timer_handle is not None:
            self.timer_handle.cancel()
        self._drop_backend()
        forget_side(self.pool.splicer, self.side)

    def pause_writing(self) -> None:  # the client is slow: stop reading the backend
        if self.mux is not None:
            return self.mux.reading(False)
        if self.backend is not None and self.backend.transport is not None:
            self.backend.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.mux is not None:
            return self.mux.reading(True)
        if self.backend is not None and self.backend.transport is not None:
            self.backend.transport.resume_reading()
            if self.arm_end is not None:
                self._catch_up_and_arm()

    def _wait_for_empty_buffer(self, on: bool) -> None:
        """While an arming waits, stop reading the backend whenever our own write buffer to
        the client holds anything (pause at > 0, resume at 0), and arm when it is empty."""
        if self.transport is not None and not self.closed:
            if on:
                self.transport.set_write_buffer_limits(high=0, low=0)
            else:
                self.transport.set_write_buffer_limits()

    def pause_client_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.pause_reading()

    def resume_client_reading(self) -> None:
        if self.transport is not None and not self.closed and not self.reading_paused:
            self.transport.resume_reading()

    # ----------------------------------------------------------------- backend events

    def from_backend(self, conn: BackendConnection, data: bytes) -> None:
        if self.mux is not None:
            return self.mux.data(conn, data)
        if conn is not self.backend:
            return
        self.pool.stats.relayed_bytes += len(data)
        self._response_arm_passed(conn, len(data))
        if self.arm_end is None and not self.tunnel:
            self.run(self.session.on_backend_data(data, time.monotonic()))
            return
        self._sync_spliced(conn)
        self.run(self.session.on_backend_data(data, time.monotonic()))
        self._catch_up_and_arm()  # declined or crossed: arm again from here

    def backend_eof(self, conn: BackendConnection) -> None:
        if self.mux is not None:
            return self.mux.eof(conn)
        if conn is self.backend:
            if self.arm_end is not None:
                self._sync_spliced(conn)
            self.run(self.session.on_backend_eof(time.monotonic()))

    # ----------------------------------------------------------------- splicing

    def _response_arm_passed(self, conn: BackendConnection, nbytes: int) -> None:
        """Bytes of the backend stream reached user space while a response arming waited.
        If they start at the arming's offset, the program passed that response (it decides
        on its first skb for the whole response), so nothing was redirected under this
        arming: the client socket is as drained as it was before it, and the drain check
        before our write (two syscalls and a map lookup) can be skipped."""
        arm, self.response_arm = self.response_arm, None
        if arm is None:
            return
        start, was_pending = arm
        if conn.side.pos - nbytes == start and not was_pending:
            self.side.pending_in = False

    def splice_head(self, conn: BackendConnection, gen: int, end: int, head: bytes) -> None:
        """Ring buffer: the program parsed and forwarded the response head of arming
        ``gen``; the response ends at stream offset ``end``."""
        if conn is not self.backend or gen != self.arm_gen:
            return
        if _DEBUG:
            log.warning("%.6f head gen=%d end=%d", time.monotonic(), gen, end)
        self.arm_end = end
        self.response_arm = None
        quickack(conn.transport)
        conn.side.spliced += len(head)  # the head is accounted for here, not as body
        self.pool.stats.spliced_bytes += len(head)
        self.run(self.session.on_response_head_spliced(head, time.monotonic()))
        # the body is reported by the EV_END event (or _sync_spliced on EOF)

    def splice_end(self, conn: BackendConnection, gen: int, end: int) -> None:
        """Ring buffer: the backend arming ``gen`` reached ``end``: every byte from where
        we are to ``end`` was redirected (no counter lookup needed)."""
        if conn is not self.backend or gen != self.arm_gen or self.arm_end is None:
            return
        delta = end - conn.side.pos
        if _DEBUG:
            log.warning("%.6f end gen=%d delta=%d", time.monotonic(), gen, delta)
        conn.side.spliced += max(delta, 0)
        self.arm_end = None
        if delta > 0:
            self.pool.stats.spliced_bytes += delta
            if not self.tunnel:
                self.run(self.session.on_spliced(delta, time.monotonic()))

    def _sync_spliced(self, conn: BackendConnection) -> None:
        """Report the bytes the kernel forwarded since we last looked."""
        splicer = self.pool.splicer
        if splicer is None or conn.side.cookie is None:
            return
        splicer.poll_events()  # a head event must be handled before its bytes are counted
        if self.backend is not conn:
            return
        total = splicer.counters(conn.side.cookie).get("spliced", conn.side.spliced)
        delta = total - conn.side.spliced
        conn.side.spliced = total
        if self.arm_end is not None and conn.side.pos >= self.arm_end:
            self.arm_end = None
        if delta > 0:
            self.pool.stats.spliced_bytes += delta
            if not self.tunnel:
                self.run(self.session.on_spliced(delta, time.monotonic()))

    def _attach(self, side: SpliceSide, transport: asyncio.BaseTransport | None) -> bool:
        splicer = self.pool.splicer
        if splicer is None or transport is None or transport.is_closing():
            return False
        if side.cookie is None:
            sock = transport.get_extra_info("socket")
            try:
                side.cookie = splicer.attach(raw_socket(sock))
            except OSError:  # e.g. EOPNOTSUPP: the peer closed, the socket left ESTABLISHED
                return False
            # When a redirect finds the send buffer full, the kernel retries one jiffy later
            # (sk_psock_backlog: 4 ms at HZ=250): a send buffer that holds a large response
            # keeps that off the fast path.
            # Redirected bytes are not "read" by anyone, so TCP receive-buffer autotuning
            # never grows the source socket's window: fix both buffers at a size that
            # holds a large response.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, SPLICE_BUF)
                sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, SPLICE_BUF)
            side.rx = side.spliced = 0
        return True

    def _catch_up_and_arm(self, max_reads: int = 16) -> None:
        """Read what the backend socket has queued (relaying it), then arm at once.

        An arming is only taken by the kernel when no received byte waits unread (else it
        is declined); a backend sending a large body keeps the queue full, so we empty it
        ourselves right before arming instead of waiting for a quiet moment.
        """
        conn = self.backend
        if _DEBUG:
            log.warning("catch-up %s %s %s %s", conn is None, self.arm_end, self.blocked,
                        self.running)
        if conn is None or conn.transport is None or self.arm_end is None or self.blocked:
            return
        fd = conn.transport.get_extra_info("socket").fileno()
        for _ in range(max_reads):  # bounded: the kernel may keep up with us
            if self.running or self.backend is not conn or self.arm_end is None or \
                    self.transport is None or self.transport.get_write_buffer_size() > 0:
                return
            try:
                data = os.read(fd, _SPLICE_RCVBUF * 4)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                return
            if not data:
                return  # EOF: the transport sees it too and reports it
            conn.side.rx += len(data)
            self.pool.stats.relayed_bytes += len(data)
            self._sync_spliced(conn)
            self.run(self.session.on_backend_data(data, time.monotonic()))
            if len(data) < _SPLICE_RCVBUF // 2:
                break  # the queue was (nearly) empty: arm now, before it refills
        self._arm_backend()

    def _arm_backend(self) -> None:
        conn = self.backend
        if conn is None or self.transport is None or self.arm_end is None or self.closed:
            return
        if self.client_out or self.transport.get_write_buffer_size() > 0 or \
                conn.side.pos >= self.arm_end:
            return  # our own writes would be overtaken; try again on the next chunk
        if not (self._attach(conn.side, conn.transport) and
                self._attach(self.side, self.transport)):
            return
        assert conn.side.cookie is not None and self.side.cookie is not None
        self.pool.by_cookie[conn.side.cookie] = conn
        assert self.pool.splicer is not None
        self.arm_gen = self.pool.splicer.arm(conn.side.cookie, self.side.cookie,
                                             conn.side.pos, self.arm_end)
        if _DEBUG:
            log.warning("arm %d %d %d %s", self.arm_gen, conn.side.pos, self.arm_end,
                        self.pool.splicer.counters(conn.side.cookie))
        self.side.pending_in = True

    def _arm_client(self) -> None:
        """Tunnel: client -> backend in the kernel as well."""
        conn = self.backend
        if conn is None or conn.transport is None or self.closed or self.backend_out or \
                conn.transport.get_write_buffer_size() > 0:
            return
        if not (self._attach(conn.side, conn.transport) and
                self._attach(self.side, self.transport)):
            return
        assert conn.side.cookie is not None and self.side.cookie is not None
        assert self.pool.splicer is not None
        self.pool.splicer.arm(self.side.cookie, conn.side.cookie, self.side.pos, END_UNBOUNDED)
        conn.side.pending_in = True

    def _drained(self, side: SpliceSide, transport: asyncio.Transport | None) -> bool:
        """Every byte redirected out of this socket is in its TCP send queue."""
        splicer = self.pool.splicer
        if not side.pending_in or splicer is None or side.cookie is None or transport is None:
            return True
        sock = transport.get_extra_info("socket")
        if sock is None or transport.is_closing():
            return True
        ours = side.written - transport.get_write_buffer_size()
        try:
            queued = queued_bytes(raw_socket(sock), side.syn)
            done = queued is None or queued >= ours + splicer.redirected_in(side.cookie)
        except OSError:
            return True  # the socket is gone: nothing left to order against
        if done and self.arm_end is None and not self.tunnel:
            side.pending_in = False
        return done

    def drain(self) -> None:
        self.run(self.session.drain())

    # ----------------------------------------------------------------- actions

    def run(self, actions: list[Action]) -> None:
        """Carry out actions in order; actions caused by actions queue behind them."""
        self.queue.extend(actions)
        if self.running or self.blocked:
            return
        self.running = True
        try:
            while self.queue:
                if not self._may_run(self.queue[0]):
                    if _DEBUG and not self.drain_polls:
                        log.warning("%.6f drain wait for %s", time.monotonic(),
                                    type(self.queue[0]).__name__)
                    self._wait_drain()
                    return
                action = self.queue.popleft()
                _HANDLERS[type(action)](self, action)
            self.drain_polls = 0
        finally:
            self.running = False
            self._flush()

    def _flush(self) -> None:
        if self.mux is not None:
            self.mux.flush()
        if self.backend_out:
            data = self.backend_out[0] if len(self.backend_out) == 1 else \
                b"".join(self.backend_out)
            self.backend_out.clear()
            if self.backend is not None and self.backend.transport is not None:
                self.backend.side.written += len(data)
                self.backend.transport.write(data)
        if self.client_out:
            data = self.client_out[0] if len(self.client_out) == 1 else b"".join(self.client_out)
            self.client_out.clear()
            if self.transport is not None and not self.closed:
                self.side.written += len(data)
                self.transport.write(data)

    def _may_run(self, action: Action) -> bool:
        """False while kernel-redirected bytes could be overtaken or cut off by ``action``."""
        if isinstance(action, _WRITES_TO_CLIENT) or \
                (isinstance(action, HalfClose) and not action.to_backend):
            return self._drained(self.side, self.transport)
        if isinstance(action, (SendBackend, HalfClose)):
            backend = self.backend
            return backend is None or self._drained(backend.side, backend.transport)
        return True

    def _wait_drain(self) -> None:
        if not self.drain_polls:
            self.block_since = time.monotonic()
        self.blocked = True
        self.drain_polls += 1
        # One more look right away (the kernel worker is often done by then), then one per
        # millisecond: looking in a tight loop cost ~0.2 ms of CPU per closed connection
        # (measured with bench/splice_probe.py --close, docs/splice.md).
        delay = 0 if self.drain_polls == 1 else _DRAIN_POLL
        self.loop.call_later(delay, self._retry_drain)

    def _retry_drain(self) -> None:
        if self.closed and self.transport is None:
            return
        if time.monotonic() - self.block_since > _DRAIN_DEADLINE:
            log.warning("spliced bytes did not drain in %.0fs; writing anyway", _DRAIN_DEADLINE)
            self.side.pending_in = False
            if self.backend is not None:
                self.backend.side.pending_in = False
        self.blocked = False
        self.run([])

    def _send_client(self, action: SendClient) -> None:
        self.client_out.append(action.data)

    def _send_backend(self, action: SendBackend) -> None:
        if self.mux is not None:
            return self.mux.send(action)
        self.backend_out.append(action.data)

    def _connect(self, action: Connect) -> None:
        self._flush()
        if self.mux is not None:
            return self.mux.connect(action)
        self._drop_backend()
        conn = self.pool.take(action.backend.address) if action.reuse else None
        if conn is not None:
            conn.owner = self
            self.backend = conn
            self.queue.extend(self.session.on_backend_connected(time.monotonic()))
            return
        self.connecting = self.loop.create_task(self._open(action.backend))

    async def _open(self, backend: Backend) -> None:
        conn = BackendConnection(backend.address, self.pool)
        conn.ready = False
        try:
            if self.pool.splicer is not None:
                sock = await connect_for_splice(self.loop, backend.address)
                await self.loop.create_connection(lambda: conn, sock=sock)
            else:
                await self.loop.create_connection(lambda: conn, backend.address.host,
                                                  backend.address.port)
        except asyncio.CancelledError:
            return
        except OSError as exc:
            self.connecting = None
            if not self.closed:
                self.run(self.session.on_backend_failed(exc.strerror or str(exc),
                                                        time.monotonic()))
            return
        self.connecting = None
        if self.closed:
            conn.close()
            return
        conn.owner = self
        self.backend = conn
        self.run(self.session.on_backend_connected(time.monotonic()))
        from .mux import hand_over_early

        hand_over_early(conn)

    def _release(self, action: Release) -> None:
        self._flush()
        if self.mux is not None:
            return self.mux.release(action)
        if self.connecting is not None:
            self.connecting.cancel()
            self.connecting = None
        conn, self.backend = self.backend, None
        self.response_arm = None
        if self.arm_end is not None:
            self.arm_end = None
            self._wait_for_empty_buffer(False)
        if conn is None:
            return
        # No disarm for a pooled socket: a reusable connection finished its response, so
        # any arming is spent (past its end everything goes to user space).
        if action.reuse and not self.tunnel:
            self.pool.give(conn)
        else:
            conn.owner = None
            conn.close()

    def _drop_backend(self) -> None:
        if self.mux is not None:
            return self.mux.drop_all()
        self._release(Release(reuse=False))

    def _close_client(self, action: CloseClient) -> None:
        self._flush()
        if self.transport is not None and not self.closed:
            self.transport.close()
        self.closed = True
        self._drop_backend()

    def _half_close(self, action: HalfClose) -> None:
        self._flush()
        if action.to_backend and self.mux is not None:
            return self.mux.half_close(action)
        if action.to_backend:
            target = self.backend.transport if self.backend is not None else None
        else:
            target = self.transport
        if target is not None and target.can_write_eof() and not target.is_closing():
            target.write_eof()

    def _timer(self, action: Timer) -> None:
        if action.seconds <= 0:
            self.deadlines.pop(action.name, None)
            return
        if self.closed:
            return
        at = self.loop.time() + action.seconds
        self.deadlines[action.name] = at
        if self.timer_handle is None or at < self.timer_at:
            self._schedule(at)

    def _schedule(self, at: float) -> None:
        if self.timer_handle is not None:
            self.timer_handle.cancel()
        self.timer_at = at
        self.timer_handle = self.loop.call_at(at, self._fire)

    def _fire(self) -> None:
        self.timer_handle = None
        if self.closed:
            return
        now = self.loop.time()
        due = [name for name, at in self.deadlines.items() if at <= now]
        for name in due:
            del self.deadlines[name]
            self.run(self.session.on_timer(name, time.monotonic()))
        if self.deadlines and self.timer_handle is None and not self.closed:
            self._schedule(min(self.deadlines.values()))

    def _pause(self, action: Pause) -> None:
        self.reading_paused = True
        if self.transport is not None:
            self.transport.pause_reading()

    def _resume(self, action: Resume) -> None:
        self.reading_paused = False
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()

    def _tunnel(self, action: Tunnel) -> None:
        self.tunnel = True
        conn = self.backend
        if conn is not None and self._attach(conn.side, conn.transport) and \
                self._attach(self.side, self.transport):
            self.arm_end = END_UNBOUNDED
            self._wait_for_empty_buffer(True)
            self.loop.call_soon(self._catch_up_and_arm)
            self.client_armed = True
            self._arm_client()

    def _splice_next_response(self, action: SpliceNextResponse) -> None:
        conn = self.backend
        splicer = self.pool.splicer
        if splicer is None or conn is None or self.closed or self.transport is None or \
                self.client_out or self.transport.get_write_buffer_size() > 0:
            return  # our own queued bytes would be overtaken: relay this response
        if not (self._attach(conn.side, conn.transport) and
                self._attach(self.side, self.transport)):
            return
        assert conn.side.cookie is not None and self.side.cookie is not None
        self.pool.by_cookie[conn.side.cookie] = conn
        self.response_arm = (conn.side.pos, self.side.pending_in)
        self.arm_gen = splicer.arm_response(conn.side.cookie, self.side.cookie, conn.side.pos,
                                            max(action.min_body, self.pool.splice_min_body))
        quickack(conn.transport)
        if _DEBUG:
            log.warning("%.6f arm gen=%d", time.monotonic(), self.arm_gen)
        self.side.pending_in = True

    def _splice_response(self, action: SpliceResponse) -> None:
        conn = self.backend
        if action.nbytes < self.pool.splice_min_body:
            return  # relayed: too short for the kernel hop to pay off
        if conn is None or not (self._attach(conn.side, conn.transport) and
                                self._attach(self.side, self.transport)):
            return
        self.arm_end = conn.side.pos + action.nbytes  # offsets count from the attach
        self._wait_for_empty_buffer(True)
        self.loop.call_soon(self._catch_up_and_arm)  # after the queued writes went out

    def _log(self, action: Log) -> None:
        getattr(log, action.level, log.info)(action.message)


_HANDLERS: dict[type, Callable[[ClientConnection, Any], None]] = {
    SendClient: ClientConnection._send_client,
    SendBackend: ClientConnection._send_backend,
    Connect: ClientConnection._connect,
    Release: ClientConnection._release,
    CloseClient: ClientConnection._close_client,
    HalfClose: ClientConnection._half_close,
    Timer: ClientConnection._timer,
    Pause: ClientConnection._pause,
    Resume: ClientConnection._resume,
    Tunnel: ClientConnection._tunnel,
    SpliceResponse: ClientConnection._splice_response,
    SpliceNextResponse: ClientConnection._splice_next_response,
    Log: ClientConnection._log,
}


def _nodelay(transport: asyncio.BaseTransport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
