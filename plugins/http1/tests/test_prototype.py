from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from miresga_http1.prototype import parse_head

from miresga_core import BodyFraming, NeedMore, Reject, RequestHead


def test_full_head():
    raw = (b"POST http://Example.com:8080/a/b?x=1 HTTP/1.1\r\nHost: ignored\r\n"
           b"Content-Length: 3\r\nX-Tenant: Blue\r\nExpect: 100-continue\r\n\r\nabc")
    head = parse_head(raw)
    assert isinstance(head, RequestHead)
    assert (head.method, head.path, head.query, head.host) == ("POST", "/a/b", "x=1",
                                                               "example.com")
    assert head.header("x-tenant") == "Blue" and head.field("header:X-TENANT") == "Blue"
    assert head.framing is BodyFraming.LENGTH and head.content_length == 3
    assert head.head_length == len(raw) - 3 and head.expect_continue and head.keep_alive


@pytest.mark.parametrize("raw, framing, keep, upgrade", [
    (b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", BodyFraming.CHUNKED,
     True, ""),
    (b"GET / HTTP/1.0\r\n\r\n", BodyFraming.NONE, False, ""),
    (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", BodyFraming.NONE, True, ""),
    (b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", BodyFraming.NONE, False, ""),
    (b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
     BodyFraming.NONE, True, "websocket"),
])
def test_framing_keepalive_upgrade(raw, framing, keep, upgrade):
    head = parse_head(raw)
    assert isinstance(head, RequestHead)
    assert (head.framing, head.keep_alive, head.upgrade) == (framing, keep, upgrade)


@pytest.mark.parametrize("raw, status", [
    (b"GARBAGE\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\n\r\n", 400),  # HTTP/1.1 requires Host
    (b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
    (b"GET / HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n", 400),
    (b"CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n", 405),
])
def test_rejects_with_status(raw, status):
    result = parse_head(raw)
    assert isinstance(result, Reject), result
    assert result.status == status


def test_need_more_and_too_large():
    assert isinstance(parse_head(b"GET / HTTP/1.1\r\nHost: a\r\n"), NeedMore)
    big = b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"a" * 2000
    assert isinstance(parse_head(big, max_head=1024), Reject)
    assert parse_head(big, max_head=1024).status == 431
    assert parse_head(big + b"\r\n\r\n", max_head=1024).status == 431


@given(st.binary(max_size=300))
def test_total_on_any_bytes(data):
    """The prototype is an oracle: any input gives one of the three results."""
    assert isinstance(parse_head(data), RequestHead | NeedMore | Reject)
