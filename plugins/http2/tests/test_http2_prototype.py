"""The HTTP/2 prototype parser on header blocks built with hpack and h2's frame layer.

Covers: Huffman and raw literals, indexed and dynamic-table entries (a second header block
refers to entries the first one added, which the prototype must decode from the first
request alone, so only the first block's own additions are in play), CONTINUATION,
padding and priority flags, and refusals. Inputs are generated with hypothesis too: the
parser must return a result for any bytes, never raise.
"""

from __future__ import annotations

import hpack
import pytest
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    HeadersFrame,
    PingFrame,
    SettingsFrame,
    WindowUpdateFrame,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from miresga_http2 import Http2Parser
from miresga_http2.prototype import PREFACE, parse_head

from miresga_core import BodyFraming, NeedMore, Reject, RequestHead

REQ = [(":method", "GET"), (":scheme", "http"), (":path", "/api/v1/items?id=7"),
       (":authority", "Example.com:8443"), ("user-agent", "t/1"), ("x-tenant", "acme")]


def block(headers, huffman: bool = True, encoder: hpack.Encoder | None = None) -> bytes:
    return (encoder or hpack.Encoder()).encode(headers, huffman=huffman)


def frames(*fs) -> bytes:
    return PREFACE + SettingsFrame(0, settings={4: 65535}).serialize() + \
        b"".join(f.serialize() for f in fs)


def headers_frame(data: bytes, sid: int = 1, end_stream: bool = True,
                  end_headers: bool = True, **kw) -> HeadersFrame:
    flags = (["END_STREAM"] if end_stream else []) + (["END_HEADERS"] if end_headers else [])
    return HeadersFrame(sid, data=data, flags=flags, **kw)


@pytest.mark.parametrize("huffman", [True, False])
def test_basic_request(huffman: bool) -> None:
    data = frames(headers_frame(block(REQ, huffman)))
    head = parse_head(data)
    assert isinstance(head, RequestHead), head
    assert (head.method, head.path, head.query, head.host) == ("GET", "/api/v1/items", "id=7",
                                                               "example.com")
    assert head.target == "/api/v1/items?id=7"
    assert head.field("scheme") == "http" and head.field("authority") == "Example.com:8443"
    assert head.header("x-tenant") == "acme" and head.version == "2"
    assert head.head_length == len(data) and head.framing is BodyFraming.NONE
    assert head.extra["stream"] == "1"


def test_huffman_really_used() -> None:
    assert block(REQ, True) != block(REQ, False)
    assert len(block(REQ, True)) < len(block(REQ, False))


def test_dynamic_table_within_block() -> None:
    """Repeating a header inside one block refers to the entry the block added."""
    enc = hpack.Encoder()
    hdrs = [*REQ, ("x-tenant", "acme"), ("cookie", "a=1"), ("cookie", "a=1")]
    raw = block(hdrs, True, enc)
    assert len(enc.header_table.dynamic_entries) > 0
    head = parse_head(frames(headers_frame(raw)))
    assert isinstance(head, RequestHead)
    assert [v for k, v in head.headers if k == "cookie"] == ["a=1", "a=1"]


def test_dynamic_table_size_update_at_block_start() -> None:
    enc = hpack.Encoder()
    enc.header_table_size = 256  # emits a dynamic table size update first
    head = parse_head(frames(headers_frame(block(REQ, True, enc))))
    assert isinstance(head, RequestHead) and head.path == "/api/v1/items"


@pytest.mark.parametrize("pieces", [2, 3, 7])
def test_continuation(pieces: int) -> None:
    raw = block([*REQ, ("x-long", "v" * 3000)], huffman=False)
    size = len(raw) // pieces + 1
    chunks = [raw[i:i + size] for i in range(0, len(raw), size)]
    fs = [headers_frame(chunks[0], end_headers=False)]
    for i, chunk in enumerate(chunks[1:], 1):
        fs.append(ContinuationFrame(1, data=chunk,
                                    flags=["END_HEADERS"] if i == len(chunks) - 1 else []))
    data = frames(*fs)
    head = parse_head(data)
    assert isinstance(head, RequestHead) and head.header("x-long") == "v" * 3000
    for cut in (len(data) - 1, len(data) - 20, len(PREFACE) + 3, 10):
        assert isinstance(parse_head(data[:cut]), NeedMore)


def test_padding_priority_and_connection_frames_first() -> None:
    hf = headers_frame(block(REQ), end_stream=False, pad_length=17, depends_on=0,
                       stream_weight=200)
    hf.flags.add("PADDED")
    hf.flags.add("PRIORITY")
    data = frames(WindowUpdateFrame(0, window_increment=1000), PingFrame(0, opaque_data=b"x" * 8),
                  hf)
    head = parse_head(data)
    assert isinstance(head, RequestHead) and head.header("x-tenant") == "acme"
    assert head.framing is BodyFraming.UNTIL_CLOSE


def test_body_length_from_content_length() -> None:
    hdrs = [(":method", "POST"), (":scheme", "http"), (":path", "/up"), ("content-length", "12")]
    head = parse_head(frames(headers_frame(block(hdrs), end_stream=False)))
    assert isinstance(head, RequestHead)
    assert (head.framing, head.content_length) == (BodyFraming.LENGTH, 12)


