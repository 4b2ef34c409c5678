"""The HTTP/2 prototype parser: the start of a client stream -> RequestHead | NeedMore | Reject.

Theory of operation. A prior-knowledge HTTP/2 client sends the 24-byte preface, a SETTINGS
frame, maybe more connection-level frames (WINDOW_UPDATE, PING, PRIORITY, SETTINGS), then the
HEADERS of its first stream, continued by CONTINUATION frames until END_HEADERS. This module
walks the frames (RFC 9113 4.1), concatenates the header block fragments (minus padding and
priority fields), decodes the block with ``hpack`` (static and dynamic table, Huffman) and
checks the request rules of RFC 9113 8.3 (pseudo-headers first and known, no
connection-specific headers, lower-case names). It is the oracle of the compiled form, so
it is total: every input gives one of the three results, never an exception.

``head_length`` is the number of bytes up to the end of the first header block; ``version``
is "2"; the first stream's id and scheme are in ``extra`` (``stream``, ``scheme``).
``headers_to_head`` is shared with the proxy session, which builds one head per stream.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import hpack

from miresga_core import BodyFraming, NeedMore, Reject, RequestHead

__all__ = ["PREFACE", "headers_to_head", "parse_head", "split_path"]

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, \
    CONTINUATION = range(10)
END_STREAM, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x4, 0x8, 0x20
MAX_FRAME = 16384  # SETTINGS_MAX_FRAME_SIZE we advertise (the RFC's initial value)
_CONNECTION_FRAMES = {SETTINGS, PING, WINDOW_UPDATE, PRIORITY}
_CONNECTION_HEADERS = {"connection", "keep-alive", "proxy-connection", "transfer-encoding",
                       "upgrade"}
_PSEUDO = {":method", ":scheme", ":path", ":authority"}


def parse_head(data: bytes, max_head: int = 16384) -> RequestHead | NeedMore | Reject:
    """Parse the preface, SETTINGS and the first request's header block of ``data``."""
    if data[: len(PREFACE)] != PREFACE[: len(data)]:
        return Reject(400, "not an HTTP/2 connection preface (prior knowledge expected)")
    if len(data) < len(PREFACE):
        return NeedMore("preface incomplete")
    pos = len(PREFACE)
    first = True
    block = bytearray()
    stream = 0
    end_stream = False
    while True:
        if pos > max_head:
            return Reject(431, f"request head larger than {max_head} bytes")
        if len(data) < pos + 9:
            return NeedMore("frame header incomplete")
        length = int.from_bytes(data[pos:pos + 3], "big")
        ftype, flags = data[pos + 3], data[pos + 4]
        sid = int.from_bytes(data[pos + 5:pos + 9], "big") & 0x7FFFFFFF
        if length > MAX_FRAME:
            return Reject(400, f"frame of {length} bytes exceeds SETTINGS_MAX_FRAME_SIZE")
        if pos + 9 + length > max_head + len(PREFACE):
            return Reject(431, f"request head larger than {max_head} bytes")
        if len(data) < pos + 9 + length:
            return NeedMore("frame payload incomplete")
        payload = data[pos + 9:pos + 9 + length]
        pos += 9 + length
        if first and (ftype != SETTINGS or sid != 0 or flags & 1):
            return Reject(400, "the preface must be followed by a SETTINGS frame")
        first = False
        if stream == 0:
            if ftype in _CONNECTION_FRAMES:
                problem = _check_connection_frame(ftype, sid, payload)
                if problem:
                    return Reject(400, problem)
                continue
            if ftype != HEADERS:
                return Reject(400, f"frame type {ftype} before the first HEADERS")
            if sid == 0 or sid % 2 == 0:
                return Reject(400, f"HEADERS on invalid client stream id {sid}")
            fragment = _headers_fragment(payload, flags)
            if fragment is None:
                return Reject(400, "HEADERS padding or priority exceeds the frame")
            stream, end_stream = sid, bool(flags & END_STREAM)
            block += fragment
        else:  # only CONTINUATION of the same stream may follow (RFC 9113 6.10)
            if ftype != CONTINUATION or sid != stream:
                return Reject(400, "header block interrupted by another frame")
            block += payload
        if flags & END_HEADERS:
            break
    headers = _decode(bytes(block), max_head)
    if isinstance(headers, Reject):
        return headers
    return headers_to_head(headers, end_stream, head_length=pos,
                           extra={"stream": str(stream)})


