"""The ``kernel`` data plane end to end: real load balancer process, real backends (demo
servers on loopback), real clients (curl and http.client).

Every test runs with both engines (``[dataplane.kernel] engine``): the Python asyncio
workers and the native C workers (native/kernel), which must behave the same."""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter

import pytest

from miresga_core.demo import body_bytes
from miresga_core.harness import Backends, LoadBalancer, free_port, serving

pytestmark = pytest.mark.slow

ENGINES = ["python", "native"]

BASE = """
[dataplane.kernel]
engine = "{engine}"
workers = {workers}
[admin]
listen = "127.0.0.1:{{admin}}"
[[listeners]]
name = "web"
listen = "127.0.0.1:{{port}}"
default_pool = "web"
timeouts = {{ head = 0.5, idle = 5, connect = 1, drain = 5 }}
max_head = 4096
[[listeners.routes]]
pool = "api"
match = {{ path = {{ prefix = "/api/" }} }}
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
"""

NAMES = ["w1", "w2", "a1", "s1"]


@pytest.fixture(scope="module", params=ENGINES)
def lb(request):
    with serving(BASE.format(workers=2, engine=request.param), NAMES) as (balancer, _):
        yield balancer


def curl(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["curl", "-sS", "--max-time", "10", *args], capture_output=True,
                          timeout=20, check=False)


def raw_exchange(lb: LoadBalancer, data: bytes, wait: float = 3.0) -> bytes:
    """Send bytes, read until the server closes (or ``wait`` passes)."""
    with socket.create_connection((lb.host, lb.port), timeout=wait) as sock:
        sock.sendall(data)
        out = b""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            out += chunk
        return out


def get_ok(lb: LoadBalancer, path: str = "/") -> str:
    conn = http.client.HTTPConnection(lb.host, lb.port, timeout=5)
    conn.request("GET", path)
    resp = conn.getresponse()
    resp.read()
    conn.close()
    assert resp.status == 200
    return resp.getheader("x-backend") or ""


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_curl_spreads_by_weight_and_routes_by_path(lb):
    seen: Counter[str] = Counter()
    for _ in range(100):
        out = curl(f"{lb.url}/page").stdout.decode()
        seen[out.split()[0].removeprefix("backend=")] += 1
    # weights 3:1; two workers each keep a smooth round-robin, so the total is exact up to
    # the partial cycle of each worker
    assert set(seen) == {"w1", "w2"}
    assert abs(seen["w1"] - 75) <= 3 and abs(seen["w2"] - 25) <= 3, seen
    for _ in range(10):
        assert curl(f"{lb.url}/api/users").stdout.startswith(b"backend=a1 path=/api/users")


def test_keepalive_connection_alternates_routes(lb):
    conn = http.client.HTTPConnection(lb.host, lb.port, timeout=5)
    conn.connect()
    sock = conn.sock
    for i in range(20):
        path = "/api/item" if i % 2 else "/home"
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
        expected = {"a1"} if i % 2 else {"w1", "w2"}
        assert resp.getheader("x-backend") in expected, (i, body)
        assert body.startswith(b"backend=" + resp.getheader("x-backend").encode())
    assert conn.sock is sock, "the client connection was not kept alive"
    conn.close()


def test_large_response_and_bodies_are_exact(lb):
    out = curl(f"{lb.url}/bytes/3000000").stdout
    assert out == body_bytes(3_000_000)
    payload = bytes(range(256)) * 4000
    conn = http.client.HTTPConnection(lb.host, lb.port, timeout=10)
    conn.request("POST", "/echo", body=payload)  # Content-Length
    assert conn.getresponse().read() == payload
    conn.request("POST", "/echo", body=iter([payload[:1000], payload[1000:]]),
                 encode_chunked=True, headers={"Transfer-Encoding": "chunked"})
    assert conn.getresponse().read() == payload
    conn.close()


