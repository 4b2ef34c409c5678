"""Active health checks: TCP connect or HTTP GET probes with rise/fall thresholds.

``HealthChecker`` runs one task per backend of every pool whose ``health.kind`` is not
``none``, and calls ``on_change(pool, index, up)`` for each verdict (the master turns it into
a push to the workers). A backend starts UP (so that a new load balancer serves at once) and
is taken out after ``fall`` consecutive failures, back in after ``rise`` successes.
Plugins add kinds through ``miresga_add_health_checks``: a class with ``kind`` and an async
``probe(backend, settings) -> str | None`` (None = healthy, else the reason).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from .api import Backend
from .config import Config, HealthConfig
from .plugins import Registry

__all__ = ["HealthChecker", "HealthTracker", "HttpCheck", "TcpCheck"]

log = logging.getLogger("miresga.health")


class TcpCheck:
    kind = "tcp"

    async def probe(self, backend: Backend, settings: HealthConfig) -> str | None:
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(backend.address.host, backend.address.port),
                settings.timeout)
        except (TimeoutError, OSError) as exc:
            return f"connect: {exc or 'timeout'}"
        writer.close()
        return None


class HttpCheck:
    kind = "http"

    async def probe(self, backend: Backend, settings: HealthConfig) -> str | None:
        try:
            return await asyncio.wait_for(self._get(backend, settings), settings.timeout)
        except (TimeoutError, OSError, ValueError) as exc:
            return f"http: {type(exc).__name__} {exc}"

    async def _get(self, backend: Backend, settings: HealthConfig) -> str | None:
        reader, writer = await asyncio.open_connection(backend.address.host,
                                                       backend.address.port)
        try:
            writer.write(f"GET {settings.path} HTTP/1.1\r\nHost: {backend.address}\r\n"
                         f"User-Agent: miresga-health\r\nConnection: close\r\n\r\n".encode())
            line = await reader.readline()
            parts = line.split()
            if len(parts) < 2 or not parts[1].isdigit():
                return f"bad status line {line[:40]!r}"
            status = int(parts[1])
            if status != settings.expect_status:
                return f"status {status}, expected {settings.expect_status}"
            return None
        finally:
            writer.close()


class HealthTracker:
    """Rise/fall hysteresis for one backend (pure)."""

    def __init__(self, rise: int, fall: int) -> None:
        self.rise, self.fall = rise, fall
        self.up = True
        self.streak = 0  # consecutive results contradicting the current state

    def record(self, healthy: bool) -> bool | None:
        """Feed one probe result; return the new state when it flips, else None."""
        if healthy == self.up:
            self.streak = 0
            return None
        self.streak += 1
        if self.streak >= (self.rise if healthy else self.fall):
            self.up, self.streak = healthy, 0
            return self.up
        return None


class HealthChecker:
    def __init__(self, config: Config, registry: Registry,
                 on_change: Callable[[str, int, bool], None]) -> None:
        self.config = config
        self.on_change = on_change
        self.kinds: dict[str, Any] = {"tcp": TcpCheck(), "http": HttpCheck()}
        for kind, cls in registry.health_checks.items():
            self.kinds[kind] = cls()

    def start(self) -> list[asyncio.Task[None]]:
        tasks = []
        for name, pool in self.config.pools.items():
            if pool.health.kind == "none":
                continue
            for backend in pool.backend_objects():
                tasks.append(asyncio.create_task(self._loop(name, backend, pool.health)))
        return tasks

    async def _loop(self, pool: str, backend: Backend, settings: HealthConfig) -> None:
        checker = self.kinds[settings.kind]
        tracker = HealthTracker(settings.rise, settings.fall)
        while True:
            reason = await checker.probe(backend, settings)
            flipped = tracker.record(reason is None)
            if flipped is not None:
                if not flipped:
                    log.warning("pool %s: %s failed %d probes (%s)", pool, backend.label,
                                settings.fall, reason)
                self.on_change(pool, backend.index, flipped)
            await asyncio.sleep(settings.interval)
