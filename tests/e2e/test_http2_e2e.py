"""HTTP/2 through the kernel data plane with real clients (curl, h2load) and h2 backends."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from miresga_core.api import Address
from miresga_core.cli_status import fetch_status

pytestmark = pytest.mark.slow

LB = 21080
CONFIG = f"""
[dataplane.kernel]
workers = {{workers}}
[admin]
listen = "127.0.0.1:21190"
[[listeners]]
name = "h2"
listen = "127.0.0.1:{LB}"
protocol = "http2"
default_pool = "web"
[[listeners.routes]]
name = "api"
pool = "api"
match = {{{{ path = {{{{ prefix = "/api/" }}}} }}}}
[pools.web]
backends = [{{{{ address = "127.0.0.1:21101", name = "web-1" }}}},
            {{{{ address = "127.0.0.1:21102", name = "web-2" }}}}]
[pools.api]
backends = [{{{{ address = "127.0.0.1:21103", name = "api-1" }}}}]
"""

needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
needs_h2load = pytest.mark.skipif(shutil.which("h2load") is None, reason="h2load not installed")


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["curl", "-s", "--http2-prior-knowledge", "--max-time", "10", *args],
                          capture_output=True, text=True, timeout=20)


@pytest.fixture
def h2_setup(procs):
    for port, name in ((21101, "b-web-1"), (21102, "b-web-2"), (21103, "b-api-1")):
        procs.h2_backend(port, name)
    procs.lb(CONFIG.format(workers=2).replace("{{", "{").replace("}}", "}"), LB)
    return procs


@needs_curl
def test_curl_routed_by_path(h2_setup) -> None:
    out = curl("-D", "-", f"http://127.0.0.1:{LB}/api/users")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("HTTP/2 200")
    assert "x-backend: b-api-1" in out.stdout
    seen = set()
    for i in range(6):
        body = curl(f"http://127.0.0.1:{LB}/page/{i}").stdout
        m = re.fullmatch(r"backend=(\S+) path=/page/(\d+)\n", body)
        assert m and m.group(2) == str(i), body
        seen.add(m.group(1))
    assert seen <= {"b-web-1", "b-web-2"} and seen  # web pool only, never api
    assert curl(f"http://127.0.0.1:{LB}/api/x").stdout == "backend=b-api-1 path=/api/x\n"


@needs_curl
def test_curl_large_bodies_both_ways(h2_setup, tmp_path) -> None:
    n = 3_000_000
    out = subprocess.run(["curl", "-s", "--http2-prior-knowledge", "--max-time", "20",
                          f"http://127.0.0.1:{LB}/bytes/{n}"], capture_output=True, timeout=30)
    expected = bytes(range(256)) * (n // 256) + bytes(range(n % 256))
    assert out.stdout == expected
    upload = tmp_path / "up.bin"
    upload.write_bytes(expected[:2_500_000])
    out = subprocess.run(["curl", "-s", "--http2-prior-knowledge", "--max-time", "20",
                          "--data-binary", f"@{upload}", f"http://127.0.0.1:{LB}/echo"],
                         capture_output=True, timeout=30)
    assert out.stdout == expected[:2_500_000]


@needs_curl
def test_curl_h2c_upgrade_and_refusals(h2_setup) -> None:
    out = subprocess.run(["curl", "-s", "--http2", "--max-time", "10", "-D", "-",
                          f"http://127.0.0.1:{LB}/api/up"], capture_output=True, text=True,
                         timeout=20)
    assert out.stdout.startswith("HTTP/1.1 101 Switching Protocols"), out.stdout
    assert "HTTP/2 200" in out.stdout and out.stdout.endswith("backend=b-api-1 path=/api/up\n")
    plain = subprocess.run(["curl", "-s", "--http1.1", "-o", "/dev/null", "-w", "%{http_code}",
                            f"http://127.0.0.1:{LB}/x"], capture_output=True, text=True,
                           timeout=20)
    assert plain.stdout == "505"  # HTTP/1.1 without an upgrade: told what to do


@needs_h2load
@pytest.mark.parametrize("path", ["/api/load", "/web/load"])
def test_h2load_multiplexed_streams(h2_setup, path: str) -> None:
    out = subprocess.run(["h2load", "-n", "2000", "-c", "4", "-m", "16",
                          f"http://127.0.0.1:{LB}{path}"], capture_output=True, text=True,
                         timeout=60)
    assert "2000 succeeded, 0 failed, 0 errored" in out.stdout, out.stdout
    assert "status codes: 2000 2xx" in out.stdout, out.stdout
    # every stream went to the pool its path routes to (counted by the balancer's workers)
    h2_setup.wait(21190)
    doc = fetch_status(Address("127.0.0.1", 21190))
    served: dict[str, int] = {}
    for worker in doc["workers"]:
        for key, n in worker["stats"]["h2"]["requests"].items():
            served[key.split("/")[0]] = served.get(key.split("/")[0], 0) + n
    assert served == {"api" if path.startswith("/api/") else "web": 2000}, served


@needs_curl
def test_no_route_and_no_backend(procs) -> None:
    procs.h2_backend(21104, "only")
    config = f"""
