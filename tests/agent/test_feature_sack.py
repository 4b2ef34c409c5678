"""Feature: SACK blocks from the client are moved into the backend's sequence space.

Every edge of every block (1 to 4 blocks) gets + delta with the checksum kept right;
the SACK option may follow other options. A client that did not negotiate SACK gets its
(stray) SACK option left alone.
"""

from __future__ import annotations

import pytest
from agent_pkts import (
    B_ISN,
    BASE,
    INGRESS,
    XDP_PASS,
    establish,
    in_seg,
    opt,
)
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from miresga_core.agent.maps import AgentMaps
from miresga_core.bpf import BpfObject
from miresga_core.bpf.fixtures import PacketFixture, run_fixtures

pytestmark = pytest.mark.root


def blocks(base: int, n: int) -> list[tuple[int, int]]:
    return [(base + 3000 * (i + 1), base + 3000 * (i + 1) + 1448) for i in range(n)]


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_sack_blocks(agent: BpfObject, n: int) -> None:
    establish(agent)
    run_fixtures(agent, [PacketFixture(
        f"ACK with {n} SACK block(s): ack and every edge + delta",
        in_seg(BASE + 1, sack=blocks(BASE + 1, n)), XDP_PASS,
        expected=in_seg(B_ISN + 1, sack=blocks(B_ISN + 1, n)), program=INGRESS)])
    f = AgentMaps.from_object(agent).flows()[0]
    assert f.state["sack_rewrites"] == n


def with_timestamp_first(ack: int, edges: list[tuple[int, int]]) -> Ether:
    pkt = in_seg(ack)
    pkt[TCP].options = [("Timestamp", (1, 2)), ("NOP", None), ("NOP", None),
                        ("SAck", tuple(x & 0xFFFFFFFF for e in edges for x in e))]
    del pkt[IP].len, pkt[IP].chksum, pkt[TCP].chksum, pkt[TCP].dataofs
    return Ether(bytes(pkt))


def test_sack_after_other_options(agent: BpfObject) -> None:
    establish(agent)
    run_fixtures(agent, [PacketFixture(
        "SACK after a timestamp option is found and translated",
        with_timestamp_first(BASE + 1, blocks(BASE + 1, 2)), XDP_PASS,
        expected=with_timestamp_first(B_ISN + 1, blocks(B_ISN + 1, 2)), program=INGRESS)])


def test_sack_left_alone_without_negotiation(agent: BpfObject) -> None:
    establish(agent, opt(sack_permitted=False))
    run_fixtures(agent, [PacketFixture(
        "SACK option of a flow that did not negotiate SACK: only the ack moves",
        in_seg(BASE + 1, sack=blocks(BASE + 1, 1)), XDP_PASS,
        expected=in_seg(B_ISN + 1, sack=blocks(BASE + 1, 1)), program=INGRESS)])
