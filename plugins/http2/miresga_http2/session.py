"""The terminating HTTP/2 session of the ``kernel`` data plane (route scope "request").

Theory of operation. HTTP/2 is terminated on both sides with ``h2``: each client stream is
routed on its own and opened as a stream on a backend *leg*, one HTTP/2 connection per
backend that this client's streams use (a ``multiplexed`` session: legs of
miresga_core/session.py). A gRPC channel's calls thus fan out to the right backends while
the channel keeps its single connection. Clients come with prior knowledge (the preface) or
ask with ``Upgrade: h2c`` (upgrade.py); the first bytes decide. When a listener's routes
can only differ per connection, pinned.py's tunnel is used instead.

Flow control is end to end: bytes received on one side are acknowledged (WINDOW_UPDATE) only
once they were handed to the other side, so a slow reader stalls its writer instead of
filling memory; at most ``WINDOW`` bytes per stream are buffered here.

Failures: a leg that cannot connect is passively marked failed and its waiting streams
are routed again elsewhere (nothing was sent yet, so any request may move). A leg that dies
with streams in flight: unanswered idempotent requests without a body are routed again,
the others are reset (REFUSED_STREAM when the backend never saw them, else INTERNAL_ERROR).
A backend's GOAWAY moves only the streams above its last stream id. No route: 404, no
backend up: 503, malformed request: 400 on that stream (h2 itself answers protocol errors
with GOAWAY).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

from miresga_core import Backend, NeedMore, Reject, RequestHead
from miresga_core.session import (
    Action,
    CloseClient,
    Connect,
    Log,
    Release,
    SendBackend,
    SendClient,
    SessionContext,
    Timer,
)

from .prototype import PREFACE
from .upgrade import SWITCHING, parse_upgrade

__all__ = ["WINDOW", "Http2Session", "goaway_bytes", "local_response"]

WINDOW = 1 << 20  # per-stream receive window we advertise on both sides
_CONN_WINDOW = 16 << 20
_SETTINGS = {h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: WINDOW,
             h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 1000}
_STREAM_ERRORS = (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError, KeyError)


def _connection(client_side: bool, start: bool = True) -> h2.connection.H2Connection:
    # what is sent on was validated when it came in (or is ours): skip h2's outbound checks
    conn = h2.connection.H2Connection(h2.config.H2Configuration(
        client_side=client_side, header_encoding=None, validate_inbound_headers=True,
        validate_outbound_headers=False, normalize_outbound_headers=False))
    values = dict(_SETTINGS)
    if client_side:
        values[h2.settings.SettingCodes.ENABLE_PUSH] = 0
    conn.local_settings = h2.settings.Settings(client=client_side, initial_values=values)
    if start:
        _start(conn)
    return conn


def _start(conn: h2.connection.H2Connection, upgrade_settings: bytes | None = None) -> None:
    if upgrade_settings is None:
        conn.initiate_connection()
    else:
        conn.initiate_upgrade_connection(upgrade_settings)
    conn.increment_flow_control_window(_CONN_WINDOW - 65535)


def goaway_bytes(reason: str, code: int = h2.errors.ErrorCodes.PROTOCOL_ERROR) -> bytes:
    """Server preface + GOAWAY: how a connection is refused before any stream is served."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    conn.initiate_connection()
    conn.close_connection(error_code=code, additional_data=reason.encode()[:200])
    return conn.data_to_send()


def local_response(status: int, reason: str, close: bool = True) -> bytes:
    """An HTTP/1.1 answer, for a client that did not speak HTTP/2 at all."""
    body = f"{status}: {reason}\n".encode()
    return (f"HTTP/1.1 {status} Error\r\ncontent-type: text/plain\r\ncontent-length: "
            f"{len(body)}\r\nconnection: close\r\n\r\n").encode() + body


def local_headers(status: int, body: bytes) -> list[tuple[bytes, bytes]]:
    return [(b":status", str(status).encode()), (b"content-type", b"text/plain"),
            (b"content-length", str(len(body)).encode()), (b"x-miresga", b"local")]


# --------------------------------------------------------------------------- terminated


