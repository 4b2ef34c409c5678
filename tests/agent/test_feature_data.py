"""Feature: data and ACKs are translated between the backend's and the switch's space.

Egress: seq -= delta (the payload, ack and everything else untouched). Ingress: ack +=
delta. Numbers wrap around 2^32 in these fixtures. Checksums are compared exactly
(scapy recomputes them for the expected packet). Before the SYN-ACK there is no delta,
and an ingress ACK then is dropped.
"""

from __future__ import annotations

import pytest
from agent_pkts import (
    B_ISN,
    BASE,
    EGRESS,
    INGRESS,
    TC_ACT_OK,
    XDP_DROP,
    XDP_PASS,
    establish,
    in_seg,
    miresga_syn,
    out_seg,
)

from miresga_core.agent.maps import AgentMaps
from miresga_core.bpf import BpfObject
from miresga_core.bpf.fixtures import PacketFixture, run_fixtures

pytestmark = pytest.mark.root

BODY = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello"


def test_request_and_response(agent: BpfObject) -> None:
    establish(agent)
    run_fixtures(agent, [
        PacketFixture("front-end's request: ack base+1 becomes backend ISN+1",
                      in_seg(BASE + 1, b"GET / HTTP/1.1\r\n\r\n", flags="PA"), XDP_PASS,
                      expected=in_seg(B_ISN + 1, b"GET / HTTP/1.1\r\n\r\n", flags="PA"),
                      program=INGRESS),
        PacketFixture("response segment: seq ISN+1 becomes base+1 (wraps to 0xffffff01)",
                      out_seg(B_ISN + 1, BODY, flags="PA"), TC_ACT_OK,
                      expected=out_seg(BASE + 1, BODY, flags="PA"), program=EGRESS),
        PacketFixture("segment past the wrap: seq ISN+0x200 becomes base+0x200",
                      out_seg(B_ISN + 0x200, BODY), TC_ACT_OK,
                      expected=out_seg(BASE + 0x200, BODY), program=EGRESS),
        PacketFixture("pure ACK from the client past the wrap",
                      in_seg(BASE + 0x300), XDP_PASS, expected=in_seg(B_ISN + 0x300),
                      program=INGRESS),
    ])
    c = AgentMaps.from_object(agent).counters()
    assert (c["IN_TRANSLATED"], c["OUT_TRANSLATED"]) == (2, 3)  # SYN-ACK counts on egress
    f = AgentMaps.from_object(agent).flows()[0]
    assert (f.state["pkts_in"], f.state["pkts_out"]) == (3, 3)


def test_ack_before_synack_is_dropped(agent: BpfObject) -> None:
    assert agent.program(INGRESS).test_run(bytes(miresga_syn())).retval == XDP_PASS
    run_fixtures(agent, [PacketFixture("ACK while delta is unknown: dropped",
                                       in_seg(BASE + 1), XDP_DROP, program=INGRESS)])
    assert AgentMaps.from_object(agent).counters()["IN_NO_DELTA"] == 1
