"""Generated front-end traces: a seeded random world of clients and backends driving the
reference machine, with loss, retransmission, reordering, duplicates, re-splice, pipelining,
half-close, resets, SYN-ACK loss (forged-SYN timers), idle expiry and garbage.

The world reacts to what the machine emits (forged SYNs open backend legs; packets to a
client advance its ack), so sessions go deep instead of dying at the first packet. The
recorded events (frontend.trace format) are what the C machine must reproduce.
"""

from __future__ import annotations

import random
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "frontend"))

import fe_world

from bench import fe_world as shared
from bench.fe_world import COOKIE_KEY, MS, T0, VIP, S, cookie_isn, fe_config, leg_base
from miresga_core import cookie
from miresga_core.api import Address
from miresga_core.dpdk.decider import ProgramDecider
from miresga_core.frontend import Frontend, trace
from miresga_core.frontend import packet as P
from miresga_core.frontend.packet import ACK, FIN, PSH, RST, SYN, Segment, seq_add
from miresga_core.frontend.state import Transmit
from miresga_core.wire import option

# fe_world's configuration with a second backend in "blue", so the compiled round-robin
# policy is exercised
CONFIG = fe_world.CONFIG.replace('backends = [{ address = "10.0.2.1:8080" }]',
                                 'backends = [{ address = "10.0.2.1:8080" }, '
                                 '{ address = "10.0.2.4:8080" }]')

# the same with one backend per pool: every decision is independent of the route count
# (round-robin state), so per flow the outputs do not depend on how flows are sharded
CONFIG_ONE_BACKEND = fe_world.CONFIG

_COMPILED: list[tuple[object, str, ProgramDecider]] = []


def decider(registry, config: str = CONFIG) -> ProgramDecider:
    """A fresh decider (its route counter at 0); the program is compiled once."""
    d = next((d for r, c, d in _COMPILED if r is registry and c == config), None)
    if d is None:
        d = shared.decider(registry, config)
        _COMPILED.append((registry, config, d))
    return ProgramDecider(d.program, d.pools)


def machine(registry, shards: int = 1, config: str = CONFIG, pool_affinity: bool = False):
    """The reference machine, or ``shards`` of them behind the multi-lcore steering."""
    def one() -> Frontend:
        return Frontend(fe_config(pool_affinity=pool_affinity), decider(registry, config),
                        cookie.CookieSecrets(COOKIE_KEY))
    if shards == 1:
        return one()
    from miresga_core.dpdk.shards import Sharded
    return Sharded([one() for _ in range(shards)], [VIP])


