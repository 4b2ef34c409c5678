"""Feature: FIN is forwarded both ways (half-close works) and ends the flow after a grace.

A FIN in either direction passes translated like any segment; the flow stays open for
data in the other direction (half-close). Once both FINs were seen, closed_ns is set; the
flow keeps translating during the grace period (the last ACKs), and the first packet after
it removes the flow and passes untouched.
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
    KEY,
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
from miresga_core.bpf.fixtures import UNCHANGED, PacketFixture, run_fixtures

pytestmark = pytest.mark.root


def flags_are(*names: str, closed: bool):
    def check(run: object, obj: BpfObject) -> None:
        f = AgentMaps.from_object(obj).flow(C, CPORT, B, BPORT)
        assert f is not None, "flow vanished too early"
        assert set(names) <= set(f.flags), f.flags
        assert bool(f.state["closed_ns"]) == closed, f.state["closed_ns"]
    return check


def test_half_close_then_close(agent: BpfObject, maps: AgentMaps) -> None:
    establish(agent)
    run_fixtures(agent, [
        PacketFixture("client FIN (half-close): translated, flow still open",
                      in_seg(BASE + 1, flags="FA"), XDP_PASS,
                      expected=in_seg(B_ISN + 1, flags="FA"),
                      check=flags_are("FIN_IN", closed=False), program=INGRESS),
        PacketFixture("backend keeps sending after the client's FIN",
                      out_seg(B_ISN + 1, b"more data", ack=1002), TC_ACT_OK,
                      expected=out_seg(BASE + 1, b"more data", ack=1002),
                      check=flags_are("FIN_IN", closed=False), program=EGRESS),
        PacketFixture("backend FIN: both FINs seen, closed_ns set",
                      out_seg(B_ISN + 10, flags="FA", ack=1002), TC_ACT_OK,
                      expected=out_seg(BASE + 10, flags="FA", ack=1002),
                      check=flags_are("FIN_IN", "FIN_OUT", closed=True), program=EGRESS),
        PacketFixture("last ACK inside the grace period is still translated",
                      in_seg(BASE + 11, seq=1002), XDP_PASS,
                      expected=in_seg(B_ISN + 11, seq=1002), program=INGRESS),
    ])
    c = maps.counters()
    assert (c["FIN_IN"], c["FIN_OUT"]) == (1, 1)
    # grace over: the next packet removes the flow and passes as it is
    maps.set_config((KEY, None), idle_timeout_s=60, grace_s=0.001)
    time.sleep(0.01)
    run_fixtures(agent, [PacketFixture("packet after the grace period: flow removed",
                                       in_seg(BASE + 11, seq=1002), XDP_PASS,
                                       expected=UNCHANGED, program=INGRESS)])
    assert maps.flows() == []
    assert maps.counters()["CLOSED_REMOVED"] == 1
