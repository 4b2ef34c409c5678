"""The key hash of the hashing policies: FNV-1a 64 followed by the murmur3 ``fmix64``.

FNV-1a is a byte loop any VM can run; ``fmix64`` spreads its weak low bits so that ``h %
prime`` is uniform. The same function must be used by every form of a policy (Python,
compiled tables, the C VM), so it is defined once here and documented in docs/policies.md.
"""

from __future__ import annotations

__all__ = ["FNV_OFFSET", "FNV_PRIME", "MASK64", "fmix64", "key_hash"]

MASK64 = (1 << 64) - 1
FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3


def fmix64(h: int) -> int:
    """murmur3's 64-bit finaliser (every input bit flips each output bit with p ~ 1/2)."""
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & MASK64
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & MASK64
    h ^= h >> 33
    return h


def key_hash(data: bytes, seed: int = 0) -> int:
    """64-bit hash of ``data``; ``seed`` selects independent functions (Maglev's h1/h2)."""
    h = FNV_OFFSET ^ seed
    for byte in data:
        h = ((h ^ byte) * FNV_PRIME) & MASK64
    return fmix64(h)
