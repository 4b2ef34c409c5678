"""Every end-to-end test of the packet-level front-end (tests/frontend/test_lab_e2e.py:
real curl/wrk clients, nginx backends, XDP switch, agents) with ``frontend = "dpdk"``,
on one lcore and on two (``frontend_workers = 2``: two shards, steering between them)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("workers", [1, 2])
def test_frontend_lab_suite_with_the_c_frontend(workers: int) -> None:
    from miresga_core.dpdk import build
    if not build.dpdk_available():
        pytest.skip("DPDK development files missing (libdpdk-dev)")
    build.binary()
    paths = [ROOT, ROOT / "plugins/http1", ROOT / "plugins/policies", ROOT / "tests/frontend",
             ROOT / "tests/dpdk"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(map(str, paths)),
               MIRESGA_E2E_WORKERS=str(workers))
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "e2e_dpdk_plugin",
                        "-p", "no:cacheprovider", str(ROOT / "tests/frontend/test_lab_e2e.py")],
                       env=env, cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-2000:]
    assert " passed" in r.stdout and "skipped" not in r.stdout.splitlines()[-1]
