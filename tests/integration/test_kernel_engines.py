"""Both engines of the ``kernel`` data plane (Python asyncio workers, native C workers) on
the behaviours a shippable HTTP/1 load balancer needs: exact weighted round-robin, pipelining,
byte-exact large bodies, framing of misbehaving backends, timeouts, health (active through
the master's control messages, passive from failures), admin counters.

Real processes throughout: ``miresga serve``, demo backends, and small raw-socket backends
in threads of the test for the misbehaving cases. Every loop is bounded."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from miresga_core.demo import body_bytes
from miresga_core.harness import LoadBalancer, free_port, serving
from tests.kernel.rawserver import RawBackend

pytestmark = pytest.mark.slow

ENGINES = ["python", "native"]

CONFIG = """
[dataplane.kernel]
engine = "{engine}"
workers = 1
[admin]
listen = "127.0.0.1:{{admin}}"
[[listeners]]
name = "web"
listen = "127.0.0.1:{{port}}"
default_pool = "web"
timeouts = {{ head = 1, idle = 5, connect = 1, response = {response}, drain = 5 }}
[[listeners.routes]]
pool = "api"
match = {{ path = {{ prefix = "/api/" }} }}
[[listeners.routes]]
pool = "raw"
match = {{ path = {{ prefix = "/raw/" }} }}
[[listeners.routes]]
pool = "gone"
match = {{ path = {{ prefix = "/gone/" }} }}
[[listeners.routes]]
pool = "ws"
match = {{ path = "/ws" }}
[pools.web]
backends = [{{ address = "{{addr:w1}}", weight = 3, name = "w1" }},
            {{ address = "{{addr:w2}}", weight = 1, name = "w2" }}]
