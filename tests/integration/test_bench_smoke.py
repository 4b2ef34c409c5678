"""`miresga bench` for real, tiny: the kernel topology, direct and HAProxy, 1 KiB keep-alive,
HTTP/1.1 (wrk) and HTTP/2 (h2load), 1 s cells, one pass; the report files are written and
every cell served requests without errors. The figures themselves are not checked (speed
is measured by the benchmark, not by tests)."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from bench.harness import Options, run

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.slow]


def test_tiny_bench_writes_report(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    missing = [t for t in ("wrk", "h2load", "haproxy", "nginx") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"not installed: {missing} (scripts/bootstrap.sh installs them)")
    opts = Options(seconds=1, repeat=1, sections=["kernel"], only=["direct", "haproxy"],
                   objects=["1k"], modes=["keep-alive"], out_dir=tmp_path, prefix="mrt")
    rep = run(opts)
    got = {(s.protocol, s.target): s for s in rep.samples}
    assert set(got) == {("http1", "direct"), ("http1", "haproxy"), ("http2", "direct"),
                        ("http2", "haproxy")}, rep.skips
    for s in got.values():
        assert s.rps > 0 and s.errors == 0, s
    assert got[("http1", "haproxy")].cpu_us_per_req is not None
    assert got[("http1", "direct")].cpu_us_per_req is None
    assert set(got[("http2", "haproxy")].lat_ms) >= {"mean", "max"}
    md = (tmp_path / "latest.md").read_text()
    assert "### HTTP/1.1 (wrk), kernel topology" in md and "### HTTP/2" in md
    data = json.loads((tmp_path / "latest.json").read_text())
    assert len(data["samples"]) == 4 and data["passes"] == 1
    assert (tmp_path / "rps.png").stat().st_size > 0 and (tmp_path / "rps-h2.png").exists()
