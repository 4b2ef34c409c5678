"""The native worker's HTTP/1 framing (native/kernel/h1frame.c) against the Python reference
(plugins/http1/miresga_http1/framing.py): response heads and chunked bodies, hand-written
vectors plus generated ones (hypothesis), whole and split at every byte.

The C side is driven through ctypes (``build/libh1frame.so``, built with make). Known,
documented differences are kept out of the generated inputs: a Content-Length of more than
18 digits and a chunk-size text padded beyond 80 bytes are refused by C only."""

from __future__ import annotations

import ctypes

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from miresga_http1.framing import ChunkedBody, FramingError, parse_response_head

from miresga_core.kernel.native import build_target


class Resp(ctypes.Structure):
    _fields_ = [("status", ctypes.c_int), ("major", ctypes.c_int), ("minor", ctypes.c_int),
                ("head_len", ctypes.c_size_t), ("keep_alive", ctypes.c_int),
                ("body", ctypes.c_int), ("length", ctypes.c_int64),
                ("err", ctypes.c_char_p)]


BODIES = ("none", "length", "chunked", "until-close")


@pytest.fixture(scope="module")
def lib() -> ctypes.CDLL:
    dll = ctypes.CDLL(str(build_target("libh1frame.so")))
    dll.h1_parse_response.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int,
                                      ctypes.c_size_t, ctypes.POINTER(Resp)]
    dll.h1_chunked_sizeof.restype = ctypes.c_size_t
    dll.h1_chunked_feed.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
    dll.h1_chunked_feed.restype = ctypes.c_long
    dll.h1_chunked_init.argtypes = [ctypes.c_void_p]
    dll.h1_chunked_done.argtypes = [ctypes.c_void_p]
    dll.h1_chunked_error.argtypes = [ctypes.c_void_p]
    dll.h1_chunked_error.restype = ctypes.c_char_p
    dll.h1_head_end.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
    dll.h1_head_end.restype = ctypes.c_long
    return dll


def c_head(lib: ctypes.CDLL, data: bytes, method: str, max_head: int = 65536) -> object:
    r = Resp()
    rc = lib.h1_parse_response(data, len(data), int(method == "HEAD"), max_head,
                               ctypes.byref(r))
    if rc == 0:
        return None
    if rc < 0:
        return ("error", r.err.decode())
    return (r.status, (r.major, r.minor), r.head_len, bool(r.keep_alive), BODIES[r.body],
            r.length if r.body == 1 else 0)


def py_head(data: bytes, method: str, max_head: int = 65536) -> object:
    try:
        h = parse_response_head(data, method, max_head)
    except FramingError as exc:
        return ("error", str(exc))
    if h is None:
        return None
    return (h.status, h.version, h.head_length, h.keep_alive, h.body, h.length)


def same(c: object, p: object) -> bool:
    """Equal, or both refused (the reasons are worded alike but need not match)."""
    if isinstance(c, tuple) and isinstance(p, tuple) and c[:1] == p[:1] == ("error",):
        return True
    return c == p


HEADS = [
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
    b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
    b"HTTP/1.1 200\r\n\r\n",
    b"HTTP/1.0 200 OK\r\n\r\n",
    b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 3\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nConnection: Upgrade, CLOSE\r\nContent-Length: 3\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 10\r\n\r\n",
    b"HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n",
    b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
    b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n",
    b"HTTP/1.1 200 OK\nContent-Length: 2\n\n",
    b"HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
    b"HTTP/1.1 200 OK\r\n folded: value\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nX: a\rb\r\nContent-Length: 1\r\n\r\n",
    b"HTTP/2 200 OK\r\n\r\n",
    b"HTTP/1.1 20 OK\r\n\r\n",
    b"HTTP/1.1 200 OK\r\r\n\r\n",
    b"SPDY/9 nope\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length:  7 \t\r\n\r\n",
    b"HTTP/1.1 999 Whatever\r\nContent-Length: 1\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nx-transfer-encoding: chunked\r\n\r\n",
    b"HTTP/1.1 200 OK\r\ntransfer-encoding:\r\nContent-Length: 4\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n\r\n",
]


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("head", HEADS)
def test_response_head_vectors_and_every_prefix(lib, head, method):
    data = head + b"body bytes"
    assert same(c_head(lib, data, method), py_head(data, method)), data
    for cut in range(len(head)):
        prefix = head[:cut]
        assert same(c_head(lib, prefix, method), py_head(prefix, method)), prefix


def test_head_too_large_is_refused(lib):
    data = b"HTTP/1.1 200 OK\r\n" + b"x: y\r\n" * 100
    assert c_head(lib, data, "GET", max_head=64)[0] == "error"
    assert py_head(data, "GET", max_head=64)[0] == "error"
    assert c_head(lib, data, "GET", max_head=4096) is None


def test_head_end(lib):
    for data, end in [(b"a\r\n\r\nb", 5), (b"a\n\nb", 3), (b"a\n\r\nb", 4), (b"a\r\n\r", -1),
                      (b"", -1), (b"\n\n", 2)]:
        assert lib.h1_head_end(data, len(data)) == end, data


_token = st.sampled_from(["close", "keep-alive", "Upgrade", "CLOSE", " close ", "Keep-Alive",
                          "", "te"])
