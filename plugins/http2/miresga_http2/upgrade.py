"""h2c upgrade (RFC 7540 3.2): an HTTP/1.1 request with ``Upgrade: h2c`` becomes stream 1.

``parse_upgrade(data)`` looks at the start of a connection that is not the HTTP/2 preface:
NeedMore until the HTTP/1.1 head is complete, Reject when it is not an upgrade we accept,
else an ``Upgrade`` with the request as an HTTP/2 header list (pseudo-headers first,
connection-specific fields dropped), the client's ``HTTP2-Settings`` value and the bytes
after the head (the client's preface usually follows the 101). Requests with a body are
refused: the body would have to be sent as HTTP/1.1 before the switch, which few clients
do and which is not worth the state here (curl only upgrades bodiless requests).
"""

from __future__ import annotations

from dataclasses import dataclass

import h11

from miresga_core import NeedMore, Reject

__all__ = ["SWITCHING", "Upgrade", "parse_upgrade"]

SWITCHING = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
_DROP = {b"connection", b"upgrade", b"http2-settings", b"keep-alive", b"proxy-connection",
         b"transfer-encoding", b"host"}


@dataclass(frozen=True, slots=True)
class Upgrade:
    headers: list[tuple[bytes, bytes]]
    settings: bytes
    rest: bytes


def parse_upgrade(data: bytes, max_head: int) -> Upgrade | NeedMore | Reject:
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return Reject(431, "request head too large") if len(data) > max_head else \
            NeedMore("HTTP/1.1 head incomplete")
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=max_head + 1)
    conn.receive_data(data[:end + 4])
    try:
        event = conn.next_event()
    except h11.RemoteProtocolError as exc:
        return Reject(400, f"malformed HTTP/1.1 request: {exc}")
    if not isinstance(event, h11.Request):
        return Reject(400, "malformed HTTP/1.1 request")
    fields = {k: v for k, v in event.headers}
    tokens = {t.strip().lower() for t in fields.get(b"connection", b"").split(b",")}
    upgrade = {t.strip().lower() for t in fields.get(b"upgrade", b"").split(b",")}
    if b"h2c" not in upgrade or b"upgrade" not in tokens or b"http2-settings" not in fields:
        return Reject(505, "this listener speaks HTTP/2: use prior knowledge or Upgrade: h2c")
    if int(fields.get(b"content-length", b"0") or 0) or b"transfer-encoding" in fields:
        return Reject(413, "h2c upgrade of a request with a body is not supported")
    headers = [(b":method", event.method), (b":scheme", b"http"), (b":path", event.target),
               (b":authority", fields.get(b"host", b""))]
    headers += [(k, v) for k, v in event.headers if k not in _DROP
                and not (k == b"te" and v.strip().lower() != b"trailers")]
    return Upgrade(headers, fields[b"http2-settings"], data[end + 4:])
