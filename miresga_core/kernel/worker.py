"""One worker process of the ``kernel`` data plane: an event loop serving every listener.

Each worker binds its own SO_REUSEPORT socket per listener, so the kernel spreads new
connections over workers with no shared accept lock. A worker owns its pool states (health
is pushed by the master over the control socket), its backend connection pool and its
counters. SIGTERM/SIGINT: stop accepting, let in-flight requests finish, close idle
connections, exit after the drain deadline at the latest.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import logging
import os
import signal
import socket
import time
from typing import Any

from ..api import Address
from ..config import Config, ListenerConfig
from ..decide import PrototypeDecider, make_decider
from ..plugins import Registry
from ..routing import Router, pool_states
from ..session import SessionContext, Stats
from .shell import ClientConnection, ConnectionPool
from .splice import SPLICE_MIN_BODY, Splicer, open_splicer

__all__ = ["Runtime", "listen_socket", "serve_worker"]

log = logging.getLogger("miresga.kernel")


def listen_socket(address: Address, backlog: int = 4096) -> socket.socket:
    family = socket.AF_INET6 if address.family_v6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((address.host, address.port))
    sock.listen(backlog)
    sock.setblocking(False)
    return sock


class Runtime:
    """Everything a worker routes with: pool states and one router per listener."""

    def __init__(self, config: Config, registry: Registry) -> None:
        self.config = config
        self.rules = getattr(config.dataplane.options, "rules", "c")
        self.registry = registry
        self.pools = pool_states(config, registry)
        self.routers = {listener.name: Router(listener, self.pools)
                        for listener in config.listeners}
        self.stats: dict[str, Stats] = {listener.name: Stats() for listener in config.listeners}
        self.bytes = Stats()  # relayed / spliced byte counters of the whole worker

    def session_factory(self, listener: ListenerConfig) -> Any:
        router = self.routers[listener.name]
        decider = make_decider(self.config, listener, self.registry, router, self.rules)
        parser = decider.parser if isinstance(decider, PrototypeDecider) else \
            decider.fallback.parser
        stats = self.stats[listener.name]
        retries = listener.retries

        def new_session(client: Address | None) -> Any:
            return parser.new_session(SessionContext(listener, router, client,
                                                     parser.parse_head, stats, retries,
                                                     decider.decide))

        return new_session


async def _serve(config: Config, registry: Registry, control: socket.socket | None,
                 worker_id: int, splice: str = "auto",
                 splice_min_body: int = SPLICE_MIN_BODY) -> None:
    loop = asyncio.get_running_loop()
    runtime = Runtime(config, registry)
    splicer = open_splicer(splice)
    if splicer is not None:
        loop.add_reader(splicer.events_fd, splicer.poll_events)
        if worker_id == 0:
            log.info("splicing response bodies and tunnels in the kernel (sockmap)")
    pool = ConnectionPool(splicer, runtime.bytes, splice_min_body)
    try:
        await _run(config, runtime, pool, control, worker_id)
    finally:
        pool.close_all()
        _close_splicer(loop, splicer)


def _close_splicer(loop: asyncio.AbstractEventLoop, splicer: Splicer | None) -> None:
    if splicer is not None:
        loop.remove_reader(splicer.events_fd)
        splicer.close()


async def _run(config: Config, runtime: Runtime, pool: ConnectionPool,
               control: socket.socket | None, worker_id: int) -> None:
    loop = asyncio.get_running_loop()
    clients: set[ClientConnection] = set()
    servers = []
    for listener in config.listeners:
        factory = runtime.session_factory(listener)
        sock = listen_socket(listener.listen)
        server = await loop.create_server(
            functools.partial(ClientConnection, factory, pool, clients), sock=sock)
        servers.append(server)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if control is not None:
        _control_reader(loop, control, runtime, stop, worker_id)
    await stop.wait()
    for server in servers:
        server.close()
    for client in list(clients):
        client.drain()
    deadline = time.monotonic() + min(listener.timeouts.drain for listener in config.listeners)
    while clients and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    for client in list(clients):
        if client.transport is not None:
            client.transport.abort()
    pool.close_all()


def _control_reader(loop: asyncio.AbstractEventLoop, control: socket.socket, runtime: Runtime,
                    stop: asyncio.Event, worker_id: int) -> None:
    """Line-delimited JSON from the master: health verdicts, stats requests, stop."""
    control.setblocking(False)
    buf = bytearray()

    def readable() -> None:
        try:
            data = control.recv(65536)
        except BlockingIOError:
            return
        if not data:  # the master is gone: stop serving
            loop.remove_reader(control.fileno())
            stop.set()
            return
        buf.extend(data)
        while b"\n" in buf:
            line, _, rest = bytes(buf).partition(b"\n")
            buf[:] = rest
            _control_message(json.loads(line), control, runtime, worker_id)

    loop.add_reader(control.fileno(), readable)


def _control_message(msg: dict[str, Any], control: socket.socket, runtime: Runtime,
                     worker_id: int) -> None:
    op = msg.get("op")
    if op == "health":
        runtime.pools[msg["pool"]].set_up(msg["index"], msg["up"], time.monotonic())
    elif op == "stats":
        stats = {name: dataclasses.asdict(s) for name, s in runtime.stats.items()}
        now = time.monotonic()  # passive health lives in each worker: report it too
        pools = {name: state.status(now) for name, state in runtime.pools.items()}
        reply = {"worker": worker_id, "pid": os.getpid(), "stats": stats, "pools": pools,
                 "bytes": {"relayed": runtime.bytes.relayed_bytes,
                           "spliced": runtime.bytes.spliced_bytes}}
        control.setblocking(True)
        control.sendall(json.dumps(reply).encode() + b"\n")
        control.setblocking(False)


def serve_worker(config: Config, registry: Registry, control: socket.socket | None,
                 worker_id: int, use_uvloop: bool = True, splice: str = "auto",
                 splice_min_body: int = SPLICE_MIN_BODY) -> None:
    """Entry point of a worker process (or of the only process, with workers = 1)."""
    if use_uvloop:
        try:
            import uvloop

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        except ImportError:
            log.info("uvloop not installed: using the default asyncio loop")
    asyncio.run(_serve(config, registry, control, worker_id, splice, splice_min_body))
