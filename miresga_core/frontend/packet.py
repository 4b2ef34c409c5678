"""IPv4/TCP segments for the packet-level front-end: parse and build, checksums included.

The front-end state machine works on layer-3 bytes (an IPv4 header, no options, and a
TCP segment); the I/O shell adds and strips the Ethernet header. Parsing is strict: a
packet the front-end cannot account for is refused with ``PacketError`` (the machine
counts it and drops it), never half-understood.
"""

from __future__ import annotations

import array
import ipaddress
import struct
import sys
from dataclasses import dataclass, replace

from ..errors import MiresgaError

__all__ = ["ACK", "FIN", "PSH", "RST", "SYN", "PacketError", "Segment", "checksum",
           "flag_names", "parse", "seq_add", "seq_diff", "seq_lt"]

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
_FLAG_NAMES = ((SYN, "S"), (ACK, "A"), (PSH, "P"), (FIN, "F"), (RST, "R"))
_IP = struct.Struct("!BBHHHBBH4s4s")
_TCP = struct.Struct("!HHIIBBHHH")
PROTO_TCP = 6
M32 = 0xFFFFFFFF


class PacketError(MiresgaError):
    """A packet that is not a well-formed IPv4 (no options) TCP segment."""


def seq_add(a: int, n: int) -> int:
    return (a + n) & M32


def seq_diff(a: int, b: int) -> int:
    """a - b as a signed distance in sequence space (RFC 1982 style)."""
    d = (a - b) & M32
    return d - (1 << 32) if d & 0x80000000 else d


def seq_lt(a: int, b: int) -> bool:
    return seq_diff(a, b) < 0


def checksum(data: bytes, initial: int = 0) -> int:
    """The Internet checksum (RFC 1071) of ``data``, folded and complemented."""
    if len(data) % 2:
        data += b"\0"
    words = array.array("H", data)
    if sys.byteorder == "little":
        words.byteswap()
    total = sum(words) + initial
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def flag_names(flags: int) -> str:
    return "".join(name for bit, name in _FLAG_NAMES if flags & bit) or "."


@dataclass(frozen=True, slots=True)
class Segment:
    """One TCP segment with the IPv4 fields the front-end cares about."""

    src: str
    dst: str
    sport: int
    dport: int
    seq: int
    ack: int
    flags: int
    window: int = 65535
    options: bytes = b""
    payload: bytes = b""
    ip_id: int = 0
    ttl: int = 64

    def has(self, flag: int) -> bool:
        return bool(self.flags & flag)

    @property
    def seq_len(self) -> int:
        """Sequence space the segment occupies (payload, plus one for SYN and for FIN)."""
        return len(self.payload) + self.has(SYN) + self.has(FIN)

    def with_(self, **changes: object) -> Segment:
        return replace(self, **changes)  # type: ignore[arg-type]

    def encode(self) -> bytes:
        """IPv4 header + TCP header + options + payload, both checksums filled in."""
        if len(self.options) % 4 or len(self.options) > 40:
            raise PacketError(f"TCP options must be a multiple of 4 bytes up to 40, "
                              f"got {len(self.options)}")
        src = ipaddress.IPv4Address(self.src).packed
        dst = ipaddress.IPv4Address(self.dst).packed
        tcp_len = 20 + len(self.options) + len(self.payload)
        hdr = _TCP.pack(self.sport, self.dport, self.seq & M32, self.ack & M32,
                        (5 + len(self.options) // 4) << 4, self.flags, self.window, 0, 0)
        tcp = hdr + self.options + self.payload
        pseudo = src + dst + struct.pack("!BBH", 0, PROTO_TCP, tcp_len)
        csum = checksum(pseudo + tcp)
        tcp = tcp[:16] + struct.pack("!H", csum) + tcp[18:]
        ip = _IP.pack(0x45, 0, 20 + tcp_len, self.ip_id & 0xFFFF, 0x4000, self.ttl,
                      PROTO_TCP, 0, src, dst)
        ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
        return ip + tcp

    def __str__(self) -> str:
        return (f"{self.src}:{self.sport} > {self.dst}:{self.dport} "
                f"[{flag_names(self.flags)}] seq {self.seq} ack {self.ack} "
                f"len {len(self.payload)}")


def parse(raw: bytes) -> Segment:
    """Parse layer-3 bytes; PacketError says why a packet is refused.

    Checksums are not verified: the front-end sits behind the switch on a lab link where
    locally sent packets carry partial checksums (offload), and the endpoints verify."""
    if len(raw) < 40:
        raise PacketError(f"{len(raw)} bytes is too short for IPv4 + TCP")
    vihl, _tos, total, ip_id, frag, ttl, proto, _c, src, dst = _IP.unpack_from(raw)
    if vihl != 0x45:
        raise PacketError(f"not IPv4 without options (version/IHL byte {vihl:#04x})")
    if proto != PROTO_TCP:
        raise PacketError(f"not TCP (protocol {proto})")
    if frag & 0x3FFF:
        raise PacketError("IP fragment")
    if not 40 <= total <= len(raw):
        raise PacketError(f"IP total length {total} does not fit the {len(raw)} bytes")
    sport, dport, seq, ack, off, flags, window, _csum, _urg = _TCP.unpack_from(raw, 20)
    doff = (off >> 4) * 4
    if not 20 <= doff <= total - 20:
        raise PacketError(f"TCP data offset {doff} out of range")
    return Segment(str(ipaddress.IPv4Address(src)), str(ipaddress.IPv4Address(dst)),
                   sport, dport, seq, ack, flags & 0x3F, window,
                   bytes(raw[40:20 + doff]), bytes(raw[20 + doff:total]), ip_id, ttl)
