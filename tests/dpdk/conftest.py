"""C front-end tests: tracegen and fe_world importable; the library built once."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "frontend"))


@pytest.fixture(scope="session")
def libmfe():
    import ctypes

    from miresga_core.dpdk import build
    return ctypes.CDLL(str(build.library()))
