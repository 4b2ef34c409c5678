"""The committed C headers match what their Python source of truth renders now."""

from __future__ import annotations

import subprocess
import sys

from miresga_core.bpf.build import REPO_ROOT
from miresga_core.wire import gen_headers


def test_committed_headers_are_fresh() -> None:
    bad = gen_headers.stale()
    assert not bad, (f"stale generated headers {bad}: run "
                     "`python3 -m miresga_core.wire.gen_headers` and commit")


def test_check_mode_exit_code() -> None:
    proc = subprocess.run([sys.executable, "-m", "miresga_core.wire.gen_headers", "--check"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == 0, proc.stderr


def test_stale_copy_is_detected(tmp_path, monkeypatch) -> None:
    # a header whose committed text differs from the render is reported
    fake = tmp_path / "x.h"
    fake.write_text("/* edited by hand */\n")
    monkeypatch.setattr(gen_headers, "render", lambda: {fake: "/* generated */\n"})
    assert gen_headers.stale() == [fake]


def test_generated_header_mentions_every_counter() -> None:
    from miresga_core.agent.shared import COUNTERS

    text = (REPO_ROOT / "native/xdp/agent_shared.h").read_text()
    for i, name in enumerate(COUNTERS.names):
        assert f"CNT_{name} = {i}," in text
