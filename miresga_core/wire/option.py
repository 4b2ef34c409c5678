"""The Miresga SYN option: the one source of truth (the C header is generated from here).

A front-end forges the SYN that opens a backend leg (ARCHITECTURE.md, splice protocol step
3). That SYN carries exactly one TCP option, this one, and no payload; the back-end agent
checks the tag, records the flow and rewrites the option, in place, into the standard MSS,
window scale and SACK-permitted options the client negotiated with the switch, so the
backend's kernel opens an ordinary connection with the client's parameters.

Layout (RFC 6994 experimental option, 20 bytes, network byte order)::

    0      kind = 254                1      length = 20
    2..3   ExID = 0x4D52 ("MR")
    4      version (high nibble) | flags (low nibble): SACK_OK, WSCALE_OK, KEY_SLOT
    5      client window scale (high nibble) | switch's announced window scale (low)
    6..7   client MSS
    8..11  server-side sequence base: the switch's ISN (client's ack - 1)
    12..19 tag: SipHash-2-4 (64 bit, little-endian bytes) over the 24-byte message
           ip.saddr | ip.daddr | tcp.sport | tcp.dport | tcp.seq | option bytes 4..11

Why SipHash-2-4: it is a PRF built for short messages with a 128-bit key, made only of
64-bit add/rotate/xor, so the verifier-checked BPF code is a short straight line (no
loops, no helpers; BPF has no crypto for XDP). HMAC-SHA256 would cost thousands of
instructions per SYN. A 64-bit tag leaves an attacker a 2^-64 chance per forged SYN.
The tag binds the 4-tuple and the client's sequence number, so a captured tag cannot
plant state for any other flow; replaying the same SYN only recreates the same state.
Two key slots (KEY_SLOT flag) let the controller rotate the secret without a gap.

The rewrite the agent performs (12 bytes, so the SYN shrinks by 8 and data offset 10 -> 8)::

    MSS(2,4,mss) | NOP,WS(3,3,client_ws) or 4xNOP | NOP,NOP,SACK_OK(4,2) or 4xNOP

Timestamps (RFC 7323). When the client's connection negotiated timestamps (the switch's
SYN-ACK echoed the client's SYN timestamp), the forged SYN carries a *trailer* after the
Miresga option: NOP,NOP,TS(8,10,TSval,TSecr) (12 bytes; data offset 13). TSval is the
client's latest TSval; TSecr (meaningless in a SYN, RFC 7323 3.2) carries ``ts_base``:
the client's latest TSecr, i.e. the last timestamp of ours the client accepted. The
agent keeps ``ts_base``, rewrites the Miresga option as above, turns option bytes 12..19
into NOPs (no shrink: the SYN keeps data offset 13) and zeroes the TSecr. It then
translates the backend's timestamps into the client's view: the SYN-ACK teaches
``ts_delta`` = ts_base - the SYN-ACK's TSval; every backend segment's TSval gets
+ts_delta (so the client's PAWS check sees them continue from what it accepted), every
client segment's TSecr gets -ts_delta (so the backend's RTT samples are its own clock).
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from ..errors import MiresgaError
from .siphash import siphash24

__all__ = [
    "EXID", "FLAG_KEY_SLOT", "FLAG_SACK_OK", "FLAG_WSCALE_OK", "KIND", "LENGTH",
    "REWRITE_LENGTH", "TS_TRAILER_LENGTH", "VERSION", "WSCALE_MAX", "MiresgaOption",
    "OptionError", "c_constants", "compute_tag", "decode", "encode", "rewrite_options",
    "split_syn_options", "ts_trailer", "verify",
]

KIND = 254
LENGTH = 20
EXID = 0x4D52
VERSION = 1
FLAG_SACK_OK = 0x1
FLAG_WSCALE_OK = 0x2
FLAG_KEY_SLOT = 0x4
WSCALE_MAX = 14  # RFC 7323
REWRITE_LENGTH = 12
TAG_OFFSET = 12
MSG_LENGTH = 24
TS_KIND = 8  # RFC 7323 timestamps option
TS_LENGTH = 10
TS_TRAILER = bytes([1, 1, TS_KIND, TS_LENGTH])  # NOP, NOP, kind, length: Linux's layout
TS_TRAILER_LENGTH = 12

_FIXED = struct.Struct("!BBHBBHI")  # kind, len, exid, ver|flags, wscales, mss, seq_base


class OptionError(MiresgaError):
    """A Miresga option that is malformed or whose tag does not verify."""


@dataclass(frozen=True)
class MiresgaOption:
    """The fields of the option. ``client_wscale`` None: the client offered no scaling."""

    seq_base: int
    mss: int
    client_wscale: int | None
    switch_wscale: int
    sack_permitted: bool
    key_slot: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.seq_base < 1 << 32:
            raise OptionError(f"seq_base {self.seq_base} is not a 32-bit number")
        if not 1 <= self.mss < 1 << 16:
            raise OptionError(f"mss {self.mss} out of range 1..65535")
        for name, ws in (("client", self.client_wscale), ("switch", self.switch_wscale)):
            if ws is not None and not 0 <= ws <= WSCALE_MAX:
                raise OptionError(f"{name} window scale {ws} out of range 0..{WSCALE_MAX}")
        if self.key_slot not in (0, 1):
            raise OptionError(f"key slot {self.key_slot} must be 0 or 1")

    def fixed_bytes(self) -> bytes:
        """Option bytes 0..11 (everything but the tag)."""
        flags = (FLAG_SACK_OK if self.sack_permitted else 0) | (
            FLAG_WSCALE_OK if self.client_wscale is not None else 0) | (
            FLAG_KEY_SLOT if self.key_slot else 0)
        ws = ((self.client_wscale or 0) << 4) | (
            self.switch_wscale if self.client_wscale is not None else 0)
        return _FIXED.pack(KIND, LENGTH, EXID, (VERSION << 4) | flags, ws, self.mss,
                           self.seq_base)


def _addr(a: str | bytes) -> bytes:
    return a if isinstance(a, bytes) else ipaddress.IPv4Address(a).packed


def compute_tag(key: bytes, fixed: bytes, saddr: str | bytes, daddr: str | bytes,
                sport: int, dport: int, seq: int) -> bytes:
    """The 8 tag bytes for option bytes 0..11 ``fixed`` of the SYN with this 4-tuple/seq."""
    msg = _addr(saddr) + _addr(daddr) + struct.pack("!HHI", sport, dport, seq) + fixed[4:12]
    assert len(msg) == MSG_LENGTH
    return struct.pack("<Q", siphash24(key, msg))


def encode(opt: MiresgaOption, *, key: bytes, saddr: str | bytes, daddr: str | bytes,
           sport: int, dport: int, seq: int) -> bytes:
    """The 20 option bytes for a SYN from (saddr, sport) to (daddr, dport) with ``seq``."""
    fixed = opt.fixed_bytes()
    return fixed + compute_tag(key, fixed, saddr, daddr, sport, dport, seq)


def decode(data: bytes) -> tuple[MiresgaOption, bytes]:
    """Parse option bytes (no tag check): (fields, tag). Raises OptionError when malformed."""
    if len(data) < LENGTH:
        raise OptionError(f"option is {len(data)} bytes, want {LENGTH}")
    kind, length, exid, verflags, ws, mss, base = _FIXED.unpack_from(data)
    if (kind, length, exid) != (KIND, LENGTH, EXID):
        raise OptionError(f"not a Miresga option (kind {kind}, length {length}, "
                          f"ExID {exid:#06x})")
    if verflags >> 4 != VERSION:
        raise OptionError(f"option version {verflags >> 4}, this agent speaks {VERSION}")
    flags = verflags & 0xF
    cws = ws >> 4 if flags & FLAG_WSCALE_OK else None
    opt = MiresgaOption(base, mss, cws, ws & 0xF if cws is not None else 0,
                        bool(flags & FLAG_SACK_OK), 1 if flags & FLAG_KEY_SLOT else 0)
    return opt, bytes(data[TAG_OFFSET:LENGTH])


def verify(data: bytes, keys: tuple[bytes | None, bytes | None], *, saddr: str | bytes,
           daddr: str | bytes, sport: int, dport: int, seq: int) -> MiresgaOption:
    """Decode and check the tag with the key of the option's slot; OptionError if wrong."""
    opt, tag = decode(data)
    key = keys[opt.key_slot]
    if key is None:
        raise OptionError(f"no key in slot {opt.key_slot}")
    if compute_tag(key, bytes(data[:12]), saddr, daddr, sport, dport, seq) != tag:
        raise OptionError("tag does not verify")
    return opt