@pytest.mark.parametrize(("data", "status", "why"), [
    (b"GET / HTTP/1.1\r\n\r\n", 400, "preface"),
    (PREFACE + PingFrame(0).serialize(), 400, "SETTINGS"),
    (frames(DataFrame(1, data=b"x")), 400, "before the first HEADERS"),
    (frames(headers_frame(block(REQ), sid=2)), 400, "stream id"),
    (frames(headers_frame(block(REQ), end_headers=False), PingFrame(0)), 400, "interrupted"),
    (frames(headers_frame(b"\xff\xff\xff\xff")), 400, "HPACK"),
    (frames(headers_frame(block([(":method", "GET"), (":path", "/")]))), 400, ":scheme"),
    (frames(headers_frame(block([*REQ[:2], ("a", "b"), REQ[2]]))), 400, "after regular"),
    (frames(headers_frame(block([*REQ, ("connection", "close")]))), 400, "connection-specific"),
    (frames(headers_frame(block([*REQ, ("te", "gzip")]))), 400, "connection-specific"),
    (frames(headers_frame(block([*REQ, (":foo", "x")]))), 400, "after regular"),
    (frames(headers_frame(block([(":method", "CONNECT"), (":authority", "a:1")]))), 405,
     "CONNECT"),
])
def test_rejects(data: bytes, status: int, why: str) -> None:
    result = parse_head(data)
    assert isinstance(result, Reject), result
    assert result.status == status and why in result.reason, result


def test_too_large() -> None:
    raw = block([*REQ, ("x-big", "v" * 9000)], huffman=False)
    fs = [headers_frame(raw[:8000], end_headers=False),
          ContinuationFrame(1, data=raw[8000:], flags=["END_HEADERS"])]
    result = parse_head(frames(*fs), max_head=4096)
    assert isinstance(result, Reject) and result.status == 431
    assert isinstance(parse_head(frames(*fs), max_head=16384), RequestHead)


def test_partial_preface_needs_more() -> None:
    for n in range(len(PREFACE)):
        assert isinstance(parse_head(PREFACE[:n]), NeedMore)


def test_plugin_wrapper_and_scope() -> None:
    parser = Http2Parser(max_head=1000)
    assert isinstance(parser.parse_head(frames(headers_frame(block(REQ)))), RequestHead)
    assert parser.route_scope([]) == "connection"
    assert parser.route_scope(["path"]) == "request"
    assert isinstance(parser.stream_head([(b":method", b"GET"), (b":scheme", b"http"),
                                          (b":path", b"/x")], True), RequestHead)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_total_on_random_bytes(tail: bytes) -> None:
    for data in (tail, PREFACE + tail, frames() + tail):
        assert isinstance(parse_head(data), (RequestHead, NeedMore, Reject))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.text("abcdefghij-", min_size=1, max_size=12),
                          st.text(min_size=0, max_size=40)), max_size=12),
       st.booleans(), st.integers(1, 5))
def test_generated_header_lists(extra, huffman: bool, pieces: int) -> None:
    hdrs = REQ[:4] + [(k, v) for k, v in extra if k not in ("te", "connection", "upgrade",
                                                              "keep-alive", "proxy-connection",
                                                              "transfer-encoding")]
    raw = block(hdrs, huffman)
    size = max(1, len(raw) // pieces + 1)
    chunks = [raw[i:i + size] for i in range(0, len(raw), size)] or [b""]
    fs = [headers_frame(chunks[0], end_headers=len(chunks) == 1)]
    fs += [ContinuationFrame(1, data=c, flags=["END_HEADERS"] if i == len(chunks) - 1 else [])
           for i, c in enumerate(chunks[1:], 1)]
    head = parse_head(frames(*fs))
    if any(c in v for _, v in hdrs for c in "\0\r\n"):
        assert isinstance(head, Reject) and "NUL, CR or LF" in head.reason
        return
    assert isinstance(head, RequestHead), head
    # hpack encodes text as UTF-8; the parser gives bytes as latin-1 (as http1 does)
    assert list(head.headers) == [(k, v.encode().decode("latin-1")) for k, v in hdrs[4:]]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.text("abcdefghij-", min_size=1, max_size=12),
                          st.text("abc xyz/=;:.-", max_size=30)), max_size=10),
       st.booleans(), st.sampled_from(["GET", "POST", "DELETE"]))
def test_prototype_agrees_with_the_session_path(extra, huffman: bool, method: str) -> None:
    """The prototype (oracle) and the terminating session (h2 decodes, stream_head builds)
    give the same head for the first stream."""
    import dataclasses

    import h2.config
    import h2.connection
    import h2.events

    forbidden = ("te", "connection", "upgrade", "keep-alive", "proxy-connection",
                 "transfer-encoding")
    hdrs = [(":method", method), *REQ[1:4], *[(k, v.strip()) for k, v in extra
                                               if k not in forbidden]]
    data = frames(headers_frame(block(hdrs, huffman)))
    oracle = parse_head(data)
    server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False,
                                                                  header_encoding=None))
    server.initiate_connection()
    events = server.receive_data(data)
    (req,) = [e for e in events if isinstance(e, h2.events.RequestReceived)]
    session_head = Http2Parser().stream_head(list(req.headers), req.stream_ended is not None)
    assert isinstance(oracle, RequestHead) and isinstance(session_head, RequestHead)
    strip = {"head_length": 0, "extra": {k: v for k, v in oracle.extra.items()
                                         if k != "stream"}}
    assert dataclasses.replace(oracle, **strip) == dataclasses.replace(session_head, **strip)
