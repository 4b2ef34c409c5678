"""Backend legs of a multiplexed session (HTTP/2 terminated on both sides).

A ``ClientConnection`` whose session sets ``multiplexed = True`` hands every backend-side
action to its ``Legs``: connections keyed by the leg id the session chose, each connected,
written, released and closed on its own, and their events passed to the session with
``leg=<id>`` (miresga_core/session.py). Idle connections go to the worker's pool with the
session's protocol state (``Release(state=...)``) under the ``Connect.kind`` they were made
for, and come back with it (``on_backend_connected(..., state=...)``). The kernel splice
(sockmap) is not used for legs: an HTTP/2 connection's bytes are frames of many streams.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from ..session import Connect, HalfClose, Release, SendBackend

if TYPE_CHECKING:
    from .shell import BackendConnection, ClientConnection

__all__ = ["Legs", "hand_over_early"]


def hand_over_early(conn: BackendConnection) -> None:
    """Deliver what a just-connected backend sent before its session took it."""
    conn.ready = True
    if conn.early and conn.owner is not None:
        data, conn.early = bytes(conn.early), bytearray()
        conn.owner.from_backend(conn, data)
    if (conn.early_eof or conn.closed) and conn.owner is not None:
        conn.owner.backend_eof(conn)


class Legs:
    def __init__(self, client: ClientConnection) -> None:
        self.client = client
        self.legs: dict[int, BackendConnection] = {}
        self.connecting: dict[int, asyncio.Task[Any]] = {}
        self.out: dict[int, list[bytes]] = {}  # writes of one run(), one send per leg

    # ----------------------------------------------------------------- events

    def data(self, conn: BackendConnection, data: bytes) -> None:
        if self.legs.get(conn.leg) is conn:
            self.client.run(self.client.session.on_backend_data(data, time.monotonic(),
                                                                leg=conn.leg))

    def eof(self, conn: BackendConnection) -> None:
        if self.legs.get(conn.leg) is conn:
            self.client.run(self.client.session.on_backend_eof(time.monotonic(), leg=conn.leg))

    def reading(self, on: bool) -> None:
        """The client's write buffer filled (off) or drained (on): stop/start every leg."""
        for conn in self.legs.values():
            if conn.transport is not None and not conn.transport.is_closing():
                if on:
                    conn.transport.resume_reading()
                else:
                    conn.transport.pause_reading()

    # ----------------------------------------------------------------- actions

    def send(self, action: SendBackend) -> None:
        self.out.setdefault(action.leg, []).append(action.data)

    def flush(self) -> None:
        for leg, chunks in self.out.items():
            conn = self.legs.get(leg)
            if conn is not None and conn.transport is not None:
                conn.transport.write(chunks[0] if len(chunks) == 1 else b"".join(chunks))
        self.out.clear()

    def connect(self, action: Connect) -> None:
        self.release(Release(reuse=False, leg=action.leg))
        client = self.client
        conn = client.pool.take(action.backend.address, action.kind) if action.reuse else None
        if conn is not None:
            conn.owner, conn.leg = client, action.leg
            self.legs[action.leg] = conn
            kw: dict[str, Any] = {"leg": action.leg}
            if conn.state is not None:
                kw["state"], conn.state = conn.state, None
            client.queue.extend(client.session.on_backend_connected(time.monotonic(), **kw))
            return
        self.connecting[action.leg] = client.loop.create_task(self._open(action))

    async def _open(self, action: Connect) -> None:
        from .shell import BackendConnection

        client = self.client
        address = action.backend.address
        conn = BackendConnection(address, client.pool, action.leg, action.kind)
        conn.ready = False
        try:
            await client.loop.create_connection(lambda: conn, address.host, address.port)
        except asyncio.CancelledError:
            return
        except OSError as exc:
            self.connecting.pop(action.leg, None)
            if not client.closed:
                client.run(client.session.on_backend_failed(exc.strerror or str(exc),
                                                            time.monotonic(), leg=action.leg))
            return
        self.connecting.pop(action.leg, None)
        if client.closed:
            conn.close()
            return
        conn.owner = client
        self.legs[action.leg] = conn
        client.run(client.session.on_backend_connected(time.monotonic(), leg=action.leg))
        hand_over_early(conn)

    def release(self, action: Release) -> None:
        self.flush()
        task = self.connecting.pop(action.leg, None)
        if task is not None:
            task.cancel()
        conn = self.legs.pop(action.leg, None)
        if conn is None:
            return
        if action.reuse:
            conn.state = action.state
            self.client.pool.give(conn)
        else:
            conn.owner = None
            conn.close()

    def drop_all(self) -> None:
        for leg in set(self.legs) | set(self.connecting):
            self.release(Release(reuse=False, leg=leg))

    def half_close(self, action: HalfClose) -> None:
        self.flush()
        conn = self.legs.get(action.leg)
        target = conn.transport if conn is not None else None
        if target is not None and target.can_write_eof() and not target.is_closing():
            target.write_eof()
