"""Fixtures for the switch tests: a freshly loaded switch per test, configured with the
topology of swtopo.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from miresga_core.dataplane.xdp import XdpSwitch


@pytest.fixture
def sw() -> Iterator[XdpSwitch]:
    import swtopo

    switch = XdpSwitch.load()
    try:
        swtopo.configure(switch)
        yield switch
    finally:
        switch.close()


@pytest.fixture
def obj(sw: XdpSwitch):
    return sw.obj
