"""CompiledListener: the data plane's view of a compiled listener."""

from __future__ import annotations

import pytest

from miresga_core.bytecode import native
from miresga_core.bytecode.runtime import CompiledListener
from miresga_core.config import parse_config
from miresga_core.plugins import get_plugin_manager, registry_from

CONFIG = """
[pools.web]
backends = [{ address = "127.0.0.1:8001" }, { address = "127.0.0.1:8002" }]
[pools.ws]
backends = [{ address = "127.0.0.1:8101" }]
[[listeners]]
name = "web"
listen = "127.0.0.1:8080"
default_pool = "web"
max_head = 1024
[[listeners.routes]]
pool = "ws"
name = "sockets"
offload = "pin"
match = { path = "/ws" }
"""


@pytest.fixture(scope="module")
def compiled() -> CompiledListener:
    registry = registry_from(get_plugin_manager())
    return CompiledListener(parse_config(CONFIG, registry), "web", registry)


def test_uses_the_c_vm_when_built(compiled: CompiledListener) -> None:
    assert compiled.kind == ("c" if native.available() else "python")


def test_verdicts(compiled: CompiledListener) -> None:
    v = compiled.decide(b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n"
                        b"Upgrade: websocket\r\n\r\n")
    assert (v.kind, v.route, v.pool, v.offload, v.backend, v.upgrade) == \
        ("route", "sockets", "ws", "pin", 0, True)
    v = compiled.decide(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 7\r\n\r\n")
    assert (v.route, v.pool, v.framing, v.content_length, v.keep_alive) == \
        ("default", "web", "length", 7, True)
    assert compiled.decide(b"GET / HTTP/1.1\r\n").kind == "needmore"
    v = compiled.decide(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
    assert (v.kind, v.status) == ("reject", 400)
    assert compiled.decide(b"GET / HTTP/1.1\r\nX: " + b"a" * 2000).status == 431


def test_round_robin_sequence_advances(compiled: CompiledListener) -> None:
    picks = {compiled.decide(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").backend for _ in range(4)}
    assert picks == {0, 1}
