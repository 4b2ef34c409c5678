"""The pinned HTTP/2 session: route once on the first request, then tunnel the connection.

Used when a listener's route scope is "connection" (see miresga_core/routing.py
``route_scope``): every stream of a connection would go to the same place, so the prototype
parser reads the preface and the first request's header block, the router picks a backend
once, the buffered bytes are sent to it and the connection becomes a raw tunnel (``Tunnel``:
the shell may splice it in the kernel). The backend must speak HTTP/2 with prior knowledge.
A connect failure moves the connection to another backend (nothing was sent yet); a refusal
(bad preface, no route, no backend) is a GOAWAY with the reason.
"""

from __future__ import annotations

import h2.errors

from miresga_core import Backend, NeedMore, Reject, RequestHead
from miresga_core.session import (
    Action,
    CloseClient,
    Connect,
    HalfClose,
    Log,
    Release,
    SendBackend,
    SendClient,
    SessionContext,
    Timer,
    Tunnel,
)

from .session import goaway_bytes

__all__ = ["PinnedSession"]


class PinnedSession:
    """Route once on the first request, then tunnel the whole connection (leg 0)."""

    def __init__(self, ctx: SessionContext) -> None:
        self.ctx = ctx
        self.buf = bytearray()
        self.tunnel = False
        self.closed = False
        self.exclude: set[int] = set()
        self.head: RequestHead | None = None
        self.backend: Backend | None = None
        self.pool = ""
        self.eofs = 0

    def on_start(self, now: float) -> list[Action]:
        return [Timer("head", self.ctx.listener.timeouts.head)]

    def on_client_data(self, data: bytes, now: float) -> list[Action]:
        if self.tunnel:
            return [SendBackend(data)]
        if self.closed:
            return []
        self.buf += data
        if self.head is not None:  # connecting: keep buffering
            return []
        result = self.ctx.parse(bytes(self.buf))
        if isinstance(result, NeedMore):
            return []
        if isinstance(result, Reject):
            return self._refuse(f"{result.status} {result.reason}")
        self.head = result
        return self._dispatch(now)

    def _dispatch(self, now: float) -> list[Action]:
        assert self.head is not None
        routed = self.ctx.router.route(self.head, self.ctx.client, frozenset(self.exclude), now)
        if not routed.pool or routed.backend is None:
            why = "no route" if not routed.pool else f"no backend up in pool {routed.pool!r}"
            return self._refuse(why, h2.errors.ErrorCodes.REFUSED_STREAM)
        self.backend, self.pool = routed.backend, routed.pool
        return [Timer("connect", self.ctx.listener.timeouts.connect),
                Connect(routed.backend, routed.pool, reuse=False)]

    def on_backend_connected(self, now: float) -> list[Action]:
        if self.closed or self.tunnel:
            return []
        self.tunnel = True
        assert self.backend is not None
        self.ctx.stats.count(f"{self.pool}/{self.backend.label}")
        data, self.buf = bytes(self.buf), bytearray()
        return [Timer("connect", 0), Timer("head", 0), SendBackend(data), Tunnel()]

    def on_backend_failed(self, reason: str, now: float) -> list[Action]:
        if self.closed or self.backend is None:
            return []
        return [Release(reuse=False)] + self._retry(f"connect failed: {reason}", now)

    def _retry(self, reason: str, now: float) -> list[Action]:
        assert self.backend is not None
        pool = self.ctx.router.pools[self.pool]
        if pool.config.health.passive:
            pool.mark_failed(self.backend.index, now, pool.config.health.cooldown)
        self.ctx.stats.backend_failures += 1
        log: list[Action] = [Log("warning", f"{self._who()}: {self.backend.label}: {reason}")]
        if len(self.exclude) < self.ctx.retries:  # nothing was sent: any request may move
            self.exclude.add(self.backend.index)
            self.ctx.stats.retries += 1
            return log + self._dispatch(now)
        return log + self._refuse(reason, h2.errors.ErrorCodes.REFUSED_STREAM)

    def on_backend_data(self, data: bytes, now: float) -> list[Action]:
        return [SendClient(data)] if self.tunnel else []

    def on_client_eof(self, now: float) -> list[Action]:
        if not self.tunnel:
            return self._close()
        self.eofs += 1
        return [HalfClose(to_backend=True)] + (self._close() if self.eofs == 2 else [])

    def on_backend_eof(self, now: float) -> list[Action]:
        if not self.tunnel:
            return []
        self.eofs += 1
        return [HalfClose(to_backend=False)] + (self._close() if self.eofs == 2 else [])

    def on_timer(self, name: str, now: float) -> list[Action]:
        if name == "head" and not self.tunnel and self.head is None:
            return self._refuse("request head not complete in time")
        if name == "connect" and not self.tunnel and self.backend is not None:
            return [Release(reuse=False)] + self._retry("connect timeout", now)
        return []

    def drain(self) -> list[Action]:
        return [] if self.tunnel else self._close()

    def _refuse(self, reason: str,
                code: int = h2.errors.ErrorCodes.PROTOCOL_ERROR) -> list[Action]:
        self.closed = True
        return [Log("warning", f"{self._who()}: {reason}"),
                SendClient(goaway_bytes(reason, code)), Release(reuse=False), CloseClient()]

    def _close(self) -> list[Action]:
        self.closed = True
        return [Release(reuse=False), CloseClient()]

    def _who(self) -> str:
        return f"{self.ctx.listener.name} {self.ctx.client or '?'}"
