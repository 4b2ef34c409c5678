"""A small real HTTP/1.1 backend for demos and tests: ``miresga backend --port N``.

Every response carries ``x-backend: <name>`` and names the backend in its body, so a client
can tell which server answered. Endpoints: ``/bytes/<n>`` (n bytes), ``/status/<code>``,
``/echo`` (body echoed back), ``/slow/<ms>``, ``/ws`` (Upgrade: 101 then raw echo),
``/healthz`` (200, or 503 after ``/healthz/fail`` until ``/healthz/ok``: lets tests take a
live backend out by its health check); anything else answers ``backend=<name> path=<path>``.
Built on h11.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Sequence

import h11

__all__ = ["run_backends", "serve_backend"]

_CHUNK = 1 << 16
_PATTERN = bytes(range(256)) * (_CHUNK // 256)


def body_bytes(n: int) -> bytes:
    """The deterministic content of /bytes/<n> (tests compare against it)."""
    reps, rest = divmod(n, len(_PATTERN))
    return _PATTERN * reps + _PATTERN[:rest]


class _Handler:
    def __init__(self, name: str, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, health: dict[str, bool] | None = None) -> None:
        self.name = name
        self.health = health if health is not None else {"ok": True}
        self.reader, self.writer = reader, writer
        self.conn = h11.Connection(h11.SERVER)

    async def next_event(self) -> object:
        while True:
            event = self.conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            data = await self.reader.read(_CHUNK)
            self.conn.receive_data(data)

    async def send(self, *events: h11.Event | None) -> None:
        for event in events:
            if event is None:  # optional parts of a response
                continue
            data = self.conn.send(event)
            if data:
                self.writer.write(data)
        await self.writer.drain()

    async def serve(self) -> None:
        try:
            while True:
                event = await self.next_event()
                if not isinstance(event, h11.Request):
                    return
                if not await self.respond(event):
                    return
                if self.conn.our_state is h11.MUST_CLOSE:
                    return
                self.conn.start_next_cycle()
        except (h11.ProtocolError, ConnectionError):
            return
        finally:
            self.writer.close()

    async def respond(self, request: h11.Request) -> bool:
        target = request.target.decode("latin-1")
        path = target.split("?", 1)[0]
        body = b""
        while True:
            event = await self.next_event()
            if isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
            else:
                return False
        headers = [("x-backend", self.name), ("content-type", "text/plain")]
        status = 200
        if path.startswith("/bytes/") and path[7:].isdigit():
            return await self.stream(request, headers, int(path[7:]))
        if path.startswith("/status/") and path[8:].isdigit():
            status, payload = int(path[8:]), f"status {path[8:]} from {self.name}\n".encode()
        elif path == "/echo":
            payload = body
        elif path in ("/healthz/fail", "/healthz/ok"):
            self.health["ok"] = path.endswith("/ok")
            payload = f"health of {self.name}: {'ok' if self.health['ok'] else 'failing'}\n"\
                .encode()
        elif path == "/healthz":
            status = 200 if self.health["ok"] else 503
            payload = f"{self.name} {'ok' if status == 200 else 'failing'}\n".encode()
        elif path.startswith("/slow/") and path[6:].isdigit():
            await asyncio.sleep(int(path[6:]) / 1000)
            payload = f"backend={self.name} slow\n".encode()
        elif path == "/ws" and self.upgrade_requested(request):
            return await self.tunnel()
        else:
            payload = f"backend={self.name} path={path} method={request.method.decode()}\n"\
                .encode()
        headers.append(("content-length", str(len(payload))))
        await self.send(h11.Response(status_code=status, headers=headers),
                        h11.Data(data=payload) if payload and request.method != b"HEAD" else None,
                        h11.EndOfMessage())
        return True

    async def stream(self, request: h11.Request, headers: list[tuple[str, str]], n: int) -> bool:
        headers.append(("content-length", str(n)))
        await self.send(h11.Response(status_code=200, headers=headers))
        if request.method != b"HEAD":
            sent = 0
            while sent < n:
                chunk = _PATTERN[: min(_CHUNK, n - sent)]
                await self.send(h11.Data(data=chunk))
                sent += len(chunk)
        await self.send(h11.EndOfMessage())
        return True

    @staticmethod
    def upgrade_requested(request: h11.Request) -> bool:
        return any(k == b"upgrade" for k, _ in request.headers)

    async def tunnel(self) -> bool:
        self.writer.write(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: echo\r\n"
                          b"connection: upgrade\r\nx-backend: " + self.name.encode() + b"\r\n\r\n")
        data, _ = self.conn.trailing_data
        if data:
            self.writer.write(data)
        while True:
            chunk = await self.reader.read(_CHUNK)
            if not chunk:
                return False
            self.writer.write(chunk)
            await self.writer.drain()


async def serve_backend(host: str, port: int, name: str) -> asyncio.base_events.Server:
    health = {"ok": True}  # shared by the connections of this backend

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _Handler(name, reader, writer, health).serve()

    return await asyncio.start_server(handle, host, port, reuse_address=True)


async def _run(specs: Sequence[tuple[str, int, str]]) -> None:
    servers = [await serve_backend(h, p, n) for h, p, n in specs]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    for host, port, name in specs:
        print(f"backend {name} listening on {host}:{port}", flush=True)
    await stop.wait()
    for server in servers:
        server.close()


def run_backends(specs: Sequence[tuple[str, int, str]]) -> None:
    asyncio.run(_run(specs))
