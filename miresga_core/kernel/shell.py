"""The I/O shell of the ``kernel`` data plane: asyncio protocols around sans-I/O sessions.

``ClientConnection`` owns one accepted socket and its session; it carries out the session's
actions (miresga_core/session.py). ``BackendConnection`` is one connection to a backend,
either serving a client or idle in the ``ConnectionPool`` (keep-alive to servers).
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
        self.idle: dict[Address, list[BackendConnection]] = {}

    def take(self, address: Address) -> BackendConnection | None:
        conns = self.idle.get(address)
        while conns:
            conn = conns.pop()
            if conn.usable():
                return conn
        return None

    def give(self, conn: BackendConnection) -> None:
        conns = self.idle.setdefault(conn.address, [])
        if len(conns) >= _MAX_IDLE_PER_BACKEND or not conn.usable():
            conn.close()
            return
        conn.owner = None
        conns.append(conn)

    def forget(self, conn: BackendConnection) -> None:
        conns = self.idle.get(conn.address)
        if conns and conn in conns:
            conns.remove(conn)

    def close_all(self) -> None:
        for conns in self.idle.values():
            for conn in conns:
                conn.close()
        self.idle.clear()


class BackendConnection(asyncio.Protocol):
    def __init__(self, address: Address, pool: ConnectionPool) -> None:
        self.address = address
        self.pool = pool
        self.owner: ClientConnection | None = None
        self.transport: asyncio.Transport | None = None
        self.closed = False

    def usable(self) -> bool:
        return not self.closed and self.transport is not None and not self.transport.is_closing()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.Transport, transport)  # uvloop's is duck-typed
        _nodelay(transport)

    def data_received(self, data: bytes) -> None:
        if self.owner is not None:
            self.owner.from_backend(self, data)
        else:  # an idle connection must not speak: drop it
            self.close()

    def eof_received(self) -> bool:
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

    # ----------------------------------------------------------------- client events

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.Transport, transport)
        _nodelay(transport)
        peer = transport.get_extra_info("peername")
        client = Address(peer[0], peer[1]) if peer else None
        self.registry.add(self)
        self.session = self.new_session(client)
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

    def pause_writing(self) -> None:  # the client is slow: stop reading the backend
        if self.backend is not None and self.backend.transport is not None:
            self.backend.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.backend is not None and self.backend.transport is not None:
            self.backend.transport.resume_reading()

    def pause_client_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.pause_reading()

    def resume_client_reading(self) -> None:
        if self.transport is not None and not self.closed and not self.reading_paused:
            self.transport.resume_reading()

    # ----------------------------------------------------------------- backend events

    def from_backend(self, conn: BackendConnection, data: bytes) -> None:
        if conn is self.backend:
            self.run(self.session.on_backend_data(data, time.monotonic()))

    def backend_eof(self, conn: BackendConnection) -> None:
        if conn is self.backend:
            self.run(self.session.on_backend_eof(time.monotonic()))

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
            data = self.backend_out[0] if len(self.backend_out) == 1 else \
                b"".join(self.backend_out)
            self.backend_out.clear()
            if self.backend is not None and self.backend.transport is not None:
                self.backend.transport.write(data)
        if self.client_out:
            data = self.client_out[0] if len(self.client_out) == 1 else b"".join(self.client_out)
            self.client_out.clear()
            if self.transport is not None and not self.closed:
                self.transport.write(data)

    def _send_client(self, action: SendClient) -> None:
        self.client_out.append(action.data)

    def _send_backend(self, action: SendBackend) -> None:
        self.backend_out.append(action.data)

    def _connect(self, action: Connect) -> None:
        self._flush()
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
        try:
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

    def _release(self, action: Release) -> None:
        self._flush()
        if self.connecting is not None:
            self.connecting.cancel()
            self.connecting = None
        conn, self.backend = self.backend, None
        if conn is None:
            return
        if action.reuse and not self.tunnel:
            self.pool.give(conn)
        else:
            conn.owner = None
            conn.close()

    def _drop_backend(self) -> None:
        self._release(Release(reuse=False))

    def _close_client(self, action: CloseClient) -> None:
        self._flush()
        if self.transport is not None and not self.closed:
            self.transport.close()
        self.closed = True
        self._drop_backend()

    def _half_close(self, action: HalfClose) -> None:
        self._flush()
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
