"""A raw-socket HTTP/1 backend in threads of the test: it answers each request head with
whatever bytes the test scripts, for framings and pacing the demo servers never produce.
Shared by the kernel data plane's splice tests and the engine integration tests."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable

PAUSE = b"<pause>"  # in a reply: send what came before, wait 30 ms, go on


class RawBackend:
    """Answers every request head with ``reply(request_number)``: the bytes (split at
    PAUSE), then closes the connection when the reply says so. ``port``: 0 = the kernel's
    choice (read ``.port``)."""

    def __init__(self, reply: Callable[[int], tuple[bytes, bool]], port: int = 0) -> None:
        self.reply = reply
        self.sock = socket.create_server(("127.0.0.1", port))
        self.port = self.sock.getsockname()[1]
        self.count = 0
        self.last = b""  # the last request head received
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._conn, args=(conn,), daemon=True).start()

    def _conn(self, conn: socket.socket) -> None:
        with conn:
            buf = b""
            for _ in range(1000):  # bounded: requests per connection
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                self.last, buf = buf.split(b"\r\n\r\n", 1)
                self.count += 1
                data, close = self.reply(self.count)
                for part in data.split(PAUSE):
                    conn.sendall(part)
                    time.sleep(0.03)
                if close:
                    return

    def close(self) -> None:
        with contextlib.suppress(OSError):  # wakes the accept() (close alone would not)
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
