"""The HTTP/1.1 proxy session driven with bytes alone (no sockets, no clock)."""

from __future__ import annotations

import textwrap

import pytest
from miresga_http1 import Http1Parser
from miresga_http1.session import Http1Session

from miresga_core.api import Address
from miresga_core.config import parse_config
from miresga_core.routing import Router, pool_states
from miresga_core.session import (
    CloseClient,
    Connect,
    HalfClose,
    Release,
    SendBackend,
    SendClient,
    SessionContext,
    Timer,
    Tunnel,
)

CONFIG = textwrap.dedent("""\
    [[listeners]]
    name = "l"
    listen = "127.0.0.1:1"
    default_pool = "web"
    [[listeners.routes]]
    pool = "api"
    match = { path = { prefix = "/api/" } }
    [[listeners.routes]]
    pool = "ws"
    offload = "pin"
    match = { path = "/pinned" }
    [pools.web]
    backends = [{ address = "10.0.0.1:80", name = "w1" }, { address = "10.0.0.2:80", name = "w2" }]
    [pools.api]
    backends = [{ address = "10.0.1.1:80", name = "a1" }]
    [pools.ws]
    backends = [{ address = "10.0.2.1:80", name = "p1" }]
""")

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@pytest.fixture
def session(registry):
    config = parse_config(CONFIG, registry)
    pools = pool_states(config, registry)
    listener = config.listeners[0]
    ctx = SessionContext(listener, Router(listener, pools), Address("192.0.2.7", 5555),
                         Http1Parser().parse_head)
    s = Http1Session(ctx)
    s.on_start(0.0)
    return s


def of(actions, kind):
    return [a for a in actions if isinstance(a, kind)]


def sent(actions, kind):
    return b"".join(a.data for a in of(actions, kind))


def connect(session, request: bytes):
    acts = session.on_client_data(request, 0.0)
    (conn,) = of(acts, Connect)
    return conn, session.on_backend_connected(0.0)


