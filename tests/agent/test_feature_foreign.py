"""Feature: traffic that is not Miresga's passes both hooks byte for byte.

Non-IPv4, non-TCP, IP with options, fragments, plain SYNs (no Miresga option), TCP of
unknown flows, and a SYN whose Miresga option is not in the position the protocol fixes.
"""

from __future__ import annotations

import pytest
from agent_pkts import BPORT, CPORT, EGRESS, INGRESS, MAC_B, MAC_C, TC_ACT_OK, XDP_PASS, B, C
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Raw

from miresga_core.agent.maps import AgentMaps
from miresga_core.bpf import BpfObject
from miresga_core.bpf.fixtures import UNCHANGED, PacketFixture, run_fixtures

pytestmark = pytest.mark.root

E = Ether(src=MAC_C, dst=MAC_B)
PACKETS = [
    ("ARP request", E / ARP(psrc=C, pdst=B)),
    ("IPv6 TCP", E / IPv6() / TCP(sport=CPORT, dport=BPORT, flags="S")),
    ("UDP", E / IP(src=C, dst=B) / UDP(sport=53, dport=53) / b"q"),
    ("ICMP echo", E / IP(src=C, dst=B) / ICMP()),
    ("plain SYN", E / IP(src=C, dst=B) / TCP(sport=CPORT, dport=BPORT, flags="S",
                                              options=[("MSS", 1460)])),
    ("TCP of an unknown flow", E / IP(src=C, dst=B) / TCP(sport=CPORT, dport=BPORT, flags="PA")
     / b"data"),
    ("IP with options", E / IP(src=C, dst=B, options=[b"\x01\x01\x01\x00"]) /
     TCP(sport=CPORT, dport=BPORT)),
    ("IP fragment", E / IP(src=C, dst=B, flags="MF") / TCP(sport=CPORT, dport=BPORT)),
    ("Miresga option after MSS (not the fixed layout)",
     E / IP(src=C, dst=B) / TCP(sport=CPORT, dport=BPORT, flags="S", dataofs=11) /
     Raw(bytes([2, 4, 5, 0xB4, 254, 20, 0x4D, 0x52]) + bytes(16))),
]


@pytest.mark.parametrize(("description", "packet"), PACKETS, ids=[p[0] for p in PACKETS])
def test_foreign_passes_untouched(agent: BpfObject, description: str, packet: object) -> None:
    run_fixtures(agent, [
        PacketFixture(f"{description}: XDP passes it untouched", packet, XDP_PASS,
                      expected=UNCHANGED, program=INGRESS),
        PacketFixture(f"{description}: tc passes it untouched", packet, TC_ACT_OK,
                      expected=UNCHANGED, program=EGRESS),
    ])
    maps = AgentMaps.from_object(agent)
    assert maps.flows() == []
    assert maps.counters()["PASS_FOREIGN"] == 2
