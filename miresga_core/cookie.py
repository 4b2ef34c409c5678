"""The Miresga SYN cookie: one definition for the switch (XDP, Tofino) and the front-ends.

Theory of operation
-------------------
The switch answers a client's SYN to a VIP itself, statelessly, with ISN = cookie. The
front-end that later receives the client's ACK checks ``ack - 1`` with ``validate`` and
learns what the switch saw in the SYN (MSS class, window scale, SACK) without any state.

Layout of the 32-bit cookie (most significant bit first)::

    31..30  slot     low 2 bits of the time slot (slot = unix_ns >> SLOT_SHIFT, ~68.7 s)
    29..28  mss      client MSS class: index into MSS_CLASSES (largest entry <= MSS)
    27..24  wscale   client's window scale 0..14, 15 = the SYN offered none
    23      sack     the SYN offered SACK-permitted
    22..0   hash     low 23 bits of HalfSipHash-2-4(key, message)

The message is 16 bytes, four little-endian 32-bit words::

    w0 = client IPv4 address (as an integer: 10.0.0.1 -> 0x0a000001)
    w1 = VIP address
    w2 = client_port << 16 | vip_port
    w3 = (slot & 0xffffff) << 8 | mss << 5 | wscale << 1 | sack

so the option bits are authenticated as well. HalfSipHash-2-4 (Aumasson & Bernstein's
32-bit SipHash variant, 64-bit key, 32-bit output) was chosen because it is a keyed PRF
built only from 32-bit add, rotate and xor: a dozen instructions per round in XDP, and the
ARX operations a Tofino pipeline has (Yoo & Chen, "Secure keyed hashing on programmable
switches", SPIN 2021). A keyed CRC was rejected: CRC is affine, so one cookie a client
legitimately receives lets it compute the cookie of any other tuple for the same slot and
key (docs/switch.md, "threat model").

Validation accepts the current and the previous slot, under the current and the previous
secret (the controller rotates secrets with ``CookieSecrets.rotate``): at most four hash
trials, so a blind guess succeeds with probability <= 4 / 2**23 = 2**-21.
"""

from __future__ import annotations

import ipaddress
import os
import struct
from dataclasses import dataclass

from .wire.siphash import halfsiphash24

__all__ = [
    "HASH_BITS",
    "MSS_CLASSES",
    "SLOT_SHIFT",
    "WSCALE_NONE",
    "CookieInfo",
    "CookieSecrets",
    "clock_base",
    "encode",
    "halfsiphash24",
    "key_words",
    "mss_class",
    "slot_at",
    "validate",
]

SLOT_SHIFT = 36  # slot length 2**36 ns = 68.7 s
SLOT_BITS = 2
MSS_BITS = 2
WSCALE_BITS = 4
SACK_BITS = 1
HASH_BITS = 23
SLOT_POS = 30
MSS_POS = 28
WSCALE_POS = 24
SACK_POS = 23
HASH_MASK = (1 << HASH_BITS) - 1
SLOT_MSG_MASK = 0xFFFFFF  # slot bits carried in the hashed message
MSS_CLASSES = (536, 1220, 1440, 1460)
WSCALE_NONE = 15
WSCALE_MAX = 14  # RFC 7323 2.3
KEY_BYTES = 8

assert SLOT_BITS + MSS_BITS + WSCALE_BITS + SACK_BITS + HASH_BITS == 32
assert len(MSS_CLASSES) == 1 << MSS_BITS


# ----------------------------------------------------------------------------- the hash

# HalfSipHash-2-4 lives with SipHash in wire/siphash.py (one ARX routine for both)
_M32 = 0xFFFFFFFF


# ----------------------------------------------------------------------------- the cookie


def _ip(addr: str | int) -> int:
    return addr if isinstance(addr, int) else int(ipaddress.IPv4Address(addr))


def mss_class(mss: int | None) -> int:
    """Class of a client's MSS option: the largest MSS_CLASSES entry <= mss (no option:
    536, the RFC 9293 default)."""
    if mss is None:
        return 0
    cls = 0
    for i, value in enumerate(MSS_CLASSES):
        if mss >= value:
            cls = i
    return cls


def _check_opts(mss_cls: int, wscale: int | None) -> int:
    if not 0 <= mss_cls < len(MSS_CLASSES):
        raise ValueError(f"MSS class {mss_cls} out of range 0..{len(MSS_CLASSES) - 1}")
    if wscale is None:
        return WSCALE_NONE
    # RFC 7323 2.3: a shift above 14 is used as 14
    return min(int(wscale), WSCALE_MAX) if wscale >= 0 else _bad_wscale(wscale)


def _bad_wscale(wscale: int) -> int:
    raise ValueError(f"window scale {wscale} is negative")


