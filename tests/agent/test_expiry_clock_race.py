"""A flow whose last_ns (or closed_ns) is later than the packet's ``now`` is not expired.

Ingress (XDP) and egress (tc) of one flow run on different CPUs: one may store last_ns
after the other read its clock. The difference must be taken signed; unsigned it wraps to
~2^64 and a busy flow was removed as idle in the middle of a transfer (seen in the lab:
downloads stalled, IDLE_REMOVED counted). Simulated by storing a last_ns in the future.
"""

from __future__ import annotations

import time

import pytest
from agent_pkts import (
    B_ISN,
    BASE,
    BPORT,
    CPORT,
    EGRESS,
    INGRESS,
    TC_ACT_OK,
    XDP_PASS,
    B,
    C,
    establish,
    in_seg,
    out_seg,
)

from miresga_core.agent.maps import AgentMaps
from miresga_core.bpf import BpfObject
from miresga_core.bpf.fixtures import PacketFixture, run_fixtures

pytestmark = pytest.mark.root


@pytest.mark.parametrize("field", ["last_ns", "closed_ns"])
def test_future_timestamp_is_not_expiry(agent: BpfObject, maps: AgentMaps, field: str) -> None:
    establish(agent)
    f = maps.flow(C, CPORT, B, BPORT)
    assert f is not None
    future = time.monotonic_ns() + 10**9  # "stored by the other CPU just after our now"
    maps.put_flow(C, CPORT, B, BPORT, **{**f.state, field: future})
    run_fixtures(agent, [
        PacketFixture("ingress still translates", in_seg(BASE + 1), XDP_PASS,
                      expected=in_seg(B_ISN + 1), program=INGRESS),
        PacketFixture("egress still translates", out_seg(B_ISN + 1), TC_ACT_OK,
                      expected=out_seg(BASE + 1), program=EGRESS),
    ])
    assert maps.flow(C, CPORT, B, BPORT) is not None
    assert maps.counters()["IDLE_REMOVED"] == 0 and maps.counters()["CLOSED_REMOVED"] == 0
