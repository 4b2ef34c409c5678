"""Feature: RST passes (translated) and closes the flow at once; removal after the grace.

A RST from either side is forwarded translated (the peer must accept it: its seq has to be
in the peer's space), sets F_RST and closed_ns. A RST from the backend before its SYN-ACK
(port closed) passes untouched.
"""

from __future__ import annotations

import time

import pytest
from agent_pkts import (
    B_ISN,
    BASE,
    EGRESS,
    INGRESS,
    KEY,
    TC_ACT_OK,
    XDP_PASS,
    establish,
    in_seg,
    miresga_syn,
    out_seg,
)

from miresga_core.agent.maps import AgentMaps
from miresga_core.bpf import BpfObject
from miresga_core.bpf.fixtures import UNCHANGED, PacketFixture, run_fixtures

pytestmark = pytest.mark.root


def test_backend_rst(agent: BpfObject, maps: AgentMaps) -> None:
    establish(agent)
    run_fixtures(agent, [PacketFixture("backend RST: seq translated, flow closed",
                                       out_seg(B_ISN + 1, flags="RA"), TC_ACT_OK,
                                       expected=out_seg(BASE + 1, flags="RA"),
                                       program=EGRESS)])
    f = maps.flows()[0]
    assert "RST" in f.flags and f.state["closed_ns"] > 0
    assert maps.counters()["RST"] == 1


def test_client_rst_then_grace(agent: BpfObject, maps: AgentMaps) -> None:
    establish(agent)
    maps.set_config((KEY, None), idle_timeout_s=60, grace_s=0.001)
    run_fixtures(agent, [PacketFixture("client RST: ack translated, flow closed",
                                       in_seg(BASE + 1, flags="RA"), XDP_PASS,
                                       expected=in_seg(B_ISN + 1, flags="RA"),
                                       program=INGRESS)])
    time.sleep(0.01)
    run_fixtures(agent, [PacketFixture("late backend segment after the grace: untouched",
                                       out_seg(B_ISN + 1, b"late"), TC_ACT_OK,
                                       expected=UNCHANGED, program=EGRESS)])
    assert maps.flows() == []


def test_backend_refuses_syn(agent: BpfObject, maps: AgentMaps) -> None:
    assert agent.program(INGRESS).test_run(bytes(miresga_syn())).retval == XDP_PASS
    run_fixtures(agent, [PacketFixture("RST answering the SYN (no SYN-ACK yet): untouched",
                                       out_seg(0, flags="RA"), TC_ACT_OK, expected=UNCHANGED,
                                       program=EGRESS)])
    assert "RST" in maps.flows()[0].flags
