"""Hashes of the hashing policies.

``key_hash`` hashes a request's key (client address, header, cookie, path): it is FNV-1a
32-bit, exactly the rule VM's ``hash`` opcode, so a compiled form (``hash`` then ``tlook`` on
the Maglev table) picks what the Python form picks. ``perm_hash`` only places backends in
the Maglev table, which is built in Python and shipped to every VM as data, so it can be
stronger: FNV-1a 64-bit followed by murmur3's ``fmix64`` finaliser.
"""

from __future__ import annotations

__all__ = ["FNV32_OFFSET", "FNV32_PRIME", "MASK64", "fmix64", "key_hash", "perm_hash"]

MASK32 = (1 << 32) - 1
MASK64 = (1 << 64) - 1
FNV32_OFFSET, FNV32_PRIME = 0x811C9DC5, 0x01000193
FNV64_OFFSET, FNV64_PRIME = 0xCBF29CE484222325, 0x100000001B3


def key_hash(data: bytes) -> int:
    """FNV-1a 32-bit of ``data`` (the VM's ``hash`` op)."""
    h = FNV32_OFFSET
    for byte in data:
        h = ((h ^ byte) * FNV32_PRIME) & MASK32
    return h


def fmix64(h: int) -> int:
    """murmur3's 64-bit finaliser (every input bit flips each output bit with p ~ 1/2)."""
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & MASK64
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & MASK64
    h ^= h >> 33
    return h


def perm_hash(data: bytes, seed: int) -> int:
    """64-bit hash of a backend name; ``seed`` selects Maglev's offset or skip function."""
    h = FNV64_OFFSET ^ seed
    for byte in data:
        h = ((h ^ byte) * FNV64_PRIME) & MASK64
    return fmix64(h)
