"""bpffs: make sure it is mounted, create and remove pin directories."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from ._libbpf import BpfError

__all__ = ["BPFFS", "ensure_bpffs", "is_bpffs", "remove_pin_dir", "unpin"]

BPFFS = Path("/sys/fs/bpf")
_BPF_FS_MAGIC = 0xCAFE4A11


def is_bpffs(path: Path = BPFFS) -> bool:
    """True when ``path`` is a mount point of bpffs (per /proc/self/mounts)."""
    want = os.path.realpath(path)
    with open("/proc/self/mounts") as mounts:
        return any(f.split()[1] == want and f.split()[2] == "bpf" for f in mounts if f.strip())


def ensure_bpffs(path: Path = BPFFS) -> None:
    """Mount bpffs at ``path`` unless it is mounted already (needs CAP_SYS_ADMIN)."""
    if is_bpffs(path):
        return
    path.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "bpf", "bpf", str(path)], capture_output=True,
                          text=True, check=False, timeout=10)
    if proc.returncode != 0 or not is_bpffs(path):
        raise BpfError(1, f"mount bpffs at {path}", proc.stderr.strip())


def unpin(path: str | os.PathLike[str]) -> bool:
    """Remove one pin (the object lives on while anything else references it)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


def remove_pin_dir(path: Path) -> None:
    """Unpin everything directly in ``path`` and remove it, then empty parents up to bpffs."""
    if not path.exists():
        return
    for entry in path.iterdir():
        entry.unlink()
    path.rmdir()
    parent = path.parent
    while parent != BPFFS and parent.is_relative_to(BPFFS) and not any(parent.iterdir()):
        parent.rmdir()
        parent = parent.parent
