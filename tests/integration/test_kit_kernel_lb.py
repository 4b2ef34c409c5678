"""The test kit's real load balancer fixture: a kernel data plane with real backends, and
the compiled program's routing decision checked against where requests really went."""

from __future__ import annotations

import pytest

from miresga_core.bytecode.runtime import CompiledListener
from miresga_core.config import parse_config
from miresga_core.plugins import get_plugin_manager, registry_from
from miresga_core.testing import backend_of, miresga_kernel_lb  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow

CONFIG = """
[[listeners]]
name = "web"
listen = "127.0.0.1:{port}"
default_pool = "web"
[[listeners.routes]]
pool = "api"
match = { path = { prefix = "/api/" } }
[[listeners.routes]]
pool = "admin"
match = { host = "admin.example", headers = { x-role = "ops" } }
[pools.web]
backends = [{ address = "{addr:w1}", name = "w1" }]
[pools.api]
backends = [{ address = "{addr:a1}", name = "a1" }]
[pools.admin]
backends = [{ address = "{addr:o1}", name = "o1" }]
"""

REQUESTS = [
    b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    b"GET /api/v1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    b"GET /apix HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: ADMIN.example:80\r\nX-Role: ops\r\nConnection: close\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: admin.example\r\nX-Role: dev\r\nConnection: close\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n",
]


def test_real_balancer_routes_as_the_program_decides(miresga_kernel_lb) -> None:  # noqa: F811
    with miresga_kernel_lb(CONFIG, ["w1", "a1", "o1"]) as (lb, _backends):
        registry = registry_from(get_plugin_manager())
        compiled = CompiledListener(parse_config(lb.text, registry), "web", registry)
        names = {"web": "w1", "api": "a1", "admin": "o1"}
        for data in REQUESTS:
            verdict = compiled.decide(data)
            want = names[verdict.pool] if verdict.kind == "route" else f"status {verdict.status}"
            assert backend_of(lb, data) == want, data
