"""Fixtures for the agent tests: a fresh agent object per test, config written."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from agent_pkts import KEY

from miresga_core.agent.maps import AgentMaps
from miresga_core.bpf import BpfObject, build_object


@pytest.fixture
def agent() -> Iterator[BpfObject]:
    """native/xdp/agent.bpf.c loaded (not attached), keyed with KEY in slot 0."""
    with BpfObject.load_file(build_object("agent")) as obj:
        AgentMaps.from_object(obj).set_config((KEY, None), idle_timeout_s=60, grace_s=5)
        yield obj


@pytest.fixture
def maps(agent: BpfObject) -> AgentMaps:
    return AgentMaps.from_object(agent)
