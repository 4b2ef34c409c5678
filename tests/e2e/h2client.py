"""A minimal blocking HTTP/2 (prior knowledge) client on h2, for bounded test loops."""

from __future__ import annotations

import socket

import h2.config
import h2.connection
import h2.events


class H2Client:
    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=True, header_encoding="utf-8"))
        self.conn.initiate_connection()
        self.sock.sendall(self.conn.data_to_send())

    def get(self, path: str) -> tuple[int, dict[str, str], bytes]:
        """One request; raises ConnectionError / OSError when the connection breaks."""
        sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(sid, [(":method", "GET"), (":scheme", "http"), (":path", path),
                                     (":authority", "lb")], end_stream=True)
        self.sock.sendall(self.conn.data_to_send())
        headers: dict[str, str] = {}
        body = b""
        while True:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("connection closed")
            for event in self.conn.receive_data(data):
                if getattr(event, "stream_id", None) != sid:
                    continue
                if isinstance(event, h2.events.ResponseReceived):
                    headers = dict(event.headers)
                elif isinstance(event, h2.events.DataReceived):
                    body += event.data
                    self.conn.acknowledge_received_data(event.flow_controlled_length, sid)
                elif isinstance(event, h2.events.StreamReset):
                    raise ConnectionError(f"stream reset {event.error_code!r}")
                elif isinstance(event, h2.events.StreamEnded):
                    self.sock.sendall(self.conn.data_to_send())
                    return int(headers.get(":status", "0")), headers, body
            self.sock.sendall(self.conn.data_to_send())

    def close(self) -> None:
        self.sock.close()
