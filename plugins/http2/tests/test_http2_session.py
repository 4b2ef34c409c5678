"""The terminating HTTP/2 session, sans I/O: an h2 client and h2 backends in memory.

What the end-to-end tests cannot easily force: connect failures, a backend's GOAWAY with
streams in flight, trailers, small flow-control windows, a client reset.
"""

from __future__ import annotations

from collections import defaultdict

import h2.config
import h2.connection
import h2.events
import h2.settings
import miresga_http1
import miresga_http2
import miresga_policies
from hyperframe.frame import GoAwayFrame
from hypothesis import given, settings
from hypothesis import strategies as st
from miresga_http2 import Http2Parser
from miresga_http2.session import Http2Session

from miresga_core.config import parse_config
from miresga_core.plugins import get_plugin_manager, registry_from
from miresga_core.routing import PoolState, Router
from miresga_core.session import (
    CloseClient,
    Connect,
    Log,
    Release,
    SendBackend,
    SendClient,
    SessionContext,
    Timer,
)

CONFIG = """
[[listeners]]
name = "h2"
listen = "127.0.0.1:21990"
protocol = "http2"
default_pool = "web"
forwarded_for = false
[[listeners.routes]]
pool = "api"
match = { path = { prefix = "/api/" } }
[pools.web]
backends = [{ address = "127.0.0.1:21991", name = "w1" },
            { address = "127.0.0.1:21992", name = "w2" }]
[pools.api]
backends = [{ address = "127.0.0.1:21993", name = "a1" }]
"""


def make_session() -> tuple[Http2Session, dict[str, PoolState]]:
    pm = get_plugin_manager(load_entry_points=False,
                            extra=[miresga_http1, miresga_http2, miresga_policies])
    registry = registry_from(pm)
    config = parse_config(CONFIG, registry)
    pools = {n: PoolState(p, registry.policies[p.policy]) for n, p in config.pools.items()}
    listener = config.listeners[0]
    parser = Http2Parser()
    ctx = SessionContext(listener, Router(listener, pools), None, parser.parse_head)
    session = parser.new_session(ctx)
    assert isinstance(session, Http2Session)
    return session, pools


class Driver:
    """Plays the shell: carries out actions against in-memory h2 peers."""

    def __init__(self, client_window: int = 65535) -> None:
        self.s, self.pools = make_session()
        cfg = h2.config.H2Configuration(client_side=True, header_encoding="utf-8",
                                        validate_outbound_headers=False,
                                        normalize_outbound_headers=False)
        self.client = h2.connection.H2Connection(cfg)
        self.client.local_settings = h2.settings.Settings(
            client=True, initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE:
                                         client_window})
        self.client.initiate_connection()
        self.backends: dict[int, h2.connection.H2Connection] = {}
        self.connects: dict[int, Connect] = {}
        self.client_events: list = []
        self.backend_events: dict[int, list] = defaultdict(list)
        self.released: list[int] = []
        self.closed = False
        self.run(self.s.on_start(0.0))

    def run(self, actions) -> None:
        for a in actions:
            if isinstance(a, SendClient):
                self.client_events += self.client.receive_data(a.data)
            elif isinstance(a, SendBackend):
                self.backend_events[a.leg] += self.backends[a.leg].receive_data(a.data)
            elif isinstance(a, Connect):
                self.connects[a.leg] = a
            elif isinstance(a, Release):
                self.released.append(a.leg)
            elif isinstance(a, CloseClient):
                self.closed = True
            else:
                assert isinstance(a, (Timer, Log)), a

    def pump(self, rounds: int = 20) -> None:
        """Move bytes both ways until nobody has anything to say (bounded)."""
        for _ in range(rounds):
            moved = False
            data = self.client.data_to_send()
            if data:
                moved = True
                self.run(self.s.on_client_data(data, 0.0))
            for leg, srv in list(self.backends.items()):
                data = srv.data_to_send()
                if data:
                    moved = True
                    self.run(self.s.on_backend_data(data, 0.0, leg=leg))
            if not moved:
                return

    def connect(self, leg: int, ok: bool = True) -> None:
        if not ok:
            self.run(self.s.on_backend_failed("Connection refused", 0.0, leg=leg))
            return
        srv = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False,
                                                                   header_encoding="utf-8"))
        srv.initiate_connection()
        self.backends[leg] = srv
        self.run(self.s.on_backend_connected(0.0, leg=leg))
        self.pump()

    def request(self, path: str, body: bytes = b"") -> int:
        sid = self.client.get_next_available_stream_id()
        self.client.send_headers(sid, [(":method", "POST" if body else "GET"),
                                       (":scheme", "http"), (":path", path),
                                       (":authority", "lb")], end_stream=not body)
        if body:
            self.client.send_data(sid, body, end_stream=True)
        self.pump()
        return sid

    def requests_at(self, leg: int) -> dict[int, str]:
        return {e.stream_id: dict(e.headers)[":path"] for e in self.backend_events[leg]
                if isinstance(e, h2.events.RequestReceived)}

    def respond(self, leg: int, sid: int, body: bytes, trailers=None) -> None:
        srv = self.backends[leg]
        srv.send_headers(sid, [(":status", "200"), ("x-leg", str(leg))])
        srv.send_data(sid, body, end_stream=trailers is None)
        if trailers:
            srv.send_headers(sid, trailers, end_stream=True)
        self.pump()

    def response(self, sid: int) -> tuple[dict, bytes, dict | None, bool]:
        headers, body, trailers, ended = {}, b"", None, False
        for e in self.client_events:
            if getattr(e, "stream_id", None) != sid:
                continue
            if isinstance(e, h2.events.ResponseReceived):
                headers = dict(e.headers)
            elif isinstance(e, h2.events.DataReceived):
                body += e.data
                self.client.acknowledge_received_data(e.flow_controlled_length, sid)
            elif isinstance(e, h2.events.TrailersReceived):
                trailers = dict(e.headers)
            elif isinstance(e, h2.events.StreamEnded):
                ended = True
        return headers, body, trailers, ended


