"""``miresga serve -c <lab config>`` with ``dataplane = "xdp"``: the real CLI, end to end."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from miresga_core.bpf.build import REPO_ROOT
from miresga_core.config import parse_config
from miresga_core.lab.netns import netns_exists
from miresga_core.plugins import get_plugin_manager, registry_from

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.slow]

EXAMPLE = REPO_ROOT / "examples" / "xdp-lab.toml"


def test_example_config_is_valid() -> None:
    registry = registry_from(get_plugin_manager())
    config = parse_config(EXAMPLE.read_text(), registry, file=str(EXAMPLE))
    assert config.dataplane.kind == "xdp" and config.dataplane.options.demo_backends


def test_bad_xdp_options_are_refused_with_their_line() -> None:
    registry = registry_from(get_plugin_manager())
    text = EXAMPLE.read_text().replace('lab_prefix = "mx-"', 'lab_prefix = "BAD"')
    with pytest.raises(Exception) as info:
        parse_config(text, registry, file="x.toml")
    assert "lab_prefix" in str(info.value) and "x.toml" in str(info.value)


def test_miresga_serve_xdp_lab(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    text = EXAMPLE.read_text().replace('lab_prefix = "mx-"', 'lab_prefix = "mrf-"')
    text += f'run_dir = "{tmp_path / "run"}"\ncookie_rotate_s = 2\n'
    text = text.replace("cookie_rotate_s = 60\n", "")
    cfg = tmp_path / "lab.toml"
    cfg.write_text(text)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO_ROOT), str(REPO_ROOT / "plugins" / "http1"),
         str(REPO_ROOT / "plugins" / "policies")])}
    proc = subprocess.Popen([sys.executable, "-m", "miresga_core.cli", "serve", "-c", str(cfg)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        deadline = time.monotonic() + 90
        for line in proc.stdout:  # type: ignore[union-attr]
            if "xdp data plane serving" in line:
                break
            assert time.monotonic() < deadline, "serve did not come up"
        else:
            pytest.fail(f"serve exited: {proc.wait()}")

        def curl(path: str) -> str:
            r = subprocess.run(["ip", "netns", "exec", "mrf-c0", "curl", "-sS", "-i",
                                "--max-time", "10", f"http://10.77.255.1{path}"],
                               capture_output=True, text=True, timeout=20, check=False)
            assert r.returncode == 0, r.stderr
            return r.stdout

        assert re.search(r"x-backend: b0", curl("/hello"), re.I)
        assert re.search(r"x-backend: b1", curl("/green/x"), re.I)
        time.sleep(4.5)  # two cookie rotations: new connections still validate
        for _ in range(5):
            assert re.search(r"x-backend: b0", curl("/after-rotation"), re.I)
        # the running controller sweeps closed flows out of the agents (grace 2 s)
        from miresga_core.lab.spec import LabSpec
        from miresga_core.xdpdp.agents import agent_maps

        pins = LabSpec(prefix="mrf-").pin_dir
        deadline = time.monotonic() + 15
        while True:
            counts = []
            for ns in ("mrf-b0", "mrf-b1"):
                maps = agent_maps(pins, ns)
                try:
                    counts.append(len(maps.flows()))
                finally:
                    maps.close()
            if counts == [0, 0] or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert counts == [0, 0]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    assert proc.returncode == 0
    assert not any(netns_exists(f"mrf-{n}") for n in ("sw", "c0", "f0", "b0", "b1"))
