"""Offloaded flows: pure ACK -> backend (destination rewritten); payload -> front-end in
splice mode, -> backend in pin mode."""

from __future__ import annotations

import pytest
from scapy.layers.inet import IP, IPOption_NOP
from scapy.layers.l2 import Ether
from swtopo import BACKENDS, CLIENTS, FRONTENDS, SW_MAC, VIP, VPORT, client_port_for, rewritten, tcp

from miresga_core.bpf.fixtures import PacketFixture, run_fixtures
from miresga_core.dataplane.schema import OffloadModeId

pytestmark = pytest.mark.root

XDP_DROP, XDP_REDIRECT = 1, 4
CADDR, CMAC = CLIENTS[0]
BADDR, BMAC, BPORT = BACKENDS[1]


def _offload(sw, port, mode):
    sw.offload_add((CADDR, port), (VIP, VPORT), 1, (BADDR, BPORT), mode)


def test_splice_mode(sw):
    port = client_port_for(CADDR, 1, sw.buckets())
    _offload(sw, port, OffloadModeId.SPLICE)
    ack = tcp(CADDR, port, VIP, VPORT, "A", seq=2000, ack=9000, smac=CMAC)
    data = tcp(CADDR, port, VIP, VPORT, "PA", seq=2000, ack=9000, payload=b"GET /2 HTTP/1.1\r\n",
               smac=CMAC)
    rst = tcp(CADDR, port, VIP, VPORT, "R", seq=2000, smac=CMAC)
    run_fixtures(sw.obj, [
        PacketFixture("offloaded pure ACK -> backend 1: IP dst and TCP dport rewritten, "
                      "checksums updated incrementally", ack, XDP_REDIRECT,
                      expected=rewritten(ack, smac=SW_MAC, dmac=BMAC, ip_dst=BADDR,
                                         dport=BPORT)),
        PacketFixture("offloaded payload in splice mode -> the flow's front-end, unchanged IP",
                      data, XDP_REDIRECT,
                      expected=rewritten(data, smac=SW_MAC, dmac=FRONTENDS[1][1])),
        PacketFixture("RST in splice mode -> the front-end (it tears down the backend leg)",
                      rst, XDP_REDIRECT, expected=rewritten(rst, smac=SW_MAC,
                                                            dmac=FRONTENDS[1][1])),
    ], program="miresga_switch")
    assert sw.counter("to_backend") == 1 and sw.counter("offload_hit") == 3


def test_ip_options_are_carried_through_the_rewrite(sw):
    port = client_port_for(CADDR, 0, sw.buckets())
    _offload(sw, port, OffloadModeId.SPLICE)
    base = tcp(CADDR, port, VIP, VPORT, "A", seq=2000, ack=9000, smac=CMAC)
    ack = Ether(bytes(base[Ether].copy()))
    ack[IP].options = [IPOption_NOP()] * 4  # IHL 6: the TCP header moves by 4 bytes
    del ack[IP].ihl, ack[IP].len, ack[IP].chksum
    ack = Ether(bytes(ack))
    assert ack[IP].ihl == 6
    run_fixtures(sw.obj, [
        PacketFixture("pure ACK with IP options -> backend, options kept, checksums right",
                      ack, XDP_REDIRECT, expected=rewritten(ack, smac=SW_MAC, dmac=BMAC,
                                                            ip_dst=BADDR, dport=BPORT)),
    ], program="miresga_switch")


def test_pin_mode(sw):
    port = client_port_for(CADDR, 0, sw.buckets())
    _offload(sw, port, OffloadModeId.PIN)
    data = tcp(CADDR, port, VIP, VPORT, "PA", seq=3000, ack=9000, payload=b"x" * 300,
               smac=CMAC)
    fin = tcp(CADDR, port, VIP, VPORT, "FA", seq=3300, ack=9000, smac=CMAC)
    run_fixtures(sw.obj, [
        PacketFixture("payload in pin mode -> backend, destination rewritten", data,
                      XDP_REDIRECT, expected=rewritten(data, smac=SW_MAC, dmac=BMAC,
                                                       ip_dst=BADDR, dport=BPORT)),
        PacketFixture("FIN in pin mode -> backend", fin, XDP_REDIRECT,
                      expected=rewritten(fin, smac=SW_MAC, dmac=BMAC, ip_dst=BADDR,
                                         dport=BPORT)),
    ], program="miresga_switch")


def test_offload_remove_returns_flow_to_frontend(sw):
    port = client_port_for(CADDR, 0, sw.buckets())
    _offload(sw, port, OffloadModeId.SPLICE)
    sw.offload_remove((CADDR, port), (VIP, VPORT))
    ack = tcp(CADDR, port, VIP, VPORT, "A", smac=CMAC)
    run_fixtures(sw.obj, [PacketFixture("ACK after the offload was removed -> front-end", ack,
                                        XDP_REDIRECT,
                                        expected=rewritten(ack, smac=SW_MAC,
                                                           dmac=FRONTENDS[0][1]))],
                 program="miresga_switch")
    assert sw.maps["offload_rev"].lookup(bytes(12)) is None
    assert list(sw.maps["offload_rev"].keys()) == []


def test_backend_missing_drops(sw):
    port = client_port_for(CADDR, 0, sw.buckets())
    sw.offload_add((CADDR, port), (VIP, VPORT), 7, (BADDR, BPORT), OffloadModeId.SPLICE)
    ack = tcp(CADDR, port, VIP, VPORT, "A", smac=CMAC)
    run_fixtures(sw.obj, [PacketFixture("offload names an empty backend slot", ack, XDP_DROP)],
                 program="miresga_switch")
    assert sw.counter("no_backend") == 1
