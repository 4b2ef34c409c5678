from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from miresga_http1.framing import (
    ChunkedBody,
    FramingError,
    LengthBody,
    find_head_end,
    parse_response_head,
)


def chunked(parts: list[bytes], trailers: bytes = b"") -> bytes:
    out = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(p), p) for p in parts if p)
    return out + b"0\r\n" + trailers + b"\r\n"


@given(st.lists(st.binary(min_size=1, max_size=50), max_size=6), st.binary(max_size=20),
       st.integers(min_value=1, max_value=7))
def test_chunked_end_found_whatever_the_segmentation(parts, after, step):
    body = chunked(parts, b"x-trailer: 1\r\n")
    data = body + after
    reader = ChunkedBody()
    consumed = 0
    for i in range(0, len(data), step):
        piece = data[i:i + step]
        if reader.done:
            break
        consumed += reader.feed(piece)
    assert reader.done
    assert consumed == len(body)


@pytest.mark.parametrize("bad", [b"zz\r\n", b"5\r\nhelloXX", b"-1\r\n", b"1" * 20 + b"\r\n"])
def test_chunked_garbage_is_an_error(bad):
    with pytest.raises(FramingError):
        ChunkedBody().feed(bad)


def test_length_body_counts_exactly():
    body = LengthBody(5)
    assert body.feed(b"abc") == 3 and not body.done
    assert body.feed(b"defgh") == 2 and body.done


def test_head_end_accepts_crlf_and_bare_lf():
    assert find_head_end(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nBODY") == 27
    assert find_head_end(b"GET / HTTP/1.1\nHost: a\n\nBODY") == 24
    assert find_head_end(b"GET / HTTP/1.1\r\nHost: a\r\n") == -1


@pytest.mark.parametrize("raw, method, body, length, keep", [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "GET", "length", 5, True),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "HEAD", "none", 0, True),
    (b"HTTP/1.1 204 No Content\r\n\r\n", "GET", "none", 0, True),
    (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n", "GET", "none", 0, True),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "GET", "chunked", 0, True),
    (b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", "GET", "until-close", 0, False),
    (b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", "GET", "length", 1, False),
    (b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\nConnection: keep-alive\r\n\r\n", "GET",
     "length", 1, True),
    (b"HTTP/1.1 100 Continue\r\n\r\n", "POST", "none", 0, True),
])
def test_response_framing_follows_rfc9112(raw, method, body, length, keep):
    head = parse_response_head(raw + b"rest", method)
    assert head is not None
    assert (head.body, head.length, head.keep_alive, head.head_length) == (body, length, keep,
                                                                           len(raw))


@pytest.mark.parametrize("raw", [b"HTTP/1.1 OK\r\n\r\n", b"ICY 200 OK\r\n\r\n",
                                 b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
                                 b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n"])
def test_bad_responses_are_framing_errors(raw):
    with pytest.raises(FramingError):
        parse_response_head(raw, "GET")
