"""A small world around the sans-I/O front-end for packet-level unit tests.

The client's packets are built as the switch would deliver them (client -> VIP after a
cookie handshake); the backend's packets as the agent emits them (seq already translated
to the switch's space). The decider is the real one: the http1 parser plugin's prototype
and the core Router over a config with three pools. The addresses, keys, clock and
listener are bench/fe_world.py's, which the packets/s bench shares.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field

from bench.fe_world import COOKIE_KEY, LISTENER, T0, VIP, S, cookie_isn, frontend_config, leg_base
from miresga_core import cookie
from miresga_core.api import Address
from miresga_core.config import parse_config
from miresga_core.frontend import Frontend, RouterDecider, make_core_decider
from miresga_core.frontend import packet as P
from miresga_core.frontend.packet import ACK, FIN, PSH, RST, SYN, Segment, seq_add
from miresga_core.frontend.state import Action, Offload, Transmit, Unoffload
from miresga_core.routing import Router, pool_states
from miresga_core.wire import option

# the shared listener plus a pinned route and an unoffloaded one; one backend per pool
CONFIG = LISTENER + textwrap.dedent("""\
    [[listeners.routes]]
    pool = "pinned"
    offload = "pin"
    match = { path = { prefix = "/ws" } }
    [[listeners.routes]]
    pool = "blue"
    offload = "none"
    match = { path = { prefix = "/slow" } }
    [pools.blue]
    backends = [{ address = "10.0.2.1:8080" }]
    [pools.green]
    backends = [{ address = "10.0.2.2:8080" }]
    [pools.pinned]
    backends = [{ address = "10.0.2.3:8080" }]
""")

BLUE, GREEN, PINNED = (Address("10.0.2.1", 8080), Address("10.0.2.2", 8080),
                       Address("10.0.2.3", 8080))
B_ISN_SHIFT = 0  # the agent translates the backend's seq to the base: SYN-ACK seq == base


def get(path: str, host: str = "x", extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode()


def post(path: str, body: bytes) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
            .encode() + body)


def make_frontend(registry, prefer: str = "prototype", **kw) -> Frontend:
    """prefer: "prototype" (parser + Router), "python" / "c" (the compiled program)."""
    config = parse_config(CONFIG, registry)
    pools = pool_states(config, registry)
    router = Router(config.listeners[0], pools)
    if prefer == "prototype":
        decider = RouterDecider(registry.parsers["http1"](), router)
    else:
        decider = make_core_decider(config, config.listeners[0], registry, router, prefer)
    return Frontend(frontend_config(**kw), decider, cookie.CookieSecrets(COOKIE_KEY))


def segs(actions: list[Action]) -> list[Segment]:
    return [P.parse(a.packet) for a in actions if isinstance(a, Transmit)]


def offloads(actions: list[Action]) -> list[Offload | Unoffload]:
    return [a for a in actions if isinstance(a, (Offload, Unoffload))]


@dataclass
class Client:
    """One client connection after the switch's cookie handshake."""

    fe: Frontend
    addr: Address = Address("10.0.1.5", 40000)
    isn: int = 0xFFFFFFF0  # wraps soon: sequence arithmetic bugs show
    mss: int = 1460
    wscale: int | None = 7
    sack: bool = True
    now: int = T0
    seq: int = 0
    ack: int = 0
    cookie_isn: int = 0
    log: list[Action] = field(default_factory=list)
    ts: tuple[int, int] | None = None  # (TSval, TSecr) the segments carry, if any

    def __post_init__(self) -> None:
        self.cookie_isn = cookie_isn(self.addr, cookie.slot_at(self.now), self.mss,
                                     self.wscale, self.sack)
        self.seq = seq_add(self.isn, 1)
        self.ack = seq_add(self.cookie_isn, 1)

    def seg(self, flags: int = ACK, payload: bytes = b"", *, seq: int | None = None,
            ack: int | None = None, window: int = 502) -> bytes:
        return Segment(self.addr.host, VIP.host, self.addr.port, VIP.port,
                       self.seq if seq is None else seq, self.ack if ack is None else ack,
                       flags, window, options=self.ts_option(),
                       payload=payload).encode()

    def ts_option(self) -> bytes:
        """NOP,NOP,TS(TSval, TSecr) on every segment when ``ts`` is set (RFC 7323)."""
        if self.ts is None:
            return b""
        return option.ts_trailer(*self.ts)  # the same bytes Linux puts first

    def send(self, flags: int = ACK, payload: bytes = b"", advance: bool = True,
             **kw) -> list[Action]:
        raw = self.seg(flags, payload, **kw)
        if advance and "seq" not in kw:
            self.seq = seq_add(self.seq, len(payload) + bool(flags & FIN))
        out = self.fe.receive(raw, self.now)
        self.log += out
        return out

    def request(self, data: bytes, **kw) -> list[Action]:
        return self.send(ACK | PSH, data, **kw)


@dataclass
class Backend:
    """The backend leg as the front-end sees it through the agent."""

    client: Client
    addr: Address
    base: int  # the server-side base the forged SYN carried
    start: int  # client seq of the leg's first byte
    sent: int = 0  # response bytes sent (switch space, from base + 1)

    @classmethod
    def from_syn(cls, client: Client, syn: Segment) -> Backend:
        return cls(client, Address(syn.dst, syn.dport), leg_base(syn), seq_add(syn.seq, 1))

    def seg(self, flags: int, payload: bytes = b"", *, seq: int | None = None,
            ack: int | None = None, options: bytes = b"") -> bytes:
        if seq is None:
            seq = seq_add(self.base, 1 + self.sent)
        return Segment(self.addr.host, self.client.addr.host, self.addr.port,
                       self.client.addr.port, seq, self.start if ack is None else ack,
                       flags, 65000, options=options, payload=payload).encode()

    def synack(self, mss: int = 1460) -> list[Action]:
        import struct
        opts = struct.pack("!BBH", 2, 4, mss) + b"\x01\x03\x03\x07"
        return self.client.fe.receive(self.seg(SYN | ACK, seq=self.base, options=opts),
                                      self.client.now)

    def respond(self, data: bytes, flags: int = ACK | PSH, ack: int | None = None
                ) -> list[Action]:
        raw = self.seg(flags, data, ack=ack)
        self.sent += len(data) + bool(flags & FIN)
        return self.client.fe.receive(raw, self.client.now)

    def rst(self) -> list[Action]:
        return self.client.fe.receive(self.seg(RST | ACK), self.client.now)


__all__ = [
    "ACK",
    "BLUE",
    "FIN",
    "GREEN",
    "PINNED",
    "PSH",
    "RST",
    "SYN",
    "T0",
    "VIP",
    "Backend",
    "Client",
    "S",
    "get",
    "make_frontend",
    "offloads",
    "post",
    "segs",
]