def test_request_forwarded_with_xff_and_response_relayed(session):
    conn, acts = connect(session, b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
    assert conn.pool == "web"
    assert sent(acts, SendBackend) == (b"GET /x HTTP/1.1\r\nHost: a\r\n"
                                       b"X-Forwarded-For: 192.0.2.7\r\n\r\n")
    acts = session.on_backend_data(OK, 0.0)
    assert sent(acts, SendClient) == OK
    assert of(acts, Release)[0].reuse is True
    assert not of(acts, CloseClient)


def test_keepalive_requests_route_independently(session):
    pools = []
    for path in ["/a", "/api/b", "/c", "/api/d"]:
        conn, _ = connect(session, f"GET {path} HTTP/1.1\r\nHost: a\r\n\r\n".encode())
        pools.append(conn.pool)
        session.on_backend_data(OK, 0.0)
    assert pools == ["web", "api", "web", "api"]


def test_pipelined_requests_wait_for_the_previous_response(session):
    two = b"GET /api/1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n"
    conn, acts = connect(session, two)
    assert conn.pool == "api" and b"/2" not in sent(acts, SendBackend)
    acts = session.on_backend_data(OK, 0.0)
    assert sent(acts, SendClient) == OK
    (second,) = of(acts, Connect)
    assert second.pool == "web"
    assert b"GET /2 " in sent(session.on_backend_connected(0.0), SendBackend)


def test_chunked_request_body_split_across_segments(session):
    head = b"POST /api/u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    _, acts = connect(session, head + b"5\r\nhel")
    forwarded = sent(acts, SendBackend)
    forwarded += sent(session.on_client_data(b"lo\r\n0\r\n\r\nGET /next", 0.0), SendBackend)
    assert forwarded.endswith(b"5\r\nhello\r\n0\r\n\r\n")
    assert b"GET /next" not in forwarded  # belongs to the next request


def test_connect_failure_retries_idempotent_on_other_backend(session):
    conn, = of(session.on_client_data(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 0.0), Connect)
    acts = session.on_backend_failed("refused", 1.0)
    (retry,) = of(acts, Connect)
    assert retry.backend.index != conn.backend.index
    assert b"X-Forwarded-For" in sent(session.on_backend_connected(1.0), SendBackend)


def test_connect_failure_of_post_is_502(session):
    session.on_client_data(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx", 0.0)
    acts = session.on_backend_failed("refused", 1.0)
    assert sent(acts, SendClient).startswith(b"HTTP/1.1 502 ")
    assert of(acts, CloseClient)


def test_no_backend_up_is_503_and_connection_kept(session):
    pool = session.ctx.router.pools["api"]
    pool.set_up(0, False)
    acts = session.on_client_data(b"GET /api/x HTTP/1.1\r\nHost: a\r\n\r\n", 0.0)
    assert sent(acts, SendClient).startswith(b"HTTP/1.1 503 ")
    assert not of(acts, CloseClient)
    conn, _ = connect(session, b"GET /web HTTP/1.1\r\nHost: a\r\n\r\n")
    assert conn.pool == "web"


@pytest.mark.parametrize("raw, status", [
    (b"BLAH\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"y" * 20000, 431),
])
def test_bad_requests_are_answered_and_closed(session, raw, status):
    acts = session.on_client_data(raw, 0.0)
    assert sent(acts, SendClient).startswith(b"HTTP/1.1 %d " % status)
    assert of(acts, CloseClient)


def test_slow_head_gets_408(session):
    acts = session.on_client_data(b"GET / HTTP/1.1\r\nHo", 0.0)
    assert any(isinstance(a, Timer) and a.name == "head" and a.seconds > 0 for a in acts)
    acts = session.on_timer("head", 10.0)
    assert sent(acts, SendClient).startswith(b"HTTP/1.1 408 ")


def test_idle_keepalive_closes_silently(session):
    acts = session.on_timer("idle", 60.0)
    assert of(acts, CloseClient) and not of(acts, SendClient)


def test_backend_closing_before_answer_is_retried(session):
    connect(session, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    acts = session.on_backend_eof(0.0)
    assert of(acts, Release) and of(acts, Connect)


def test_backend_dying_mid_response_closes_client(session):
    connect(session, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    session.on_backend_data(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", 0.0)
    acts = session.on_backend_eof(0.0)
    assert of(acts, CloseClient) and not of(acts, Connect)


def test_upgrade_becomes_a_tunnel(session):
    connect(session, b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n"
                     b"Upgrade: websocket\r\n\r\n")
    acts = session.on_backend_data(b"HTTP/1.1 101 Switching\r\nUpgrade: websocket\r\n\r\nhi",
                                   0.0)
    assert of(acts, Tunnel) and sent(acts, SendClient).endswith(b"\r\n\r\nhi")
    assert sent(session.on_client_data(b"GET raw bytes", 0.0), SendBackend) == b"GET raw bytes"
    acts = session.on_client_eof(0.0)
    assert of(acts, HalfClose)[0].to_backend and not of(acts, CloseClient)
    acts = session.on_backend_eof(0.0)
    assert of(acts, CloseClient)


def test_pin_route_tunnels_after_first_decision(session):
    conn, acts = connect(session, b"GET /pinned HTTP/1.1\r\nHost: a\r\n\r\nGET /api/x HTTP/1.1")
    assert conn.pool == "ws" and of(acts, Tunnel)
    assert sent(acts, SendBackend).endswith(b"GET /api/x HTTP/1.1")


def test_expect_continue_is_relayed(session):
    connect(session, b"POST /api/x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
                     b"Expect: 100-continue\r\n\r\n")
    acts = session.on_backend_data(b"HTTP/1.1 100 Continue\r\n\r\n", 0.0)
    assert sent(acts, SendClient) == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert sent(session.on_client_data(b"abc", 0.0), SendBackend) == b"abc"
    acts = session.on_backend_data(OK, 0.0)
    assert sent(acts, SendClient) == OK and of(acts, Release)[0].reuse


def test_early_response_before_body_end_closes(session):
    connect(session, b"POST /api/x HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nabc")
    acts = session.on_backend_data(b"HTTP/1.1 413 Too Large\r\nContent-Length: 0\r\n\r\n", 0.0)
    assert of(acts, Release)[0].reuse is False and of(acts, CloseClient)


def test_http10_client_closed_after_response(session):
    connect(session, b"GET / HTTP/1.0\r\n\r\n")
    acts = session.on_backend_data(OK, 0.0)
    assert of(acts, CloseClient)


def test_close_delimited_response_closes_client(session):
    connect(session, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    acts = session.on_backend_data(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nbody", 0.0)
    assert sent(acts, SendClient).endswith(b"body") and not of(acts, CloseClient)
    acts = session.on_backend_eof(0.0)
    assert of(acts, CloseClient) and of(acts, Release)[0].reuse is False


def test_response_timeout_is_504(session):
    connect(session, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    acts = session.on_timer("response", 99.0)
    assert sent(acts, SendClient).startswith(b"HTTP/1.1 504 ")
