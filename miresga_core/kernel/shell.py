"""The I/O shell of the ``kernel`` data plane: asyncio protocols around sans-I/O sessions.

``ClientConnection`` owns one accepted socket and its session; it carries out the session's
actions (miresga_core/session.py). A session has backend *legs* keyed by an int: one (leg 0)
for HTTP/1.1, several at once for multiplexed sessions (HTTP/2 terminated on both sides).
``BackendConnection`` is one connection to a backend, either serving a client or idle in
the ``ConnectionPool`` (keep-alive to servers).
Flow control is the transports' own: when one side's write buffer is full, reading from the
other side pauses. Relaying copies each chunk once, from one socket buffer to the other;
the in-kernel splice (sockmap) replaces that copy where BPF is permitted (``Tunnel`` marks
where the whole stream may be spliced).
"""

from __future__ import annotations

import asyncio
import logging
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
    Timer,
    Tunnel,
)

__all__ = ["BackendConnection", "ClientConnection", "ConnectionPool"]

log = logging.getLogger("miresga.kernel")
_MAX_IDLE_PER_BACKEND = 64


class ConnectionPool:
    """Idle keep-alive connections to backends, most recently used first."""

    def __init__(self) -> None:
        # keyed by (address, kind): an HTTP/2 connection must not serve an HTTP/1.1 session
        self.idle: dict[tuple[Address, str], list[BackendConnection]] = {}

    def take(self, address: Address, kind: str = "http1") -> BackendConnection | None:
        conns = self.idle.get((address, kind))
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
        self.leg = leg
        self.kind = kind
        self.state: Any = None  # a multiplexed session's protocol state, while pooled
        self.owner: ClientConnection | None = None
        self.transport: asyncio.Transport | None = None
        self.closed = False
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
        self.multiplexed = False
        self.transport: asyncio.Transport | None = None
        self.legs: dict[int, BackendConnection] = {}
        self.connecting: dict[int, asyncio.Task[Any]] = {}
        # lazy timers: name -> deadline, one loop handle for the earliest (re-arming a timer
        # on every request would otherwise create and cancel several handles per request)
        self.deadlines: dict[str, float] = {}
        self.timer_handle: asyncio.TimerHandle | None = None
        self.timer_at = 0.0
        # writes of one run() are joined into one send per side
        self.client_out: list[bytes] = []
        self.backend_out: dict[int, list[bytes]] = {}  # per leg
        self.queue: deque[Action] = deque()
        self.running = False
        self.closed = False
        self.tunnel = False
        self.reading_paused = False
        self.loop = asyncio.get_event_loop()

    # ----------------------------------------------------------------- client events

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.Transport, transport)
        _nodelay(transport)
        peer = transport.get_extra_info("peername")
        client = Address(peer[0], peer[1]) if peer else None
        self.registry.add(self)
        self.session = self.new_session(client)
        self.multiplexed = bool(getattr(self.session, "multiplexed", False))
        self.run(self.session.on_start(time.monotonic()))

    def data_received(self, data: bytes) -> None:
        self.run(self.session.on_client_data(data, time.monotonic()))

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

    @property
    def backend(self) -> BackendConnection | None:
        """Leg 0: the only backend connection of a non-multiplexed session."""
        return self.legs.get(0)

    def pause_writing(self) -> None:  # the client is slow: stop reading the backends
        for conn in self.legs.values():
            if conn.transport is not None and not conn.transport.is_closing():
                conn.transport.pause_reading()

    def resume_writing(self) -> None:
        for conn in self.legs.values():
            if conn.transport is not None and not conn.transport.is_closing():
                conn.transport.resume_reading()

    def pause_client_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.pause_reading()

    def resume_client_reading(self) -> None:
        if self.transport is not None and not self.closed and not self.reading_paused:
            self.transport.resume_reading()

    # ----------------------------------------------------------------- backend events

    def _leg(self, leg: int) -> dict[str, int]:
        return {"leg": leg} if self.multiplexed else {}

    def from_backend(self, conn: BackendConnection, data: bytes) -> None:
        if self.legs.get(conn.leg) is conn:
            self.run(self.session.on_backend_data(data, time.monotonic(), **self._leg(conn.leg)))

    def backend_eof(self, conn: BackendConnection) -> None:
        if self.legs.get(conn.leg) is conn:
            self.run(self.session.on_backend_eof(time.monotonic(), **self._leg(conn.leg)))

    def drain(self) -> None:
        self.run(self.session.drain())

    # ----------------------------------------------------------------- actions

    def run(self, actions: list[Action]) -> None:
        """Carry out actions in order; actions caused by actions queue behind them."""
        self.queue.extend(actions)
        if self.running:
            return
        self.running = True
        try:
            while self.queue:
                action = self.queue.popleft()
                _HANDLERS[type(action)](self, action)
        finally:
            self.running = False
            self._flush()

    def _flush(self) -> None:
        if self.backend_out:
            for leg, chunks in self.backend_out.items():
                data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                conn = self.legs.get(leg)
                if conn is not None and conn.transport is not None:
                    conn.transport.write(data)
            self.backend_out.clear()
        if self.client_out:
            data = self.client_out[0] if len(self.client_out) == 1 else b"".join(self.client_out)
            self.client_out.clear()
            if self.transport is not None and not self.closed:
                self.transport.write(data)

    def _send_client(self, action: SendClient) -> None:
        self.client_out.append(action.data)

    def _send_backend(self, action: SendBackend) -> None:
        self.backend_out.setdefault(action.leg, []).append(action.data)

    def _connect(self, action: Connect) -> None:
        self._flush()
        self._release(Release(reuse=False, leg=action.leg))
        conn = self.pool.take(action.backend.address, action.kind) if action.reuse else None
        if conn is not None:
            conn.owner, conn.leg = self, action.leg
            self.legs[action.leg] = conn
            kw: dict[str, Any] = self._leg(action.leg)
            if conn.state is not None:
                kw["state"], conn.state = conn.state, None
            self.queue.extend(self.session.on_backend_connected(time.monotonic(), **kw))
            return
        self.connecting[action.leg] = self.loop.create_task(
            self._open(action.backend, action.leg, action.kind))

    async def _open(self, backend: Backend, leg: int, kind: str = "http1") -> None:
        conn = BackendConnection(backend.address, self.pool, leg, kind)
        conn.ready = False
        try:
            await self.loop.create_connection(lambda: conn, backend.address.host,
                                              backend.address.port)
        except asyncio.CancelledError:
            return
        except OSError as exc:
            self.connecting.pop(leg, None)
            if not self.closed:
                self.run(self.session.on_backend_failed(exc.strerror or str(exc),
                                                        time.monotonic(), **self._leg(leg)))
            return
        self.connecting.pop(leg, None)
        if self.closed:
            conn.close()
            return
        conn.owner = self
        conn.ready = True
        self.legs[leg] = conn
        self.run(self.session.on_backend_connected(time.monotonic(), **self._leg(leg)))
        if conn.early:
            data, conn.early = bytes(conn.early), bytearray()
            self.from_backend(conn, data)
        if conn.early_eof or conn.closed:
            self.backend_eof(conn)

    def _release(self, action: Release) -> None:
        self._flush()
        task = self.connecting.pop(action.leg, None)
        if task is not None:
            task.cancel()
        conn = self.legs.pop(action.leg, None)
        if conn is None:
            return
        if action.reuse and not self.tunnel:
            conn.state = action.state
            self.pool.give(conn)
        else:
            conn.owner = None
            conn.close()

    def _drop_backend(self) -> None:
        for leg in set(self.legs) | set(self.connecting):
            self._release(Release(reuse=False, leg=leg))

    def _close_client(self, action: CloseClient) -> None:
        self._flush()
        if self.transport is not None and not self.closed:
            self.transport.close()
        self.closed = True
        self._drop_backend()

    def _half_close(self, action: HalfClose) -> None:
        self._flush()
        if action.to_backend:
            conn = self.legs.get(action.leg)
            target = conn.transport if conn is not None else None
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
    Log: ClientConnection._log,
}


def _nodelay(transport: asyncio.BaseTransport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
