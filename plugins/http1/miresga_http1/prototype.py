"""The HTTP/1.1 prototype parser: request head bytes -> RequestHead | NeedMore | Reject.

h11 is the judge of what is a valid request (it implements RFC 9112's grammar); this module
only finds where the head ends, hands exactly those bytes to a fresh h11 connection and
turns its Request event into the core's ``RequestHead``. It is the oracle the compiled
bytecode form is tested against, so it must be total: every input gives one of the three
results, never an exception.
"""

from __future__ import annotations

import re
from typing import Any

import h11

from miresga_core import BodyFraming, NeedMore, Reject, RequestHead

from .compiled import FLAG_EXPECT, FLAG_KEEP_ALIVE, FLAG_UPGRADE
from .framing import find_head_end

__all__ = ["head_from_outcome", "parse_head"]

_OBS_FOLD = re.compile(rb"\n[ \t]")
_INT64_MAX = (1 << 63) - 1


def parse_head(data: bytes, max_head: int = 16384) -> RequestHead | NeedMore | Reject:
    """Parse the request head at the start of ``data`` (bytes after it are ignored)."""
    end = find_head_end(data)
    if end < 0:
        if len(data) > max_head:
            return Reject(431, f"request head larger than {max_head} bytes")
        return NeedMore("head incomplete")
    if end > max_head:
        return Reject(431, f"request head of {end} bytes exceeds {max_head}")
    if _OBS_FOLD.search(data, 0, end):
        # RFC 9112 5.2 lets a server refuse obs-fold; h11 would unfold it, but a value that
        # spans lines cannot be matched in place by the compiled form, so both refuse.
        return Reject(400, "malformed request: obsolete line folding")
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=max_head + 1)
    conn.receive_data(bytes(data[:end]))
    try:
        event = conn.next_event()
    except h11.RemoteProtocolError as exc:
        return Reject(exc.error_status_hint, f"malformed request: {exc}")
    if not isinstance(event, h11.Request):
        return Reject(400, "malformed request: no request line")
    return _to_head(event, end)


def _to_head(event: h11.Request, head_length: int) -> RequestHead | Reject:
    method = event.method.decode("ascii")
    if method == "CONNECT":
        return Reject(405, "CONNECT is not proxied")
    target = event.target.decode("latin-1")
    headers = tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers)
    get: dict[str, str] = {}
    conn_tokens: set[str] = set()
    te = ""
    for key, value in headers:
        get.setdefault(key, value)
        if key == "connection":
            conn_tokens.update(t.strip().lower() for t in value.split(","))
        elif key == "transfer-encoding":
            te = value.lower()
    path, _, query = _split_target(target)
    version = event.http_version.decode("ascii")
    if version not in ("1.0", "1.1"):
        return Reject(505, f"HTTP/{version} is not HTTP/1.x")
    keep_alive = ("close" not in conn_tokens) if version == "1.1" else ("keep-alive" in conn_tokens)
    if te:
        framing, length = BodyFraming.CHUNKED, 0  # h11 refuses any other coding
    elif "content-length" in get:
        length = int(get["content-length"])
        if length > _INT64_MAX:  # h11 takes 20 digits; the compiled form stops at int64
            return Reject(400, "Content-Length too large")
        framing = BodyFraming.LENGTH if length else BodyFraming.NONE
    else:
        framing, length = BodyFraming.NONE, 0
    upgrade = get.get("upgrade", "") if "upgrade" in conn_tokens else ""
    return RequestHead(
        method=method, target=target, path=path, query=query,
        host=_host(get.get("host", ""), target), headers=headers, version=version,
        head_length=head_length, framing=framing, content_length=length,
        keep_alive=keep_alive, upgrade=upgrade,
        expect_continue=get.get("expect", "").lower() == "100-continue",
    )


_HEADER = re.compile(rb"\n([^:\r\n]+):[ \t]*([^\r\n]*?)[ \t]*\r?(?=\n)")
_FRAMINGS = (BodyFraming.NONE, BodyFraming.LENGTH, BodyFraming.CHUNKED)


def head_from_outcome(data: bytes, out: Any) -> RequestHead:
    """RequestHead from the compiled program's outcome (see ParserPlugin.head_from_outcome):
    the program validated the head, so the request line and headers are only sliced."""
    head = data[: out.head_len]
    line_end = head.find(b"\n")
    method, _, rest = head[:line_end].partition(b" ")
    target = rest.rpartition(b" ")[0].decode("latin-1")
    headers = tuple((k.decode("latin-1").lower(), v.decode("latin-1"))
                    for k, v in _HEADER.findall(head, line_end))
    first = dict(reversed(headers))
    path, _, query = _split_target(target)
    flags = out.flags
    return RequestHead(
        method=method.decode("latin-1"), target=target, path=path, query=query,
        host=_host(first.get("host", ""), target), headers=headers,
        version=rest.rpartition(b"HTTP/")[2].strip().decode("latin-1"),
        head_length=out.head_len, framing=_FRAMINGS[out.framing],
        content_length=out.content_length, keep_alive=bool(flags & FLAG_KEEP_ALIVE),
        upgrade=first.get("upgrade", "") if flags & FLAG_UPGRADE else "",
        expect_continue=bool(flags & FLAG_EXPECT))


def _split_target(target: str) -> tuple[str, str, str]:
    """Path and query of origin-form or absolute-form targets."""
    if "://" in target:  # absolute-form: the path starts after the authority
        after = target.split("://", 1)[1]
        slash = after.find("/")
        target = after[slash:] if slash >= 0 else "/"
    path, sep, query = target.partition("?")
    return path, sep, query


def _host(header: str, target: str) -> str:
    """Host without port, lower-cased; from absolute-form targets first (RFC 9112 3.2.2)."""
    if "://" in target:
        header = target.split("://", 1)[1].split("/", 1)[0].split("?", 1)[0]
    host = header.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1]
    return host.split(":", 1)[0]