@dataclass(eq=False)
class Leg:
    """One HTTP/2 connection to a backend, shared by this client's streams routed there."""

    id: int
    backend: Backend
    pool: str
    conn: h2.connection.H2Connection = field(default_factory=lambda: _connection(True))
    connected: bool = False
    dead: bool = False  # closed or failed: its streams were moved or reset
    goaway: bool = False  # the backend said GOAWAY: no new streams, old ones finish
    reused: bool = False  # adopted from the worker's idle pool (may have gone stale)
    heard: bool = False  # some byte came from the backend on this leg
    streams: dict[int, Stream] = field(default_factory=dict)  # backend stream id -> stream
    waiting: list[Stream] = field(default_factory=list)  # not opened yet
    last_stream: int | None = None  # from the backend's GOAWAY


@dataclass(eq=False)
class Stream:
    """One client stream and, once routed, its backend stream."""

    csid: int
    head: RequestHead
    headers: list[tuple[bytes, bytes]]
    end_in: bool  # the client finished the request
    up: bytearray = field(default_factory=bytearray)  # request bytes not yet sent on
    up_done: bool = False
    up_trailers: list[tuple[bytes, bytes]] | None = None  # the client's request trailers
    leg: Leg | None = None
    bsid: int = 0
    down: bytearray = field(default_factory=bytearray)  # response bytes not yet sent on
    down_end: bool = False
    trailers: list[tuple[bytes, bytes]] | None = None
    answered: bool = False
    sent: bool = False  # some request byte reached a backend
    done: bool = False
    exclude: set[int] = field(default_factory=set)