def rewrite_options(opt: MiresgaOption) -> bytes:
    """The 12 standard option bytes the agent writes in place of the Miresga option."""
    mss = struct.pack("!BBH", 2, 4, opt.mss)
    ws = (bytes([1, 3, 3, opt.client_wscale]) if opt.client_wscale is not None
          else b"\x01" * 4)
    sack = b"\x01\x01\x04\x02" if opt.sack_permitted else b"\x01" * 4
    return mss + ws + sack


def ts_trailer(tsval: int, ts_base: int) -> bytes:
    """The 12 bytes after the Miresga option in a forged SYN of a timestamped connection."""
    return TS_TRAILER + struct.pack("!II", tsval & 0xFFFFFFFF, ts_base & 0xFFFFFFFF)


def split_syn_options(options: bytes) -> tuple[bytes, tuple[int, int] | None]:
    """A forged SYN's options: (the Miresga option's 20 bytes, (TSval, ts_base) of its
    timestamp trailer or None). OptionError when the layout is neither form."""
    if len(options) == LENGTH:
        return bytes(options), None
    if len(options) == LENGTH + TS_TRAILER_LENGTH and options[LENGTH:LENGTH + 4] == TS_TRAILER:
        tsval, base = struct.unpack_from("!II", options, LENGTH + 4)
        return bytes(options[:LENGTH]), (tsval, base)
    raise OptionError(f"forged SYN options of {len(options)} bytes: want the Miresga option "
                      f"alone ({LENGTH}) or with a timestamp trailer "
                      f"({LENGTH + TS_TRAILER_LENGTH})")


