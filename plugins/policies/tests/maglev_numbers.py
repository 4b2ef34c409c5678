"""Maglev numbers over many keys, vectorised with numpy so 1e6 keys take well under a second.

``python plugins/policies/tests/maglev_numbers.py`` prints them; the tests assert on them.
The key hash here is a numpy transcription of ``miresga_policies.keyhash.key_hash``; a test
checks both agree on a sample, so the numbers are about the real policy.
"""

from __future__ import annotations

import time

import numpy as np
from miresga_policies.consistent_hash import ConsistentHash, MaglevOptions
from miresga_policies.keyhash import FNV32_OFFSET, FNV32_PRIME

from miresga_core import Address, Backend

__all__ = ["key_hashes", "keys", "measure", "slots"]


def keys(n: int) -> np.ndarray:
    """``n`` distinct fixed-width keys b"10.x.y.z"-like: b"k%09d" as a (n, 10) uint8 array."""
    text = np.char.mod("k%09d", np.arange(n)).astype("S10")
    return np.frombuffer(text.tobytes(), dtype=np.uint8).reshape(n, 10)


def key_hashes(data: np.ndarray) -> np.ndarray:
    """FNV-1a 32-bit of each row (``keyhash.key_hash``), vectorised over the keys."""
    h = np.full(data.shape[0], FNV32_OFFSET, dtype=np.uint64)
    prime, mask = np.uint64(FNV32_PRIME), np.uint64(0xFFFFFFFF)
    for col in range(data.shape[1]):
        h = ((h ^ data[:, col].astype(np.uint64)) * prime) & mask
    return h


def slots(hashes: np.ndarray, size: int) -> np.ndarray:
    return (hashes % np.uint64(size)).astype(np.int64)


def pool(n: int) -> list[Backend]:
    return [Backend(Address("10.0.0.1", 8000 + i), name=f"be-{i}", index=i) for i in range(n)]


def measure(n_backends: int = 10, n_keys: int = 1_000_000, size: int = 65537) -> dict[str, float]:
    t0 = time.perf_counter()
    backends = pool(n_backends)
    full = ConsistentHash(backends, MaglevOptions(table_size=size))
    build = time.perf_counter() - t0
    removed = n_backends // 2
    less = ConsistentHash([b for b in backends if b.index != removed],
                          MaglevOptions(table_size=size))
    s = slots(key_hashes(keys(n_keys)), size)
    before = np.asarray(full.index_table())[s]
    after = np.asarray(less.index_table())[s]
    counts = np.bincount(before, minlength=n_backends)
    mean = n_keys / n_backends
    moved = float(np.mean(before != after))
    own = float(np.mean(before == removed))
    moved_other = float(np.mean((before != after) & (before != removed)))
    slot_counts = np.bincount(np.asarray(full.index_table()), minlength=n_backends)
    return {"backends": n_backends, "keys": n_keys, "table_size": size,
            "build_seconds": build, "remapped_fraction": moved, "removed_share": own,
            "remapped_other_fraction": moved_other,
            "max_over_mean": float(counts.max() / mean),
            "min_over_mean": float(counts.min() / mean),
            "slots_max": int(slot_counts.max()), "slots_min": int(slot_counts.min())}


if __name__ == "__main__":
    for name, value in measure().items():
        print(f"{name:>24}: {value:.6g}" if isinstance(value, float) else f"{name:>24}: {value}")