def _check_connection_frame(ftype: int, sid: int, payload: bytes) -> str | None:
    if ftype == PRIORITY:
        return None if sid and len(payload) == 5 else "bad PRIORITY frame"
    if sid != 0:
        return f"frame type {ftype} on stream {sid} before its HEADERS"
    if ftype == SETTINGS and len(payload) % 6:
        return "SETTINGS payload is not a multiple of 6 bytes"
    if ftype == PING and len(payload) != 8:
        return "PING payload is not 8 bytes"
    if ftype == WINDOW_UPDATE and len(payload) != 4:
        return "WINDOW_UPDATE payload is not 4 bytes"
    return None


def _headers_fragment(payload: bytes, flags: int) -> bytes | None:
    start, pad = 0, 0
    if flags & PADDED:
        if not payload:
            return None
        pad, start = payload[0], 1
    if flags & PRIORITY_FLAG:
        start += 5
    if start + pad > len(payload):
        return None
    return payload[start:len(payload) - pad]


def _decode(block: bytes, max_head: int) -> list[tuple[str, str]] | Reject:
    decoder = hpack.Decoder()
    decoder.max_header_list_size = max_head
    try:
        raw = decoder.decode(block, raw=True)
    except hpack.OversizedHeaderListError:
        return Reject(431, f"decoded header list larger than {max_head} bytes")
    except (hpack.HPACKError, IndexError, ValueError, UnicodeError) as exc:
        return Reject(400, f"bad HPACK block: {type(exc).__name__}: {exc}")
    return [(bytes(k).decode("latin-1"), bytes(v).decode("latin-1")) for k, v in raw]


def split_path(target: str) -> tuple[str, str]:
    path, _, query = target.partition("?")
    return path, query


def headers_to_head(headers: Iterable[tuple[str, str]] | Sequence[tuple[bytes, bytes]],
                    end_stream: bool, head_length: int = 0,
                    extra: dict[str, str] | None = None) -> RequestHead | Reject:
    """A request's decoded header list -> RequestHead (RFC 9113 8.3 checks)."""
    pseudo: dict[str, str] = {}
    regular: list[tuple[str, str]] = []
    for key, value in headers:
        k = key.decode("latin-1") if isinstance(key, bytes) else key
        v = value.decode("latin-1") if isinstance(value, bytes) else value
        if k.startswith(":"):
            if regular:
                return Reject(400, f"pseudo-header {k} after regular headers")
            if k not in _PSEUDO:
                return Reject(400, f"unknown request pseudo-header {k}")
            if k in pseudo:
                return Reject(400, f"duplicate pseudo-header {k}")
            pseudo[k] = v
            continue
        if k != k.lower() or not k:
            return Reject(400, f"header name {k!r} is not lower-case")
        if any(c in v for c in "\0\r\n"):  # RFC 9113 8.2.1: malformed
            return Reject(400, f"header {k} value contains NUL, CR or LF")
        if k in _CONNECTION_HEADERS or (k == "te" and v.strip().lower() != "trailers"):
            return Reject(400, f"connection-specific header {k} in HTTP/2")
        regular.append((k, v))
    method = pseudo.get(":method")
    if method is None:
        return Reject(400, "missing :method")
    if method == "CONNECT":
        return Reject(405, "CONNECT is not proxied")
    if ":scheme" not in pseudo or not pseudo.get(":path"):
        return Reject(400, "missing :scheme or :path")
    target = pseudo[":path"]
    path, query = split_path(target)
    authority = pseudo.get(":authority") or dict(regular).get("host", "")
    length = next((v for k, v in regular if k == "content-length"), None)
    if end_stream:
        framing, clen = BodyFraming.NONE, 0
    elif length is not None and length.isascii() and length.isdigit() \
            and int(length) < 1 << 63:  # '\xb2'.isdigit() is True; int64 like the VMs
        framing, clen = BodyFraming.LENGTH, int(length)
    else:
        framing, clen = BodyFraming.UNTIL_CLOSE, 0  # DATA frames until END_STREAM
    fields = {"scheme": pseudo[":scheme"], "authority": authority, **(extra or {})}
    return RequestHead(method=method, target=target, path=path, query=query,
                       host=_host(authority), headers=tuple(regular), version="2",
                       head_length=head_length, framing=framing, content_length=clen,
                       extra=fields)


def _host(authority: str) -> str:
    host = authority.strip().lower()
    if "@" in host:
        host = host.rsplit("@", 1)[1]
    if host.startswith("["):
        return host[: host.find("]") + 1]
    return host.split(":", 1)[0]
