"""Flow hashes of the switch, in Python (the C side is native/xdp/switch_hash.h).

The client (address, port) is hashed as 6 bytes, address then port, network order:

* ``lb_bucket``: CRC-32 (IEEE, zlib.crc32) masked to the lb_index size picks the bucket;
* ``bloom_bits``: CRC-32C (Castagnoli); its low and high 16 bits are the two probes.

Both CRCs are standard (reflected, init/xorout 0xffffffff), which a Tofino hash unit
computes natively. They are load-spreading hashes, not keyed: see docs/switch.md.
"""

from __future__ import annotations

import ipaddress
import zlib

from .schema import BLOOM_BITS, LB_BUCKETS

__all__ = ["bloom_bits", "crc32c", "flow_bytes", "lb_bucket"]


def _table(poly: int) -> tuple[int, ...]:
    out = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ (poly if c & 1 else 0)
        out.append(c)
    return tuple(out)


_CRC32C = _table(0x82F63B78)


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc = _CRC32C[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def flow_bytes(addr: str | int, port: int) -> bytes:
    return ipaddress.IPv4Address(addr).packed + port.to_bytes(2, "big")


def lb_bucket(addr: str | int, port: int) -> int:
    """The lb_index bucket of a client."""
    return zlib.crc32(flow_bytes(addr, port)) & (LB_BUCKETS - 1)


def bloom_bits(addr: str | int, port: int) -> tuple[int, int]:
    """The two Bloom filter bit positions of a client."""
    h = crc32c(flow_bytes(addr, port))
    return h & (BLOOM_BITS - 1), (h >> 16) & (BLOOM_BITS - 1)
