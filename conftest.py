"""Shared fixtures. Tests needing root/namespaces are marked and skipped when not root."""

from __future__ import annotations

import os

import pytest

from miresga_core.plugins import Registry, get_plugin_manager, registry_from


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root (CI runs as root)")
    for item in items:
        if "root" in item.keywords or "netns" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def pm():
    """A fresh plugin manager with the built-in and installed plugins."""
    return get_plugin_manager()


@pytest.fixture
def registry(pm) -> Registry:
    return registry_from(pm)
