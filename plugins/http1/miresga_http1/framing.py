"""HTTP/1.1 message framing at byte level, for relaying without re-serialising.

A proxy forwards the bytes it received; it only needs to know where each message ends. The
body readers here take a buffer and say how many of its bytes belong to the body and
whether the body ended (RFC 9112 section 6 and 7.1): nothing is copied or decoded.
``parse_response_head`` reads a backend's status line and headers and derives the response
framing (RFC 9112 6.3). Errors raise ``FramingError``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["ChunkedBody", "FramingError", "LengthBody", "ResponseHead", "UntilClose",
           "find_head_end", "parse_response_head"]

# Same rule as h11's receive buffer: a head ends at the first empty line, CRLF or bare LF.
_HEAD_END = re.compile(rb"\n\r?\n")
_STATUS_LINE = re.compile(rb"HTTP/(\d)\.(\d) (\d{3})(?: [^\r\n]*)?\r?\n")
# a header line (after the status line) that has no colon, or a name with spaces
_BAD_HEADER_LINE = re.compile(rb"\n(?![\r\n])(?:[^:\r\n]*(?:\r?\n)|[^:\r\n]*[ \t]:)")
_FRAMING_HEADERS = re.compile(
    rb"\n(content-length|transfer-encoding|connection)[ \t]*:([^\r\n]*)", re.IGNORECASE)
_MAX_CHUNK_LINE = 4096


class FramingError(Exception):
    """The byte stream is not valid HTTP/1.1 framing."""


def find_head_end(buf: bytes | bytearray, start: int = 0) -> int:
    """Length of the head (terminating empty line included), or -1 when incomplete."""
    m = _HEAD_END.search(buf, max(0, start - 3))
    return m.end() if m else -1


class LengthBody:
    """A body of exactly ``remaining`` bytes (Content-Length)."""

    __slots__ = ("remaining",)

    def __init__(self, length: int) -> None:
        self.remaining = length

    @property
    def done(self) -> bool:
        return self.remaining == 0

    def feed(self, data: bytes) -> int:
        """Consume from ``data``; return how many bytes belong to the body."""
        take = min(self.remaining, len(data))
        self.remaining -= take
        return take

    def skip(self, n: int) -> None:
        """``n`` body bytes went by without us (spliced in the kernel)."""
        if n > self.remaining:
            raise FramingError(f"{n} bytes spliced, only {self.remaining} left in the body")
        self.remaining -= n


class UntilClose:
    """A body delimited by the end of the stream (close-delimited responses, tunnels)."""

    __slots__ = ()
    done = False

    def feed(self, data: bytes) -> int:
        return len(data)


class ChunkedBody:
    """Chunked transfer coding, tracked incrementally over raw bytes.

    States: SIZE (reading a chunk-size line), DATA (n bytes left of a chunk), DATA_CRLF
    (the CRLF after chunk data), TRAILER (trailer lines until an empty line), DONE.
    """

    __slots__ = ("_left", "_line", "_state", "done")

    def __init__(self) -> None:
        self._state = "SIZE"
        self._left = 0
        self._line = bytearray()
        self.done = False

    def feed(self, data: bytes) -> int:
        pos = 0
        n = len(data)
        while pos < n and not self.done:
            if self._state == "DATA":
                take = min(self._left, n - pos)
                pos += take
                self._left -= take
                if self._left == 0:
                    self._state = "DATA_CRLF"
                continue
            if self._state == "DATA_CRLF" and not self._line and data[pos] not in b"\r\n":
                raise FramingError("missing CRLF after chunk data")
            nl = data.find(b"\n", pos)
            if nl < 0:
                self._line += data[pos:]
                if len(self._line) > _MAX_CHUNK_LINE:
                    raise FramingError("chunk line too long")
                return n
            self._line += data[pos:nl]
            pos = nl + 1
            line = bytes(self._line).rstrip(b"\r")
            self._line.clear()
            self._line_done(line)
        return pos

    def _line_done(self, line: bytes) -> None:
        if self._state == "SIZE":
            size_text = line.split(b";", 1)[0].strip(b" \t")
            if not size_text or any(c not in b"0123456789abcdefABCDEF" for c in size_text) \
                    or len(size_text) > 16:
                raise FramingError(f"bad chunk size {line[:40]!r}")
            self._left = int(size_text, 16)
            self._state = "DATA" if self._left else "TRAILER"
        elif self._state == "DATA_CRLF":
            if line:
                raise FramingError("missing CRLF after chunk data")
            self._state = "SIZE"
        elif self._state == "TRAILER":
            if not line:
                self.done = True
                self._state = "DONE"


@dataclass(frozen=True, slots=True)
class ResponseHead:
    status: int
    version: tuple[int, int]
    head_length: int
    keep_alive: bool
    body: str  # "none" | "length" | "chunked" | "until-close"
    length: int = 0

    @property
    def informational(self) -> bool:
        return 100 <= self.status < 200 and self.status != 101


def parse_response_head(buf: bytes | bytearray, request_method: str,
                        max_head: int = 65536) -> ResponseHead | None:
    """Parse a response head at the start of ``buf``; None if it is incomplete.

    Only what framing needs is extracted (RFC 9112 6.3): status, version, Content-Length,
    Transfer-Encoding, Connection. The scans are regular expressions so the per-header work
    happens in C; a header line without a colon is still refused."""
    end = find_head_end(buf)
    if end < 0:
        if len(buf) > max_head:
            raise FramingError("response head too large")
        return None
    head = bytes(buf[:end])
    first = head.find(b"\n")
    m = _STATUS_LINE.match(head)
    if not m:
        raise FramingError(f"bad status line {head[:min(first, 60)]!r}")
    bad = _BAD_HEADER_LINE.search(head, first)
    if bad and bad.end() < end:
        raise FramingError(f"bad header line {bad.group(0)[:60]!r}")
    version = (int(m.group(1)), int(m.group(2)))
    status = int(m.group(3))
    conn_tokens: set[bytes] = set()
    te = b""
    length: int | None = None
    for name, value in _FRAMING_HEADERS.findall(head, first):
        key = name.lower()
        value = value.strip(b" \t")
        if key == b"content-length":
            if not value.isdigit() or (length is not None and length != int(value)):
                raise FramingError("bad Content-Length")
            length = int(value)
        elif key == b"transfer-encoding":
            te = value.lower()
        else:
            conn_tokens.update(t.strip().lower() for t in value.split(b","))
    keep_alive = (b"close" not in conn_tokens if version >= (1, 1)
                  else b"keep-alive" in conn_tokens)
    if request_method == "HEAD" or 100 <= status < 200 or status in (204, 304):
        body, size = "none", 0
    elif te:
        if not te.endswith(b"chunked"):
            body, size, keep_alive = "until-close", 0, False
        else:
            body, size = "chunked", 0
    elif length is not None:
        body, size = ("length", length) if length else ("none", 0)
    else:
        body, size, keep_alive = "until-close", 0, False
    return ResponseHead(status, version, end, keep_alive, body, size)


def body_reader(kind: str, length: int = 0) -> LengthBody | ChunkedBody | UntilClose | None:
    """A reader for a body kind ("none" gives None)."""
    if kind == "length":
        return LengthBody(length)
    if kind == "chunked":
        return ChunkedBody()
    if kind == "until-close":
        return UntilClose()
    return None
