"""Front-end packets/s per core, Python reference vs C, on one recorded trace (the machine
only, no I/O): the trace is recorded through the Python reference (its time is the Python
figure), then replayed by the C library's ``mfe_replay`` (best of ``repeat`` runs), whose
output digest must equal the reference's outputs.

The workload (``steady_trace``): every connection sends a request (the front-end opens a
backend leg: forged SYN), gets the SYN-ACK (release + offload), then keep-alive requests
alternating between two pools (re-splice) with the client's ACKs, then both FINs.
"""

from __future__ import annotations

import struct
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from miresga_core import cookie
from miresga_core.api import Address
from miresga_core.dpdk.decider import ProgramDecider
from miresga_core.frontend import Frontend, FrontendConfig, trace
from miresga_core.frontend import packet as P
from miresga_core.frontend.packet import ACK, FIN, PSH, SYN, Segment, seq_add
from miresga_core.frontend.state import Transmit

from . import fe_world
from .fe_world import COOKIE_KEY, LISTENER, MS, T0, VIP, cookie_isn, fe_config, leg_base
from .report import PpsSample

__all__ = ["measure", "steady_trace"]

# the bench's pools: two backends in "blue", so its round-robin is on the measured path
CONFIG = LISTENER + textwrap.dedent("""\
    [pools.blue]
    backends = [{ address = "10.0.2.1:8080" }, { address = "10.0.2.4:8080" }]
    [pools.green]
    backends = [{ address = "10.0.2.2:8080" }]
""")


def decider(registry: Any) -> ProgramDecider:
    return fe_world.decider(registry, CONFIG)


def _send(rec: trace.Recorder, client: Address, seq: int, ack: int, flags: int, data: bytes,
          now: int) -> tuple[list[Any], int]:
    raw = Segment(client.host, VIP.host, client.port, VIP.port, seq, ack, flags, 502,
                  payload=data).encode()
    return rec.receive(raw, now), seq_add(seq, len(data) + bool(flags & FIN))


def steady_trace(registry: Any, conns: int = 300, requests: int = 4,
                 config: FrontendConfig | None = None, decide: ProgramDecider | None = None,
                 ) -> list[dict[str, Any]]:
    """The recorded events (frontend.trace format) of ``conns`` connections. ``config`` /
    ``decide``: another front-end configuration and rule program (the tests' own), with the
    same VIP and keys, a path "/green/x" routed to another pool than "/a"."""
    rec = trace.Recorder(Frontend(config or fe_config(), decide or decider(registry),
                                  cookie.CookieSecrets(COOKIE_KEY)))
    now = T0
    for i in range(conns):
        client = Address(f"10.0.{1 + i // 250}.{1 + i % 250}", 30000 + i)
        seq, ack = 1000 + i, seq_add(cookie_isn(client, cookie.slot_at(now)), 1)
        backend, base = (VIP.host, 0), 0
        for r in range(requests):
            path = "/green/x" if r % 2 else "/a"
            out, seq = _send(rec, client, seq, ack, ACK | PSH,
                             f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode(), now)
            syns = [s for s in (P.parse(a.packet) for a in out if isinstance(a, Transmit))
                    if s.has(SYN)]
            if syns:  # a new leg: answer the forged SYN as the backend's agent would
                s = syns[0]
                backend, base = (s.dst, s.dport), leg_base(s)
                rec.receive(Segment(s.dst, client.host, s.dport, client.port, base,
                                    seq_add(s.seq, 1), SYN | ACK, 65000,
                                    options=struct.pack("!BBH", 2, 4, 1460)).encode(), now)
            body = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
            rec.receive(Segment(backend[0], client.host, backend[1], client.port,
                                seq_add(base, 1), seq, ACK | PSH, 65000,
                                payload=body).encode(), now)
            base, ack = seq_add(base, len(body)), seq_add(ack, len(body))
            _, seq = _send(rec, client, seq, ack, ACK, b"", now)
            now += MS
        _, seq = _send(rec, client, seq, ack, ACK | FIN, b"", now)
        rec.receive(Segment(backend[0], client.host, backend[1], client.port,
                            seq_add(base, 1), seq, ACK | FIN, 65000).encode(), now)
        if i % 50 == 0:
            rec.expire(now)
    rec.expire(now + 10**12)
    return rec.events


def measure(rep: int, conns: int = 300, repeat: int = 3) -> PpsSample:
    """One Python and one C figure on the same trace, each the best of ``repeat`` runs
    (a fresh machine each run)."""
    from miresga_core.dpdk import build, tracebin
    from miresga_core.dpdk.process import write_config
    from miresga_core.plugins import get_plugin_manager, registry_from

    registry = registry_from(get_plugin_manager())
    events = steady_trace(registry, conns)
    ins = [(e["t"], None if e.get("expire") else bytes.fromhex(e["in"])) for e in events]
    python_s = float("inf")
    for _ in range(repeat):
        fe = Frontend(fe_config(), decider(registry), cookie.CookieSecrets(COOKIE_KEY))
        outs = []
        t0 = time.perf_counter()
        for t, raw in ins:
            outs.append(fe.expire(t) if raw is None else fe.receive(raw, t))
        python_s = min(python_s, time.perf_counter() - t0)
    with tempfile.TemporaryDirectory(prefix="mrb-pps-") as tmpname:
        tmp = Path(tmpname)
        n = tracebin.write(tmp / "t.bin", events)
        py = n / python_s
        try:
            build.library()
        except build.BuildError as e:
            return PpsSample(rep, n, py, None, None, f"C side skipped: {e}".splitlines()[0])
        conf = write_config(tmp / "cfg", fe_config(), {VIP: decider(registry)},
                            cookie.CookieSecrets(COOKIE_KEY))
        got = tracebin.replay_tool(build.BUILD / "mfe_replay", conf, tmp / "t.bin",
                                   repeat=repeat)
    return PpsSample(rep, n, py, float(got["pps"]), got["digest"] == tracebin.digest(outs))
