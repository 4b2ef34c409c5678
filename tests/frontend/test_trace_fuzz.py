"""Traces replay byte for byte; no input bytes crash the machine."""

from __future__ import annotations

from fe_world import ACK, FIN, Backend, Client, get, make_frontend, segs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from miresga_core.frontend import trace
from miresga_core.frontend.packet import SYN


def run_session(fe):
    """A whole connection: request, SYN-ACK, response, half-close both ways, grace."""
    rec = trace.Recorder(fe)
    c = Client(fe)
    c.fe = rec  # the client and backend helpers call receive(): record them
    out = c.request(get("/"))
    (syn,) = [s for s in segs(out) if s.has(SYN)]
    b = Backend.from_syn(c, syn)
    b.synack()
    b.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    c.send(ACK | FIN)
    b.respond(b"", flags=ACK | FIN)
    rec.expire(c.now + 5 * 10**9)
    return rec.events


def test_recorded_trace_replays_identically(registry):
    events = run_session(make_frontend(registry))
    assert any(e["out"] for e in events)
    text = trace.dumps(events)
    assert trace.replay(make_frontend(registry), trace.loads(text)) == []
    # and a trace is not vacuous: a different secret changes the outputs
    other = make_frontend(registry)
    other.set_secrets(other.secrets.rotate(bytes(8)).rotate(bytes(range(8))))
    assert trace.replay(other, trace.loads(text))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=120))
def test_random_bytes_never_crash(registry, data):
    fe = make_frontend(registry)
    fe.receive(data, 0)
    fe.expire(10**12)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=6),
       st.integers(0, 5))
def test_mutated_session_packets_never_crash(registry, flips, which):
    fe = make_frontend(registry)
    events = run_session(make_frontend(registry))
    for i, e in enumerate(events):
        if "in" not in e:
            continue
        raw = bytearray.fromhex(e["in"])
        if i == which:
            for pos, val in flips:
                if pos < len(raw):
                    raw[pos] = val
        fe.receive(bytes(raw), e["t"])
    fe.expire(10**20)
    assert not fe.conns and not fe.legs
