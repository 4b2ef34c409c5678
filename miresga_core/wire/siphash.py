"""SipHash-2-4 (Aumasson & Bernstein, 2012), the keyed MAC of the Miresga SYN option.

Reference implementation in Python; the BPF agent computes the same function in C
(``native/xdp/agent_siphash.h``) and tests check both against the paper's test vector.
"""

from __future__ import annotations

import struct

__all__ = ["siphash24"]

_M = 0xFFFFFFFFFFFFFFFF


def _rotl(x: int, b: int) -> int:
    return ((x << b) | (x >> (64 - b))) & _M


def _round(v0: int, v1: int, v2: int, v3: int) -> tuple[int, int, int, int]:
    v0 = (v0 + v1) & _M
    v1 = _rotl(v1, 13) ^ v0
    v0 = _rotl(v0, 32)
    v2 = (v2 + v3) & _M
    v3 = _rotl(v3, 16) ^ v2
    v0 = (v0 + v3) & _M
    v3 = _rotl(v3, 21) ^ v0
    v2 = (v2 + v1) & _M
    v1 = _rotl(v1, 17) ^ v2
    v2 = _rotl(v2, 32)
    return v0, v1, v2, v3


def siphash24(key: bytes, msg: bytes) -> int:
    """64-bit SipHash-2-4 of ``msg`` under a 16-byte ``key`` (words read little-endian)."""
    if len(key) != 16:
        raise ValueError(f"SipHash key must be 16 bytes, got {len(key)}")
    k0, k1 = struct.unpack("<QQ", key)
    v0, v1 = k0 ^ 0x736F6D6570736575, k1 ^ 0x646F72616E646F6D
    v2, v3 = k0 ^ 0x6C7967656E657261, k1 ^ 0x7465646279746573
    tail = len(msg) % 8
    body, rest = msg[:len(msg) - tail], msg[len(msg) - tail:]
    for (m,) in struct.iter_unpack("<Q", body):
        v3 ^= m
        v0, v1, v2, v3 = _round(*_round(v0, v1, v2, v3))
        v0 ^= m
    b = ((len(msg) & 0xFF) << 56) | int.from_bytes(rest, "little")
    v3 ^= b
    v0, v1, v2, v3 = _round(*_round(v0, v1, v2, v3))
    v0 ^= b
    v2 ^= 0xFF
    for _ in range(4):
        v0, v1, v2, v3 = _round(v0, v1, v2, v3)
    return v0 ^ v1 ^ v2 ^ v3
