"""Build the C front-end on demand (``make -C native/dpdk``), with clear errors.

The DPDK-free library (``libmfe.so``: state machine, wire formats, flow table, rule VM)
needs only a C compiler; the front-end binary (``miresga-fe``) needs DPDK's development
files, found with pkg-config (``libdpdk-dev``; scripts/bootstrap.sh installs it).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from ..errors import MiresgaError

__all__ = ["NATIVE", "BuildError", "binary", "dpdk_available", "library"]

NATIVE = Path(__file__).resolve().parents[2] / "native" / "dpdk"
BUILD = NATIVE / "build"


class BuildError(MiresgaError):
    """The C front-end could not be built; the message says what is missing."""


def _make(target: str) -> None:
    if shutil.which("make") is None or shutil.which("cc") is None:
        raise BuildError("building native/dpdk needs make and a C compiler (cc)")
    r = subprocess.run(["make", "-s", "-C", str(NATIVE), target], capture_output=True,
                       text=True, timeout=600)
    if r.returncode:
        raise BuildError(f"make -C native/dpdk {target} failed:\n{r.stderr[-4000:]}")


def library(asan: bool = False) -> Path:
    """Path of libmfe.so (or the ASan build), building it when missing or stale."""
    _make("asan" if asan else "lib")
    return BUILD / ("libmfe_asan.so" if asan else "libmfe.so")


def dpdk_available() -> bool:
    """True when pkg-config finds DPDK's development files."""
    if shutil.which("pkg-config") is None:
        return False
    return subprocess.run(["pkg-config", "--exists", "libdpdk"]).returncode == 0


def binary(asan: bool = False) -> Path:
    """Path of the DPDK front-end binary (``asan``: built with ASan + UBSan, for tests),
    building it; BuildError when DPDK is missing."""
    if not dpdk_available():
        raise BuildError("the C/DPDK front-end is not built: DPDK development files are "
                         "missing (pkg-config libdpdk failed). Install libdpdk-dev "
                         "(scripts/bootstrap.sh) or use frontend = \"python\"")
    _make("dpdk-asan" if asan else "dpdk")
    return BUILD / ("miresga-fe_asan" if asan else "miresga-fe")
