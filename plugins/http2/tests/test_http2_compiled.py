"""The compiled http2 parser: prototype == Python VM == C VM (miresga_core.testing's
Equivalence: NeedMore / Reject status / route decision, head length, framing, content
length, flags) on golden header blocks encoded by hpack with and without Huffman, dynamic
table use and size updates, CONTINUATION, padding and priority, every refusal of the
prototype, truncations, bit flips and generated requests; and the C VM under ASan+UBSan
on the same inputs."""

from __future__ import annotations

import random
from pathlib import Path

import hpack
import pytest
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    HeadersFrame,
    PingFrame,
    PriorityFrame,
    SettingsFrame,
    WindowUpdateFrame,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from miresga_http2 import Http2Parser
from miresga_http2.prototype import PREFACE

from miresga_core.bytecode import native
from miresga_core.bytecode.program import encode
from miresga_core.bytecode.vectors import run_mvm
from miresga_core.testing import Equivalence, expected

ROUTES = [
    ("api", [("path", "prefix", ["/api/"], False)]),
    ("host-a", [("host", "exact", ["a.example", "www.a.example"], True)]),
    ("tenant", [("header:x-tenant", "exact", ["blue"], False),
                ("method", "exact", ["POST"], False)]),
    ("q", [("query", "prefix", ["debug"], False)]),
    ("exact", [("target", "exact", ["/exact"], False)]),
    ("https", [("scheme", "exact", ["https"], True)]),
]
REQ = [(":method", "GET"), (":scheme", "http"), (":path", "/api/v1/items?id=7"),
       (":authority", "Example.com:8443"), ("user-agent", "t/1"), ("x-tenant", "blue")]


def block(headers, huffman: bool = True, encoder: hpack.Encoder | None = None) -> bytes:
    return (encoder or hpack.Encoder()).encode(headers, huffman=huffman)


def frames(*fs, first: bytes | None = None) -> bytes:
    head = SettingsFrame(0, settings={4: 65535}).serialize() if first is None else first
    return PREFACE + head + b"".join(f if isinstance(f, bytes) else f.serialize() for f in fs)


def hframe(data: bytes, sid: int = 1, end_stream: bool = True, end_headers: bool = True,
           **kw) -> HeadersFrame:
    flags = (["END_STREAM"] if end_stream else []) + (["END_HEADERS"] if end_headers else [])
    return HeadersFrame(sid, data=data, flags=flags, **kw)


