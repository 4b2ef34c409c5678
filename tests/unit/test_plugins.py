from __future__ import annotations

import types

import pytest

from miresga_core import hookimpl
from miresga_core.api import Policy
from miresga_core.errors import PluginError
from miresga_core.plugins import get_plugin_manager, plugin_infos, registry_from


def test_builtins_come_through_the_entry_point_group(pm):
    names = {name for name, _ in pm.list_name_plugin()}
    assert {"http1", "policies", "miresga_core.kernel.plugin"} <= names
    infos = {i.name: i for i in plugin_infos(pm)}
    assert infos["http1"].distribution == "miresga"
    assert "miresga_add_parsers" in infos["http1"].hooks
    reg = registry_from(pm)
    assert "http1" in reg.parsers and "round-robin" in reg.policies and "kernel" in reg.dataplanes


def test_unknown_hook_is_refused_at_startup():
    bogus = types.SimpleNamespace(miresga_add_parsrs=hookimpl(lambda: []))
    with pytest.raises(PluginError, match="miresga_add_parsrs"):
        get_plugin_manager(extra=[bogus])


def test_hook_with_arguments_the_spec_lacks_is_refused():
    bad = types.SimpleNamespace(miresga_add_policies=hookimpl(lambda surprise: []))
    with pytest.raises(PluginError, match="surprise"):
        get_plugin_manager(extra=[bad])


def test_duplicate_names_are_refused():
    class Other(Policy):
        name = "round-robin"

        def pick(self, request, client, exclude=frozenset()):
            return None

    plugin = types.SimpleNamespace(miresga_add_policies=hookimpl(lambda: [Other]))
    with pytest.raises(PluginError, match="two policys are named 'round-robin'"):
        registry_from(get_plugin_manager(extra=[plugin]))


def test_broken_entry_point_reports_plugin_and_distribution(tmp_path, monkeypatch):
    """A real (installed-looking) distribution whose entry point module does not exist."""
    dist = tmp_path / "miresga_broken-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: miresga-broken\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[miresga]\nbroken = miresga_no_such_module\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError, match=r"plugin 'broken' \(distribution miresga-broken.*"
                                          r"failed to load.*No module named"):
        get_plugin_manager()
