"""Build BPF objects from source on demand (objects are never committed).

``build_object("agent")`` runs ``make -C native/xdp build/agent.bpf.o`` and returns the path.
make decides whether anything changed; an flock keeps two processes (parallel test
workers) from building into the same file at once.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

from ..errors import MiresgaError

__all__ = ["REPO_ROOT", "XDP_DIR", "BuildError", "build_object", "make_target"]

REPO_ROOT = Path(__file__).resolve().parents[2]
XDP_DIR = REPO_ROOT / "native" / "xdp"


class BuildError(MiresgaError):
    """A native build could not run or failed; the message says what to install or fix."""


def build_object(name: str, srcdir: Path = XDP_DIR, *, timeout: float = 300.0) -> Path:
    """Build ``<srcdir>/build/<name>.bpf.o`` with make and return its path."""
    if not srcdir.is_dir():
        raise BuildError(f"BPF sources not found at {srcdir}")
    return make_target(srcdir, Path("build") / f"{name}.bpf.o", ("make", "clang"),
                       "BPF objects are built from source (Debian: apt install clang llvm "
                       "libbpf-dev make, or run scripts/bootstrap.sh)", timeout)


def make_target(srcdir: Path, target: Path, tools: tuple[str, ...], needs: str,
                timeout: float = 300.0) -> Path:
    """``make -C srcdir target``, serialised between processes by a lock file (parallel
    tests build the same objects); ``needs`` says what to install when a tool is missing."""
    for tool in tools:
        if shutil.which(tool) is None:
            raise BuildError(f"`{tool}` is not installed: {needs}")
    (srcdir / "build").mkdir(exist_ok=True)
    lock = os.open(srcdir / "build" / ".lock", os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        proc = subprocess.run(["make", "-s", "-C", str(srcdir), str(target)],
                              capture_output=True, text=True, timeout=timeout, check=False)
    finally:
        os.close(lock)
    if proc.returncode != 0:
        raise BuildError(f"building {srcdir.name}/{target} failed (make exit "
                         f"{proc.returncode}):\n{proc.stdout}{proc.stderr}".rstrip())
    return srcdir / target
