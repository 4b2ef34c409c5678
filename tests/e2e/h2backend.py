"""A small real HTTP/2 (prior knowledge, cleartext) backend for tests, built on h2 + asyncio.

``python h2backend.py --port N --name NAME``. Every response has ``x-backend: NAME``;
``/bytes/<n>`` answers n bytes, ``/echo`` echoes the request body, anything else answers
``backend=NAME path=PATH``. Flow control is honoured (large bodies wait for WINDOW_UPDATE).
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import h2.config
import h2.connection
import h2.events
import h2.exceptions


class Conn:
    def __init__(self, name: str, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.name = name
        self.reader, self.writer = reader, writer
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False,
                                                                          header_encoding="utf-8"))
        self.requests: dict[int, dict] = {}
        self.outgoing: dict[int, bytearray] = {}

    async def run(self) -> None:
        self.h2.initiate_connection()
        self.writer.write(self.h2.data_to_send())
        try:
            while True:
                data = await self.reader.read(65536)
                if not data:
                    return
                for event in self.h2.receive_data(data):
                    self.handle(event)
                self.flush()
                self.writer.write(self.h2.data_to_send())
                await self.writer.drain()
        except h2.exceptions.ProtocolError as exc:
            print(f"protocol error from {self.writer.get_extra_info('peername')}: {exc}",
                  flush=True)
        except ConnectionError:
            return
        finally:
            self.writer.close()

    def handle(self, event: object) -> None:
        if isinstance(event, h2.events.RequestReceived):
            self.requests[event.stream_id] = {"headers": dict(event.headers), "body": b""}
        elif isinstance(event, h2.events.DataReceived):
            self.requests[event.stream_id]["body"] += event.data
            self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.StreamEnded) and event.stream_id in self.requests:
            self.respond(event.stream_id)
        elif isinstance(event, h2.events.StreamReset):
            self.outgoing.pop(event.stream_id, None)

    def respond(self, sid: int) -> None:
        req = self.requests.pop(sid)
        path = req["headers"].get(":path", "/")
        if path.startswith("/bytes/") and path[7:].isdigit():
            body = bytes(range(256)) * (int(path[7:]) // 256) + bytes(range(int(path[7:]) % 256))
        elif path == "/echo":
            body = req["body"]
        else:
            body = f"backend={self.name} path={path}\n".encode()
        self.h2.send_headers(sid, [(":status", "200"), ("x-backend", self.name),
                                   ("content-length", str(len(body)))])
        self.outgoing[sid] = bytearray(body)

    def flush(self) -> None:
        for sid, buf in list(self.outgoing.items()):
            try:
                while buf:
                    n = min(self.h2.local_flow_control_window(sid), self.h2.max_outbound_frame_size)
                    if n <= 0:
                        break
                    self.h2.send_data(sid, bytes(buf[:n]))
                    del buf[:n]
                if not buf:
                    self.h2.end_stream(sid)
                    del self.outgoing[sid]
            except h2.exceptions.StreamClosedError:
                del self.outgoing[sid]


async def main(host: str, port: int, name: str) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await Conn(name, reader, writer).run()

    server = await asyncio.start_server(handle, host, port, reuse_address=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    print(f"h2 backend {name} on {host}:{port}", flush=True)
    await stop.wait()
    server.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--name", required=True)
    args = ap.parse_args()
    asyncio.run(main(args.host, args.port, args.name))
