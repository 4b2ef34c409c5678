"""The ``grpc`` active health check: the standard ``grpc.health.v1.Health/Check`` call.

Speaks HTTP/2 with prior knowledge over asyncio with ``h2`` (no grpcio needed in the
balancer): one POST with a ``HealthCheckRequest`` naming the service, healthy when the
answer is ``grpc-status: 0`` with ``status = SERVING``. The service name is taken from the
pool's ``health.path`` without its leading slash (``"/"``, the default, asks about the
server as a whole, i.e. the empty service name).

    health = { kind = "grpc", path = "/helloworld.Greeter", interval = 2.0 }
"""

from __future__ import annotations

import asyncio
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions

__all__ = ["GrpcHealthCheck", "decode_status", "encode_request"]

SERVING = 1
_PATH = "/grpc.health.v1.Health/Check"


def encode_request(service: str) -> bytes:
    """A length-prefixed gRPC message: HealthCheckRequest { string service = 1; }."""
    raw = service.encode()
    if len(raw) > 127:
        raise ValueError("service name longer than 127 bytes")
    body = (b"\x0a" + bytes([len(raw)]) + raw) if raw else b""
    return b"\x00" + len(body).to_bytes(4, "big") + body


def decode_status(message: bytes) -> int | None:
    """``status`` (field 1, varint) of a HealthCheckResponse body; 0 (UNKNOWN) if absent."""
    if len(message) < 5 or message[0] != 0:
        return None  # missing or compressed: we asked for no compression
    body = message[5:5 + int.from_bytes(message[1:5], "big")]
    if len(body) >= 2 and body[0] == 0x08:
        return body[1] if body[1] < 0x80 else None
    return 0


class GrpcHealthCheck:
    kind = "grpc"

    async def probe(self, backend: Any, settings: Any) -> str | None:
        try:
            return await asyncio.wait_for(self._check(backend, settings), settings.timeout)
        except (TimeoutError, OSError, ValueError, h2.exceptions.ProtocolError) as exc:
            return f"grpc health: {type(exc).__name__} {exc}"

    async def _check(self, backend: Any, settings: Any) -> str | None:
        service = settings.path.lstrip("/")
        reader, writer = await asyncio.open_connection(backend.address.host,
                                                       backend.address.port)
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True,
                                                                    header_encoding="utf-8"))
        try:
            conn.initiate_connection()
            sid = conn.get_next_available_stream_id()
            conn.send_headers(sid, [(":method", "POST"), (":scheme", "http"), (":path", _PATH),
                                    (":authority", str(backend.address)),
                                    ("content-type", "application/grpc"), ("te", "trailers"),
                                    ("user-agent", "miresga-health")])
            conn.send_data(sid, encode_request(service), end_stream=True)
            writer.write(conn.data_to_send())
            message, status = b"", None
            while True:
                data = await reader.read(65536)
                if not data:
                    return "connection closed before the answer"
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.DataReceived):
                        message += event.data
                    elif isinstance(event, (h2.events.ResponseReceived,
                                            h2.events.TrailersReceived)):
                        fields = dict(event.headers)
                        if fields.get(":status", "200") != "200":
                            return f"HTTP status {fields[':status']}"
                        status = fields.get("grpc-status", status)
                    elif isinstance(event, h2.events.StreamEnded):
                        if status != "0":
                            return f"grpc-status {status}"
                        serving = decode_status(message)
                        return None if serving == SERVING else f"health status {serving}"
                    elif isinstance(event, h2.events.StreamReset):
                        return f"stream reset ({event.error_code!r})"
                writer.write(conn.data_to_send())
        finally:
            writer.close()
