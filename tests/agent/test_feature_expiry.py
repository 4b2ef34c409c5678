"""Feature: idle flows expire; the first packet after the idle timeout removes the flow.

The flow's last_ns is aged from user space (as if nothing had passed for a long time);
the next packet, either way, deletes the entry, counts IDLE_REMOVED and passes untouched.
The LRU map also evicts the least recently used flows when it is full.
"""

from __future__ import annotations

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
from miresga_core.agent.shared import MAX_FLOWS
from miresga_core.bpf import BpfObject
from miresga_core.bpf.fixtures import UNCHANGED, PacketFixture, run_fixtures

pytestmark = pytest.mark.root


def age(maps: AgentMaps) -> None:
    f = maps.flow(C, CPORT, B, BPORT)
    assert f is not None
    maps.put_flow(C, CPORT, B, BPORT, **{**f.state, "last_ns": 1})


@pytest.mark.parametrize("direction", ["ingress", "egress"])
def test_idle_flow_expires(agent: BpfObject, maps: AgentMaps, direction: str) -> None:
    establish(agent)
    run_fixtures(agent, [PacketFixture("active flow translates", in_seg(BASE + 1), XDP_PASS,
                                       expected=in_seg(B_ISN + 1), program=INGRESS)])
    age(maps)  # idle for (uptime - 1ns) > 60 s timeout
    fx = (PacketFixture("ingress after idle timeout: removed, untouched", in_seg(BASE + 1),
                        XDP_PASS, expected=UNCHANGED, program=INGRESS)
          if direction == "ingress" else
          PacketFixture("egress after idle timeout: removed, untouched", out_seg(B_ISN + 1),
                        TC_ACT_OK, expected=UNCHANGED, program=EGRESS))
    run_fixtures(agent, [fx])
    assert maps.flows() == []
    assert maps.counters()["IDLE_REMOVED"] == 1


def test_flows_map_is_lru() -> None:
    from miresga_core.bpf import build_object

    with BpfObject.load_file(build_object("agent")) as obj:
        flows = obj.map("flows")
        assert flows.type == 9  # BPF_MAP_TYPE_LRU_HASH
        assert flows.max_entries == MAX_FLOWS


def test_sweep_removes_what_no_packet_will(agent: BpfObject, maps: AgentMaps) -> None:
    # flows that never see another packet: user space removes them with the BPF rule
    import time

    now = time.monotonic_ns()
    maps.put_flow("10.0.0.1", 1, B, BPORT, last_ns=now)  # active: stays
    maps.put_flow("10.0.0.2", 2, B, BPORT, last_ns=now - 61 * 10**9)  # idle > 60 s
    maps.put_flow("10.0.0.3", 3, B, BPORT, last_ns=now, closed_ns=now - 6 * 10**9)  # > grace
    maps.put_flow("10.0.0.4", 4, B, BPORT, last_ns=now, closed_ns=now - 10**9)  # in grace
    assert maps.sweep() == {"closed": 1, "idle": 1}
    assert sorted(f.client for f in maps.flows()) == ["10.0.0.1", "10.0.0.4"]
