"""Packets as bytes (scapy) through native/p4's parser, ingress and deparser, with tables
written by TofinoSwitch: checksums, rewrites, the SYN-ACK, ARP, recirculation."""

from __future__ import annotations

import time

import pytest
from fake_bfrt import FakeSwitch
from p4wire import WireError, process
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Raw, raw

from miresga_core import cookie
from miresga_core.dataplane import names
from miresga_core.dataplane.driver import rebalance
from miresga_core.dataplane.schema import OffloadModeId
from miresga_core.dataplane.tofino import TofinoSwitch

VIP = ("10.0.0.100", 80)
VIP_MAC = "02:00:00:00:00:64"
FE = "10.1.0.1"
BACKEND = ("10.2.0.1", 8080)
CLIENT = ("198.51.100.7", 40000)
IN_PORT = 5
KEY = bytes(range(1, 9))
LINUX_SYN_OPTS = [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (1, 0)), ("NOP", None),
                  ("WScale", 7)]


@pytest.fixture(params=[1, 2], ids=["tofino1", "tofino2"])
def fake(request):
    f = FakeSwitch(target=request.param)
    sw = TofinoSwitch(bfrt=f.client, switch_clock_ns=lambda: 5 << 36)
    sw.set_vip(*VIP, mac=VIP_MAC, mss=1400, window=65535, wscale=9)
    sw.set_route("10.1.0.0/16", 11, smac="02:00:00:00:00:01", dmac="02:00:00:00:01:01")
    sw.set_route("10.2.0.0/16", 12, smac="02:00:00:00:00:01", dmac="02:00:00:00:02:01")
    sw.set_route("0.0.0.0/0", 10, smac="02:00:00:00:00:01", dmac="02:00:00:00:00:fe")
    sw.set_frontend(0, FE)
    sw.set_backend(0, *BACKEND)
    sw.set_frontends(rebalance(None, [0]), drain=False)
    sw.set_cookie_secret(KEY)
    f.driver = sw
    return f


def _checksums_ok(p: Ether) -> None:
    fixed = p.copy()
    del fixed[IP].chksum
    if TCP in fixed:
        del fixed[TCP].chksum
    fixed = Ether(raw(fixed))
    assert p[IP].chksum == fixed[IP].chksum, "IPv4 header checksum"
    if TCP in p:
        assert p[TCP].chksum == fixed[TCP].chksum, "TCP checksum"


def _send(fake, pkt, port=IN_PORT, tstamp=(5 << 36) + 777):
    out, egress, passes, m = process(fake, raw(pkt), port=port, tstamp=tstamp)
    return (Ether(out) if out is not None else None), egress, passes, m


def _tcp(src, dst, flags, payload=b"", **kw):
    return (Ether(src="02:00:00:00:aa:01", dst="02:00:00:00:00:01")
            / IP(src=src[0], dst=dst[0], id=7) / TCP(sport=src[1], dport=dst[1],
                                                      flags=flags, **kw) / Raw(payload))


def test_syn_becomes_a_syn_ack_on_the_wire(fake):
    syn = _tcp(CLIENT, VIP, "S", seq=0x01020304, options=LINUX_SYN_OPTS)
    p, egress, passes, _m = _send(fake, syn)
    assert passes == 8 and egress == 10
    _checksums_ok(p)
    assert (p[IP].src, p[IP].dst, p[TCP].sport, p[TCP].dport) == (VIP[0], CLIENT[0], 80, 40000)
    assert p[TCP].flags == "SA" and p[TCP].ack == 0x01020305 and p[IP].len == 52
    assert p[TCP].options == [("MSS", 1400), ("NOP", None), ("NOP", None), ("SAckOK", b""),
                              ("NOP", None), ("WScale", 9)]
    slot = cookie.slot_at(time.time_ns())
    info = cookie.validate(cookie.CookieSecrets(KEY), p[TCP].seq, *CLIENT, *VIP, slot)
    assert info is not None and (info.mss, info.wscale, info.sack) == (1460, 7, True)
    assert p[Ether].dst == "02:00:00:00:00:fe"


def test_syn_without_options(fake):
    p, _egress, _passes, _m = _send(fake, _tcp(CLIENT, VIP, "S"))
    _checksums_ok(p)
    assert p[TCP].options == [("MSS", 1400)] + [("NOP", None)] * 8
    info = cookie.validate(cookie.CookieSecrets(KEY), p[TCP].seq, *CLIENT, *VIP,
                           cookie.slot_at(time.time_ns()))
    assert info is not None and (info.mss, info.wscale, info.sack) == (536, None, False)


def test_unknown_option_ends_the_walk(fake):
    """The parser stops at an option kind it does not know: what follows is not seen."""
    opts = [(30, b"\x00\x00"), ("MSS", 1460), ("WScale", 3)]
    p, *_ = _send(fake, _tcp(CLIENT, VIP, "S", options=opts))
    _checksums_ok(p)
    info = cookie.validate(cookie.CookieSecrets(KEY), p[TCP].seq, *CLIENT, *VIP,
                           cookie.slot_at(time.time_ns()))
    assert info is not None and (info.mss, info.wscale) == (536, None)


