"""The HTTP/1.1 proxy session: one client connection, routed request by request.

Theory of operation. The session is a state machine driven by the kernel data plane's shell
(see miresga_core/session.py for the action contract). States:

  HEAD       reading a request head; bytes accumulate in ``buf``
  CONNECT    the head was routed; waiting for the backend connection
  FORWARD    head sent; request body forwarded as it arrives; response relayed as it comes
  TUNNEL     raw bytes both ways (101 Switching Protocols, or a ``pin`` route)
  CLOSED

Each request is routed on its own, so consecutive requests of one keep-alive connection
may go to different pools. Requests are served one at a time: pipelined requests wait in
``buf`` until the response before them is complete, so responses never mix. Bytes are
forwarded as received (no re-serialisation); only ``X-Forwarded-For`` is inserted.

Failures: a connect failure or a backend that closes before answering is retried on
another backend when the request is idempotent and has no body, else 502; no backend up is
503, no route 404, malformed 400, head too large 431, head too slow 408, backend too slow
504. Each logs its reason.
"""

from __future__ import annotations

from typing import Any

from miresga_core import BodyFraming, NeedMore, OffloadMode, Reject, RequestHead
from miresga_core.decide import Decided
from miresga_core.routing import RouteResult
from miresga_core.session import (
    Action,
    CloseClient,
    Connect,
    HalfClose,
    Log,
    Pause,
    Release,
    Resume,
    SendBackend,
    SendClient,
    SessionContext,
    SpliceNextResponse,
    SpliceResponse,
    Timer,
    Tunnel,
)

from .framing import (
    ChunkedBody,
    FramingError,
    LengthBody,
    ResponseHead,
    UntilClose,
    body_reader,
    parse_response_head,
)

__all__ = ["Http1Session", "local_response"]

HEAD, CONNECT, FORWARD, TUNNEL, CLOSED = "HEAD", "CONNECT", "FORWARD", "TUNNEL", "CLOSED"
_BUFFER_LIMIT = 256 * 1024  # client bytes held while a backend is not ready
# Bodies shorter than this are relayed: arming a splice costs a few syscalls, about what
# relaying that many bytes costs.
SPLICE_MIN = 16 * 1024

_PHRASES = {400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            408: "Request Timeout", 413: "Content Too Large", 414: "URI Too Long",
            431: "Request Header Fields Too Large", 501: "Not Implemented",
            502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout",
            505: "HTTP Version Not Supported"}


def local_response(status: int, reason: str, close: bool) -> bytes:
    """A short plain-text response the load balancer answers itself."""
    body = f"{status} {_PHRASES.get(status, 'Error')}: {reason}\n".encode()
    conn = "close" if close else "keep-alive"
    return (f"HTTP/1.1 {status} {_PHRASES.get(status, 'Error')}\r\ncontent-type: text/plain\r\n"
            f"content-length: {len(body)}\r\nconnection: {conn}\r\n\r\n").encode() + body


