"""A steady-state front-end workload for packets/s measurements: connections that each
send a request (opening a leg), get the SYN-ACK (release + offload), then keep-alive
requests alternating between pools (re-splice) with the client's ACKs, then close both
ways. Recorded through the reference like any trace."""

from __future__ import annotations

import struct
from typing import Any

import tracegen
from fe_world import AGENT_KEY, COOKIE_KEY, VIP

from miresga_core import cookie
from miresga_core.api import Address
from miresga_core.frontend import Frontend, trace
from miresga_core.frontend import packet as P
from miresga_core.frontend.packet import ACK, FIN, PSH, SYN, Segment, seq_add
from miresga_core.frontend.state import Transmit
from miresga_core.wire import option

MS = 10**6


def generate(registry: Any, conns: int = 500, requests: int = 4,
             config: str = tracegen.CONFIG) -> list[dict[str, Any]]:
    rec = trace.Recorder(Frontend(tracegen.fe_config(), tracegen.decider(registry, config),
                                  cookie.CookieSecrets(COOKIE_KEY)))
    now = tracegen.T0
    for i in range(conns):
        client = Address(f"10.0.{1 + i // 250}.{1 + i % 250}", 30000 + i)
        ck = cookie.encode(COOKIE_KEY, client.host, client.port, VIP.host, VIP.port,
                           cookie.slot_at(now), 3, 7, True)
        seq, ack = 1000 + i, seq_add(ck, 1)

        for r in range(requests):
            path = "/green/x" if r % 2 else "/a"
            out, seq = _send(rec, client, seq, ack, ACK | PSH,
                             f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode(), now)
            syns = [s for s in (P.parse(a.packet) for a in out if isinstance(a, Transmit))
                    if s.has(SYN)]
            if syns:
                s = syns[0]
                opt = option.verify(s.options, (AGENT_KEY, None), saddr=s.src, daddr=s.dst,
                                    sport=s.sport, dport=s.dport, seq=s.seq)
                backend = (s.dst, s.dport)
                start = seq_add(s.seq, 1)
                opts = struct.pack("!BBH", 2, 4, 1460)
                rec.receive(Segment(s.dst, client.host, s.dport, client.port, opt.seq_base,
                                    start, SYN | ACK, 65000, options=opts).encode(), now)
                base = opt.seq_base
            body = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
            rec.receive(Segment(backend[0], client.host, backend[1], client.port,
                                seq_add(base, 1), seq, ACK | PSH, 65000,
                                payload=body).encode(), now)
            base = seq_add(base, len(body))
            ack = seq_add(ack, len(body))
            _, seq = _send(rec, client, seq, ack, ACK, b"", now)
            now += MS
        _, seq = _send(rec, client, seq, ack, ACK | FIN, b"", now)
        rec.receive(Segment(backend[0], client.host, backend[1], client.port,
                            seq_add(base, 1), seq, ACK | FIN, 65000).encode(), now)
        if i % 50 == 0:
            rec.expire(now)
    rec.expire(now + 10**12)
    return rec.events


def _send(rec: trace.Recorder, client: Address, seq: int, ack: int, flags: int, data: bytes,
          now: int) -> tuple[list, int]:
    raw = Segment(client.host, VIP.host, client.port, VIP.port, seq, ack, flags, 502,
                  payload=data).encode()
    return rec.receive(raw, now), seq_add(seq, len(data) + bool(flags & FIN))