def message(client: str | int, client_port: int, vip: str | int, vip_port: int, slot: int,
            mss_cls: int, ws_code: int, sack: bool) -> bytes:
    """The 16 hashed bytes (see the module docstring)."""
    w3 = (slot & SLOT_MSG_MASK) << 8 | mss_cls << 5 | ws_code << 1 | int(bool(sack))
    return struct.pack("<IIII", _ip(client), _ip(vip),
                       (client_port & 0xFFFF) << 16 | (vip_port & 0xFFFF), w3)


def encode(key: bytes, client: str | int, client_port: int, vip: str | int, vip_port: int,
           slot: int, mss_cls: int, wscale: int | None, sack: bool) -> int:
    """The cookie (the SYN-ACK's ISN) for a SYN from client to vip in time slot ``slot``.

    ``wscale`` None means the SYN carried no window scale option."""
    ws_code = _check_opts(mss_cls, wscale)
    h = halfsiphash24(key, message(client, client_port, vip, vip_port, slot, mss_cls,
                                   ws_code, sack)) & HASH_MASK
    return ((slot & 3) << SLOT_POS | mss_cls << MSS_POS | ws_code << WSCALE_POS
            | int(bool(sack)) << SACK_POS | h)


@dataclass(frozen=True, slots=True)
class CookieInfo:
    """What a valid cookie tells the front-end about the client's SYN."""

    slot: int
    mss: int  # the MSS class's value
    wscale: int | None  # None: no window scaling on this connection
    sack: bool
    previous_secret: bool  # validated with the previous secret (rotation in progress)


@dataclass
class CookieSecrets:
    """The current and previous keys. ``rotate`` makes the current one previous."""

    current: bytes
    previous: bytes | None = None

    def __post_init__(self) -> None:
        for k in (self.current, self.previous):
            if k is not None and len(k) != KEY_BYTES:
                raise ValueError(f"cookie secret must be {KEY_BYTES} bytes, got {len(k)}")

    @classmethod
    def generate(cls) -> CookieSecrets:
        return cls(os.urandom(KEY_BYTES))

    def rotate(self, new: bytes | None = None) -> CookieSecrets:
        """A new key becomes current (random unless given); the old one still validates."""
        new = os.urandom(KEY_BYTES) if new is None else new
        return CookieSecrets(new, self.current)


def validate(secrets: CookieSecrets, cookie: int, client: str | int, client_port: int,
             vip: str | int, vip_port: int, now_slot: int) -> CookieInfo | None:
    """Check ``cookie`` (the client's ack - 1) against the current and previous slot and
    secret. Returns what the SYN offered, or None when the cookie is not valid."""
    cookie &= _M32
    code = cookie >> SLOT_POS
    mss_cls = cookie >> MSS_POS & 3
    ws_code = cookie >> WSCALE_POS & 0xF
    sack = bool(cookie >> SACK_POS & 1)
    if ws_code not in (WSCALE_NONE, *range(WSCALE_MAX + 1)):
        return None
    keys = [(secrets.current, False)]
    if secrets.previous is not None:
        keys.append((secrets.previous, True))
    for slot in (now_slot, now_slot - 1):
        if slot & 3 != code:
            continue
        for key, old in keys:
            msg = message(client, client_port, vip, vip_port, slot, mss_cls, ws_code, sack)
            if halfsiphash24(key, msg) & HASH_MASK == cookie & HASH_MASK:
                return CookieInfo(slot, MSS_CLASSES[mss_cls],
                                  None if ws_code == WSCALE_NONE else ws_code, sack, old)
    return None


# ----------------------------------------------------------------------------- clocks


def slot_at(unix_ns: int) -> int:
    """The time slot of a wall-clock time in nanoseconds."""
    return unix_ns >> SLOT_SHIFT


def clock_base(mono_ns: int, unix_ns: int) -> tuple[int, int]:
    """(base_slot, base_ns) for the switch's cookie_clock table, taken at one instant.

    The switch computes ``base_slot + ((mono - base_ns) >> SLOT_SHIFT)`` from its own
    monotonic clock; shifting base_ns back by the phase of the current slot makes its slot
    boundaries fall where the wall-clock ones do. A monotonic clock younger than the
    phase (the first minute after boot) cannot be aligned: the base is clamped to 0 and
    the switch's slots end early by the difference."""
    phase = unix_ns & ((1 << SLOT_SHIFT) - 1)
    return slot_at(unix_ns), max(0, mono_ns - phase)


def key_words(key: bytes) -> tuple[int, int]:
    """(k0, k1): the key as the two little-endian words the data plane tables hold. The
    all-zero key is refused: the switch treats it as "no secret set"."""
    if len(key) != KEY_BYTES:
        raise ValueError(f"cookie secret must be {KEY_BYTES} bytes, got {len(key)}")
    if not any(key):
        raise ValueError("the all-zero cookie secret is reserved for 'not set'")
    k0, k1 = struct.unpack("<II", key)
    return k0, k1