[dataplane.kernel]
workers = 1
[[listeners]]
name = "h2"
listen = "127.0.0.1:{LB + 1}"
protocol = "http2"
[[listeners.routes]]
pool = "up"
match = {{ path = {{ prefix = "/up/" }} }}
[[listeners.routes]]
pool = "down"
match = {{ path = {{ prefix = "/down/" }} }}
[pools.up]
backends = [{{ address = "127.0.0.1:21104" }}]
[pools.down]
backends = [{{ address = "127.0.0.1:21105" }}]
"""
    procs.lb(config, LB + 1)
    base = f"http://127.0.0.1:{LB + 1}"
    assert curl(f"{base}/up/a").stdout == "backend=only path=/up/a\n"
    assert curl("-o", "/dev/null", "-w", "%{http_code}", f"{base}/nowhere").stdout == "404"
    assert curl("-o", "/dev/null", "-w", "%{http_code}", f"{base}/down/x").stdout == "503"
    assert curl(f"{base}/up/b").stdout == "backend=only path=/up/b\n"  # still serving
    # three client connections came and went: the one backend connection was pooled
    out = subprocess.run(["ss", "-Htn", "state", "established", "( dport = :21104 )"],
                         capture_output=True, text=True, timeout=10).stdout
    assert len(out.splitlines()) == 1, out


@needs_curl
def test_pinned_when_one_pool(procs) -> None:
    """One pool, round-robin: route scope "connection", the connection is tunnelled."""
    procs.h2_backend(21106, "pin-a")
    procs.h2_backend(21107, "pin-b")
    config = f"""
[dataplane.kernel]
workers = 1
[[listeners]]
name = "h2pin"
listen = "127.0.0.1:{LB + 2}"
protocol = "http2"
default_pool = "p"
[pools.p]
backends = [{{ address = "127.0.0.1:21106", name = "a" }}, {{ address = "127.0.0.1:21107" }}]
"""
    procs.lb(config, LB + 2)
    check = subprocess.run([*procs_cmd(), "check", "-c", str(procs.tmp / "lb.toml")],
                           capture_output=True, text=True, env=procs.env(), timeout=30)
    assert "route-scope=connection" in check.stdout, check.stdout + check.stderr
    names = {curl(f"http://127.0.0.1:{LB + 2}/x").stdout for _ in range(4)}
    assert names == {"backend=pin-a path=/x\n", "backend=pin-b path=/x\n"}


def procs_cmd() -> list[str]:
    import sys

    return [sys.executable, "-m", "miresga_core.cli"]


def test_backend_killed_under_http2_load(procs) -> None:
    """One client connection, streams over legs: a killed backend costs no request after
    the fall threshold, and it serves again after a restart."""
    import time

    from h2client import H2Client

    backends = [procs.h2_backend(21110 + i, f"k{i}") for i in range(3)]
    procs.lb(f"""
[dataplane.kernel]
workers = 1
[admin]
listen = "127.0.0.1:21191"
[[listeners]]
name = "h2"
listen = "127.0.0.1:{LB + 3}"
protocol = "http2"
default_pool = "p"
[pools.p]
policy = "consistent-hash"
options = {{ key = "path" }}  # a request field: every stream is routed on its own
backends = [{{ address = "127.0.0.1:21110", name = "k0" }},
            {{ address = "127.0.0.1:21111", name = "k1" }},
            {{ address = "127.0.0.1:21112", name = "k2" }}]
health = {{ kind = "tcp", interval = 0.2, timeout = 0.5, rise = 2, fall = 2 }}
""", LB + 3)
    client = H2Client(LB + 3)
    failures_after, served_after, hits_dead = 0, 0, 0
    warm = {client.get(f"/warm/{i}")[1]["x-backend"] for i in range(100)}
    assert warm == {"k0", "k1", "k2"}  # one connection, streams spread over the backends
    backends[1].kill()
    backends[1].wait(5)
    threshold = time.monotonic() + 2 * 0.2 + 0.5 + 0.5
    deadline = time.monotonic() + 20
    total_failures = sent = 0
    while time.monotonic() < deadline and served_after < 300:
        sent += 1
        try:
            status, headers, _ = client.get(f"/load/{sent}")
            ok = status == 200
        except (OSError, ConnectionError):
            ok = False
            client = H2Client(LB + 3)
        total_failures += not ok
        if time.monotonic() > threshold:
            served_after += 1
            failures_after += not ok
            hits_dead += ok and headers.get("x-backend") == "k1"
    print(f"http2: killed k1, {total_failures} failed streams in total, {failures_after} "
          f"after the fall threshold, {served_after} served after it")
    assert failures_after == 0 and hits_dead == 0 and served_after == 300
    procs.h2_backend(21111, "k1")
    seen: set[str] = set()
    for _ in range(200):
        seen.add(client.get(f"/again/{len(seen)}/{time.monotonic()}")[1].get("x-backend", ""))
        if seen == {"k0", "k1", "k2"}:
            break
        time.sleep(0.01)
    assert seen == {"k0", "k1", "k2"}
    client.close()