def test_streams_fan_out_to_legs_with_trailers() -> None:
    d = Driver()
    s1 = d.request("/api/one")
    s3 = d.request("/page")
    assert sorted(c.backend.label for c in d.connects.values()) == ["a1", "w1"]
    api_leg = next(leg for leg, c in d.connects.items() if c.backend.label == "a1")
    web_leg = next(leg for leg, c in d.connects.items() if c.backend.label == "w1")
    d.connect(api_leg)
    d.connect(web_leg)
    assert list(d.requests_at(api_leg).values()) == ["/api/one"]
    assert list(d.requests_at(web_leg).values()) == ["/page"]
    (b1,) = d.requests_at(api_leg)
    (b3,) = d.requests_at(web_leg)
    d.respond(api_leg, b1, b"api!", trailers=[("grpc-status", "0")])
    d.respond(web_leg, b3, b"web!")
    h, body, trailers, ended = d.response(s1)
    assert (h[":status"], body, trailers, ended) == ("200", b"api!", {"grpc-status": "0"}, True)
    h, body, trailers, ended = d.response(s3)
    assert (body, trailers, ended) == (b"web!", None, True)
    # a second web request takes the other web backend (round-robin), a new leg
    d.request("/page2")
    assert sorted(c.backend.label for c in d.connects.values()) == ["a1", "w1", "w2"]


def test_connect_failure_reroutes_and_marks_passive() -> None:
    d = Driver()
    sid = d.request("/page", body=b"x" * 1000)  # even with a body: nothing was sent yet
    (leg,) = d.connects
    first = d.connects[leg].backend
    d.connect(leg, ok=False)
    assert leg in d.released
    other = [lg for lg in d.connects if lg != leg]
    assert len(other) == 1 and d.connects[other[0]].backend.index != first.index
    d.connect(other[0])
    (bsid,) = d.requests_at(other[0])
    body = b"".join(e.data for e in d.backend_events[other[0]]
                    if isinstance(e, h2.events.DataReceived))
    assert body == b"x" * 1000
    d.respond(other[0], bsid, b"ok")
    assert d.response(sid)[1] == b"ok"
    assert d.pools["web"].passive_failures[first.index] == 1


def test_goaway_moves_only_unseen_streams() -> None:
    d = Driver()
    a = d.request("/api/a")
    (leg,) = d.connects
    d.connect(leg)
    b = d.request("/api/b")
    seen = sorted(d.requests_at(leg))
    assert len(seen) == 2
    # the backend says GOAWAY: it will only finish the first stream
    d.run(d.s.on_backend_data(GoAwayFrame(0, last_stream_id=seen[0]).serialize(), 0.0, leg=leg))
    d.pump()
    new = [lg for lg in d.connects if lg != leg]
    assert len(new) == 1  # /api/b is routed again on a new connection (same pool)
    d.connect(new[0])
    assert list(d.requests_at(new[0]).values()) == ["/api/b"]
    d.respond(leg, seen[0], b"from old")
    (nb,) = d.requests_at(new[0])
    d.respond(new[0], nb, b"from new")
    assert d.response(a)[1] == b"from old" and d.response(b)[1] == b"from new"


def test_small_client_window_gets_everything() -> None:
    d = Driver(client_window=1000)
    sid = d.request("/page")
    (leg,) = d.connects
    d.connect(leg)
    (bsid,) = d.requests_at(leg)
    payload = bytes(range(256)) * 200  # 51200 bytes through a 1000-byte window
    srv = d.backends[leg]
    srv.send_headers(bsid, [(":status", "200")])
    sent = 0
    for _ in range(500):
        room = min(srv.local_flow_control_window(bsid), srv.max_outbound_frame_size,
                   len(payload) - sent)
        if room > 0:
            srv.send_data(bsid, payload[sent:sent + room], end_stream=sent + room == len(payload))
            sent += room
        d.pump()
        d.response(sid)  # acknowledges what arrived, opening the client's window
        d.pump()
        if d.response(sid)[3]:
            break
    _, body, _, ended = d.response(sid)
    assert ended and body == payload


