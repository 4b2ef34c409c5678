"""Health and weights through the kernel data plane with real HTTP/1.1 demo backends.

* smooth weighted round-robin spread measured over 1000 requests;
* a backend killed under load is taken out (no failed idempotent request after the fall
  threshold) and comes back after it restarts;
* a backend whose health check fails leaves the policy while a live download from it goes
  on to the last byte, and comes back when its check passes again; ``miresga status``
  shows each state.
"""

from __future__ import annotations

import argparse
import http.client
import io
import time
from contextlib import redirect_stdout

import pytest

from miresga_core import cli_status
from miresga_core.api import Address
from miresga_core.demo import body_bytes

pytestmark = pytest.mark.slow

LB, ADMIN = 21300, 21390


class Client:
    """A keep-alive HTTP/1.1 client that reconnects after errors and counts them."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn: http.client.HTTPConnection | None = None
        self.failures = 0

    def get(self, path: str) -> tuple[int, str] | None:
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            self.conn.request("GET", path)
            resp = self.conn.getresponse()
            resp.read()
            if resp.status != 200:
                self.failures += 1
            return resp.status, resp.getheader("x-backend", "")
        except (OSError, http.client.HTTPException):
            self.failures += 1
            if self.conn is not None:
                self.conn.close()
            self.conn = None
            return None


def status() -> dict:
    return cli_status.fetch_status(Address("127.0.0.1", ADMIN))


def up_of(doc: dict, pool: str, name: str) -> bool:
    return next(b["up"] for b in doc["pools"][pool] if b["backend"] == name)


def wait_state(pool: str, name: str, up: bool, limit: float = 15.0) -> float:
    start = time.monotonic()
    while time.monotonic() - start < limit:
        if up_of(status(), pool, name) == up:
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"{name} did not become {'UP' if up else 'DOWN'} in {limit}s")


def test_weighted_round_robin_spread_1000(procs) -> None:
    procs.http1_backend(21301, "w3")
    procs.http1_backend(21302, "w1")
    procs.lb(f"""
[dataplane.kernel]
workers = 1
[[listeners]]
name = "web"
listen = "127.0.0.1:{LB}"
default_pool = "p"
[pools.p]
backends = [{{ address = "127.0.0.1:21301", name = "w3", weight = 3 }},
            {{ address = "127.0.0.1:21302", name = "w1", weight = 1 }}]
""", LB)
    client = Client(LB)
    counts: dict[str, int] = {}
    for _ in range(1000):
        result = client.get("/x")
        assert result is not None
        counts[result[1]] = counts.get(result[1], 0) + 1
    print(f"weighted round-robin 3:1 over 1000 requests: {counts}")
    assert counts == {"w3": 750, "w1": 250}
    assert client.failures == 0


def _health_config(policy: str = "round-robin") -> str:
    backends = ", ".join(f'{{ address = "127.0.0.1:{21310 + i}", name = "h{i}" }}'
                         for i in range(3))
    return f"""
[dataplane.kernel]
workers = 2
[admin]
listen = "127.0.0.1:{ADMIN}"
[[listeners]]
name = "web"
listen = "127.0.0.1:{LB + 1}"
default_pool = "p"
[pools.p]
policy = "{policy}"
backends = [{backends}]
health = {{ kind = "http", path = "/healthz", interval = 0.2, timeout = 0.5, rise = 2, fall = 2 }}
"""


def test_backend_killed_under_load_and_restarted(procs) -> None:
    backends = [procs.http1_backend(21310 + i, f"h{i}") for i in range(3)]
    procs.lb(_health_config(), LB + 1)
    procs.wait(ADMIN)
    client = Client(LB + 1)
    for _ in range(150):
        assert client.get("/warm") is not None
    backends[1].kill()
    backends[1].wait(5)
    killed = time.monotonic()
    threshold = killed + 2 * 0.2 + 0.5 + 0.5  # fall x interval + probe timeout + slack
    failed_after, served_after, hits_dead = 0, 0, 0
    deadline = killed + 20
    down_after = None
    i = 0
    while time.monotonic() < deadline and i < 5000:
        i += 1
        before = client.failures
        result = client.get(f"/load/{i}")
        now = time.monotonic()
        if now > threshold:
            failed_after += client.failures - before
            served_after += 1
            hits_dead += bool(result and result[1] == "h1")
        if down_after is None and i % 10 == 0 and not up_of(status(), "p", "h1"):
            down_after = now - killed
        if down_after is not None and served_after >= 300:
            break
    print(f"killed h1: marked DOWN after {down_after:.2f}s; {client.failures} failed requests "
          f"in total, {failed_after} after the fall threshold, {served_after} served after it")
    assert down_after is not None
    assert failed_after == 0 and hits_dead == 0 and served_after >= 300
    # restart it: it comes back
    procs.http1_backend(21311, "h1")
    back = wait_state("p", "h1", True)
    seen = {client.get(f"/again/{j}")[1] for j in range(60)}
    print(f"h1 restarted: UP again after {back:.2f}s; backends answering: {sorted(seen)}")
    assert seen == {"h0", "h1", "h2"}


def test_down_by_health_keeps_live_connection_then_recovers(procs) -> None:
    for i in range(3):
        procs.http1_backend(21310 + i, f"h{i}")
    procs.lb(_health_config(), LB + 1)
    procs.wait(ADMIN)
    # a large download in flight from one backend
    size = 30_000_000
    download = http.client.HTTPConnection("127.0.0.1", LB + 1, timeout=20)
    download.request("GET", f"/bytes/{size}")
    resp = download.getresponse()
    victim = resp.getheader("x-backend")
    first = resp.read(1 << 20)
    # its health check starts failing (the server itself stays up)
    port = 21310 + int(victim[1:])
    direct = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    direct.request("GET", "/healthz/fail")
    direct.getresponse().read()
    took = wait_state("p", victim, False)
    client = Client(LB + 1)
    names = [client.get(f"/n/{j}")[1] for j in range(40)]
    assert victim not in names and client.failures == 0
    out = io.StringIO()
    with redirect_stdout(out):
        assert cli_status.cmd_status(argparse.Namespace(admin=f"127.0.0.1:{ADMIN}",
                                                        config="", json=False)) == 0
    text = out.getvalue()
    assert f"{victim} " in text and "DOWN" in text and "route-scope=connection" in text
    # the live download was not cut
    rest = resp.read()
    assert first + rest == body_bytes(size)
    download.close()
    direct.request("GET", "/healthz/ok")
    direct.getresponse().read()
    direct.close()
    back = wait_state("p", victim, True)
    names = {client.get(f"/m/{j}")[1] for j in range(40)}
    print(f"{victim} DOWN after {took:.2f}s of failing checks, UP {back:.2f}s after recovery")
    assert victim in names
    print(text)