def continued(data: bytes, pieces: int, end_stream: bool = True) -> list:
    size = max(1, -(-len(data) // pieces))
    parts = [data[i:i + size] for i in range(0, len(data), size)] or [b""]
    out = [hframe(parts[0], end_stream=end_stream, end_headers=len(parts) == 1)]
    out += [ContinuationFrame(1, data=p, flags=["END_HEADERS"] if k == len(parts) - 2 else [])
            for k, p in enumerate(parts[1:])]
    return out


def padded() -> bytes:
    hf = hframe(block(REQ), end_stream=False, pad_length=17, depends_on=0, stream_weight=200)
    hf.flags.add("PADDED")
    hf.flags.add("PRIORITY")
    return frames(WindowUpdateFrame(0, window_increment=1000),
                  PingFrame(0, opaque_data=b"x" * 8), PriorityFrame(3, depends_on=1), hf)


def dynamic() -> bytes:
    enc = hpack.Encoder()
    enc.header_table_size = 300
    hdrs = [*REQ, ("x-a", "1" * 100), ("x-b", "2" * 100), ("x-a", "1" * 100),
            ("x-c", "3" * 150), ("x-a", "1" * 100)]
    return frames(*continued(block(hdrs, True, enc), 3))


CORPUS = [
    b"", PREFACE[:5], PREFACE, b"GET / HTTP/1.1\r\n\r\n", PREFACE[:-1] + b"X",
    frames(), frames(hframe(block(REQ))), frames(hframe(block(REQ, False))),
    frames(hframe(block(REQ)))[:-3], padded(), dynamic(),
    frames(*continued(block(REQ), 2)), frames(*continued(block(REQ, False), 7)),
    frames(*continued(block(REQ), 4, end_stream=False)),
    frames(hframe(block([(":method", "POST"), (":scheme", "https"), (":path", "/exact"),
                         ("x-tenant", "blue"), ("content-length", "12")]), end_stream=False)),
    frames(hframe(block([(":method", "POST"), (":scheme", "http"), (":path", "/?debug=1"),
                         ("content-length", "x12"), ("host", "www.a.example:80"),
                         ("host", "A.example")]), end_stream=False)),
    frames(hframe(block([(":method", "GET"), (":scheme", "http"), (":path", "/"),
                         (":authority", "user@[::1]:80")]))),
    frames(hframe(block([(":method", "GET"), (":scheme", "http"), (":path", "/"),
                         (":authority", " \x85a.example "), ("te", " Trailers ")]))),
    frames(hframe(block([(":method", "GET"), (":scheme", "http"), (":path", "/"),
                         (":authority", "[::1")]))),
    frames(hframe(block([(":method", "GET"), (":scheme", "http"), (":path", "/"),
                         ("X-Up", "1")]))),
    frames(hframe(block([(":method", "GET"), (":scheme", "http"), (":path", "/"),
                         ("x\xc9", "1")]))),
    frames(hframe(block([(":method", "GET"), (":scheme", "http"), (":path", "/"),
                         ("x", "a\rb")]))),
    frames(hframe(block([(":method", "GET"), (":scheme", "http"), (":path", "/"),
                         ("", "a")]))),
    frames(hframe(block([(":method", "GET"), (":scheme", "http"), (":path", "/exact")]))),
    frames(hframe(block([(":method", "GET"), (":scheme", "http"), (":path", "/?debug")]))),
    frames(hframe(block([(":method", "GET"), (":scheme", "HTTPS"), (":path", "/x")]))),
    *(frames(hframe(block([(b":method", b"POST"), (b":scheme", b"http"), (b":path", b"/"),
                           (b"content-length", cl)]), end_stream=False))
      for cl in (b"\xb2", b"9223372036854775807", b"9223372036854775808", b"", b"007")),
    frames(PingFrame(0)),
    frames(first=PingFrame(0).serialize()),
    frames(first=SettingsFrame(0, flags=["ACK"]).serialize()),
    frames(first=b"\x00\x00\x05\x04\x00\x00\x00\x00\x00" + b"x" * 5),
    frames(b"\x00\x00\x04\x08\x00\x00\x00\x00\x01" + b"x" * 4),
    frames(b"\x00\x00\x04\x02\x00\x00\x00\x00\x01" + b"x" * 4),
    frames(b"\x00\x00\x05\x02\x00\x00\x00\x00\x00" + b"x" * 5),
    frames(b"\x00\x00\x05\x06\x00\x00\x00\x00\x00" + b"x" * 5),
    frames(b"\x00\x40\x01\x00\x00\x00\x00\x00\x01"),  # 16385-byte frame
    frames(b"\x00\x3f\xf0\x01\x00\x00\x00\x00\x01"),  # big, incomplete
    frames(hframe(block(REQ) * 3)),
    frames(DataFrame(1, data=b"x")),
    frames(hframe(block(REQ), sid=2)),
    frames(b"\x00\x00\x01\x01\x05\x00\x00\x00\x00\x82"),  # HEADERS on stream 0
    frames(hframe(block(REQ), end_headers=False), PingFrame(0)),
    frames(hframe(block(REQ), end_headers=False), ContinuationFrame(3, data=b"")),
    frames(hframe(b"\xff\xff\xff\xff")),
    frames(b"\x00\x00\x00\x01\x0c\x00\x00\x00\x01"),  # PADDED, empty payload
    frames(b"\x00\x00\x03\x01\x2c\x00\x00\x00\x01" + b"\x05ab"),  # pad past the end
    frames(hframe(block([(":method", "GET"), (":path", "/")]))),
    frames(hframe(block([(":method", "GET"), (":scheme", "http"), (":path", "")]))),
    frames(hframe(block([(":scheme", "http"), (":path", "/")]))),
    frames(hframe(block([*REQ[:2], ("a", "b"), REQ[2]]))),
    frames(hframe(block([*REQ, (":method", "PUT")]))),
    frames(hframe(block([REQ[0], REQ[0], *REQ[1:]]))),
    frames(hframe(block([(":METHOD", "GET"), *REQ[1:]]))),
    frames(hframe(block([*REQ, ("connection", "close")]))),
    frames(hframe(block([*REQ, ("te", "gzip")]))),
    frames(hframe(block([*REQ, (":foo", "x")]))),
    frames(hframe(block([(":method", "CONNECT"), (":authority", "a:1")]))),
    frames(hframe(block([*REQ, ("x-pad", "p" * 17000)]))),
    frames(*[hframe(block([*REQ, ("x-pad", "p" * 9000)]), end_headers=False)] +
           [ContinuationFrame(1, data=b"\x00" * 8000)] * 2),
]


@pytest.fixture(scope="module")
def eq() -> Equivalence:
    return Equivalence(Http2Parser(), ROUTES, require_c=native.available())


def test_corpus(eq: Equivalence) -> None:
    outcomes = eq.check_all(CORPUS)
    kinds = {o.split()[0] + (o.split()[1] if o.startswith("reject") else "") for o in outcomes}
    assert {"needmore", "reject400", "reject405", "reject431", "route"} <= kinds
    decisions = {o.split()[1] for o in outcomes if o.startswith("route")}
    assert len(decisions) >= 5, decisions


def test_truncations_and_flips(eq: Equivalence) -> None:
    rng = random.Random(9)
    for data in (padded(), dynamic(), frames(*continued(block(REQ), 3))):
        for n in range(0, len(data) + 1, 3):
            eq.check(data[:n])
        for _ in range(120):
            b = bytearray(data)
            b[rng.randrange(len(PREFACE), len(b))] = rng.randrange(256)
            eq.check(bytes(b))


names = st.sampled_from(["x-tenant", "user-agent", "accept", "content-length", "host", "te",
                         "x-a", "cookie", "X-Up", ":path", "connection"])
values = st.sampled_from(["blue", "red", "12", "trailers", "a.example", "www.a.example:1",
                          "", "x" * 70, "caf\xe9", "a\nb"])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["GET", "POST", "CONNECT", "get"]),
       st.sampled_from(["/", "/api/x", "/exact", "/?debug", "/api?debug=1", ""]),
       st.sampled_from(["", "a.example", "A.EXAMPLE:443", "u@www.a.example"]),
       st.lists(st.tuples(names, values), max_size=6), st.booleans(), st.integers(1, 4),
       st.booleans(), st.sampled_from([4096, 100, 0]))