def test_client_reset_cancels_backend_stream() -> None:
    d = Driver()
    sid = d.request("/page")
    (leg,) = d.connects
    d.connect(leg)
    d.client.reset_stream(sid)
    d.pump()
    assert any(isinstance(e, h2.events.StreamReset) for e in d.backend_events[leg])


def test_refused_request_gets_status_on_its_stream_only() -> None:
    d = Driver()
    sid = d.client.get_next_available_stream_id()
    d.client.send_headers(sid, [(":method", "CONNECT"), (":authority", "x:1")], end_stream=True)
    d.pump()
    assert d.response(sid)[0].get(":status") == "405" and not d.connects
    ok = d.request("/fine")
    assert d.connects and not d.closed and ok == sid + 2


def test_malformed_headers_are_a_connection_error() -> None:
    d = Driver()
    sid = d.client.get_next_available_stream_id()
    d.client.send_headers(sid, [(":method", "GET"), (":scheme", "http"), (":path", "/x"),
                                ("te", "gzip")], end_stream=True)
    d.pump()
    assert d.closed and not d.connects
    assert any(isinstance(e, h2.events.ConnectionTerminated) for e in d.client_events)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=200), min_size=1, max_size=4), st.booleans())
def test_total_on_arbitrary_client_bytes(chunks: list[bytes], preface: bool) -> None:
    """Any bytes from a client give actions, never an exception (bad input -> GOAWAY/4xx)."""
    from miresga_http2.prototype import PREFACE

    session, _ = make_session()
    session.on_start(0.0)
    if preface:
        chunks = [PREFACE + chunks[0], *chunks[1:]]
    for chunk in chunks:
        assert isinstance(session.on_client_data(chunk, 0.0), list)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300))
def test_total_on_arbitrary_backend_bytes(junk: bytes) -> None:
    d = Driver()
    d.request("/page")
    (leg,) = d.connects
    d.connect(leg)
    d.run(d.s.on_backend_data(junk, 0.0, leg=leg))  # must not raise


def test_idle_legs_are_pooled_with_their_h2_state() -> None:
    d = Driver()
    sid = d.request("/api/x")
    (leg,) = d.connects
    assert d.connects[leg].reuse and d.connects[leg].kind == "h2"
    d.connect(leg)
    (bsid,) = d.requests_at(leg)
    d.respond(leg, bsid, b"done")
    assert d.response(sid)[3]
    actions = d.s.on_client_eof(0.0)
    (release,) = [a for a in actions if isinstance(a, Release)]
    assert release.reuse and release.state is not None and release.leg == leg
    # a new client connection adopts it: its next stream id continues the old numbering
    d2 = Driver()
    d2.request("/api/y")
    (leg2,) = d2.connects
    d2.backends[leg2] = d.backends[leg]
    d2.run(d2.s.on_backend_connected(0.0, leg=leg2, state=release.state))
    d2.pump()
    assert sorted(d2.requests_at(leg2)) == [bsid + 2]


def test_stale_pooled_connection_is_not_a_backend_failure() -> None:
    d = Driver()
    d.request("/api/x")
    (leg,) = d.connects
    state = d.s.legs[leg].conn  # stands in for a pooled h2 state
    d.backends[leg] = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    d.run(d.s.on_backend_connected(0.0, leg=leg, state=state))
    d.run(d.s.on_backend_eof(0.0, leg=leg))  # closed before saying anything
    assert d.pools["api"].passive_failures == [0]
    assert len(d.connects) == 2  # the request goes out again on a new connection


def test_response_timeout_gives_504_and_cancels() -> None:
    d = Driver()
    sid = d.request("/page")
    (leg,) = d.connects
    d.connect(leg)
    assert d.requests_at(leg)
    d.run(d.s.on_timer(f"response:{sid}", 0.0))
    d.pump()
    assert d.response(sid)[0].get(":status") == "504"
    assert any(isinstance(e, h2.events.StreamReset) for e in d.backend_events[leg])
    sid2 = d.request("/page")  # the connection goes on
    assert sid2 == sid + 2 and not d.closed


def test_request_trailers_are_relayed() -> None:
    d = Driver()
    sid = d.client.get_next_available_stream_id()
    d.client.send_headers(sid, [(":method", "POST"), (":scheme", "http"), (":path", "/up"),
                                (":authority", "lb"), ("te", "trailers")])
    d.client.send_data(sid, b"body")
    d.client.send_headers(sid, [("x-checksum", "abc")], end_stream=True)
    d.pump()
    (leg,) = d.connects
    d.connect(leg)
    events = d.backend_events[leg]
    assert b"".join(e.data for e in events if isinstance(e, h2.events.DataReceived)) == b"body"
    (trailers,) = [e for e in events if isinstance(e, h2.events.TrailersReceived)]
    assert dict(trailers.headers) == {"x-checksum": "abc"}
    assert any(isinstance(e, h2.events.StreamEnded) for e in events)