class Http1Session:
    """One client connection; see the module docstring."""

    def __init__(self, ctx: SessionContext) -> None:
        self.ctx = ctx
        self.timeouts = ctx.listener.timeouts
        self.state = HEAD
        self.buf = bytearray()
        self.head: RequestHead | None = None
        self.result: RouteResult | None = None
        self.pending = b""  # head bytes to send once connected
        self.req_body: LengthBody | ChunkedBody | UntilClose | None = None
        self.resp_buf = bytearray()
        self.resp: ResponseHead | None = None
        self.resp_body: LengthBody | ChunkedBody | UntilClose | None = None
        self.answered = False  # some response byte of the current request reached the client
        self.exclude: set[int] = set()
        self.must_close = False
        self.paused = False
        self.client_eof = False
        self.backend_eof = False
        self.head_timer = False
        self.head_forwarded = False  # the kernel already sent the response head

    # ----------------------------------------------------------------- client side

    def on_start(self, now: float) -> list[Action]:
        return [Timer("idle", self.timeouts.idle)]

    def on_client_data(self, data: bytes, now: float) -> list[Action]:
        if self.state == TUNNEL:
            return [SendBackend(data)]
        if self.state == CLOSED:
            return []
        out: list[Action] = []
        if self.state == FORWARD and self.req_body is not None and not self.req_body.done \
                and not self.buf:
            data = self._forward_body(data, out)
        self.buf += data
        if self.state == HEAD:
            out += self._next_request(now)
        elif len(self.buf) > _BUFFER_LIMIT and not self.paused:
            self.paused = True
            out.append(Pause())
        return out

    def on_client_eof(self, now: float) -> list[Action]:
        self.client_eof = True
        if self.state == TUNNEL:
            return [HalfClose(to_backend=True)] + self._tunnel_end()
        if self.state == HEAD or (self.req_body is not None and not self.req_body.done):
            return self._close(release=self.state != HEAD)
        self.must_close = True  # request complete: answer it, then close
        return []

    def drain(self) -> list[Action]:
        """Graceful stop: close now if idle, else after the current response."""
        self.must_close = True
        if self.state == HEAD and not self.buf:
            return self._close(release=False)
        return []

    # ----------------------------------------------------------------- backend side

    def on_backend_connected(self, now: float) -> list[Action]:
        if self.state != CONNECT:
            return []
        out: list[Action] = [Timer("connect", 0)]
        assert self.result is not None
        if self.result.offload is OffloadMode.PIN:
            self.state = TUNNEL
            out += [SendBackend(self.pending + bytes(self.buf)), Tunnel()]
            self.buf.clear()
            return out + self._resume()
        self.state = FORWARD
        assert self.head is not None
        if self.head.method != "HEAD" and not self.head.upgrade:
            out.append(SpliceNextResponse(SPLICE_MIN))  # armed before the request leaves
        out.append(SendBackend(self.pending))
        if self.buf and self.req_body is not None:
            self.buf[:] = self._forward_body(bytes(self.buf), out)
        out.append(Timer("response", self.timeouts.response))
        return out + self._resume()

    def on_backend_failed(self, reason: str, now: float) -> list[Action]:
        if self.state != CONNECT or self.result is None or self.result.backend is None:
            return []
        return [Release(reuse=False)] + self._retry_or_fail(
            f"connect to {self.result.backend.label} failed: {reason}", now, passive=True)

    def on_backend_data(self, data: bytes, now: float) -> list[Action]:
        if self.state == TUNNEL:
            return [SendClient(data)]
        if self.state != FORWARD:
            return []
        out: list[Action] = []
        if self.resp is None:
            self.resp_buf += data
            out += self._response_head(now)
        else:
            out += self._response_body(data, now)
        return out

    def on_backend_eof(self, now: float) -> list[Action]:
        self.backend_eof = True
        if self.state == TUNNEL:
            return [HalfClose(to_backend=False)] + self._tunnel_end()
        if self.state != FORWARD:
            return []
        if isinstance(self.resp_body, UntilClose):
            self.must_close = True
            return self._response_done(now, reuse=False)
        if not self.answered and self.resp is None:
            return [Release(reuse=False)] + self._retry_or_fail(
                "backend closed before answering", now, passive=True)
        return [Log("warning", f"{self._who()}: backend closed mid-response")] + \
            self._close(release=True)

    def on_timer(self, name: str, now: float) -> list[Action]:
        if name == "idle" and self.state == HEAD and not self.buf:
            return self._close(release=False)
        if name == "head" and self.state == HEAD:
            return self._reject(408, "request head not complete in time")
        if name == "connect" and self.state == CONNECT:
            return [Release(reuse=False)] + self._retry_or_fail("connect timeout", now,
                                                                passive=True)
        if name == "response" and self.state == FORWARD and not self.answered:
            if self.resp is None:
                return [Release(reuse=False)] + self._fail(504, "backend response timeout")
        return []

    # ----------------------------------------------------------------- requests

    def _next_request(self, now: float) -> list[Action]:
        if not self.buf:
            return [Timer("idle", self.timeouts.idle)]
        route: RouteResult | None = None
        result: RequestHead | NeedMore | Reject
        if self.ctx.decide is not None:
            decided = self.ctx.decide(bytes(self.buf), self.ctx.client, now)
            if type(decided) is Decided:
                result, route = decided.head, decided.route
            else:
                result = decided
        else:
            result = self.ctx.parse(bytes(self.buf))
        if isinstance(result, NeedMore):
            if not self.head_timer:
                self.head_timer = True
                return [Timer("idle", 0), Timer("head", self.timeouts.head)]
            return []
        if isinstance(result, Reject):
            return self._reject(result.status, result.reason)
        self.head_timer = False
        self.head = result
        self.exclude.clear()
        return [Timer("head", 0), Timer("idle", 0)] + self._dispatch(result, now, route)

    def _dispatch(self, head: RequestHead, now: float,
                  result: RouteResult | None = None) -> list[Action]:
        if result is None:
            result = self.ctx.router.route(head, self.ctx.client, frozenset(self.exclude), now)
        self.result = result
        if not result.pool:
            return self._local(404, f"no route for {head.method} {head.host}{head.path}")
        if result.backend is None:
            return self._local(503, f"no backend up in pool {result.pool!r}")
        self.pending = self._forwarded_head(head)
        del self.buf[: head.head_length]
        self.req_body = body_reader(head.framing.value, head.content_length)
        self.resp, self.resp_body, self.answered = None, None, False
        self.resp_buf.clear()
        self.state = CONNECT
        return [Timer("connect", self.timeouts.connect),
                Connect(result.backend, result.pool)]

    def _forwarded_head(self, head: RequestHead) -> bytes:
        raw = bytes(self.buf[: head.head_length])
        if not self.ctx.listener.forwarded_for or self.ctx.client is None:
            return raw
        # insert before the blank line that ends the head (CRLF or bare LF)
        cut = head.head_length - (2 if raw.endswith(b"\r\n\r\n") or raw.endswith(b"\n\r\n")
                                  else 1)
        return raw[:cut] + b"X-Forwarded-For: " + self.ctx.client.host.encode() + b"\r\n" + \
            raw[cut:]

    def _forward_body(self, data: bytes, out: list[Action]) -> bytes:
        """Send the request-body part of ``data``; return the bytes after the body."""
        assert self.req_body is not None
        try:
            n = self.req_body.feed(data)
        except FramingError as exc:
            out += self._reject(400, f"bad request body: {exc}")
            return b""
        if n:
            out.append(SendBackend(data[:n] if n < len(data) else data))
        return data[n:]

    def _retry_or_fail(self, reason: str, now: float, passive: bool) -> list[Action]:
        assert self.head is not None and self.result is not None
        backend = self.result.backend
        assert backend is not None
        self.ctx.stats.backend_failures += 1
        pool = self.ctx.router.pools[self.result.pool]
        if passive and pool.config.health.passive:
            pool.mark_failed(backend.index, now, pool.config.health.cooldown)
        log: list[Action] = [Log("warning", f"{self._who()}: {reason}")]
        if self.head.idempotent and len(self.exclude) < self.ctx.retries:
            self.exclude.add(backend.index)
            again = self.ctx.router.route(self.head, self.ctx.client, frozenset(self.exclude),
                                          now)
            if again.backend is not None:  # else: nothing left to try, answer 502 below
                self.ctx.stats.retries += 1
                self.buf[:0] = self._raw_head_again()
                self.state = HEAD
                return log + self._dispatch(self.head, now, again)
        return log + self._fail(502, reason)

    def _raw_head_again(self) -> bytes:
        """The original head bytes, to route the same request again."""
        assert self.head is not None
        raw = self.pending
        if self.ctx.listener.forwarded_for and self.ctx.client is not None:
            tag = b"X-Forwarded-For: " + self.ctx.client.host.encode() + b"\r\n"
            i = raw.rfind(tag)
            raw = raw[:i] + raw[i + len(tag):]
        return raw

    # ----------------------------------------------------------------- responses

    def _response_head(self, now: float) -> list[Action]:
        assert self.head is not None
        out: list[Action] = []
        while self.resp is None:
            try:
                resp = parse_response_head(self.resp_buf, self.head.method)
            except FramingError as exc:
                return out + [Release(reuse=False)] + self._fail(502, f"bad response: {exc}")
            if resp is None:
                return out
            if not self.answered:
                out.append(Timer("response", 0))
            head_bytes = bytes(self.resp_buf[: resp.head_length])
            del self.resp_buf[: resp.head_length]
            self.answered = True
            if resp.informational:  # 100 Continue & co: relay, then the real response
                out.append(SendClient(head_bytes))
                continue
            self.resp = resp
            if resp.status == 101 and self.head.upgrade:
                self.state = TUNNEL
                out += [SendClient(head_bytes + bytes(self.resp_buf)), Tunnel()]
                self.resp_buf.clear()
                if self.buf:
                    out.append(SendBackend(bytes(self.buf)))
                    self.buf.clear()
                return out
            self._count()
            self.resp_body = body_reader(resp.body, resp.length)
            rest = bytes(self.resp_buf)
            self.resp_buf.clear()
            if self.head_forwarded:
                return out  # the kernel forwards this response; on_spliced reports it
            out.append(SendClient(head_bytes))
            if self.resp_body is None:
                return out + self._response_done(now, reuse=resp.keep_alive, extra=rest)
            if rest:
                out += self._response_body(rest, now)
            body = self.resp_body
            if isinstance(body, LengthBody) and body.remaining >= SPLICE_MIN \
                    and self.state == FORWARD:
                out.append(SpliceResponse(body.remaining))
            return out
        return out

    def on_response_head_spliced(self, head: bytes, now: float) -> list[Action]:
        """The kernel sent this response head (and will send its body) to the client."""
        if self.state != FORWARD or self.resp is not None:
            return [Log("error", f"{self._who()}: unexpected spliced response head")] + \
                self._close(release=True)
        self.head_forwarded = True
        try:
            self.resp_buf += head
            out = self._response_head(now)
        finally:
            self.head_forwarded = False
        if not isinstance(self.resp_body, LengthBody):  # the program checked; be sure
            return out + [Log("error", f"{self._who()}: spliced head without a length")] + \
                self._close(release=True)
        return out

    def on_spliced(self, nbytes: int, now: float) -> list[Action]:
        """The kernel forwarded ``nbytes`` body bytes of the current response."""
        if self.state != FORWARD or not isinstance(self.resp_body, LengthBody):
            return []
        try:
            self.resp_body.skip(nbytes)
        except FramingError as exc:
            return [Log("error", f"{self._who()}: {exc}")] + self._close(release=True)
        if self.resp_body.done:
            assert self.resp is not None
            return self._response_done(now, reuse=self.resp.keep_alive)
        return []

    def _response_body(self, data: bytes, now: float) -> list[Action]:
        assert self.resp_body is not None
        try:
            n = self.resp_body.feed(data)
        except FramingError as exc:
            return [Log("warning", f"{self._who()}: bad response body: {exc}")] + \
                self._close(release=True)
        out: list[Action] = [SendClient(data if n == len(data) else data[:n])] if n else []
        if self.resp_body.done:
            assert self.resp is not None
            out += self._response_done(now, reuse=self.resp.keep_alive, extra=data[n:])
        return out

    def _response_done(self, now: float, reuse: bool, extra: bytes = b"") -> list[Action]:
        assert self.head is not None and self.resp is not None
        body_done = self.req_body is None or self.req_body.done
        reuse = reuse and body_done and not extra and not self.backend_eof
        close = (self.must_close or not self.head.keep_alive or not body_done
                 or (not self.resp.keep_alive and self.resp.body == "until-close"))
        out: list[Action] = [Release(reuse=reuse), Timer("response", 0)]
        self.state, self.head, self.result, self.req_body = HEAD, None, None, None
        self.resp, self.resp_body, self.backend_eof = None, None, False
        if close or self.client_eof:
            return out + self._close(release=False)
        return out + self._resume() + self._next_request(now)

    # ----------------------------------------------------------------- endings

    def _local(self, status: int, reason: str) -> list[Action]:
        """Answer a routed-nowhere request ourselves; keep the connection if we can."""
        assert self.head is not None
        self.ctx.stats.status(status)
        keep = self.head.keep_alive and self.head.framing is BodyFraming.NONE \
            and not self.must_close
        log = Log("warning", f"{self._who()}: {status} {reason}")
        if not keep:
            self.state = CLOSED
            return [log, SendClient(local_response(status, reason, close=True)), CloseClient()]
        del self.buf[: self.head.head_length]
        self.head = None
        return [log, SendClient(local_response(status, reason, close=False))] + \
            self._next_request(0.0)

    def _reject(self, status: int, reason: str) -> list[Action]:
        self.ctx.stats.status(status)
        self.state = CLOSED
        return [Log("warning", f"{self._who()}: {status} {reason}"),
                SendClient(local_response(status, reason, close=True)), CloseClient()]

    def _fail(self, status: int, reason: str) -> list[Action]:
        """Backend-side failure: answer with ``status`` if nothing was sent, else cut."""
        self.ctx.stats.status(status)
        self.state = CLOSED
        if self.answered:
            return [Log("warning", f"{self._who()}: {reason}"), CloseClient()]
        return [Log("warning", f"{self._who()}: {status} {reason}"),
                SendClient(local_response(status, reason, close=True)), CloseClient()]

    def _close(self, release: bool) -> list[Action]:
        self.state = CLOSED
        out: list[Action] = [Release(reuse=False)] if release else []
        return out + [CloseClient()]

    def _tunnel_end(self) -> list[Action]:
        if self.client_eof and self.backend_eof:
            return self._close(release=True)
        return []

    def _resume(self) -> list[Action]:
        if self.paused and len(self.buf) <= _BUFFER_LIMIT:
            self.paused = False
            return [Resume()]
        return []

    def _count(self) -> None:
        if self.result is not None and self.result.backend is not None:
            self.ctx.stats.count(f"{self.result.pool}/{self.result.backend.label}")

    def _who(self) -> str:
        head = self.head
        what = f" {head.method} {head.target}" if head is not None else ""
        return f"{self.ctx.listener.name} {self.ctx.client or '?'}{what}"


def new_session(ctx: Any) -> Http1Session:
    return Http1Session(ctx)
