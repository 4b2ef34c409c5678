"""Make this plugin importable from a source checkout that did not install it."""

from __future__ import annotations

import sys
from pathlib import Path

_SRC = str(Path(__file__).resolve().parents[1])
if _SRC not in sys.path:
    sys.path.insert(0, _SRC)


import subprocess  # noqa: E402

import pytest  # noqa: E402

_VM = Path(__file__).resolve().parents[3] / "native" / "dpdk" / "vm"


@pytest.fixture(scope="session")
def mvm_asan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """mvm_run built with ASan+UBSan from source (as tests/unit/bytecode does)."""
    build = tmp_path_factory.mktemp("mvm_asan")
    subprocess.run(["make", "-s", "-C", str(_VM), f"BUILD={build}", "asan"], check=True,
                   timeout=300, capture_output=True)
    return build / "mvm_run_asan"
