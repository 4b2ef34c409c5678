"""The compiled-program decider agrees with the prototype decider (parse + Python router)."""

from __future__ import annotations

import textwrap

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from miresga_core.api import Address, NeedMore, Reject
from miresga_core.bytecode import native
from miresga_core.config import parse_config
from miresga_core.decide import Decided, ProgramDecider, PrototypeDecider, make_decider
from miresga_core.routing import PoolState, Router

CONFIG = textwrap.dedent("""\
    [[listeners]]
    listen = "127.0.0.1:1"
    default_pool = "web"
    [[listeners.routes]]
    pool = "api"
    match = { path = { prefix = "/api/" }, method = ["GET", "POST"] }
    [[listeners.routes]]
    pool = "blue"
    offload = "pin"
    match = { host = "blue.example", headers = { x-tenant = { prefix = "b" } } }
    [pools.web]
    backends = [{ address = "10.0.0.1:80", weight = 2 }, { address = "10.0.0.2:80" }]
    [pools.api]
    backends = [{ address = "10.0.1.1:80" }]
    [pools.blue]
    backends = [{ address = "10.0.2.1:80" }]
""")

CORPUS = [
    b"GET /api/x HTTP/1.1\r\nHost: a\r\n\r\n",
    b"POST /api/x?q=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
    b"DELETE /api/x HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: Blue.Example:8080\r\nX-Tenant: beta\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: blue.example\r\nX-Tenant: alpha\r\n\r\n",
    b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    b"PUT /f HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n",
    b"GET http://blue.example/p HTTP/1.1\r\nHost: x\r\nx-tenant: b\r\n\r\n",
    b"GET / HTTP/1.0\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\n",  # incomplete
    b"NONSENSE\r\n\r\n",
    b"GET / HTTP/1.1\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
]


def deciders(registry, prefer):
    config = parse_config(CONFIG, registry)
    listener = config.listeners[0]

    def router():
        pools = {n: PoolState(p, registry.policies[p.policy]) for n, p in config.pools.items()}
        return Router(listener, pools)

    proto = make_decider(config, listener, registry, router(), prefer="prototype")
    program = make_decider(config, listener, registry, router(), prefer=prefer)
    assert isinstance(proto, PrototypeDecider) and isinstance(program, ProgramDecider)
    return proto, program


def same(a, b) -> None:
    if isinstance(a, Decided):
        assert isinstance(b, Decided)
        ha, hb = a.head, b.head
        for attr in ("method", "target", "path", "query", "host", "headers", "head_length",
                     "framing", "content_length", "keep_alive", "upgrade", "expect_continue"):
            assert getattr(ha, attr) == getattr(hb, attr), attr
        assert (a.route.pool, a.route.offload, a.route.backend) == \
            (b.route.pool, b.route.offload, b.route.backend)
    elif isinstance(a, Reject):
        assert isinstance(b, Reject) and a.status == b.status
    else:
        assert isinstance(a, NeedMore) and isinstance(b, NeedMore)


VMS = ["python"] + (["c"] if native.available() else [])


@pytest.mark.parametrize("prefer", VMS)
def test_corpus_same_decisions(registry, prefer):
    proto, program = deciders(registry, prefer)
    client = Address("192.0.2.1", 1000)
    for _ in range(3):  # several rounds: round-robin state must advance identically
        for raw in CORPUS:
            same(proto.decide(raw, client, 0.0), program.decide(raw, client, 0.0))


@pytest.mark.parametrize("prefer", VMS)
def test_health_changes_apply_to_compiled_programs_at_once(registry, prefer):
    proto, program = deciders(registry, prefer)
    for d in (proto, program):
        d.router.pools["web"].set_up(0, False)
    raw = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
    for _ in range(4):
        a, b = proto.decide(raw, None, 0.0), program.decide(raw, None, 0.0)
        same(a, b)
        assert b.route.backend.index == 1


token = st.text(alphabet="abcxyz-", min_size=1, max_size=6)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # registry is read-only
@given(method=st.sampled_from(["GET", "POST", "HEAD", "PUT"]),
       path=st.sampled_from(["/", "/api/", "/api/v1", "/apix", "/x/api/"]),
       host=st.sampled_from(["a", "blue.example", "BLUE.example:80", "[::1]:8"]),
       extra=st.lists(st.tuples(token, token), max_size=3),
       tenant=st.one_of(st.none(), token))
def test_generated_requests_same_decisions(registry, method, path, host, extra, tenant):
    proto, program = deciders(registry, "c" if native.available() else "python")
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"X-{k}: {v}" for k, v in extra]
    if tenant is not None:
        lines.append(f"X-Tenant: {tenant}")
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode()
    same(proto.decide(raw, None, 0.0), program.decide(raw, None, 0.0))