def test_generated_requests(eq, method, path, authority, extra, huffman, pieces, end_stream,
                            table) -> None:
    enc = hpack.Encoder()
    if table != 4096:
        enc.header_table_size = table
    hdrs = [(":method", method), (":scheme", "https" if huffman else "http"), (":path", path)]
    if authority:
        hdrs.append((":authority", authority))
    data = frames(*continued(block(hdrs + extra * 2, huffman, enc), pieces, end_stream))
    eq.check(data)


def test_c_vm_under_sanitizers(eq: Equivalence, mvm_asan: Path, tmp_path: Path) -> None:
    rng = random.Random(4)
    cases = list(CORPUS)
    for data in (padded(), dynamic()):
        cases += [data[:n] for n in range(0, len(data) + 1, 7)]
        for _ in range(60):
            b = bytearray(data)
            b[rng.randrange(len(b))] = rng.randrange(256)
            cases.append(bytes(b))
    cases += [PREFACE + bytes(rng.randrange(256) for _ in range(rng.randrange(120)))
              for _ in range(100)]
    status, lines = run_mvm(mvm_asan, encode(eq.program), [(c, ()) for c in cases], tmp_path)
    assert status == "ok"
    assert lines == [str(eq.py.run(c)) for c in cases]
    for c, line in zip(cases, lines, strict=True):
        want = expected(eq.parser, eq.route_configs, c)
        assert line.split()[:2] == want.split()[:2] or want == "needmore" == line, (c, want)


def test_caller_arguments_survive_the_helpers() -> None:
    """Policies read r0 (client hash) and r1 (sequence) after the parser; the HPACK
    helpers use r0/r1, so the compiled parser must restore them."""
    from miresga_core.bytecode.builder import IReg, ProgramBuilder
    from miresga_core.bytecode.vm import PyVM

    b = ProgramBuilder()
    Http2Parser().compile(b, ["path", "header:x-tenant"])
    b.setf("backend", IReg(1))
    b.setf("content_length", IReg(0))
    b.route(b.decision("p", "splice", "r"))
    prog = b.build()
    data = frames(*continued(block(REQ), 3))
    runners = [PyVM(prog)] + ([native.CVM(prog)] if native.available() else [])
    for vm in runners:
        out = vm.run(data, (123456789, 77))
        assert (out.kind, out.backend, out.content_length) == ("route", 77, 123456789), vm