def test_offloaded_ack_is_rewritten_to_the_backend(fake):
    fake.driver.offload_add(CLIENT, VIP, 0, BACKEND, OffloadModeId.SPLICE)
    ack = _tcp(CLIENT, VIP, "A", seq=5000, ack=9000,
               options=[("NOP", None), ("NOP", None), ("Timestamp", (10, 20))])
    p, egress, *_ = _send(fake, ack)
    assert egress == 12
    _checksums_ok(p)
    assert (p[IP].dst, p[TCP].dport, p[IP].src, p[TCP].sport) == (*BACKEND, *CLIENT)
    assert p[TCP].options == ack[TCP].options and (p[TCP].seq, p[TCP].ack) == (5000, 9000)


def test_backend_response_is_rewritten_to_the_vip(fake):
    fake.driver.offload_add(CLIENT, VIP, 0, BACKEND, OffloadModeId.SPLICE)
    body = bytes(range(256)) * 5 + b"x"  # odd length: the checksum's last byte is padded
    resp = _tcp(BACKEND, CLIENT, "PA", body, seq=77, ack=88)
    p, egress, *_ = _send(fake, resp)
    assert egress == 10
    _checksums_ok(p)
    assert (p[IP].src, p[TCP].sport) == VIP and p[Raw].load == body


def test_backend_syn_ack_goes_to_the_frontend_despite_an_offload(fake):
    # an orphaned offload of the same client port (its front-end died, or the port was
    # reused): the SYN-ACK answers the new connection's forged SYN, the front-end's
    fake.driver.offload_add(CLIENT, VIP, 0, BACKEND, OffloadModeId.SPLICE)
    synack = _tcp(BACKEND, CLIENT, "SA", seq=77, ack=88)
    p, egress, *_ = _send(fake, synack)
    assert egress == 11 and p[Ether].dst == "02:00:00:00:01:01"
    assert raw(p[IP]) == raw(synack[IP])


def test_client_payload_goes_to_the_frontend_untouched(fake):
    fake.driver.offload_add(CLIENT, VIP, 0, BACKEND, OffloadModeId.SPLICE)
    req = _tcp(CLIENT, VIP, "PA", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", seq=1, ack=2)
    p, egress, *_ = _send(fake, req)
    assert egress == 11 and p[Ether].dst == "02:00:00:00:01:01"
    assert raw(p[IP]) == raw(req[IP])  # L2 forwarding: IP and TCP bytes unchanged


def test_arp_for_a_vip_is_answered_out_of_the_ingress_port(fake):
    req = Ether(src="02:00:00:00:aa:01", dst="ff:ff:ff:ff:ff:ff") / ARP(
        op=1, hwsrc="02:00:00:00:aa:01", psrc="10.0.0.1", pdst=VIP[0])
    p, egress, *_ = _send(fake, req)
    assert egress == IN_PORT
    assert (p[ARP].op, p[ARP].hwsrc, p[ARP].psrc) == (2, VIP_MAC, VIP[0])
    assert (p[ARP].hwdst, p[ARP].pdst, p[Ether].dst) == ("02:00:00:00:aa:01", "10.0.0.1",
                                                         "02:00:00:00:aa:01")
    other = Ether(dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, psrc="10.0.0.1", pdst="10.0.0.99")
    _p, egress, *_ = _send(fake, other)
    assert egress == int(fake.prog.defines["CPU_PORT"])


def test_other_ip_is_routed_unchanged(fake):
    for l4 in (UDP(sport=1, dport=53) / Raw(b"q"), ICMP()):
        pkt = Ether() / IP(src="10.9.0.1", dst="10.2.3.4") / l4
        p, egress, *_ = _send(fake, pkt)
        assert egress == 12 and raw(p[IP]) == raw(pkt[IP])
    assert fake.driver.counters()["routed"][0] == 2


def test_truncated_tcp_header_is_a_parser_error(fake):
    data = raw(_tcp(CLIENT, VIP, "A"))[:14 + 20 + 10]
    with pytest.raises(WireError, match="too short"):
        process(fake, data, port=IN_PORT)


def test_syn_during_a_change_enters_the_bloom_filter(fake):
    fake.driver.set_frontend(1, "10.1.0.2")
    fake.driver.set_frontends(rebalance(None, [1]))
    _send(fake, _tcp(CLIENT, VIP, "S", options=LINUX_SYN_OPTS))
    assert sum(bin(v).count("1") for v in fake.registers[names.BLOOM].values()) in (1, 2)
    p, egress, *_ = _send(fake, _tcp(CLIENT, VIP, "A", seq=1, ack=2))
    assert egress == 11  # the new front-end (10.1.0.2) via the 10.1/16 route
    _checksums_ok(p)
