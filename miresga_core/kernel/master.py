"""The master process of the ``kernel`` data plane.

It checks that every listener address can be bound (a clear error beats N dying workers),
forks the workers, restarts a worker that dies, serves the admin API (``/status`` JSON and
``/metrics`` for Prometheus) and relays health verdicts to the workers over their control
sockets. SIGTERM/SIGINT are passed to the workers, which drain; the master waits for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import Config
from ..errors import MiresgaError
from ..plugins import Registry
from ..routing import pool_states, route_scope
from .splice import SPLICE_MIN_BODY
from .worker import serve_worker

__all__ = ["Master", "check_bindable"]

log = logging.getLogger("miresga.kernel")


def check_bindable(config: Config) -> None:
    """Bind each listener address once (SO_REUSEPORT, no listen) to report conflicts early."""
    for i, listener in enumerate(config.listeners):
        family = socket.AF_INET6 if listener.listen.family_v6 else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            try:
                sock.bind((listener.listen.host, listener.listen.port))
            except OSError as exc:
                raise MiresgaError(f"{config.file}: listeners[{i}] ({listener.name}): cannot "
                                   f"bind {listener.listen}: {exc.strerror}") from None


@dataclass
class WorkerHandle:
    index: int
    process: Any
    control: socket.socket
    started: float = field(default_factory=time.monotonic)


def _worker_entry(config: Config, registry: Registry, control: socket.socket, index: int,
                  use_uvloop: bool, splice: str, splice_min_body: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the master decides when workers stop
    serve_worker(config, registry, control, index, use_uvloop, splice, splice_min_body)


class Master:
    def __init__(self, config: Config, registry: Registry, workers: int, use_uvloop: bool,
                 splice: str = "auto", splice_min_body: int = SPLICE_MIN_BODY,
                 engine: str = "python", binary: Path | None = None,
                 programs: dict[str, bytes] | None = None):
        """``binary``, ``programs``: the native worker and the listeners' compiled rule
        programs, when choosing the engine already made them."""
        self.config = config
        self.engine = engine
        self.native: tuple[Any, str] | None = None  # (binary, plan path) of engine native
        self.listen_socks: dict[str, socket.socket] = {}  # engine native: shared by workers
        if engine == "native":
            self.native, self.listen_socks = _prepare_native(config, registry, binary,
                                                             programs)
        self.registry = registry
        self.count = workers or os.cpu_count() or 1
        self.use_uvloop = use_uvloop
        self.splice = splice
        self.splice_min_body = splice_min_body
        self.workers: dict[int, WorkerHandle] = {}
        self.stopping = False
        self.ctx = multiprocessing.get_context("fork")
        self.pools = pool_states(config, registry)
        policies = {name: (state.policy_cls, state.config.options)
                    for name, state in self.pools.items()}
        self.route_scopes = {
            lst.name: route_scope(lst, registry.parsers[lst.protocol](max_head=lst.max_head),
                                  policies) for lst in config.listeners}

    # ----------------------------------------------------------------- workers

    def spawn(self, index: int) -> None:
        parent, child = socket.socketpair()
        proc: Any
        if self.native is not None:
            from .native import NativeWorker

            proc = NativeWorker(self.native[0], self.native[1], index, child,
                                tuple(s.fileno() for s in self.listen_socks.values()))
        else:
            proc = self.ctx.Process(target=_worker_entry, name=f"miresga-worker-{index}",
                                    args=(self.config, self.registry, child, index,
                                          self.use_uvloop, self.splice, self.splice_min_body),
                                    daemon=False)
        proc.start()
        child.close()
        self.workers[index] = WorkerHandle(index, proc, parent)
        for pool, state in self.pools.items():  # a restarted worker learns who is down
            for i, up in enumerate(state.admin_up):
                if not up:
                    with contextlib.suppress(OSError):
                        parent.sendall(json.dumps({"op": "health", "pool": pool, "index": i,
                                                   "up": False}).encode() + b"\n")
        log.info("worker %d started (pid %d)", index, proc.pid)

    def broadcast(self, message: dict[str, Any]) -> None:
        line = json.dumps(message).encode() + b"\n"
        for handle in self.workers.values():
            with contextlib.suppress(OSError):
                handle.control.sendall(line)

    def set_health(self, pool: str, index: int, up: bool) -> None:
        """Active health verdict: record it and push it to every worker."""
        if self.pools[pool].set_up(index, up, time.monotonic()):
            backend = self.pools[pool].backends[index]
            log.warning("pool %s: backend %s is %s", pool, backend.label, "UP" if up else "DOWN")
            self.broadcast({"op": "health", "pool": pool, "index": index, "up": up})

    async def worker_stats(self) -> list[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        out = []
        for handle in list(self.workers.values()):
            try:
                handle.control.sendall(b'{"op": "stats"}\n')
                handle.control.settimeout(2.0)
                data = await loop.run_in_executor(None, _read_line, handle.control)
                out.append(json.loads(data))
            except (OSError, ValueError) as exc:
                out.append({"worker": handle.index, "error": str(exc)})
        return out

    async def supervise(self) -> None:
        """Restart workers that died on their own (not while stopping)."""
        while not self.stopping:
            await asyncio.sleep(0.5)
            for index, handle in list(self.workers.items()):
                if not handle.process.is_alive() and not self.stopping:
                    log.error("worker %d (pid %s) exited with %s: restarting", index,
                              handle.process.pid, handle.process.exitcode)
                    handle.control.close()
                    self.spawn(index)

    def stop_workers(self, deadline: float) -> None:
        self.stopping = True
        for handle in self.workers.values():
            if handle.process.is_alive() and handle.process.pid:
                os.kill(handle.process.pid, signal.SIGTERM)
        for handle in self.workers.values():
            handle.process.join(max(0.1, deadline - time.monotonic()))
            if handle.process.is_alive():
                handle.process.kill()
                handle.process.join(1)
            handle.control.close()

    # ----------------------------------------------------------------- run

    async def main(self) -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        for index in range(self.count):
            self.spawn(index)
        tasks = [asyncio.create_task(self.supervise())]
        admin = None
        if self.config.admin.listen is not None:
            from .admin import start_admin

            admin = await start_admin(self)
        from ..health import HealthChecker

        checker = HealthChecker(self.config, self.registry, self.set_health)
        tasks += checker.start()
        log.info("serving %s with %d workers",
                 ", ".join(f"{lst.name}@{lst.listen}" for lst in self.config.listeners),
                 self.count)
        await stop.wait()
        log.info("stopping: draining in-flight requests")
        for task in tasks:
            task.cancel()
        if admin is not None:
            admin.close()
        drain = max(lst.timeouts.drain for lst in self.config.listeners)
        await loop.run_in_executor(None, self.stop_workers, time.monotonic() + drain + 2)
        if self.native is not None:
            shutil.rmtree(os.path.dirname(self.native[1]), ignore_errors=True)
        for sock in self.listen_socks.values():
            sock.close()


def _prepare_native(config: Config, registry: Registry, binary: Path | None,
                    programs: dict[str, bytes] | None
                    ) -> tuple[tuple[Any, str], dict[str, socket.socket]]:
    """Engine native: check the config and build the worker (unless ``programs`` and
    ``binary`` are what the engine choice already made), open the listening sockets the
    workers share, write the plan."""
    from .native import build_worker, check_native, listen_sockets, write_plan

    programs = programs if programs is not None else check_native(config, registry)
    binary = binary or build_worker()
    socks = listen_sockets(config)
    plan = os.path.join(tempfile.mkdtemp(prefix="miresga-kw-"), "plan")
    write_plan(config, registry, plan, programs,
               {name: sock.fileno() for name, sock in socks.items()})
    check = subprocess.run([str(binary), "--plan", plan, "--check"], capture_output=True,
                           text=True, timeout=30, check=False)
    if check.returncode != 0:  # a worker would die at once, again and again
        shutil.rmtree(os.path.dirname(plan), ignore_errors=True)
        for sock in socks.values():
            sock.close()
        raise MiresgaError(f"native kernel worker refused its plan: {check.stderr.strip()}")
    return (binary, plan), socks


def _read_line(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data
