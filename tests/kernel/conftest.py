"""Skip the tests marked root/netns when not running as root (CI runs as root)."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root (BPF syscalls)")
    for item in items:
        if ("root" in item.keywords or "netns" in item.keywords) and \
                "tests/kernel" in str(item.fspath):
            item.add_marker(skip)