def requests(rng: random.Random) -> bytes:
    kind = rng.randrange(10)
    if kind == 9:
        return b"GET /partial HTTP/1.1\r\nHo"  # a head the client never finishes
    if kind == 0:
        body = bytes(rng.randrange(256) for _ in range(rng.choice((0, 5, 900, 2500))))
        return (b"POST /green/up HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                % len(body)) + body
    if kind == 1:
        return b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    if kind == 2:
        return (b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"5\r\nhello\r\n0\r\n\r\n")
    if kind == 3:
        return b"BREW /pot HTCPCP/1.0\r\n\r\n"  # the parser rejects it
    if kind == 4:
        return b"GET /big HTTP/1.1\r\nX-Pad: " + b"a" * rng.choice((100, 3500)) + b"\r\n\r\n"
    path = rng.choice(("/", "/green", "/slow/x", "/a", "/green/b"))
    return f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()


@dataclass
class Cl:
    addr: Address
    cookie_isn: int
    seq: int
    rcv: int
    history: list[bytes] = field(default_factory=list)
    finned: bool = False
    held: list[bytes] = field(default_factory=list)  # reordered: sent later
    ts: int | None = None  # the client's TSval clock, when it uses timestamps


@dataclass
class Lg:
    client: Address
    backend: Address
    base: int
    start: int
    sent: int = 0
    up: bool = False
    synack_raw: bytes = b""


class World:
    def __init__(self, registry, seed: int, shards: int = 1, config: str = CONFIG,
                 pool_affinity: bool = False) -> None:
        self.rng = random.Random(seed)
        self.rec = trace.Recorder(machine(registry, shards, config, pool_affinity))
        self.now = T0 + self.rng.randrange(70 * S)
        self.clients: list[Cl] = []
        self.legs: dict[tuple[Address, Address], Lg] = {}
        self.nport = 20000 + seed % 1000 * 40
        self.pending: list[Lg] = []  # legs whose forged SYN was just seen
        self.eager = 0.5 if seed % 2 else 0.05  # odd seeds answer SYNs promptly

    # ---------------------------------------------------------------- plumbing

    def feed(self, raw: bytes) -> None:
        self.learn(self.rec.receive(raw, self.now))

    def learn(self, out) -> None:
        for a in out:
            if not isinstance(a, Transmit):
                continue
            s = P.parse(a.packet)
            src = Address(s.src, s.sport)
            dst = Address(s.dst, s.dport)
            if s.has(SYN) and s.options:
                lg = Lg(src, dst, leg_base(s), seq_add(s.seq, 1))
                self.legs[(src, dst)] = lg
                self.pending.append(lg)
            elif src == VIP:
                for c in self.clients:
                    if c.addr == dst and s.payload:
                        end = seq_add(s.seq, len(s.payload) + s.has(FIN))
                        if P.seq_diff(end, c.rcv) > 0:
                            c.rcv = end

    def cseg(self, c: Cl, flags: int, payload: bytes = b"", seq: int | None = None,
             ack: int | None = None) -> bytes:
        return Segment(c.addr.host, VIP.host, c.addr.port, VIP.port,
                       c.seq if seq is None else seq, c.rcv if ack is None else ack, flags,
                       self.rng.choice((502, 0, 65535)), options=self.ts_option(c),
                       payload=payload).encode()

    def ts_option(self, c: Cl) -> bytes:
        """A timestamped client's clock ticks on; now and then a segment carries an
        older TSval (reordered) or sits behind other options."""
        if c.ts is None:
            return b""
        c.ts = (c.ts + self.rng.randrange(0, 3)) & 0xFFFFFFFF
        val = c.ts - 5 if self.rng.random() < 0.1 else c.ts
        ts = option.ts_trailer(val, self.rng.randrange(1 << 32))
        return ts if self.rng.random() < 0.9 else b"\x01\x01\x04\x02" + ts

    # ---------------------------------------------------------------- actions

    def new_client(self) -> None:
        self.nport += 1
        addr = Address(f"10.0.1.{self.rng.randrange(2, 250)}", self.nport)
        if self.clients and self.rng.random() < 0.15:
            old = self.rng.choice(self.clients)  # the client reuses a port: a new incarnation
            self.clients.remove(old)
            addr = old.addr
        mss = self.rng.choice((None, 536, 1300, 1460, 9000))
        ws = self.rng.choice((None, 0, 7, 14))
        isn = self.rng.randrange(1 << 32)
        slot = cookie.slot_at(self.now) - self.rng.choice((0, 0, 0, 1, 2))
        ck = cookie_isn(addr, slot, mss, ws, self.rng.random() < 0.7)
        if self.rng.random() < 0.08:
            ck ^= 1 << self.rng.randrange(23)  # a forged cookie
        c = Cl(addr, ck, seq_add(isn, 1), seq_add(ck, 1))
        if self.rng.random() < 0.5:
            c.ts = self.rng.randrange(1 << 32)  # this client negotiated timestamps
        self.clients.append(c)
        if self.rng.random() < 0.5:
            self.feed(self.cseg(c, ACK))
        else:
            self.request(c)

    def request(self, c: Cl) -> None:
        data = requests(self.rng)
        if self.rng.random() < 0.2:
            data += requests(self.rng)  # pipelined
        cuts = sorted(self.rng.sample(range(1, len(data)), min(len(data) - 1,
                                                                self.rng.randrange(3))))
        pieces = [data[i:j] for i, j in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        raws = []
        for p in pieces:
            raws.append(self.cseg(c, ACK | PSH, p))
            c.seq = seq_add(c.seq, len(p))
        c.history += raws
        r = self.rng.random()
        if r < 0.1 and len(raws) > 1:
            raws = raws[1:] + raws[:1]  # reordered
        elif r < 0.2:
            raws = raws[:-1]  # the last one is lost (a retransmission brings it)
        for raw in raws:
            self.feed(raw)

    def retransmit(self, c: Cl) -> None:
        if c.history:
            raw = self.rng.choice(c.history[-4:])
            s = P.parse(raw)
            self.feed(s.with_(ack=c.rcv).encode())

    def ack(self, c: Cl) -> None:
        self.feed(self.cseg(c, ACK))

    def client_fin(self, c: Cl) -> None:
        if self.rng.random() < 0.3:  # a request head cut short by the FIN
            part = self.cseg(c, ACK | PSH, b"GET /partial HTTP/1.1\r\nHo")
            c.seq = seq_add(c.seq, len(b"GET /partial HTTP/1.1\r\nHo"))
            c.history.append(part)
            self.feed(part)
        raw = self.cseg(c, ACK | FIN)
        c.seq = seq_add(c.seq, 1)
        c.history.append(raw)
        c.finned = True
        self.feed(raw)

    def client_rst(self, c: Cl) -> None:
        self.feed(self.cseg(c, RST | self.rng.choice((0, ACK))))
        self.clients.remove(c)

    def bseg(self, lg: Lg, flags: int, payload: bytes = b"", seq: int | None = None,
             ack: int | None = None, options: bytes = b"") -> bytes:
        if seq is None:
            seq = seq_add(lg.base, 1 + lg.sent)
        if not options and self.rng.random() < 0.3:  # a timestamped backend leg
            options = option.ts_trailer(self.rng.randrange(1 << 32), 0)
        return Segment(lg.backend.host, lg.client.host, lg.backend.port, lg.client.port,
                       seq, lg.start if ack is None else ack, flags, 65000,
                       options=options, payload=payload).encode()

    def synack(self, lg: Lg) -> None:
        opts = struct.pack("!BBH", 2, 4, self.rng.choice((536, 1460, 8960))) + b"\x01\x03\x03\x07"
        r = self.rng.random()
        if r < 0.1:
            self.feed(self.bseg(lg, SYN | ACK, seq=seq_add(lg.base, 5), options=opts))  # bad
            return
        if r < 0.15:
            self.feed(self.bseg(lg, RST | ACK))  # refused
            return
        if r < 0.2:  # a reset that does not acknowledge the SYN (a stale one): ignored
            flags, ack = self.rng.choice(((RST, lg.start), (RST | ACK, seq_add(lg.start, 7))))
            self.feed(self.bseg(lg, flags, ack=ack))
        self.feed(self.bseg(lg, SYN | ACK, seq=lg.base, options=opts))
        lg.up = True

    def respond(self, lg: Lg) -> None:
        r = self.rng.random()
        if r < 0.08:
            self.feed(self.bseg(lg, RST | ACK))
            return
        flags = ACK | PSH
        if r < 0.18:
            flags |= FIN
        n = self.rng.choice((0, 40, 1000, 3100))
        body = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % n + b"r" * n
        raw = self.bseg(lg, flags, body)
        lg.sent += len(body) + bool(flags & FIN)
        self.feed(raw)

    def garbage(self) -> None:
        if self.clients and self.rng.random() < 0.7:
            c = self.rng.choice(self.clients)
            raw = bytearray(self.cseg(c, ACK, b"x" * self.rng.randrange(3)))
            for _ in range(self.rng.randrange(1, 4)):
                raw[self.rng.randrange(len(raw))] = self.rng.randrange(256)
            self.feed(bytes(raw))
        else:
            self.feed(bytes(self.rng.randrange(256) for _ in range(self.rng.randrange(60))))

    def tick(self) -> None:
        self.now += self.rng.choice((MS, 50 * MS, 700 * MS, 1200 * MS, 2500 * MS, 45 * S))
        self.learn(self.rec.expire(self.now))

    def step(self) -> None:
        rng = self.rng
        live = [c for c in self.clients if not c.finned]
        r = rng.random()
        if self.pending and rng.random() < self.eager:
            lg = self.pending.pop(0)
            self.synack(lg)
            if lg.up and rng.random() < 0.7:
                self.respond(lg)
        elif r < 0.1 or not self.clients:
            self.new_client()
        elif r < 0.3 and live:
            self.request(rng.choice(live))
        elif r < 0.38:
            self.retransmit(rng.choice(self.clients))
        elif r < 0.48:
            self.ack(rng.choice(self.clients))
        elif r < 0.52 and live:
            self.client_fin(rng.choice(live))
        elif r < 0.54:
            self.client_rst(rng.choice(self.clients))
        elif r < 0.66 and self.legs:
            lg = rng.choice(list(self.legs.values()))
            if not lg.up or rng.random() < 0.15:
                self.synack(lg)
            else:
                self.respond(lg)
        elif r < 0.76 and self.legs:
            lg = rng.choice(list(self.legs.values()))
            if lg.up:
                self.respond(lg)
        elif r < 0.8:
            self.garbage()
        else:
            self.tick()
        if len(self.clients) > 24:
            self.clients.pop(0)
        if len(self.legs) > 40:
            self.legs.pop(next(iter(self.legs)))


def generate(registry, seed: int, steps: int, counters: dict | None = None, shards: int = 1,
             config: str = CONFIG, pool_affinity: bool = False) -> list[dict]:
    """The events of one seeded run; the reference's counters are added to ``counters``.
    ``shards`` > 1: the reference is that many machines behind the multi-lcore steering;
    ``pool_affinity``: balance = "connection" (requests stay on a leg of their pool)."""
    w = World(registry, seed, shards, config, pool_affinity)
    for _ in range(steps):
        w.step()
    w.now += 200 * S
    w.rec.expire(w.now)  # everything left expires
    if counters is not None:
        for k, v in w.rec.fe.counters.items():
            counters[k] = counters.get(k, 0) + v
    return w.rec.events
