"""Reference traces of the packet front-end (tests/vectors/frontend/*.jsonl).

Each scenario drives a machine through fe_world's client and backend; the recorded trace
(packets in, packets and offload requests out) is the reference the C/DPDK front-end must
reproduce. Regenerate after an intended behaviour change:

    PYTHONPATH=$PWD:$PWD/plugins/http1:$PWD/plugins/policies python3 tests/frontend/fe_traces.py
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from fe_world import ACK, FIN, RST, SYN, Backend, Client, S, get, post, segs

from miresga_core.frontend import trace

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "frontend"


def _leg(c: Client, out) -> Backend:
    (syn,) = [s for s in segs(out) if s.has(SYN)]
    return Backend.from_syn(c, syn)


def session(rec) -> None:
    """request, SYN-ACK, response, FINs both ways, grace period"""
    c = Client(rec)
    b = _leg(c, c.request(get("/")))
    b.synack()
    b.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    c.send(ACK | FIN)
    b.respond(b"", flags=ACK | FIN)
    rec.expire(c.now + 3 * S)


def keepalive_switch(rec) -> None:
    """two pools on one connection, a late packet of the old leg, client RST"""
    c = Client(rec)
    blue = _leg(c, c.request(post("/up", b"x" * 2000)))
    blue.synack(mss=1000)
    blue.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    c.ack = (c.ack + blue.sent) & 0xFFFFFFFF
    green = _leg(c, c.request(get("/green/a")))
    green.synack()
    blue.respond(b"late")
    c.send(RST | ACK, advance=False)


def retransmissions(rec) -> None:
    """split head, lost forged SYN resent, duplicate request, duplicate SYN-ACK"""
    c = Client(rec)
    start = c.seq
    req = get("/slow/x")
    c.request(req[:7])
    out = c.request(req[7:])
    b = _leg(c, out)
    rec.expire(c.now + S)
    c.request(req, seq=start)
    b.synack()
    b.synack()
    c.request(req, seq=start)
    b.rst()


SCENARIOS: dict[str, Callable[..., None]] = {
    "session": session, "keepalive-switch": keepalive_switch,
    "retransmissions": retransmissions,
}


class _Rec(trace.Recorder):
    """A recorder the fe_world helpers can use in place of the machine."""

    def __getattr__(self, name: str):
        return getattr(self.fe, name)


def record(name: str, fe) -> list[dict]:
    rec = _Rec(fe)
    SCENARIOS[name](rec)
    return rec.events


def main() -> None:
    from fe_world import make_frontend

    from miresga_core.plugins import get_plugin_manager, registry_from

    registry = registry_from(get_plugin_manager())
    VECTORS.mkdir(parents=True, exist_ok=True)
    for name in SCENARIOS:
        events = record(name, make_frontend(registry))
        (VECTORS / f"{name}.jsonl").write_text(trace.dumps(events))
        print(f"{name}: {len(events)} events")


if __name__ == "__main__":
    main()
