"""The native worker's control socket speaks the Python workers' protocol: the same stats
schema (session.Stats fields per listener, pool status, byte counters) and health verdicts
that change it. The worker is started directly with a plan and one end of a socketpair,
as the master does; the plan format is exercised on the way (refusals included)."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from miresga_core.config import parse_config
from miresga_core.harness import free_port
from miresga_core.kernel.native import build_worker, write_plan
from miresga_core.plugins import get_plugin_manager, registry_from
from miresga_core.session import Stats

CONFIG = """
[dataplane.kernel]
engine = "native"
[[listeners]]
name = "web"
listen = "127.0.0.1:{port}"
default_pool = "web"
[[listeners.routes]]
pool = "api"
match = {{ path = {{ prefix = "/api/" }} }}
[pools.web]
backends = [{{ address = "127.0.0.1:1", name = "w 1" }}, {{ address = "[::1]:2", weight = 2 }}]
[pools.api]
backends = [{{ address = "127.0.0.1:3", name = "a\\"1" }}]
"""


def _read_line(sock: socket.socket) -> dict:
    data = b""
    deadline = time.monotonic() + 5
    while not data.endswith(b"\n") and time.monotonic() < deadline:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return json.loads(data)


@pytest.fixture
def worker(tmp_path: Path):
    registry = registry_from(get_plugin_manager())
    config = parse_config(CONFIG.format(port=free_port()), registry, file="test.toml")
    plan = tmp_path / "plan"
    write_plan(config, registry, plan)
    parent, child = socket.socketpair()
    proc = subprocess.Popen([str(build_worker()), "--plan", str(plan), "--worker", "3",
                             "--control-fd", str(child.fileno())], pass_fds=(child.fileno(),),
                            stderr=subprocess.PIPE)
    child.close()
    parent.settimeout(5)
    try:
        yield parent, proc
    finally:
        proc.kill()
        proc.wait(5)
        parent.close()


def test_stats_schema_matches_the_python_worker(worker):
    control, proc = worker
    control.sendall(b'{"op": "stats"}\n')
    reply = _read_line(control)
    assert reply["worker"] == 3 and reply["pid"] == proc.pid
    assert set(reply) >= {"worker", "pid", "stats", "pools", "bytes"}
    assert set(reply["stats"]) == {"web"}
    assert set(reply["stats"]["web"]) == {f.name for f in dataclasses.fields(Stats)}
    assert reply["bytes"] == {"relayed": 0, "spliced": 0}
    web = reply["pools"]["web"]
    assert [b["backend"] for b in web] == ["w 1", "[::1]:2"]
    assert web[1] == {"backend": "[::1]:2", "address": "[::1]:2", "weight": 2, "up": True,
                      "passive_out": False, "passive_failures": 0}
    assert reply["pools"]["api"][0]["backend"] == 'a"1'


def test_health_verdicts_change_the_reported_state(worker):
    control, _ = worker
    control.sendall(b'{"op": "health", "pool": "web", "index": 1, "up": false}\n'
                    b'{"op": "health", "pool": "nope", "index": 0, "up": false}\n'
                    b'{"op": "whatever"}\nnot json at all\n{"op": "stats"}\n')
    reply = _read_line(control)
    assert [b["up"] for b in reply["pools"]["web"]] == [True, False]
    control.sendall(b'{"op": "health", "pool": "web", "index": 1, "up": true}\n'
                    b'{"op": "stats"}\n')
    assert [b["up"] for b in _read_line(control)["pools"]["web"]] == [True, True]


def test_master_gone_means_the_worker_exits(worker):
    control, proc = worker
    control.close()
    assert proc.wait(15) == 0


@pytest.mark.parametrize("plan, message", [
    ("listener x\n", "bad listener record"),
    ("pool p 1 5000\nbackend nohost 1 1 b b\n", "bad backend record"),
    ("splice_min 1\n", "no listener"),
    ("pool p 1 5000\nbackend 127.0.0.1 1 1 b b\nlistener l 127.0.0.1 1 0 4096 2 1 1 1 1 1 1 "
     "1 0 4d564d31\n", "truncated program"),
])
def test_bad_plans_are_refused_with_a_reason(tmp_path: Path, plan: str, message: str):
    path = tmp_path / "plan"
    path.write_text(plan)
    proc = subprocess.run([str(build_worker()), "--plan", str(path), "--check"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr


def test_missing_compiler_is_a_clear_error(tmp_path: Path):
    code = ("from miresga_core.kernel.native import build_target\n"
            "try:\n    build_target('miresga-kw')\n"
            "except Exception as exc:\n    print(exc)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, env={"PATH": str(tmp_path), "PYTHONPATH": ":".join(
                              p for p in sys.path if p)})
    assert "is not installed" in proc.stdout and "apt install gcc make" in proc.stdout, \
        proc.stdout + proc.stderr


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_out_of_file_descriptors_pauses_accepting_instead_of_spinning(tmp_path: Path):
    """With RLIMIT_NOFILE exhausted, a level-triggered listener would wake the loop at once,
    forever: the worker stops watching it for a while, and accepts again once fds free."""
    import resource

    backend = socket.create_server(("127.0.0.1", 0))
    registry = registry_from(get_plugin_manager())
    port = free_port()
    text = CONFIG.format(port=port).replace("127.0.0.1:1", f"127.0.0.1:{backend.getsockname()[1]}")
    plan = tmp_path / "plan"
    write_plan(parse_config(text, registry, file="test.toml"), registry, plan)

    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (24, 24))

    proc = subprocess.Popen([str(build_worker()), "--plan", str(plan)], preexec_fn=low_limit,
                            stderr=subprocess.PIPE, text=True)
    clients: list[socket.socket] = []
    try:
        time.sleep(0.3)
        for _ in range(40):  # more than the worker can hold; the rest wait in the backlog
            clients.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        time.sleep(0.3)
        before = _cpu_seconds(proc.pid)
        time.sleep(1.0)
        assert _cpu_seconds(proc.pid) - before < 0.3, "the worker spins on its listener"
        for sock in clients:
            sock.close()
        clients.clear()
        time.sleep(0.5)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\n\r\n")  # no Host: the program answers 400
            assert sock.recv(100).startswith(b"HTTP/1.1 400 ")
    finally:
        for sock in clients:
            sock.close()
        proc.kill()
        _, err = proc.communicate(timeout=5)
        backend.close()
    assert "not accepting for 100 ms" in err
