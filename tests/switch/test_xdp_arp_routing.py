"""ARP for the VIP is answered; traffic not for the VIP is routed normally."""

from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import ARP, Ether
from swtopo import BACKENDS, CLIENTS, OTHER, SW_MAC, VIP, rewritten, tcp

from miresga_core.bpf.fixtures import UNCHANGED, PacketFixture, run_fixtures

pytestmark = pytest.mark.root

XDP_DROP, XDP_PASS, XDP_TX, XDP_REDIRECT = 1, 2, 3, 4
CADDR, CMAC = CLIENTS[0]


def test_arp(sw):
    req = Ether(src=CMAC, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=CMAC, psrc=CADDR,
                                                       pdst=VIP)
    reply = Ether(src=SW_MAC, dst=CMAC) / ARP(op=2, hwsrc=SW_MAC, psrc=VIP, hwdst=CMAC,
                                              pdst=CADDR)
    other = Ether(src=CMAC, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=CMAC, psrc=CADDR,
                                                         pdst=OTHER[0])
    gratuitous_reply = Ether(src=CMAC, dst=SW_MAC) / ARP(op=2, hwsrc=CMAC, psrc=CADDR,
                                                         pdst=VIP)
    run_fixtures(sw.obj, [
        PacketFixture("ARP request for the VIP -> reply with the VIP MAC, sent back", req,
                      XDP_TX, expected=reply),
        PacketFixture("ARP request for another address -> the host's kernel", other, XDP_PASS,
                      expected=UNCHANGED),
        PacketFixture("ARP reply to the VIP -> the host's kernel", gratuitous_reply,
                      XDP_PASS, expected=UNCHANGED),
    ], program="miresga_switch")
    assert sw.counter("arp_reply") == 1 and sw.counter("arp_other") == 2


def test_non_vip_traffic_is_routed(sw):
    to_other = tcp(CADDR, 40000, OTHER[0], 80, "S", smac=CMAC)
    to_vip_other_port = tcp(CADDR, 40000, VIP, 81, "S", smac=CMAC)
    udp = Ether(src=CMAC, dst=SW_MAC) / IP(src=CADDR, dst=BACKENDS[0][0]) / UDP(dport=53) / b"q"
    ping = Ether(src=CMAC, dst=SW_MAC) / IP(src=CADDR, dst="192.0.2.1") / ICMP()
    run_fixtures(sw.obj, [
        PacketFixture("TCP SYN to a non-VIP host -> routed: MACs set, IP untouched", to_other,
                      XDP_REDIRECT, expected=rewritten(to_other, smac=SW_MAC, dmac=OTHER[1])),
        PacketFixture("TCP to the VIP address on a port with no service -> no route -> host",
                      to_vip_other_port, XDP_PASS, expected=UNCHANGED),
        PacketFixture("UDP to a backend address -> routed", udp, XDP_REDIRECT,
                      expected=bytes(Ether(src=SW_MAC, dst=BACKENDS[0][1]) /
                                     IP(bytes(udp[IP])))),
        PacketFixture("no route -> passed to the host", ping, XDP_PASS, expected=UNCHANGED),
    ], program="miresga_switch")
    assert sw.counter("routed") == 2 and sw.counter("route_miss") == 2
    assert sw.counter("synack") == 0


def test_longest_prefix_wins(sw):
    sw.set_route("192.0.2.0/24", 3, smac=SW_MAC, dmac="02:00:00:0a:00:24")
    sw.set_route("192.0.2.128/25", 4, smac=SW_MAC, dmac="02:00:00:0a:00:25")
    low = Ether(src=CMAC, dst=SW_MAC) / IP(src=CADDR, dst="192.0.2.1") / ICMP()
    high = Ether(src=CMAC, dst=SW_MAC) / IP(src=CADDR, dst="192.0.2.200") / ICMP()
    run_fixtures(sw.obj, [
        PacketFixture("192.0.2.1 matches only the /24", low, XDP_REDIRECT,
                      expected=bytes(Ether(src=SW_MAC, dst="02:00:00:0a:00:24") /
                                     IP(bytes(low[IP])))),
        PacketFixture("192.0.2.200 matches the /25 too: the longer prefix wins", high,
                      XDP_REDIRECT, expected=bytes(Ether(src=SW_MAC, dst="02:00:00:0a:00:25") /
                                                   IP(bytes(high[IP])))),
    ], program="miresga_switch")


def test_malformed_and_foreign_frames(sw):
    ipv6 = Ether(src=CMAC, dst=SW_MAC, type=0x86DD) / (b"\x60" + bytes(39))
    truncated = bytes(tcp(CADDR, 1, VIP, 80, "A", smac=CMAC))[:40]
    bad_len = bytearray(bytes(tcp(CADDR, 1, VIP, 80, "A", smac=CMAC)))
    bad_len[16:18] = (1500).to_bytes(2, "big")  # IP total length past the frame
    run_fixtures(sw.obj, [
        PacketFixture("IPv6 -> host", ipv6, XDP_PASS, expected=UNCHANGED),
        PacketFixture("truncated TCP header -> dropped", truncated, XDP_DROP),
        PacketFixture("IP total length past the frame -> dropped", bytes(bad_len), XDP_DROP),
        PacketFixture("IPv4 ethertype and nothing after the Ethernet header -> dropped",
                      bytes(Ether(src=CMAC, dst=SW_MAC, type=0x0800)), XDP_DROP),
    ], program="miresga_switch")
    assert sw.counter("malformed") == 3
    c = sw.counters()
    assert c["rx"][0] == 4 and c["xdp_drop"][0] == 3 and c["xdp_pass"][0] == 1
