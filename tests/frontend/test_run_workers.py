"""The front-end processes' shared flags: ``--workers`` (``frontend_workers``) is the
C/DPDK front-end's lcore count; the Python front-end refuses more than one, clearly."""

from __future__ import annotations

import subprocess
import sys

ARGS = ["--config", "/nonexistent.toml", "--pin-dir", "/nonexistent",
        "--agent-secret-file", "/nonexistent", "--gateway-mac", "02:00:00:00:00:01"]


def test_python_frontend_refuses_several_workers():
    r = subprocess.run([sys.executable, "-m", "miresga_core.frontend.run", *ARGS,
                        "--workers", "2"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "runs one worker" in r.stderr and 'frontend = "dpdk"' in r.stderr


def test_dpdk_frontend_refuses_a_bad_worker_count():
    r = subprocess.run([sys.executable, "-m", "miresga_core.dpdk.run", *ARGS,
                        "--workers", "0"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--workers must be 1..32" in r.stderr
