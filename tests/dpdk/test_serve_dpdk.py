"""``miresga serve`` with the ``xdp`` data plane and ``frontend = "dpdk"``: the real CLI
starts the C/DPDK front-end (miresga-fe on an af_packet vdev in the front-end namespace),
real curl clients get their answers through switch -> C front-end -> agent -> backend,
offloads are applied, cookie rotation keeps working; and a machine without DPDK's
development files is told so clearly."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from miresga_core.lab.netns import netns_exists

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "xdp-lab.toml"
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(
    [str(ROOT), str(ROOT / "plugins" / "http1"), str(ROOT / "plugins" / "policies")])}


def test_missing_dpdk_is_said_clearly(tmp_path: Path) -> None:
    # a PATH without pkg-config: what a machine without libdpdk-dev looks like to us
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("make", "cc"):
        os.symlink(subprocess.run(["which", tool], capture_output=True, text=True)
                   .stdout.strip(), bindir / tool)
    r = subprocess.run([sys.executable, "-c",
                        "from miresga_core.dpdk import build; build.binary()"],
                       env={**ENV, "PATH": str(bindir)}, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode != 0
    assert "C/DPDK front-end is not built" in r.stderr and "libdpdk-dev" in r.stderr


@pytest.mark.root
@pytest.mark.netns
@pytest.mark.slow
def test_miresga_serve_xdp_with_dpdk_frontend(tmp_path: Path) -> None:
    from miresga_core.dpdk import build
    if not build.dpdk_available():
        pytest.skip("DPDK development files missing (libdpdk-dev)")
    text = EXAMPLE.read_text().replace('lab_prefix = "mx-"', 'lab_prefix = "mrd-"')
    text = text.replace("cookie_rotate_s = 60\n", "")
    text += f'run_dir = "{tmp_path / "run"}"\ncookie_rotate_s = 2\nfrontend = "dpdk"\n'
    cfg = tmp_path / "lab.toml"
    cfg.write_text(text)
    proc = subprocess.Popen([sys.executable, "-m", "miresga_core.cli", "serve", "-c", str(cfg)],
                            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 120
        for line in proc.stdout:  # type: ignore[union-attr]
            lines.append(line)
            if "xdp data plane serving" in line:
                break
            assert time.monotonic() < deadline, "serve did not come up"
        else:
            pytest.fail(f"serve exited: {proc.wait()}\n{''.join(lines)}")

        def curl(path: str) -> str:
            r = subprocess.run(["ip", "netns", "exec", "mrd-c0", "curl", "-sS", "-i",
                                "--max-time", "10", f"http://10.77.255.1{path}"],
                               capture_output=True, text=True, timeout=20, check=False)
            assert r.returncode == 0, r.stderr
            return r.stdout

        assert re.search(r"x-backend: b0", curl("/hello"), re.I)
        assert re.search(r"x-backend: b1", curl("/green/x"), re.I)
        time.sleep(4.5)  # two cookie rotations: new connections still validate
        for _ in range(5):
            assert re.search(r"x-backend: b0", curl("/after-rotation"), re.I)
        time.sleep(1.0)
        stats = json.loads((tmp_path / "run" / "mrd" / "frontend0.json").read_text())
        assert stats["frontend"] == "dpdk"
        m = stats["machine"]
        assert m["cookie_ok"] >= 7 and m["synack_ok"] >= 7 and m["offload"] >= 7
        assert stats["offload"].get("offload_applied", 0) >= 7
        # applied by miresga-fe itself (direct mode), none through the Python applier
        assert stats["offload_mode"] == "direct"
        assert stats["offload_direct"]["offload_applied"] >= 7
        assert stats["offload_direct"]["offload_failed"] == 0
        assert stats["offload_channel"].get("offload_applied", 0) == 0
        assert stats["shell"]["offload_msgs"] == 0 and stats["shell"]["hold_timeouts"] == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    assert proc.returncode == 0
    assert not any(netns_exists(f"mrd-{n}") for n in ("sw", "c0", "f0", "b0", "b1"))
    assert subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True).returncode == 1
