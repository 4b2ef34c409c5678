"""One test per hook, each through a real plugin distribution on sys.path (dist-info with an
entry point), loaded by the same code path as any third-party plugin."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
import textwrap

import pytest

from miresga_core.config import parse_config
from miresga_core.health import HealthChecker
from miresga_core.plugins import get_plugin_manager, registry_from

PLUGIN = textwrap.dedent('''
    from dataclasses import dataclass
    from miresga_core import FieldSpec, NeedMore, ParserPlugin, Policy, hookimpl
    from miresga_core.config import opt

    EVENTS = []

    class Line(ParserPlugin):
        name = "line"
        def __init__(self, max_head=1024):
            pass
        @classmethod
        def fields(cls):
            return (FieldSpec("word", "first word"),)
        def parse_head(self, data):
            return NeedMore()
        def new_session(self, ctx):
            raise NotImplementedError

    class First(Policy):
        name = "always-first"
        def pick(self, request, client, exclude=frozenset()):
            return next((b for b in self.backends if b.index not in exclude), None)

    class Flaky:
        kind = "flaky"
        async def probe(self, backend, settings):
            EVENTS.append(("probe", backend.label))
            return "always fails"

    @dataclass(frozen=True)
    class NullOptions:
        exit_code: int = opt(0)

    class Null:
        name = "null"
        options = NullOptions
        def run(self, config, manager, registry):
            EVENTS.append(("run", config.dataplane.options.exit_code))
            return config.dataplane.options.exit_code

    @hookimpl
    def miresga_add_parsers():
        return [Line]

    @hookimpl
    def miresga_add_policies():
        return [First]

    @hookimpl
    def miresga_add_health_checks():
        return [Flaky]

    @hookimpl
    def miresga_add_dataplanes():
        return [Null]

    @hookimpl
    def miresga_configure(config):
        EVENTS.append(("configure", config.file))

    @hookimpl
    def miresga_unconfigure(config):
        EVENTS.append(("unconfigure", config.file))
''')

CONFIG = textwrap.dedent('''
    [dataplane]
    kind = "null"
    [dataplane.null]
    exit_code = 7
    [[listeners]]
    listen = "127.0.0.1:1"
    protocol = "line"
    [[listeners.routes]]
    pool = "p"
    match = { word = "PING" }
    [pools.p]
    policy = "always-first"
    backends = [{ address = "127.0.0.1:2", name = "only" }]
    health = { kind = "flaky", interval = 0.01, fall = 1 }
''')


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    (tmp_path / "miresga_hooktest.py").write_text(PLUGIN)
    dist = tmp_path / "miresga_hooktest-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: miresga-hooktest\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[miresga]\nhooktest = miresga_hooktest\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("miresga_hooktest", None)
    yield importlib.import_module("miresga_hooktest")
    sys.modules.pop("miresga_hooktest", None)


@pytest.fixture
def config(plugin):
    return parse_config(CONFIG, registry_from(get_plugin_manager()), file="hook.toml")


def test_hook_miresga_add_parsers(plugin, config):
    assert config.listeners[0].protocol == "line"
    assert config.listeners[0].routes[0].match[0].field == "word"  # the parser's own field


def test_hook_miresga_add_policies(plugin, config):
    from miresga_core.routing import PoolState

    state = PoolState(config.pools["p"], plugin.First)
    assert state.pick(None, None, frozenset(), 0.0).label == "only"


def test_hook_miresga_add_health_checks(plugin, config):
    changes = []

    async def run():
        checker = HealthChecker(config, registry_from(get_plugin_manager()),
                                lambda *change: changes.append(change))
        tasks = checker.start()
        await asyncio.sleep(0.1)
        for task in tasks:
            task.cancel()

    asyncio.run(run())
    assert ("probe", "only") in plugin.EVENTS
    assert changes and changes[0] == ("p", 0, False)


def test_hook_miresga_add_dataplanes(plugin, config):
    assert config.dataplane.kind == "null" and config.dataplane.options.exit_code == 7


def _serve(plugin, tmp_path):
    from miresga_core.cli_serve import cmd_serve

    path = tmp_path / "hook.toml"
    path.write_text(CONFIG)
    return cmd_serve(argparse.Namespace(config=str(path), demo_backends=False)), str(path)


def test_hook_miresga_configure(plugin, tmp_path):
    code, path = _serve(plugin, tmp_path)
    assert code == 7
    assert plugin.EVENTS.index(("configure", path)) < plugin.EVENTS.index(("run", 7))


def test_hook_miresga_unconfigure(plugin, tmp_path):
    _, path = _serve(plugin, tmp_path)
    assert plugin.EVENTS[-1] == ("unconfigure", path)
