"""The in-kernel splice (sockmap) and its user-space fallback, with real sockets end to end.

A load balancer worker (``_serve``) runs in a thread of the test process so its byte
counters can be read directly; demo backends (h11) run as a subprocess; clients are
``http.client`` and raw sockets. Ports 22000-22999 on loopback only.
"""

from __future__ import annotations

import asyncio
import http.client
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from miresga_core.cli_serve import load
from miresga_core.demo import body_bytes
from miresga_core.kernel import worker
from miresga_core.kernel.shell import ClientConnection, ConnectionPool
from miresga_core.kernel.splice import open_splicer, queued_bytes
from miresga_core.kernel.splice_layout import render_header
from tests.kernel.rawserver import PAUSE, RawBackend

ROOT = Path(__file__).resolve().parents[2]
BACKENDS = {"web-1": 22201, "api-1": 22202}
SIZES = [100, 20_000, 65_536, 1 << 20, 3_000_001]

CONFIG = """
[dataplane]
kind = "kernel"
[dataplane.kernel]
workers = 1
splice = "{splice}"
{extra}[[listeners]]
name = "web"
listen = "127.0.0.1:{port}"
protocol = "http1"
default_pool = "web"
[[listeners.routes]]
name = "api"
pool = "api"
match = {{ headers = {{ "x-pool" = "api" }} }}
[[listeners.routes]]
name = "ws"
pool = "web"
offload = "pin"
match = {{ path = {{ prefix = "/pin" }} }}
[pools.web]
backends = [{{ address = "127.0.0.1:{web}", name = "web-1" }}]
[pools.api]
backends = [{{ address = "127.0.0.1:22202", name = "api-1" }}]
"""


def test_generated_header_is_fresh() -> None:
    committed = (ROOT / "native" / "xdp" / "splice_shared.h").read_text()
    assert committed == render_header(), "regenerate: python3 -m miresga_core.kernel." \
        "splice_layout > native/xdp/splice_shared.h"


@pytest.fixture(scope="module")
def backends() -> Iterator[None]:
    args = [sys.executable, "-m", "miresga_core.cli", "backend", "--host", "127.0.0.1"]
    for name, port in BACKENDS.items():
        args += ["--port", str(port), "--name", name]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not all(_listening(p) for p in BACKENDS.values()):
            assert time.monotonic() < deadline, "demo backends did not start"
            assert proc.poll() is None, "demo backends exited"
            time.sleep(0.05)
        yield
    finally:
        proc.terminate()
        proc.wait(5)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


class LoadBalancer:
    """One worker in a thread; ``bytes`` is its relayed/spliced counter object."""

    def __init__(self, tmp: Path, splice: str, port: int, web: int = 22201,
                 extra: str = "") -> None:
        path = tmp / f"lb-{splice}.toml"
        path.write_text(CONFIG.format(splice=splice, port=port, web=web, extra=extra))
        self.config, _pm, self.registry = load(str(path))
        self.port = port
        self.loop = asyncio.new_event_loop()
        self.runtime: worker.Runtime | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._serve())
        except asyncio.CancelledError:
            pass
        except BaseException as exc:  # reported by the test
            self.error = exc

    async def _serve(self) -> None:
        """The same pieces as a worker's ``_serve``, minus signal handlers (not main thread)."""
        self.task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        self.runtime = worker.Runtime(self.config, self.registry)
        splicer = open_splicer(self.config.dataplane.options.splice)
        if splicer is not None:
            loop.add_reader(splicer.events_fd, splicer.poll_events)
        pool = ConnectionPool(splicer, self.runtime.bytes,
                              self.config.dataplane.options.splice_min_body)
        listener = self.config.listeners[0]
        factory = self.runtime.session_factory(listener)
        clients: set[ClientConnection] = set()
        server = await loop.create_server(lambda: ClientConnection(factory, pool, clients),
                                          sock=worker.listen_socket(listener.listen))
        try:
            await asyncio.Event().wait()
        finally:
            server.close()
            for client in list(clients):
                if client.transport is not None:
                    client.transport.abort()
            pool.close_all()
            if splicer is not None:
                loop.remove_reader(splicer.events_fd)
                splicer.close()

    def __enter__(self) -> LoadBalancer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not _listening(self.port):
            assert self.error is None, self.error
            assert time.monotonic() < deadline, "load balancer did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.task.cancel)
        self.thread.join(10)

    @property
    def counters(self) -> tuple[int, int]:
        """(relayed, spliced), read once they stopped changing: the client may have every
        byte before the worker handled the ring-buffer event about them."""
        assert self.runtime is not None
        last: tuple[int, int] | None = None
        for _ in range(40):  # at most 2 s
            now = (self.runtime.bytes.relayed_bytes, self.runtime.bytes.spliced_bytes)
            if now == last:
                break
            last = now
            time.sleep(0.05)
        return now


