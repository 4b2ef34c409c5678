"""The test kit loads as a pytest plugin (what the pytest11 entry point does when Miresga is
installed) and its fixtures work in a plugin author's test file."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

AUTHOR_TEST = '''
from miresga_http1 import Http1Parser

def test_uses_the_kit(mvm_equivalence):
    eq = mvm_equivalence(Http1Parser(), [("a", [("path", "exact", ["/a"], False)])])
    assert eq.check(b"GET /a HTTP/1.1\\r\\nHost: h\\r\\n\\r\\n").startswith("route decision=0")
    assert eq.check(b"GET /a HTTP/1.1\\r\\n") == "needmore"
'''


def test_entry_point_is_declared() -> None:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert meta["project"]["entry-points"]["pytest11"]["miresga"] == "miresga_core.testing"


def test_fixtures_work_in_an_author_test(tmp_path: Path) -> None:
    (tmp_path / "test_author.py").write_text(AUTHOR_TEST)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT), str(ROOT / "plugins" / "http1"), str(ROOT / "plugins" / "policies")]))
    # an installed Miresga loads the kit through its pytest11 entry point; a checkout
    # names the plugin explicitly, as a plugin author's conftest would not need to
    installed = any(ep.value == "miresga_core.testing"
                    for ep in importlib.metadata.entry_points(group="pytest11"))
    plugin = [] if installed else ["-p", "miresga_core.testing"]
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", *plugin,
                           "-p", "no:cacheprovider", "--rootdir", str(tmp_path), str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout
