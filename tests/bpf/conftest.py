"""Fixtures for the libbpf wrapper tests: the selftest object, built and loaded once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from miresga_core.bpf import BpfObject, build_object


@pytest.fixture
def selftest() -> Iterator[BpfObject]:
    """A fresh load of native/xdp/selftest.bpf.c per test (so map state starts empty)."""
    with BpfObject.load_file(build_object("selftest")) as obj:
        yield obj