def c_constants() -> list[tuple[str, int, str]]:
    """(NAME, value, meaning) for the generated C header."""
    return [
        ("MIRESGA_OPT_KIND", KIND, "TCP option kind (RFC 6994 experimental)"),
        ("MIRESGA_OPT_LEN", LENGTH, "option length in bytes"),
        ("MIRESGA_OPT_EXID", EXID, "experiment id, bytes 2..3"),
        ("MIRESGA_OPT_VERSION", VERSION, "high nibble of byte 4"),
        ("MIRESGA_OPT_F_SACK_OK", FLAG_SACK_OK, "client offered SACK"),
        ("MIRESGA_OPT_F_WSCALE_OK", FLAG_WSCALE_OK, "client offered window scaling"),
        ("MIRESGA_OPT_F_KEY_SLOT", FLAG_KEY_SLOT, "tag made with key slot 1 (else 0)"),
        ("MIRESGA_OPT_WSCALE_MAX", WSCALE_MAX, "largest legal window scale"),
        ("MIRESGA_OPT_TAG_OFF", TAG_OFFSET, "offset of the 8-byte tag"),
        ("MIRESGA_OPT_MSG_LEN", MSG_LENGTH, "bytes hashed for the tag"),
        ("MIRESGA_OPT_REWRITE_LEN", REWRITE_LENGTH, "standard option bytes written back"),
        ("MIRESGA_OPT_SHRINK", LENGTH - REWRITE_LENGTH, "bytes the SYN loses"),
        ("MIRESGA_OPT_TS_TRAILER_LEN", TS_TRAILER_LENGTH,
         "NOP,NOP,TS(8,10,TSval,ts_base) after the option"),
        ("MIRESGA_OPT_TS_KIND", TS_KIND, "RFC 7323 timestamps option kind"),
        ("MIRESGA_OPT_TS_LEN", TS_LENGTH, "timestamps option length"),
    ]