class Http2Session:
    """HTTP/2 terminated on both sides, every stream routed on its own."""

    multiplexed = True

    def __init__(self, ctx: SessionContext, make_head: Any) -> None:
        self.ctx = ctx
        self.make_head = make_head  # (headers, end_stream) -> RequestHead | Reject
        self.client = _connection(False, start=False)  # started by the first bytes
        self.started = False
        self.pre = bytearray()  # first bytes, until prior knowledge vs h2c upgrade is known
        self.streams: dict[int, Stream] = {}
        self.legs: dict[int, Leg] = {}
        self.by_backend: dict[tuple[str, int], Leg] = {}
        self.next_leg = 1
        self.timers: list[Action] = []  # armed/cancelled by helpers without an action list
        self.closed = False
        self.draining = False

    # ----------------------------------------------------------------- client side

    def on_start(self, now: float) -> list[Action]:
        return [Timer("idle", self.ctx.listener.timeouts.idle)]

    def on_client_data(self, data: bytes, now: float) -> list[Action]:
        if self.closed:
            return []
        if not self.started:
            return self._first_bytes(data, now)
        try:
            events = self.client.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            return self._protocol_error(f"client protocol error: {exc}")
        out: list[Action] = []
        for event in events:
            out += self._client_event(event, now)
        return out + self._flush()

    def _first_bytes(self, data: bytes, now: float) -> list[Action]:
        """Prior knowledge (the preface) or an HTTP/1.1 request asking for h2c."""
        self.pre += data
        if self.pre[:len(PREFACE)] == PREFACE[:len(self.pre)]:
            if len(self.pre) < len(PREFACE):
                return []
            self.started = True
            _start(self.client)
            data, self.pre = bytes(self.pre), bytearray()
            return self.on_client_data(data, now)
        up = parse_upgrade(bytes(self.pre), self.ctx.listener.max_head)
        if isinstance(up, NeedMore):
            return []
        if isinstance(up, Reject):
            self.ctx.stats.status(up.status)
            self.closed = True
            return [Log("warning", f"{self._who()}: {up.status} {up.reason}"),
                    SendClient(local_response(up.status, up.reason, close=True)), CloseClient()]
        self.started = True
        self.pre = bytearray()
        try:
            _start(self.client, up.settings)
        except (h2.exceptions.ProtocolError, ValueError) as exc:  # bad HTTP2-Settings
            return self._protocol_error(f"bad HTTP2-Settings: {exc}")
        out: list[Action] = [SendClient(SWITCHING)]
        out += self._request(1, up.headers, True, now)
        return out + (self.on_client_data(up.rest, now) if up.rest else self._flush())

    def _client_event(self, event: Any, now: float) -> list[Action]:
        if isinstance(event, h2.events.RequestReceived):
            return self._request(event.stream_id, list(event.headers or ()),
                                 event.stream_ended is not None, now)
        st = self.streams.get(getattr(event, "stream_id", 0) or 0)
        if isinstance(event, h2.events.DataReceived):
            if not _take_data(self.client, event, st):
                return []
            assert st is not None
            st.up += event.data
            self._flush_up(st)
        elif isinstance(event, h2.events.TrailersReceived) and st is not None:
            st.up_trailers = list(event.headers)
        elif isinstance(event, h2.events.StreamEnded) and st is not None:
            st.end_in = True
            self._flush_up(st)
        elif isinstance(event, h2.events.StreamReset) and st is not None:
            self._finish(st, reset_backend=True)
        elif isinstance(event, h2.events.WindowUpdated):
            targets = [st] if st is not None else list(self.streams.values())
            for s in targets:
                self._flush_down(s)
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            for s in list(self.streams.values()):
                self._flush_down(s)
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.draining = True
            return self._maybe_close()
        return []

    def _request(self, sid: int, headers: list[Any], ended: bool, now: float) -> list[Action]:
        head = self.make_head(headers, ended)
        if isinstance(head, Reject):
            self.ctx.stats.status(head.status)
            self._local(sid, head.status, head.reason)
            return [Log("warning", f"{self._who()} stream {sid}: {head.status} {head.reason}")]
        if self.ctx.listener.forwarded_for and self.ctx.client is not None:
            headers = [*headers, (b"x-forwarded-for", self.ctx.client.host.encode())]
        st = Stream(csid=sid, head=head, headers=headers, end_in=ended)
        self.streams[sid] = st
        return [Timer("idle", 0)] + self._dispatch(st, now)

    def _dispatch(self, st: Stream, now: float) -> list[Action]:
        routed = self.ctx.router.route(st.head, self.ctx.client, frozenset(st.exclude), now)
        if not routed.pool or routed.backend is None:
            status = 404 if not routed.pool else 503
            why = f"no route for {st.head.method} {st.head.path}" if status == 404 \
                else f"no backend up in pool {routed.pool!r}"
            self.ctx.stats.status(status)
            self._local(st.csid, status, why)
            self._finish(st, reset_backend=False)
            return [Log("warning", f"{self._who()} stream {st.csid}: {status} {why}")]
        key = (routed.pool, routed.backend.index)
        leg = self.by_backend.get(key)
        out: list[Action] = []
        if leg is None or leg.dead:
            leg = Leg(self.next_leg, routed.backend, routed.pool)
            self.next_leg += 1
            self.legs[leg.id] = leg
            self.by_backend[key] = leg
            out += [Timer(f"connect:{leg.id}", self.ctx.listener.timeouts.connect),
                    Connect(routed.backend, routed.pool, reuse=True, leg=leg.id, kind="h2")]
        st.leg = leg
        leg.waiting.append(st)
        self._open_waiting(leg)
        return out

    # ----------------------------------------------------------------- backend side

    def on_backend_connected(self, now: float, leg: int = 0, state: Any = None) -> list[Action]:
        lg = self.legs.get(leg)
        if lg is None or self.closed:
            return [Release(reuse=state is not None, leg=leg, state=state)]
        if state is not None:  # a pooled connection: its h2 state comes with it
            lg.conn, lg.reused = state, True
        lg.connected = True
        self._open_waiting(lg)
        return [Timer(f"connect:{leg}", 0)] + self._flush()

    def on_backend_failed(self, reason: str, now: float, leg: int = 0) -> list[Action]:
        lg = self.legs.get(leg)
        if lg is None:
            return []
        return self._leg_lost(lg, f"connect to {lg.backend.label} failed: {reason}", now) + \
            self._flush()

    def on_backend_data(self, data: bytes, now: float, leg: int = 0) -> list[Action]:
        lg = self.legs.get(leg)
        if lg is None or lg.dead:
            return []
        lg.heard = True
        try:
            events = lg.conn.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            return self._leg_lost(lg, f"backend protocol error: {exc}", now) + self._flush()
        out: list[Action] = []
        for event in events:
            out += self._backend_event(lg, event, now)
        return out + self._flush()

    def _backend_event(self, lg: Leg, event: Any, now: float) -> list[Action]:
        st = lg.streams.get(getattr(event, "stream_id", 0) or 0)
        if isinstance(event, h2.events.ResponseReceived) and st is not None:
            st.answered = True
            self.timers.append(Timer(f"response:{st.csid}", 0))
            self.ctx.stats.count(f"{lg.pool}/{lg.backend.label}")
            self._client_call(st, self.client.send_headers, st.csid, event.headers)
            if event.stream_ended is not None:
                st.down_end = True
                self._flush_down(st)
        elif isinstance(event, h2.events.InformationalResponseReceived) and st is not None:
            self._client_call(st, self.client.send_headers, st.csid, event.headers)
        elif isinstance(event, h2.events.DataReceived):
            if not _take_data(lg.conn, event, st):
                return []
            assert st is not None
            st.down += event.data
            self._flush_down(st)
        elif isinstance(event, h2.events.TrailersReceived) and st is not None:
            st.trailers = list(event.headers)
        elif isinstance(event, h2.events.StreamEnded) and st is not None:
            st.down_end = True
            self._flush_down(st)
        elif isinstance(event, h2.events.StreamReset) and st is not None:
            self._client_call(st, self.client.reset_stream, st.csid, event.error_code)
            self._finish(st, reset_backend=False)
        elif isinstance(event, h2.events.WindowUpdated):
            for s in ([st] if st is not None else list(lg.streams.values())):
                self._flush_up(s)
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            self._open_waiting(lg)
        elif isinstance(event, h2.events.ConnectionTerminated):
            lg.last_stream = event.last_stream_id
            return self._goaway(lg, now)
        return []

    def on_backend_eof(self, now: float, leg: int = 0) -> list[Action]:
        lg = self.legs.get(leg)
        if lg is None:
            return []
        return self._leg_lost(lg, "backend closed the connection", now) + self._flush()

    def _leg_lost(self, lg: Leg, reason: str, now: float) -> list[Action]:
        """A leg failed or closed: move or reset its streams; maybe mark the backend failed."""
        lg.dead = True
        self._forget(lg)
        affected = [s for s in [*lg.waiting, *lg.streams.values()] if not s.done]
        lg.waiting.clear()
        lg.streams.clear()
        self.legs.pop(lg.id, None)
        out: list[Action] = [Timer(f"connect:{lg.id}", 0), Release(reuse=False, leg=lg.id)]
        if lg.reused and not lg.heard:  # an idle pooled connection the backend had closed
            for st in affected:
                out += self._reroute_or_reset(st, lg, now, exclude=False)
            return out
        if any(not s.answered for s in affected) and not self.closed:
            out.append(Log("warning", f"{self._who()}: {lg.backend.label}: {reason}"))
            pool = self.ctx.router.pools[lg.pool]
            self.ctx.stats.backend_failures += 1
            if pool.config.health.passive:  # connect failure or reset with requests in flight
                pool.mark_failed(lg.backend.index, now, pool.config.health.cooldown)
        for st in affected:
            out += self._reroute_or_reset(st, lg, now)
        return out

    def _goaway(self, lg: Leg, now: float) -> list[Action]:
        """Streams the backend never saw move elsewhere; the others finish where they are."""
        lg.goaway = True
        # h2 treats a received GOAWAY as the end of the connection, but RFC 9113 6.8 lets
        # the streams up to last_stream_id complete: reopen h2's connection state machine
        # (streams keep their own states) so their frames are still accepted.
        if lg.streams and lg.conn.state_machine.state is h2.connection.ConnectionState.CLOSED:
            lg.conn.state_machine.state = h2.connection.ConnectionState.CLIENT_OPEN
        self._forget(lg)
        last = lg.last_stream if lg.last_stream is not None else 1 << 31
        unseen = [s for s in lg.waiting if not s.done]
        unseen += [s for sid, s in lg.streams.items() if sid > last and not s.done]
        lg.waiting.clear()
        out: list[Action] = []
        for st in unseen:
            lg.streams.pop(st.bsid, None)
            out += self._reroute_or_reset(st, lg, now, exclude=False)
        return out

    def _forget(self, lg: Leg) -> None:
        if self.by_backend.get((lg.pool, lg.backend.index)) is lg:
            del self.by_backend[(lg.pool, lg.backend.index)]

    def _reroute_or_reset(self, st: Stream, lg: Leg, now: float,
                          exclude: bool = True) -> list[Action]:
        """Route ``st`` again (``exclude``: not to ``lg``'s backend) or end it."""
        unseen = not st.sent or (lg.last_stream is not None and st.bsid > lg.last_stream)
        movable = not st.answered and (unseen or (st.head.idempotent and not st.up))
        if movable and len(st.exclude) < self.ctx.retries and not self.closed:
            if exclude:  # a failed backend; after a GOAWAY the same one may take it again
                st.exclude.add(lg.backend.index)
            st.leg, st.bsid, st.sent, st.up_done = None, 0, False, False
            self.ctx.stats.retries += 1
            return self._dispatch(st, now)
        if not st.answered and not st.sent:
            self.ctx.stats.status(502)
            self._local(st.csid, 502, f"backend {lg.backend.label} failed")
        else:
            code = h2.errors.ErrorCodes.REFUSED_STREAM if unseen \
                else h2.errors.ErrorCodes.INTERNAL_ERROR
            self._client_call(st, self.client.reset_stream, st.csid, code)
        st.leg = None
        self._finish(st, reset_backend=False)
        return []

    # ----------------------------------------------------------------- moving bytes

    def _open_waiting(self, lg: Leg) -> None:
        if not lg.connected or lg.dead or lg.goaway:
            return
        limit = lg.conn.remote_settings.max_concurrent_streams
        while lg.waiting and lg.conn.open_outbound_streams < limit:
            st = lg.waiting.pop(0)
            if st.done:
                continue
            st.bsid = lg.conn.get_next_available_stream_id()
            lg.streams[st.bsid] = st
            end = st.end_in and not st.up
            lg.conn.send_headers(st.bsid, st.headers, end_stream=end)
            st.sent = True
            st.up_done = end
            self.timers.append(Timer(f"response:{st.csid}", self.ctx.listener.timeouts.response))
            self._flush_up(st)

    def _flush_up(self, st: Stream) -> None:
        lg = st.leg
        if lg is None or not st.bsid or st.up_done or lg.dead:
            return
        try:
            while st.up:
                window = min(lg.conn.local_flow_control_window(st.bsid),
                             lg.conn.max_outbound_frame_size)
                if window <= 0:
                    return
                chunk = bytes(st.up[:window])
                del st.up[:window]
                lg.conn.send_data(st.bsid, chunk)
                self.client.acknowledge_received_data(len(chunk), st.csid)
            if st.end_in:
                if st.up_trailers is not None:
                    lg.conn.send_headers(st.bsid, st.up_trailers, end_stream=True)
                else:
                    lg.conn.end_stream(st.bsid)
                st.up_done = True
        except _STREAM_ERRORS:
            st.up_done = True  # the backend closed its side: the rest is dropped

    def _flush_down(self, st: Stream) -> None:
        if st.done:
            return
        try:
            while st.down:
                window = min(self.client.local_flow_control_window(st.csid),
                             self.client.max_outbound_frame_size)
                if window <= 0:
                    return
                chunk = bytes(st.down[:window])
                del st.down[:window]
                self.client.send_data(st.csid, chunk)
                if st.leg is not None and not st.leg.dead:
                    st.leg.conn.acknowledge_received_data(len(chunk), st.bsid)
            if st.down_end:
                if st.trailers is not None:
                    self.client.send_headers(st.csid, st.trailers, end_stream=True)
                else:
                    self.client.end_stream(st.csid)
                self._finish(st, reset_backend=False)
        except _STREAM_ERRORS:  # the client reset or closed the stream
            self._finish(st, reset_backend=True)

    def _client_call(self, st: Stream, fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except _STREAM_ERRORS:
            self._finish(st, reset_backend=True)

    def _local(self, sid: int, status: int, reason: str) -> None:
        body = f"{status}: {reason}\n".encode()
        try:
            self.client.send_headers(sid, local_headers(status, body))
            self.client.send_data(sid, body, end_stream=True)
        except _STREAM_ERRORS:
            pass

    def _finish(self, st: Stream, reset_backend: bool) -> None:
        if st.done:
            return
        st.done = True
        if st.sent and not st.answered:
            self.timers.append(Timer(f"response:{st.csid}", 0))
        self.streams.pop(st.csid, None)
        lg = st.leg
        if lg is not None:
            if lg.streams.get(st.bsid) is st:
                del lg.streams[st.bsid]
            if reset_backend and st.bsid and not lg.dead:
                try:
                    lg.conn.reset_stream(st.bsid, h2.errors.ErrorCodes.CANCEL)
                except _STREAM_ERRORS:
                    pass
            self._open_waiting(lg)

    def _flush(self) -> list[Action]:
        out: list[Action] = []
        for lg in list(self.legs.values()):
            if lg.connected:
                data = lg.conn.data_to_send()
                if data:
                    out.append(SendBackend(data, leg=lg.id))
            if lg.goaway and not lg.streams:
                out.append(Release(reuse=False, leg=lg.id))
                self.legs.pop(lg.id, None)
        data = self.client.data_to_send()
        if data:
            out.insert(0, SendClient(data))
        out += self.timers
        self.timers = []
        return out + self._maybe_close()

    # ----------------------------------------------------------------- endings

    def _maybe_close(self) -> list[Action]:
        if self.closed:
            return []
        if not self.streams:
            if self.draining:
                return self._close()
            return [Timer("idle", self.ctx.listener.timeouts.idle)]
        return []

    def on_client_eof(self, now: float) -> list[Action]:
        return self._close()

    def on_timer(self, name: str, now: float) -> list[Action]:
        if name == "idle" and not self.streams and not self.closed:
            return self.drain()
        if name.startswith("response:"):
            st = self.streams.get(int(name[9:]))
            if st is not None and not st.answered and not self.closed:
                self.ctx.stats.status(504)
                self._local(st.csid, 504, "backend response timeout")
                self._finish(st, reset_backend=True)
                return [Log("warning", f"{self._who()} stream {st.csid}: 504 backend "
                                       f"response timeout")] + self._flush()
            return []
        if name.startswith("connect:"):
            lg = self.legs.get(int(name[8:]))
            if lg is not None and not lg.connected:
                return self._leg_lost(lg, "connect timeout", now) + self._flush()
        return []

    def drain(self) -> list[Action]:
        if self.closed:
            return []
        self.draining = True
        self.client.close_connection(last_stream_id=self.client.highest_inbound_stream_id)
        return self._flush()

    def _protocol_error(self, reason: str) -> list[Action]:
        data = self.client.data_to_send()  # h2 queued the GOAWAY
        return [Log("warning", f"{self._who()}: {reason}")] + \
            ([SendClient(data)] if data else []) + self._close()

    def _close(self) -> list[Action]:
        """Close the client; idle legs go to the worker's pool with their h2 state."""
        self.closed = True
        out: list[Action] = []
        for i, lg in self.legs.items():
            idle = lg.connected and not (lg.dead or lg.goaway or lg.streams or lg.waiting)
            if idle and lg.conn.open_outbound_streams == 0:
                data = lg.conn.data_to_send()
                if data:
                    out.append(SendBackend(data, leg=i))
                out.append(Release(reuse=True, leg=i, state=lg.conn))
            else:
                out.append(Release(reuse=False, leg=i))
        self.legs.clear()
        return out + [CloseClient()]

    def _who(self) -> str:
        return f"{self.ctx.listener.name} {self.ctx.client or '?'}"


def _take_data(conn: Any, event: Any, stream: Any) -> bool:
    """Flow control for a DATA frame: padding never reaches the other side, so its credit
    goes back at once; so does all of a frame for a stream that is gone (or done). Returns
    whether the data is for a live stream."""
    if stream is None or stream.done:
        conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        return False
    pad = event.flow_controlled_length - len(event.data)
    if pad:
        conn.acknowledge_received_data(pad, event.stream_id)
    return True