def test_expect_continue_and_http10(lb):
    out = curl("-H", "Expect: 100-continue", "--data-binary", "x" * 5000,
               f"{lb.url}/echo").stdout
    assert out == b"x" * 5000
    reply = raw_exchange(lb, b"GET /old HTTP/1.0\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 200") and reply.endswith(b"path=/old method=GET\n")
    reply = raw_exchange(lb, b"GET /c HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert reply.endswith(b"path=/c method=GET\n")  # and the server closed: recv returned b""


def test_upgrade_is_tunnelled(lb):
    with socket.create_connection((lb.host, lb.port), timeout=5) as sock:
        sock.sendall(b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n"
                     b"Upgrade: echo\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096)
        assert head.startswith(b"HTTP/1.1 101") and b"x-backend: s1" in head
        for msg in [b"hello", b"GET / HTTP/1.1\r\n\r\n", bytes(range(256))]:
            sock.sendall(msg)
            got = b""
            while len(got) < len(msg):
                got += sock.recv(65536)
            assert got == msg


@pytest.mark.parametrize("request_bytes, status", [
    (b"NOT HTTP AT ALL\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"z" * 5000 + b"\r\n\r\n", 431),
    (b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: br\r\n\r\n", 501),
    (b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400),
])
def test_bad_requests_get_their_status_and_others_keep_working(lb, request_bytes, status):
    reply = raw_exchange(lb, request_bytes)
    assert reply.startswith(b"HTTP/1.1 %d " % status), reply[:80]
    assert get_ok(lb) in {"w1", "w2"}


def test_slow_head_gets_408(lb):
    with socket.create_connection((lb.host, lb.port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHo")
        start = time.monotonic()
        reply = sock.recv(4096)
        assert reply.startswith(b"HTTP/1.1 408 ")
        assert time.monotonic() - start < 3
    assert get_ok(lb) in {"w1", "w2"}


def test_admin_status_and_metrics(lb):
    for _ in range(3):
        get_ok(lb, "/api/metrics-test")
    base = f"http://127.0.0.1:{lb.admin_port}"
    doc = json.loads(urllib.request.urlopen(f"{base}/status", timeout=5).read())
    assert [b["backend"] for b in doc["pools"]["web"]] == ["w1", "w2"]
    assert len(doc["workers"]) == 2
    metrics = urllib.request.urlopen(f"{base}/metrics", timeout=5).read().decode()
    line = next(x for x in metrics.splitlines() if 'backend="a1"' in x and "requests_total" in x)
    assert int(line.split()[-1]) >= 3


DEAD_CONFIG = """
[dataplane.kernel]
engine = "{engine}"
workers = 1
[[listeners]]
listen = "127.0.0.1:{{port}}"
default_pool = "p"
[pools.p]
backends = [{{ address = "127.0.0.1:{dead}", name = "dead" }},
            {{ address = "{{addr:live}}", name = "live" }}]
health = {{ passive = true, cooldown = 30 }}
[pools.lonely]
backends = [{{ address = "127.0.0.1:{dead}", name = "dead" }}]
[[listeners.routes]]
pool = "lonely"
match = {{ path = {{ prefix = "/lonely" }} }}
"""


@pytest.mark.parametrize("engine", ENGINES)
def test_dead_backend_post_502_then_taken_out(engine):
    config = DEAD_CONFIG.format(dead=free_port(), engine=engine)
    with serving(config, ["live"]) as (lb, _):
        conn = http.client.HTTPConnection(lb.host, lb.port, timeout=5)
        conn.request("POST", "/form", body=b"a=1")  # round-robin starts with "dead"
        resp = conn.getresponse()
        assert resp.status == 502 and b"connect to dead failed" in resp.read()
        for _ in range(10):  # dead is out (passive), everything goes to live
            assert get_ok(lb) == "live"
        assert "connect to dead failed" in lb.log()


@pytest.mark.parametrize("engine", ENGINES)
def test_dead_backend_get_retried_transparently(engine):
    config = DEAD_CONFIG.format(dead=free_port(), engine=engine)
    with serving(config, ["live"]) as (lb, _):
        assert [get_ok(lb) for _ in range(6)] == ["live"] * 6
        reply = raw_exchange(lb, b"GET /lonely HTTP/1.1\r\nHost: a\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 502 ")  # its only backend refuses
        reply = raw_exchange(lb, b"GET /lonely HTTP/1.1\r\nHost: a\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 503 ")  # ... and is now out: nothing up


@pytest.mark.parametrize("engine", ENGINES)
def test_sigterm_drains_in_flight_requests(engine):
    with serving(BASE.format(workers=1, engine=engine), NAMES) as (lb, _):
        result: dict[str, object] = {}

        def slow() -> None:
            conn = http.client.HTTPConnection(lb.host, lb.port, timeout=10)
            conn.request("GET", "/slow/1500")
            resp = conn.getresponse()
            result["status"], result["body"] = resp.status, resp.read()

        thread = threading.Thread(target=slow)
        thread.start()
        time.sleep(0.4)
        assert lb.stop(timeout=15) == 0
        thread.join(10)
        assert result.get("status") == 200 and b"slow" in result["body"]  # type: ignore[operator]
        with pytest.raises(OSError):
            socket.create_connection((lb.host, lb.port), timeout=1).close()


def test_misspelled_key_exits_nonzero_naming_key_and_line(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[[listeners]]\nlisten = "127.0.0.1:1"\ndefault_pol = "x"\n')
    proc = subprocess.run([sys.executable, "-m", "miresga_core.cli", "check", "-c", str(cfg)],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert f"{cfg}:3: listeners[0].default_pol: unknown key 'default_pol'" in proc.stderr


def test_bind_conflict_is_a_clear_error():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with Backends(["b"]) as backends:
            text = (f'[[listeners]]\nlisten = "127.0.0.1:{port}"\ndefault_pool = "p"\n'
                    f'[pools.p]\nbackends = [{{ address = "{backends.address("b")}" }}]\n')
            lb = LoadBalancer(text)
            with open(lb.config_path, "w") as fh:
                fh.write(text)
            proc = subprocess.run([sys.executable, "-m", "miresga_core.cli", "serve", "-c",
                                   lb.config_path], capture_output=True, text=True, timeout=30)
            lb.__exit__()
    assert proc.returncode == 2 and "cannot bind" in proc.stderr
