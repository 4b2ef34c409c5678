"""The compiled http1 parser against its h11 prototype: Python VM and C VM give the
prototype's decision on a corpus of edge cases and on generated requests."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from miresga_http1 import Http1Parser

from miresga_core.bytecode import native
from miresga_core.testing import Equivalence

ROUTES = [
    ("api", [("path", "prefix", ["/api/"], False)]),
    ("host-a", [("host", "exact", ["a.example", "www.a.example"], True)]),
    ("user", [("header:x-user", "exact", ["bob"], False), ("method", "exact", ["GET"], False)]),
    ("q", [("query", "prefix", ["debug"], False)]),
    ("exact", [("target", "exact", ["/exact"], False)]),
]

CORPUS = [
    b"", b"G", b"GET / HTTP/1.1\r\n", b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /api/v1 HTTP/1.1\r\nHost: x\r\n\r\n", b"GET / HTTP/1.1\r\nHost: A.Example:8080\r\n\r\n",
    b"GET / HTTP/1.1\nHost: a.example\n\n", b"GET / HTTP/1.1\r\nHost: a\r\n\nrest",
    b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", b"\nGET / HTTP/1.1\r\n\r\n",
    b"GET / HTTP/1.1\r\n\r\n", b"GET / HTTP/1.0\r\n\r\n", b"GET / HTTP/2.0\r\n\r\n",
    b"GET / HTTP/0.9\r\n\r\n", b"GET / HTTP/..1\r\n\r\n", b"GET / HTTP/1..\r\n\r\n",
    b"GET / HTTP/1.1x\r\nHost: a\r\n\r\n", b"GET / HTTPS1.1\r\n\r\n", b"GET / HTTP/1-1\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET / HTTP/1.1 \r\nHost: a\r\n\r\n", b"GET / http/1.1\r\nHost: a\r\n\r\n",
    b"G@T / HTTP/1.1\r\nHost: a\r\n\r\n", b"GET /\x80 HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
    b"GET / HTTP/1.1\r\n Host: a\r\n\r\n", b"GET / HTTP/1.1\r\nHost: a\x00\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\r\n\r\n", b"GET / HTTP/1.1\r\nHost: \xe9t\xe9\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 05\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 999999999999999999999\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775807\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: CHUNKED\r\nContent-Length: 3\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
    b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\nContent-Length: 1, 2\r\n\r\n",
    b"POST / HTTP/1.1\r\nContent-Length: 1, 2\r\nTransfer-Encoding: gzip\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n",
    b"GET / HTTP/1.0\r\nConnection: \xa0keep-alive\x85\r\n\r\n",
    b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n",
    b"CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET http://A.example:80/api/x?debug=1 HTTP/1.1\r\nHost: other\r\n\r\n",
    b"GET http://a.example HTTP/1.1\r\nHost: b\r\n\r\n",
    b"GET http://a.example?q HTTP/1.1\r\nHost: b\r\n\r\n",
    b"GET /x?y=http://a.example/z HTTP/1.1\r\nHost: b\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", b"GET / HTTP/1.1\r\nHost: [::1\r\n\r\n",
    b"GET /exact HTTP/1.1\r\nHost: a\r\nX-User: bob\r\n\r\n",
    b"GET /?debug=2 HTTP/1.1\r\nHost: z\r\n\r\n", b"POST /exact HTTP/1.1\r\nHost: z\r\n\r\n",
    b"GET /?debug HTTP/1.1\r\nHost: a\r\nx-user:   bob  \r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nX-User: bob\r\nX-User: alice\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\n" + b"X-Pad: " + b"p" * 17000 + b"\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\n" + b"X-Pad: " + b"p" * 17000,
]


@pytest.fixture(scope="module")
def eq() -> Equivalence:
    return Equivalence(Http1Parser(), ROUTES, require_c=native.available())


def test_c_vm_is_built() -> None:
    assert native.available(), native.import_error()


@pytest.mark.parametrize("data", CORPUS, ids=range(len(CORPUS)))
def test_corpus(eq: Equivalence, data: bytes) -> None:
    eq.check(data)


def test_corpus_outcomes_are_varied(eq: Equivalence) -> None:
    seen = {" ".join(line.split(" ")[:2]) for line in eq.check_all(CORPUS)}
    for want in ("needmore", "reject 400", "reject 431", "reject 501", "reject 405", "reject 505",
                 "route decision=0", "route decision=1", "route decision=2",
                 "route decision=3", "route decision=4", "route decision=5"):
        assert want in seen, (want, seen)


_token = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-",
                 min_size=1, max_size=12)
_value = st.one_of(
    st.text(alphabet=" \tabcXYZ019,;:-/=.\"'\xa0\xe9", max_size=24),
    st.sampled_from(["close", "keep-alive", "Upgrade, keep-alive", "chunked", "gzip", "5",
                     "5, 5", "0", "12, 13", "100-continue", "bob", "a.example", "A.EXAMPLE:1",
                     "[::1]", "websocket", " 7 "]),
)
_names = st.one_of(_token, st.sampled_from(
    ["Host", "host", "Content-Length", "Transfer-Encoding", "Connection", "Upgrade",
     "Expect", "X-User", "x-user"]))
_target = st.one_of(
    st.sampled_from(["/", "/api/", "/api/x?y", "/?debug=1", "/exact", "*",
                     "http://a.example/api/v?debug", "http://b", "http://[::1]:8/x"]),
    st.text(alphabet="/abc?=&%:.", min_size=1, max_size=16),
)


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    method = draw(st.sampled_from(["GET", "POST", "PUT", "HEAD", "CONNECT", "PATCH", "G(T"]))
    version = draw(st.sampled_from(["1.1", "1.1", "1.0", "2.0", "1.x"]))
    eol = draw(st.sampled_from([b"\r\n", b"\r\n", b"\n"]))
    lines = [f"{method} {draw(_target)} HTTP/{version}".encode("latin-1")]
    for _ in range(draw(st.integers(0, 6))):
        sep = draw(st.sampled_from([": ", ":", " : ", ":\t"]))
        lines.append(f"{draw(_names)}{sep}{draw(_value)}".encode("latin-1"))
    raw = eol.join(lines) + eol + eol
    cut = draw(st.one_of(st.none(), st.integers(0, len(raw))))
    return raw if cut is None else raw[:cut]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_generated_requests(eq: Equivalence, data: bytes) -> None:
    eq.check(data)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200))
def test_arbitrary_bytes(eq: Equivalence, data: bytes) -> None:
    eq.check(data + b"\r\n\r\n")
