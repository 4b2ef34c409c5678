"""SipHash-2-4 and HalfSipHash-2-4 (Aumasson & Bernstein): the keyed MACs of Miresga.

SipHash-2-4 (64-bit words) tags the Miresga SYN option; HalfSipHash-2-4 (32-bit words) is
the SYN cookie's hash, cheap enough for XDP and a Tofino pipeline. Both are one ARX
construction that differs only in word size, rotation amounts, initial constants and
output folding, so one routine computes both. The C versions are
``native/xdp/agent_siphash.h`` and ``native/xdp/switch_cookie.h``; tests check all of them
against the published test vectors.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = ["halfsiphash24", "siphash24"]


@dataclass(frozen=True)
class _Variant:
    bits: int  # word size
    rot: tuple[int, int, int, int, int, int]  # v1, v0, v3, v3, v1, v2 rotations of a round
    init: tuple[int, int, int, int]  # constants XOR-ed into k0, k1, k0, k1
    key_format: str

    @property
    def mask(self) -> int:
        return (1 << self.bits) - 1


_SIP = _Variant(64, (13, 32, 16, 21, 17, 32),
                (0x736F6D6570736575, 0x646F72616E646F6D, 0x6C7967656E657261, 0x7465646279746573),
                "<QQ")
_HALF = _Variant(32, (5, 16, 8, 7, 13, 16), (0, 0, 0x6C796765, 0x74656462), "<II")


def _sip24(var: _Variant, key: bytes, msg: bytes) -> tuple[int, int, int, int]:
    mask, bits = var.mask, var.bits
    r1, r0, r3a, r3b, r1b, r2 = var.rot

    def rotl(x: int, b: int) -> int:
        return ((x << b) | (x >> (bits - b))) & mask

    def rounds(v: list[int], n: int) -> None:
        v0, v1, v2, v3 = v
        for _ in range(n):
            v0 = (v0 + v1) & mask
            v1 = rotl(v1, r1) ^ v0
            v0 = rotl(v0, r0)
            v2 = (v2 + v3) & mask
            v3 = rotl(v3, r3a) ^ v2
            v0 = (v0 + v3) & mask
            v3 = rotl(v3, r3b) ^ v0
            v2 = (v2 + v1) & mask
            v1 = rotl(v1, r1b) ^ v2
            v2 = rotl(v2, r2)
        v[:] = [v0, v1, v2, v3]

    k0, k1 = struct.unpack(var.key_format, key)
    c0, c1, c2, c3 = var.init
    v = [k0 ^ c0, k1 ^ c1, k0 ^ c2, k1 ^ c3]
    width = bits // 8
    full = len(msg) - len(msg) % width
    word = var.key_format[:1] + var.key_format[1]
    for (m,) in struct.iter_unpack(word, msg[:full]):
        v[3] ^= m
        rounds(v, 2)
        v[0] ^= m
    last = ((len(msg) & 0xFF) << (bits - 8)) | int.from_bytes(msg[full:], "little")
    v[3] ^= last
    rounds(v, 2)
    v[0] ^= last
    v[2] ^= 0xFF
    rounds(v, 4)
    return v[0], v[1], v[2], v[3]


def siphash24(key: bytes, msg: bytes) -> int:
    """64-bit SipHash-2-4 of ``msg`` under a 16-byte ``key`` (words read little-endian)."""
    if len(key) != 16:
        raise ValueError(f"SipHash key must be 16 bytes, got {len(key)}")
    v0, v1, v2, v3 = _sip24(_SIP, key, msg)
    return v0 ^ v1 ^ v2 ^ v3


def halfsiphash24(key: bytes, msg: bytes) -> int:
    """HalfSipHash-2-4 with 32-bit output, as the little-endian integer of the reference
    implementation's 4 output bytes, under an 8-byte ``key``."""
    if len(key) != 8:
        raise ValueError(f"HalfSipHash key must be 8 bytes, got {len(key)}")
    _, v1, _, v3 = _sip24(_HALF, key, msg)
    return v1 ^ v3
