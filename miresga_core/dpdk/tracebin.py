"""Traces (frontend.trace events) as the binary input of ``mfe_replay``, and the digest
the C tool prints for a run, computed from the reference's recorded outputs."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path
from typing import Any

from .cfe import encode_actions

__all__ = ["digest", "replay_tool", "write"]

_FNV_OFFSET, _FNV_PRIME, _M64 = 0xCBF29CE484222325, 0x100000001B3, (1 << 64) - 1


def write(path: Path, events: list[dict[str, Any]]) -> int:
    """Write the inputs of ``events``; the number of packets."""
    out = bytearray()
    n = 0
    for e in events:
        if e.get("expire"):
            out += struct.pack("<BqI", 1, e["t"], 0)
        else:
            raw = bytes.fromhex(e["in"])
            out += struct.pack("<BqI", 0, e["t"], len(raw)) + raw
            n += 1
    path.write_bytes(bytes(out))
    return n


def _fnv(h: int, data: bytes) -> int:
    for b in data:
        h = ((h ^ b) * _FNV_PRIME) & _M64
    return h


def digest(outputs: list[list[Any]]) -> str:
    """What mfe_replay prints for these per-call outputs (lists of reference actions)."""
    h = _FNV_OFFSET
    for actions in outputs:
        rec = encode_actions(actions)
        h = _fnv(_fnv(h, struct.pack("<I", len(rec))), rec)
    return f"{h:016x}"


def replay_tool(tool: Path, config: Path, trace: Path, repeat: int = 1,
                shards: int = 1) -> dict[str, str]:
    """mfe_replay's answer as a dict (``digest`` or ``digest<i>`` per shard, ``packets``,
    ``pps``)."""
    r = subprocess.run([str(tool), str(config), str(trace), str(repeat), str(shards)],
                       capture_output=True, text=True, timeout=600, check=False)
    if r.returncode:
        raise RuntimeError(f"mfe_replay failed: {r.stderr}")
    parts = r.stdout.split()
    return dict(zip(parts[::2], parts[1::2], strict=True))
