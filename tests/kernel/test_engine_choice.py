"""``engine = "auto"`` (the default): the native workers when the config allows them, the
Python engine otherwise, with the reason (what `serve` logs and `miresga check` prints)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from miresga_core.config import parse_config
from miresga_core.kernel import native
from miresga_core.kernel.master import Master
from miresga_core.kernel.plugin import KernelOptions, choose_engine
from miresga_core.plugins import get_plugin_manager, registry_from

BASE = """
{dataplane}
[[listeners]]
name = "web"
listen = "127.0.0.1:1"
protocol = "{protocol}"
default_pool = "web"
[pools.web]
policy = "{policy}"
{options}
backends = [{{ address = "127.0.0.1:2" }}, {{ address = "127.0.0.1:3" }}]
"""


@pytest.fixture(scope="module")
def registry():
    return registry_from(get_plugin_manager())


def _choose(registry, dataplane: str = "", protocol: str = "http1",
            policy: str = "round-robin", options: str = "") -> tuple[str, str]:
    text = BASE.format(dataplane=dataplane, protocol=protocol, policy=policy, options=options)
    config = parse_config(text, registry)
    choice = choose_engine(config, registry, config.dataplane.options or KernelOptions())
    return choice.engine, choice.reason


def test_default_is_auto():
    assert KernelOptions().engine == "auto"


def test_plain_http1_config_gets_the_native_workers(registry):
    assert _choose(registry) == ("native",
                                 "every listener is HTTP/1 with a compiled rule program")


@pytest.mark.parametrize(("kwargs", "reason"), [
    ({"protocol": "http2"}, "HTTP/1 listeners only"),
    ({"dataplane": '[dataplane.kernel]\nsplice = "sockmap"'}, "splice = 'sockmap'"),
    ({"dataplane": '[dataplane.kernel]\nsplice = "relay"'}, "splice = 'relay'"),
    ({"dataplane": '[dataplane.kernel]\nrules = "prototype"'}, "rules = 'prototype'"),
    ({"policy": "consistent-hash", "options": 'options = { key = "cookie:session" }'},
     "compiled form of the pool's policy"),
])
def test_what_only_the_python_engine_does_keeps_it(registry, kwargs, reason):
    engine, why = _choose(registry, **kwargs)
    assert engine == "python" and reason in why, why


def test_explicit_engine_is_kept(registry):
    assert _choose(registry, '[dataplane.kernel]\nengine = "python"') == ("python", "configured")


@pytest.mark.parametrize("dataplane", ["", '[dataplane.kernel]\nengine = "native"'])
def test_the_master_runs_the_worker_built_once(registry, tmp_path, monkeypatch, dataplane):
    """``auto`` builds the native worker and compiles the rule programs to know it runs
    here, and hands both to the master; a configured ``native`` leaves them to the master.
    Either way: one build, one compilation, and the master runs what it gave."""
    fake = tmp_path / "miresga-kw"
    fake.write_text("#!/bin/sh\nexit 0\n")  # passes the master's --check of the plan
    fake.chmod(0o755)
    builds = []
    monkeypatch.setattr(native, "build_worker", lambda: builds.append(fake) or fake)
    checks = []
    check_native = native.check_native
    monkeypatch.setattr(native, "check_native",
                        lambda *a: checks.append(1) or check_native(*a))
    config = parse_config(BASE.format(dataplane=dataplane, protocol="http1",
                                      policy="round-robin", options=""), registry)
    choice = choose_engine(config, registry, config.dataplane.options or KernelOptions())
    master = Master(config, registry, 1, False, engine=choice.engine, binary=choice.binary,
                    programs=choice.programs)
    assert master.native is not None
    shutil.rmtree(Path(master.native[1]).parent)
    for sock in master.listen_socks.values():
        sock.close()
    assert choice.engine == "native" and builds == [fake] and master.native[0] == fake
    assert checks == [1]


def test_check_prints_the_engine(tmp_path: Path):
    conf = tmp_path / "lb.toml"
    conf.write_text(BASE.format(dataplane="", protocol="http2", policy="round-robin",
                                options=""))
    out = subprocess.run([sys.executable, "-m", "miresga_core.cli", "check", "-c", str(conf)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "engine python: the native engine cannot serve this config" in out.stdout
