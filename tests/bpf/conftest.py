"""Fixtures for the libbpf wrapper tests: the selftest object, built and loaded once."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from miresga_core.bpf import BpfObject, build_object


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Skip tests marked root/netns when not running as root (CI runs as root)."""
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root (BPF syscalls, namespaces)")
    for item in items:
        if "root" in item.keywords or "netns" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def selftest() -> Iterator[BpfObject]:
    """A fresh load of native/xdp/selftest.bpf.c per test (so map state starts empty)."""
    with BpfObject.load_file(build_object("selftest")) as obj:
        yield obj