[pools.api]
backends = [{{ address = "{{addr:a1}}", name = "a1" }}]
[pools.ws]
backends = [{{ address = "{{addr:s1}}", name = "s1" }}]
[pools.raw]
backends = [{{ address = "127.0.0.1:{raw}", name = "raw" }}]
health = {{ passive = false }}
[pools.gone]
backends = [{{ address = "127.0.0.1:{dead}", name = "gone" }}]
health = {{ kind = "tcp", interval = 0.2, timeout = 0.2, fall = 1, passive = false }}
"""

NAMES = ["w1", "w2", "a1", "s1"]
SIZES = [0, 1, 1000, 16383, 16384, 65536, 300_000, 1 << 20]


def _read_to_close(sock: socket.socket, seconds: float = 5) -> bytes:
    """What the peer sends until it closes, or until ``seconds`` pass (never hangs)."""
    out = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        chunk = sock.recv(65536)
        if not chunk:
            break
        out += chunk
    return out


@pytest.fixture(scope="module", params=ENGINES)
def env(request):
    state: dict[str, Callable[[int], tuple[bytes, bool]]] = {
        "reply": lambda n: (b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", False)}
    raw = RawBackend(lambda n: state["reply"](n))
    config = CONFIG.format(engine=request.param, raw=raw.port, dead=free_port(),
                           response=1)
    state["backend"] = raw  # type: ignore[assignment]
    try:
        with serving(config, NAMES) as (lb, _):
            yield lb, state, request.param
    finally:
        raw.close()


def _conn(lb: LoadBalancer) -> http.client.HTTPConnection:
    return http.client.HTTPConnection(lb.host, lb.port, timeout=10)


def _status(lb: LoadBalancer) -> dict:
    url = f"http://127.0.0.1:{lb.admin_port}/status"
    return json.loads(urllib.request.urlopen(url, timeout=5).read())


def test_weighted_round_robin_is_exact_over_1000_requests(env):
    lb, _, _ = env
    conn = _conn(lb)
    seen: Counter[str] = Counter()
    for _ in range(1000):
        conn.request("GET", "/page")
        resp = conn.getresponse()
        resp.read()
        seen[resp.getheader("x-backend") or ""] += 1
    conn.close()
    assert seen == {"w1": 750, "w2": 250}, seen


def test_keepalive_sizes_alternating_pools_byte_exact(env):
    lb, _, _ = env
    conn = _conn(lb)
    for i, n in enumerate(SIZES * 2):
        path = f"/api/bytes/{n}" if i % 2 else f"/bytes/{n}"
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
        assert resp.status == 200
        expected = {"a1"} if i % 2 else {"w1", "w2"}
        assert resp.getheader("x-backend") in expected
        if i % 2 == 0:
            assert body == body_bytes(n), f"/bytes/{n} differs"
    conn.close()


def test_pipelined_requests_are_answered_in_order(env):
    lb, _, _ = env
    paths = ["/p0", "/api/p1", "/p2", "/api/p3", "/p4"]
    data = b"".join(f"GET {p} HTTP/1.1\r\nHost: a\r\n\r\n".encode() for p in paths[:-1])
    data += f"GET {paths[-1]} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".encode()
    with socket.create_connection((lb.host, lb.port), timeout=5) as sock:
        sock.sendall(data)
        out = _read_to_close(sock)
    got = [line.split(b" ")[1].split(b"=")[1].decode()
           for line in out.split(b"\n") if line.startswith(b"backend=")]
    assert got == paths, out[-500:]


def test_20_mb_download_and_8_mb_uploads_are_byte_exact(env, tmp_path: Path):
    lb, _, _ = env
    if shutil.which("curl") is None:
        pytest.skip("curl not installed")
    out = tmp_path / "big"
    n = 20_000_000
    subprocess.run(["curl", "-sS", "--max-time", "60", "-o", str(out), f"{lb.url}/bytes/{n}"],
                   check=True, timeout=90)
    assert hashlib.sha256(out.read_bytes()).hexdigest() == \
        hashlib.sha256(body_bytes(n)).hexdigest()
    payload = bytes(range(256)) * (8_000_000 // 256)
    conn = _conn(lb)
    conn.request("POST", "/echo", body=payload)
    assert hashlib.sha256(conn.getresponse().read()).digest() == \
        hashlib.sha256(payload).digest()
    parts = [payload[i:i + 100_000] for i in range(0, len(payload), 100_000)]
    conn.request("POST", "/echo", body=iter(parts), encode_chunked=True,
                 headers={"Transfer-Encoding": "chunked"})
    assert hashlib.sha256(conn.getresponse().read()).digest() == \
        hashlib.sha256(payload).digest()
    conn.close()


def test_one_connection_per_request_large_bodies(env):
    lb, _, _ = env
    for n in (1 << 20, 200_000) * 3:
        conn = _conn(lb)
        conn.request("GET", f"/bytes/{n}", headers={"connection": "close"})
        assert conn.getresponse().read() == body_bytes(n)
        conn.close()


def test_upgrade_tunnel_carries_1_mib_both_ways(env):
    lb, _, _ = env
    with socket.create_connection((lb.host, lb.port), timeout=10) as s:
        s.sendall(b"GET /ws HTTP/1.1\r\nhost: x\r\nupgrade: echo\r\nconnection: upgrade\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(4096)
        assert head.startswith(b"HTTP/1.1 101"), head
        payload = bytes(range(256)) * 4096
        threading.Thread(target=s.sendall, args=(payload,), daemon=True).start()
        got = head.split(b"\r\n\r\n", 1)[1]
        while len(got) < len(payload):
            chunk = s.recv(1 << 16)
            assert chunk, "tunnel closed early"
            got += chunk
        assert got == payload


def _raw_get(lb: LoadBalancer, state: dict, reply: Callable[[int], tuple[bytes, bool]],
             path: str = "/raw/x") -> tuple[int | None, bytes, str]:
    state["reply"] = reply
    conn = _conn(lb)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        try:
            body = resp.read()
        except http.client.IncompleteRead as exc:
            return resp.status, exc.partial, "incomplete"
        return resp.status, body, ""
    finally:
        conn.close()


def test_response_framings_from_a_raw_backend(env):
    lb, state, _ = env
    body = b"x" * 70_000
    cases = [
        # head then body later (across segments), Content-Length above the splice threshold
        (b"HTTP/1.1 200 OK\r\ncontent-length: 70000\r\n\r\n<pause>" + body, body),
        # chunked with extensions and a trailer
        (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n"
         b"<pause>6\r\n world\r\n0\r\nx-trailer: 1\r\n\r\n", b"hello world"),
        # an interim response before the real one (http.client skips 100 only)
        (b"HTTP/1.1 100 Continue\r\n\r\n<pause>HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\n"
         b"abc", b"abc"),
        # 204 and 304 have no body whatever they say
        (b"HTTP/1.1 204 No Content\r\n\r\n", b""),
        # HTTP/1.0 close-delimited
        (b"HTTP/1.0 200 OK\r\n\r\nuntil close", b"until close"),
    ]
    for reply, expected in cases:
        close = reply.startswith(b"HTTP/1.0")
        status, got, note = _raw_get(lb, state, lambda n, r=reply, c=close: (r, c))
        assert (got, note) == (expected, ""), reply[:60]
        assert status in (200, 204)


def test_interim_responses_are_relayed_before_the_final_one(env):
    lb, state, _ = env
    reply = (b"HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n"
             b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nabc")
    state["reply"] = lambda n: (reply, False)
    with socket.create_connection((lb.host, lb.port), timeout=5) as sock:
        sock.sendall(b"GET /raw/early HTTP/1.1\r\nHost: a\r\n\r\n")
        out = b""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and len(out) < len(reply):
            chunk = sock.recv(65536)
            if not chunk:
                break
            out += chunk
    assert out == reply


def test_client_close_is_said_in_the_response(env):
    """A client's Connection: close ends the client connection; the response says so
    (the native engine keeps its backend connection and adds the header itself)."""
    lb, state, engine = env
    for reply in (b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nabc",
                  b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\ncontent-length: 3\r\n\r\nabc"):
        state["reply"] = lambda n, r=reply: (r, False)
        with socket.create_connection((lb.host, lb.port), timeout=5) as sock:
            sock.sendall(b"GET /raw/c HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            out = _read_to_close(sock)
        head = out.split(b"\r\n\r\n")[0].lower()
        assert out.endswith(b"\r\n\r\nabc"), out  # and the connection was closed
        if engine == "native":  # python forwards the client's header: the backend says
            assert b"connection: close" in head and b"keep-alive" not in head, head


def test_forwarded_head_has_x_forwarded_for_and_no_hop_by_hop_close(env):
    lb, state, engine = env
    state["reply"] = lambda n: (b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", False)
    with socket.create_connection((lb.host, lb.port), timeout=5) as sock:
        sock.sendall(b"GET /raw/h HTTP/1.1\r\nHost: a\r\nConnection: close\r\nX-A: 1\r\n\r\n")
        while sock.recv(65536):
            pass
    head = state["backend"].last  # type: ignore[attr-defined]
    assert head.startswith(b"GET /raw/h HTTP/1.1\r\nHost: a\r\n"), head
    assert head.endswith(b"X-A: 1\r\nX-Forwarded-For: 127.0.0.1"), head
    assert (b"Connection: close" in head) == (engine == "python"), head


def test_backend_closing_mid_response_closes_the_client(env):
    lb, state, _ = env
    reply = b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n" + b"y" * 1000
    status, got, note = _raw_get(lb, state, lambda n: (reply, True))
    assert status == 200 and note == "incomplete" and got == b"y" * 1000
    assert _conn_ok(lb)


def test_backend_stalling_mid_body(env):
    """The native engine closes a response that made no progress for timeouts.response
    (1 s here); the Python engine waits for the backend (which closes after 3 s)."""
    lb, state, engine = env
    reply = b"HTTP/1.1 200 OK\r\ncontent-length: 5000\r\n\r\n" + b"z" * 100

    def stall(n: int) -> tuple[bytes, bool]:
        return reply + b"<pause>" * 100, True  # 100 x 30 ms of silence, then close

    start = time.monotonic()
    status, got, note = _raw_get(lb, state, stall)
    elapsed = time.monotonic() - start
    assert status == 200 and note == "incomplete" and got == b"z" * 100
    if engine == "native":
        assert elapsed < 2.5, elapsed


def test_bad_response_head_is_502(env):
    lb, state, _ = env
    status, got, _ = _raw_get(lb, state, lambda n: (b"SPDY/9 nope\r\n\r\n", True))
    assert status == 502 and b"bad response" in got
    status, got, _ = _raw_get(
        lb, state, lambda n: (b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2"
                              b"\r\n\r\nab", True))
    assert status == 502


def test_backend_silent_gets_504(env):
    lb, state, _ = env
    start = time.monotonic()
    def silent(n: int) -> tuple[bytes, bool]:
        time.sleep(2.5)  # longer than the listener's response timeout (1 s)
        return b"", True

    status, got, _ = _raw_get(lb, state, silent)
    assert status == 504 and b"backend response timeout" in got
    assert time.monotonic() - start < 2.4


def test_active_health_down_gives_503_and_status_shows_it(env):
    lb, _, _ = env
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        pools = _status(lb)["pools"]
        if not pools["gone"][0]["up"]:
            break
        time.sleep(0.1)
    assert pools["gone"][0]["up"] is False
    conn = _conn(lb)
    conn.request("GET", "/gone/x")
    resp = conn.getresponse()
    assert resp.status == 503 and b"no backend up in pool 'gone'" in resp.read()
    conn.request("GET", "/api/after")  # a 503 of a body-less request keeps the connection
    assert conn.getresponse().status == 200
    conn.close()


def test_bad_chunked_request_body_is_400(env):
    lb, _, _ = env
    with socket.create_connection((lb.host, lb.port), timeout=5) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"zz\r\nhello\r\n0\r\n\r\n")
        out = _read_to_close(sock)
    assert b"400 Bad Request" in out


def test_admin_counts_requests_and_bytes(env):
    lb, _, engine = env
    conn = _conn(lb)
    for _ in range(3):
        conn.request("GET", "/api/bytes/300000")
        conn.getresponse().read()
    conn.close()
    doc = _status(lb)
    worker = doc["workers"][0]
    assert worker["stats"]["web"]["requests"].get("api/a1", 0) >= 3
    moved = worker["bytes"]["relayed"] + worker["bytes"]["spliced"]
    assert moved >= 900_000
    if engine == "native":
        assert worker["bytes"]["spliced"] >= 900_000, worker["bytes"]


def _conn_ok(lb: LoadBalancer) -> bool:
    conn = _conn(lb)
    conn.request("GET", "/api/ok")
    ok = conn.getresponse().status == 200
    conn.close()
    return ok


PASSIVE = """
[dataplane.kernel]
engine = "{engine}"
workers = 1
[admin]
listen = "127.0.0.1:{{admin}}"
[[listeners]]
listen = "127.0.0.1:{{port}}"
default_pool = "p"
[pools.p]
backends = [{{ address = "127.0.0.1:{victim}", name = "victim" }},
            {{ address = "{{addr:live}}", name = "live" }}]
