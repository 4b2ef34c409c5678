"""The C/DPDK front-end with two lcores in the lab (client -> XDP switch -> miresga-fe ->
agent -> nginx): many connections through the VIP are answered correctly, both lcores
own flows, and frames that the af_packet fanout put on the other lcore's queue are
handed over (the counters say so). Bounded: one wrk run of 3 s, a few curls."""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Iterator

import pytest
import xdplab

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.slow]
PREFIX = "mrl-"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[xdplab.XdpLab]:
    from miresga_core.dpdk import build
    if os.geteuid() != 0:
        pytest.skip("needs root")
    if not build.dpdk_available():
        pytest.skip("DPDK development files missing (libdpdk-dev)")
    saved = xdplab.PREFIX, xdplab.config_text
    base = xdplab.config_text

    def text(*args, **kw):  # type: ignore[no-untyped-def]
        return (base(*args, **kw).replace(f'lab_prefix = "{saved[0]}"', f'lab_prefix = "{PREFIX}"')
                + 'frontend = "dpdk"\nfrontend_workers = 2\n')

    xdplab.PREFIX, xdplab.config_text = PREFIX, text
    try:
        lab = xdplab.XdpLab(tmp_path_factory.mktemp("mrl"))
        try:
            yield lab
        finally:
            lab.close()
    finally:
        xdplab.PREFIX, xdplab.config_text = saved


def _lcores(lab: xdplab.XdpLab) -> list[dict[str, int]]:
    time.sleep(0.7)  # stats are written every 0.5 s
    return lab.fe_stats(0).get("lcores", [])


def test_answers_through_two_lcores(lab: xdplab.XdpLab) -> None:
    r = lab.curl(*(["/whoami", "/green/whoami"] * 10))
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().split() == ["b0", "b1"] * 10
    want = hashlib.sha256((lab.www / "1m").read_bytes()).hexdigest()
    r = lab.client(["sh", "-c", f"curl -sS --max-time 30 http://{xdplab.VIP}/1m | sha256sum"],
                   timeout=40)
    assert r.stdout.decode().split()[0] == want


def test_many_connections_use_both_lcores_and_the_ring(lab: xdplab.XdpLab) -> None:
    before = _lcores(lab)
    assert len(before) == 2, lab.fe_stats(0)
    r = lab.client(["wrk", "-t2", "-c64", "-d3s", "--timeout", "3s",
                    f"http://{xdplab.VIP}/whoami"], timeout=30)
    out = r.stdout.decode()
    assert r.returncode == 0, out + r.stderr.decode()
    assert int(re.search(r"(\d+) requests in", out).group(1)) > 100, out
    assert "Socket errors" not in out and "Non-2xx" not in out, out
    after = _lcores(lab)
    new_flows = [a["cookie_ok"] - b["cookie_ok"] for a, b in zip(after, before, strict=True)]
    # 64 connections: each lcore accepted some (a 1 in 2**63 chance to fail by luck)
    assert all(n > 0 for n in new_flows) and sum(new_flows) >= 64, after
    handed = sum(a["steer_out"] - b["steer_out"] for a, b in zip(after, before, strict=True))
    taken = sum(a["steer_in"] - b["steer_in"] for a, b in zip(after, before, strict=True))
    assert handed > 0 and taken > 0, after
    assert all(a["steer_drop"] == 0 for a in after), after
    # every lcore wrote its own flows' offloads to the switch maps (direct mode), none
    # went through the Python applier
    applied = [a["offload_applied"] - b["offload_applied"]
               for a, b in zip(after, before, strict=True)]
    assert all(n > 0 for n in applied) and all(a["offload_failed"] == 0 for a in after), after
    stats = lab.fe_stats(0)
    assert stats["offload_mode"] == "direct", stats
    assert stats["offload_channel"].get("offload_applied", 0) == 0, stats
    print(f"wrk: {out.splitlines()[-2]}; lcores after: {after}")
