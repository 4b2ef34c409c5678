"""Fixtures for the bytecode tests: the C VM built from source (mvm_run, ASan build, _mvm)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
VM_DIR = ROOT / "native" / "dpdk" / "vm"
VECTORS = ROOT / "tests" / "vectors"


def _make(target: str, build: Path) -> None:
    subprocess.run(["make", "-s", "-C", str(VM_DIR), f"BUILD={build}", target], check=True,
                   timeout=300, capture_output=True)


@pytest.fixture(scope="session")
def mvm_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    build = tmp_path_factory.mktemp("mvm")
    _make("all", build)
    return build / "mvm_run"


@pytest.fixture(scope="session", params=["all", "portable"])
def mvm_run_any(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """mvm_run with computed-goto dispatch, and with the portable switch."""
    build = tmp_path_factory.mktemp(f"mvm_{request.param}")
    _make(request.param, build)
    return build / ("mvm_run" if request.param == "all" else "mvm_run_switch")


@pytest.fixture(scope="session")
def mvm_run_asan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    build = tmp_path_factory.mktemp("mvm_asan")
    _make("asan", build)
    return build / "mvm_run_asan"