health = {{ passive = true, cooldown = 30 }}
"""


@pytest.mark.parametrize("engine", ENGINES)
def test_backend_killed_is_taken_out_passively(engine):
    victim = RawBackend(lambda n: (b"HTTP/1.1 200 OK\r\nx-backend: victim\r\n"
                                   b"content-length: 2\r\nconnection: close\r\n\r\nok", True))
    with serving(PASSIVE.format(engine=engine, victim=victim.port), ["live"]) as (lb, _):
        seen = Counter()
        for _ in range(4):
            conn = _conn(lb)
            conn.request("GET", "/")
            resp = conn.getresponse()
            resp.read()
            seen[resp.getheader("x-backend")] += 1
            conn.close()
        assert seen == {"victim": 2, "live": 2}
        victim.close()  # killed: connects are refused from now on
        for _ in range(10):  # GETs are retried on live, and victim is taken out
            conn = _conn(lb)
            conn.request("GET", "/")
            resp = conn.getresponse()
            assert resp.status == 200 and resp.getheader("x-backend") == "live"
            resp.read()
            conn.close()
        pools = _status(lb)["pools"]["p"]
        assert pools[0]["passive_out"] is True and pools[0]["passive_failures"] >= 1


def test_native_engine_refuses_http2_listener_naming_the_line(tmp_path: Path):
    cfg = tmp_path / "h2.toml"
    cfg.write_text('[dataplane.kernel]\nengine = "native"\n[[listeners]]\n'
                   'listen = "127.0.0.1:1"\nprotocol = "http2"\ndefault_pool = "p"\n'
                   '[pools.p]\nbackends = [{ address = "127.0.0.1:2" }]\n')
    for command in ("serve", "check"):
        proc = subprocess.run([sys.executable, "-m", "miresga_core.cli", command, "-c",
                               str(cfg)], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2, proc.stderr
        assert f"{cfg}:5: listeners[0].protocol: engine = \"native\" serves HTTP/1" in \
            proc.stderr


def test_garbage_and_abrupt_clients_do_not_hurt_the_workers(env):
    """Seeded random bytes, truncated heads and resets on many connections: every worker
    survives (no restart in the log) and serves the next request."""
    import random

    lb, _, _ = env
    rng = random.Random(8)
    valid = b"GET /api/x HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789"
    socks = []
    for i in range(150):
        sock = socket.create_connection((lb.host, lb.port), timeout=5)
        kind = i % 5
        if kind == 0:
            data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 3000)))
        elif kind == 1:
            data = valid[: rng.randrange(1, len(valid))]
        elif kind == 2:
            data = valid * rng.randrange(1, 20)  # pipelined, then reset below
        elif kind == 3:
            data = b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + \
                bytes(rng.randrange(256) for _ in range(200))
        else:
            data = b"GET /bytes/5000000 HTTP/1.1\r\nHost: a\r\n\r\n"  # never read
        with contextlib.suppress(OSError):
            sock.sendall(data)
        if i % 2:
            linger = struct.pack("ii", 1, 0)  # close with a reset
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
            sock.close()
        else:
            socks.append(sock)
    time.sleep(0.3)
    for sock in socks:
        sock.close()
    assert _conn_ok(lb)
    assert "exited with" not in lb.log()


def test_slow_reader_gets_every_byte(env):
    lb, _, _ = env
    n = 6_000_000
    with socket.create_connection((lb.host, lb.port), timeout=10) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        sock.sendall(f"GET /bytes/{n} HTTP/1.1\r\nHost: a\r\n\r\n".encode())
        got = b""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            chunk = sock.recv(16384)
            if not chunk:
                break
            got += chunk
            if len(got) < 1_000_000:
                time.sleep(0.002)  # slow at first: the load balancer must hold back
            if b"\r\n\r\n" in got and len(got.split(b"\r\n\r\n", 1)[1]) >= n:
                break
    assert got.split(b"\r\n\r\n", 1)[1] == body_bytes(n)


def test_native_engine_refuses_a_policy_without_compiled_form(tmp_path: Path):
    cfg = tmp_path / "cookie.toml"
    cfg.write_text('[dataplane.kernel]\nengine = "native"\n[[listeners]]\n'
                   'listen = "127.0.0.1:1"\ndefault_pool = "p"\n[pools.p]\n'
                   'policy = "consistent-hash"\noptions = { key = "cookie:sid" }\n'
                   'backends = [{ address = "127.0.0.1:2" }, { address = "127.0.0.1:3" }]\n')
    proc = subprocess.run([sys.executable, "-m", "miresga_core.cli", "serve", "-c", str(cfg)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert f"{cfg}:7: pools.p.policy: engine = \"native\" needs a compiled form" in proc.stderr


HASHED = """
[dataplane.kernel]
engine = "{engine}"
workers = 2
[[listeners]]
listen = "127.0.0.1:{{port}}"
default_pool = "by-user"
[[listeners.routes]]
pool = "by-client"
match = {{ path = {{ prefix = "/c/" }} }}
[pools.by-user]
policy = "consistent-hash"
options = {{ key = "header:x-user" }}
backends = [{{ address = "{{addr:h1}}", name = "h1" }}, {{ address = "{{addr:h2}}", name = "h2" }}]
[pools.by-client]
policy = "consistent-hash"
options = {{ key = "client" }}
backends = [{{ address = "{{addr:h1}}", name = "h1" }}, {{ address = "{{addr:h2}}", name = "h2" }}]
"""


_HASHED_SEEN: dict[str, dict[str, str]] = {}


@pytest.mark.parametrize("engine", ENGINES)
def test_consistent_hash_is_sticky_and_both_engines_agree(engine):
    """The Maglev table places backends by name, so user -> backend name is the same in
    every run: the native engine (compiled table) must pick what the Python one picks."""
    with serving(HASHED.format(engine=engine), ["h1", "h2"]) as (lb, _):
        seen: dict[str, set[str]] = {}
        for _round in range(3):
            for user in range(20):
                conn = _conn(lb)  # new connections: both workers take part
                conn.request("GET", "/x", headers={"x-user": f"user{user}"})
                resp = conn.getresponse()
                resp.read()
                seen.setdefault(f"user{user}", set()).add(resp.getheader("x-backend") or "")
                conn.close()
        assert all(len(v) == 1 for v in seen.values()), seen
        assert {next(iter(v)) for v in seen.values()} == {"h1", "h2"}
        clients = set()
        for _ in range(10):
            conn = _conn(lb)
            conn.request("GET", "/c/x")
            resp = conn.getresponse()
            resp.read()
            clients.add(resp.getheader("x-backend"))
            conn.close()
        assert len(clients) == 1
    _HASHED_SEEN[engine] = {user: next(iter(v)) for user, v in seen.items()}
    if len(_HASHED_SEEN) == len(ENGINES):
        assert _HASHED_SEEN["python"] == _HASHED_SEEN["native"]


def test_native_workers_share_the_masters_listening_socket():
    """One accept queue for every native worker (docs/native-kernel.md): a single
    listening socket, held by the master and both workers (SO_REUSEPORT would show one
    socket per worker), and requests are served through it."""
    if shutil.which("ss") is None:
        pytest.skip("ss (iproute2) missing")
    with serving(HASHED.format(engine="native"), ["h1", "h2"]) as (lb, _):
        conn = _conn(lb)
        conn.request("GET", "/x", headers={"x-user": "u"})
        assert conn.getresponse().status == 200
        conn.close()
        out = subprocess.run(["ss", "-ltnpH", f"sport = :{lb.port}"], capture_output=True,
                             text=True, check=True).stdout
        sockets = [line for line in out.splitlines() if line.strip()]
        assert len(sockets) == 1, out
        assert sockets[0].count('"miresga-kw"') == 2, out