def _get(conn: http.client.HTTPConnection, path: str, pool: str = "web") -> tuple[bytes, str]:
    conn.request("GET", path, headers={"x-pool": pool})
    resp = conn.getresponse()
    body = resp.read()
    assert resp.status == 200, (resp.status, body[:200])
    return body, resp.getheader("x-backend") or ""


def _keepalive_run(port: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        for i, n in enumerate(SIZES * 2):
            pool = "api" if i % 2 else "web"
            body, backend = _get(conn, f"/bytes/{n}", pool)
            assert body == body_bytes(n), f"/bytes/{n} differs"
            assert backend == f"{pool}-1", "per-request routing broke on keep-alive"
    finally:
        conn.close()


@pytest.mark.root
def test_sockmap_byte_exact_with_fast_backends(backends: None, tmp_path: Path) -> None:
    """Keep-alive, pools alternating request by request: bytes exact, and every response
    with a body of 16 KiB or more is spliced whole (armed before the request leaves)."""
    with LoadBalancer(tmp_path, "sockmap", 22210) as lb:
        _keepalive_run(22210)
        relayed, spliced = lb.counters
    big = 2 * sum(n for n in SIZES if n >= 16384)
    assert spliced >= big, (relayed, spliced)
    assert relayed < 2 * sum(n + 200 for n in SIZES if n < 16384), (relayed, spliced)


@pytest.mark.root
def test_sockmap_min_body_relays_shorter_bodies(backends: None, tmp_path: Path) -> None:
    """splice_min_body = 100000: the 20 KB and 64 KiB bodies go through user space, the
    1 MiB and 3 MB ones through the kernel; bytes exact either way."""
    with LoadBalancer(tmp_path, "sockmap", 22216, extra="splice_min_body = 100000\n") as lb:
        _keepalive_run(22216)
        relayed, spliced = lb.counters
    big = [n for n in SIZES if n >= 100_000]
    assert 2 * sum(big) <= spliced < 2 * sum(n + 200 for n in big), (relayed, spliced)
    assert relayed >= 2 * sum(n for n in SIZES if n < 100_000), (relayed, spliced)


def _read_response(sock: socket.socket, buf: bytes) -> tuple[bytes, bytes]:
    """(body, what follows it) of the next response on ``sock`` (Content-Length framing)."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(1 << 16)
        assert chunk, "closed before a response head"
        buf += chunk
    head, buf = buf.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200"), head
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    while len(buf) < length:
        chunk = sock.recv(1 << 16)
        assert chunk, "closed in a body"
        buf += chunk
    return buf[:length], buf[length:]


@pytest.mark.root
def test_sockmap_pipelined_small_after_spliced(backends: None, tmp_path: Path) -> None:
    """Pipelined: a short (relayed) response right behind a spliced one, whose bytes may
    still be in the kernel's work queue when the short one is written: order kept."""
    with LoadBalancer(tmp_path, "sockmap", 22217), \
            socket.create_connection(("127.0.0.1", 22217), timeout=10) as s:
        for _ in range(10):
            s.sendall(b"GET /bytes/1048576 HTTP/1.1\r\nhost: x\r\n\r\n"
                      b"GET /bytes/100 HTTP/1.1\r\nhost: x\r\n\r\n"
                      b"GET /bytes/200000 HTTP/1.1\r\nhost: x\r\n\r\n")
            rest = b""
            for n in (1 << 20, 100, 200_000):
                body, rest = _read_response(s, rest)
                assert body == body_bytes(n), f"/bytes/{n} differs"
            assert rest == b""


def test_queued_bytes_knows_a_reset_socket() -> None:
    """The drain wait asks queued_bytes; a socket the peer reset can send nothing more, so
    the answer is None (no waiting) instead of a count that never grows."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        ours = socket.create_connection(server.getsockname())
        peer, _ = server.accept()
    with ours, peer:
        ours.sendall(b"x" * 1000)
        assert peer.recv(1000)
        deadline = time.monotonic() + 5
        while (queued := queued_bytes(ours, syn=1)) is not None and queued < 1000:
            assert time.monotonic() < deadline, queued
            time.sleep(0.01)
        assert queued == 1000  # exact: the SYN of our connect() is not counted
        peer.sendall(b"y" * 10)
        assert ours.recv(10)
        assert queued_bytes(peer) == 10  # accepted socket: no SYN in its count
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
        peer.close()  # linger 0: RST
        while queued_bytes(ours) is not None:
            assert time.monotonic() < deadline, "the reset never arrived"
            time.sleep(0.01)


@pytest.mark.root
def test_sockmap_body_never_reaches_user_space(tmp_path: Path) -> None:
    size = 1 << 20
    # the head alone, the body 30 ms later: the program must follow a response across skbs
    head = b"HTTP/1.1 200 OK\r\nx-backend: web-1\r\ncontent-length: %d\r\n\r\n" % size
    backend = RawBackend(lambda n: (head + PAUSE + body_bytes(size), False), 22221)
    try:
        with LoadBalancer(tmp_path, "sockmap", 22215, web=22221) as lb:
            conn = http.client.HTTPConnection("127.0.0.1", 22215, timeout=10)
            for _ in range(5):
                body, _who = _get(conn, "/bytes/x")
                assert body == body_bytes(size)
            conn.close()
            relayed, spliced = lb.counters
    finally:
        backend.close()
    # whole responses (heads too) went through the kernel; this process read none of it
    assert 5 * size < spliced < 5 * (size + 200), (relayed, spliced)
    assert relayed == 0, (relayed, spliced)


def test_relay_path_byte_exact(backends: None, tmp_path: Path) -> None:
    with LoadBalancer(tmp_path, "relay", 22211) as lb:
        _keepalive_run(22211)
        relayed, spliced = lb.counters
    assert spliced == 0
    assert relayed >= 2 * sum(SIZES)


@pytest.mark.root
def test_sockmap_one_connection_per_request(backends: None, tmp_path: Path) -> None:
    """Connection: close right after a spliced body: nothing may be cut off."""
    with LoadBalancer(tmp_path, "sockmap", 22212) as lb:
        for n in (1 << 20, 200_000) * 3:
            conn = http.client.HTTPConnection("127.0.0.1", 22212, timeout=10)
            conn.request("GET", f"/bytes/{n}", headers={"connection": "close"})
            resp = conn.getresponse()
            assert resp.read() == body_bytes(n)
            conn.close()
        relayed, spliced = lb.counters
        assert relayed + spliced >= 3 * ((1 << 20) + 200_000)


@pytest.mark.root
@pytest.mark.parametrize("splice", ["sockmap", "relay"])
def test_upgrade_tunnel_both_directions(backends: None, tmp_path: Path, splice: str) -> None:
    port = 22213 if splice == "sockmap" else 22214
    with LoadBalancer(tmp_path, splice, port) as lb, \
            socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET /ws HTTP/1.1\r\nhost: x\r\nupgrade: echo\r\nconnection: upgrade\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(4096)
        assert head.startswith(b"HTTP/1.1 101"), head
        payload = os.urandom(1 << 20)
        threading.Thread(target=s.sendall, args=(payload,), daemon=True).start()
        got = head.split(b"\r\n\r\n", 1)[1]
        while len(got) < len(payload):
            chunk = s.recv(1 << 16)
            assert chunk, "tunnel closed early"
            got += chunk
        assert got == payload
        _relayed, spliced = lb.counters
    if splice == "relay":
        assert spliced == 0
