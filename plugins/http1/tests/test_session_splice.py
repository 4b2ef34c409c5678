"""The HTTP/1.1 session's side of the splice contract (bytes in, actions out; no root).

``SpliceNextResponse`` goes out before the request; a head the kernel forwarded is parsed
but never sent again; spliced body bytes and relayed ones mix in any order.
"""

from __future__ import annotations

from typing import Any

from miresga_core.api import Address
from miresga_core.config import parse_config
from miresga_core.kernel.worker import Runtime
from miresga_core.plugins import get_plugin_manager, registry_from
from miresga_core.session import (
    Connect,
    Release,
    SendBackend,
    SendClient,
    SpliceNextResponse,
    SpliceResponse,
)

CONFIG = """
[[listeners]]
name = "web"
listen = "127.0.0.1:22290"
protocol = "http1"
default_pool = "web"
[pools.web]
backends = [{ address = "127.0.0.1:22291", name = "b1" }]
"""

HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n"


def _session() -> Any:
    registry = registry_from(get_plugin_manager())
    config = parse_config(CONFIG, registry)
    runtime = Runtime(config, registry)
    return runtime.session_factory(config.listeners[0])(Address("10.0.0.1", 5555))


def _connected(method: str = "GET") -> tuple[Any, list[Any]]:
    s = _session()
    s.on_start(0.0)
    acts = s.on_client_data(f"{method} /x HTTP/1.1\r\nhost: a\r\n\r\n".encode(), 0.0)
    assert any(isinstance(a, Connect) for a in acts)
    return s, s.on_backend_connected(0.0)


def _types(actions: list[Any]) -> list[type]:
    return [type(a) for a in actions]


def test_arms_before_the_request_leaves() -> None:
    _s, acts = _connected()
    types = _types(acts)
    assert SpliceNextResponse in types
    assert types.index(SpliceNextResponse) < types.index(SendBackend)


def test_head_requests_are_not_armed() -> None:
    _s, acts = _connected("HEAD")
    assert SpliceNextResponse not in _types(acts)


def test_spliced_head_is_parsed_not_resent_and_body_completes() -> None:
    s, _ = _connected()
    acts = s.on_response_head_spliced(HEAD, 0.0)
    assert SendClient not in _types(acts)
    assert Release not in _types(acts)
    acts = s.on_spliced(60000, 0.0) + s.on_spliced(40000, 0.0)
    releases = [a for a in acts if isinstance(a, Release)]
    assert releases == [Release(reuse=True)]
    assert s.ctx.stats.requests == {"web/b1": 1}


def test_relayed_and_spliced_bytes_mix() -> None:
    s, _ = _connected()
    acts = s.on_backend_data(HEAD + b"x" * 1000, 0.0)
    sent = b"".join(a.data for a in acts if isinstance(a, SendClient))
    assert sent == HEAD + b"x" * 1000
    assert SpliceResponse(99000) in acts
    acts = s.on_backend_data(b"y" * 500, 0.0)  # arming declined: relayed
    assert SendClient(b"y" * 500) in acts
    acts = s.on_spliced(98500, 0.0)
    assert Release(reuse=True) in acts


def test_too_many_spliced_bytes_close() -> None:
    s, _ = _connected()
    s.on_response_head_spliced(HEAD, 0.0)
    acts = s.on_spliced(100001, 0.0)
    assert any(type(a).__name__ == "CloseClient" for a in acts)