_header = st.one_of(
    st.builds(lambda v: f"Content-Length: {v}", st.one_of(
        st.integers(0, 10**12).map(str), st.sampled_from(["", "-1", "1 2", "0x10", " 5 "]))),
    st.builds(lambda v: f"Transfer-Encoding: {v}",
              st.sampled_from(["chunked", "gzip, chunked", "gzip", "CHUNKED", "",
                               "chunked, gzip"])),
    st.builds(lambda ts: "Connection: " + ",".join(ts), st.lists(_token, max_size=3)),
    st.sampled_from(["X-A: b", "no-colon", "Bad Name: v", "Server:x", " folded", "a:\tb",
                     "Content-Length : 3", "X: a\rb", "Via: 1.1 x"]),
)


@st.composite
def response_heads(draw: st.DrawFn) -> bytes:
    version = draw(st.sampled_from(["1.1", "1.0", "2.0", "0.9"]))
    status = draw(st.sampled_from([100, 101, 102, 200, 204, 206, 304, 404, 500, 999, 42]))
    reason = draw(st.sampled_from([" OK", "", " ", " With Spaces", " x\ty"]))
    eol = draw(st.sampled_from(["\r\n", "\n"]))
    headers = draw(st.lists(_header, max_size=5))
    text = f"HTTP/{version} {status}{reason}{eol}" + "".join(h + eol for h in headers) + eol
    return text.encode("latin-1")


@settings(max_examples=400, deadline=None)
@given(head=response_heads(), method=st.sampled_from(["GET", "HEAD"]),
       tail=st.binary(max_size=8))
def test_response_head_generated(lib, head, method, tail):
    data = head + tail
    assert same(c_head(lib, data, method), py_head(data, method)), data


def c_chunked(lib: ctypes.CDLL, parts: list[bytes]) -> list[object]:
    state = ctypes.create_string_buffer(lib.h1_chunked_sizeof())
    lib.h1_chunked_init(state)
    out: list[object] = []
    for part in parts:
        n = lib.h1_chunked_feed(state, part, len(part))
        if n < 0:
            out.append("error")
            break
        out.append((n, bool(lib.h1_chunked_done(state))))
        if lib.h1_chunked_done(state):
            break
    return out


def py_chunked(parts: list[bytes]) -> list[object]:
    body = ChunkedBody()
    out: list[object] = []
    for part in parts:
        try:
            n = body.feed(part)
        except FramingError:
            out.append("error")
            break
        out.append((n, body.done))
        if body.done:
            break
    return out


CHUNKED = [
    b"5\r\nhello\r\n0\r\n\r\n",
    b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\n",
    b"A\r\n0123456789\r\n0\r\n\r\nNEXT",
    b"5\nhello\n0\n\n",
    b"5 \r\nhello\r\n0\r\n\r\n",
    b"ffffffffffffffff\r\nxx",
    b"1ffffffffffffffff\r\n",
    b"zz\r\nhello\r\n",
    b"\r\n",
    b"5\r\nhelloXX\r\n",
    b"5\r\nhello\r\r\n0\r\n\r\n",
    b"0\r\n\r\n",
    b"0;a=b\r\nx: 1\r\ny: 2\r\n\r\nrest",
    b"3\r\nabc\r\n" + b"x" * 5000,
    b"3;" + b"e" * 5000 + b"\r\nabc\r\n0\r\n\r\n",
    b"-1\r\n",
    b"5\r\nhello\r\n0\r\n",
]


def splits(data: bytes) -> list[list[bytes]]:
    out = [[data]]
    for cut in range(1, len(data), max(1, len(data) // 40)):
        out.append([data[:cut], data[cut:]])
    out.append([data[i:i + 1] for i in range(min(len(data), 300))])
    return out


@pytest.mark.parametrize("body", CHUNKED)
def test_chunked_vectors_whole_and_split(lib, body):
    for parts in splits(body):
        assert c_chunked(lib, parts) == py_chunked(parts), parts[:3]


@st.composite
def chunked_bodies(draw: st.DrawFn) -> bytes:
    chunks = draw(st.lists(st.binary(min_size=1, max_size=40), max_size=4))
    eol = draw(st.sampled_from([b"\r\n", b"\n"]))
    out = b""
    for chunk in chunks:
        size = draw(st.sampled_from(["%x", "%X", "%04x", " %x", "%x;ext", "%x ;a=b"]))
        out += (size % len(chunk)).encode() + eol + chunk + eol
    out += b"0" + eol + b"".join(draw(st.lists(st.sampled_from([b"t: 1", b"x-y: z"]),
                                               max_size=2))) + eol * 2
    if draw(st.booleans()):  # damage one byte
        i = draw(st.integers(0, len(out) - 1))
        out = out[:i] + bytes([draw(st.integers(0, 255))]) + out[i + 1:]
    return out + draw(st.binary(max_size=5))


@settings(max_examples=400, deadline=None)
@given(body=chunked_bodies(), cuts=st.lists(st.integers(0, 200), max_size=4))
def test_chunked_generated(lib, body, cuts):
    points = sorted({min(c, len(body)) for c in cuts})
    parts, last = [], 0
    for p in points:
        parts.append(body[last:p])
        last = p
    parts.append(body[last:])
    parts = [p for p in parts if p] or [b""]
    assert c_chunked(lib, parts) == py_chunked(parts), parts
