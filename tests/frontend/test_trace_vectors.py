"""The committed reference traces still hold: replayed through the machine (prototype
decider and compiled program), every output matches byte for byte."""

from __future__ import annotations

import pytest
from fe_traces import SCENARIOS, VECTORS
from fe_world import make_frontend

from miresga_core.frontend import trace


@pytest.mark.parametrize("name", sorted(SCENARIOS))
@pytest.mark.parametrize("prefer", ["prototype", "c"])
def test_reference_trace_replays(registry, name, prefer):
    events = trace.loads((VECTORS / f"{name}.jsonl").read_text())
    assert sum(len(e["out"]) for e in events) > 3
    assert trace.replay(make_frontend(registry, prefer=prefer), events) == []
