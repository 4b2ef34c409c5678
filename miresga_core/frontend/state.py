"""Per-connection state of the packet-level front-end, and the actions it emits.

Kept apart from the machine so the state is easy to inspect in tests and traces.
Sequence numbers: client bytes keep the client's numbers end to end; server-side numbers
are in the switch's space (the cookie ISN), which is what the agent translates to.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from ..api import Address, OffloadMode
from ..cookie import CookieInfo

__all__ = ["Action", "Conn", "Leg", "LegState", "Offload", "Transmit", "Unoffload",
           "action_record"]


@dataclass(frozen=True, slots=True)
class Transmit:
    """Send this IPv4 packet (layer-3 bytes) towards the switch."""

    packet: bytes


@dataclass(frozen=True, slots=True)
class Offload:
    """Ask the switch to offload client->vip to backend (both directions)."""

    client: Address
    vip: Address
    backend: Address
    mode: OffloadMode


@dataclass(frozen=True, slots=True)
class Unoffload:
    """Remove the switch's offload entries of client->vip (a missing entry is fine)."""

    client: Address
    vip: Address


Action = Transmit | Offload | Unoffload


def action_record(a: Action) -> dict[str, str]:
    """A JSON-friendly form of an action, for traces."""
    if isinstance(a, Transmit):
        return {"transmit": a.packet.hex()}
    if isinstance(a, Offload):
        return {"offload": f"{a.client}>{a.vip}", "backend": str(a.backend),
                "mode": a.mode.value}
    return {"unoffload": f"{a.client}>{a.vip}"}


class LegState(enum.Enum):
    SYN_SENT = "syn-sent"  # forged SYN out, request held until the SYN-ACK
    ESTABLISHED = "established"


@dataclass(eq=False)
class Leg:
    """One backend connection spliced into the client connection."""

    backend: Address
    mode: OffloadMode
    start_seq: int  # client seq of the leg's first byte (its SYN has start_seq - 1)
    base: int  # server-side seq base: the SYN-ACK the agent emits carries this seq
    state: LegState = LegState.SYN_SENT
    sent_upto: int = 0  # client seq after the last byte given to this leg
    held: bytearray = field(default_factory=bytearray)  # given while SYN_SENT
    mss: int = 536
    syn_tries: int = 1
    syn_deadline: int = 0
    fin_sent: bool = False
    pool: str = ""  # the pool the decision that opened it named
    ts: tuple[int, int] | None = None  # (TSval, ts_base) its forged SYN carries


@dataclass(eq=False)
class Conn:
    """A client connection the front-end has accepted (valid cookie)."""

    client: Address
    vip: Address
    info: CookieInfo
    isn: int  # the cookie: the switch's ISN for this connection
    next_seq: int  # next in-order client sequence number
    ack: int  # the client's latest ack (switch space)
    window: int
    last_ns: int
    created_ns: int = 0
    first_seq: int = 0  # the seq of the first packet accepted
    pending: bytearray = field(default_factory=bytearray)  # not yet given to a leg
    remaining: int = 0  # bytes of the current request still due to the leg; -1: all
    leg: Leg | None = None
    dispatch_ack: int | None = None  # client's ack when the last request was dispatched
    requests: int = 0
    client_fin: bool = False
    backend_fin: bool = False
    closed_ns: int | None = None
    offloaded: bool = False
    # the client's latest (TSval, TSecr), when its connection negotiated timestamps
    ts: tuple[int, int] | None = None
