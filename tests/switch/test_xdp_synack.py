"""SYN to a VIP -> SYN-ACK from the switch (XDP_TX) whose ISN is the Python cookie."""

from __future__ import annotations

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from swtopo import CLIENTS, KEY, SW_MAC, VIP, VIP_MSS, VIP_WINDOW, VIP_WSCALE, VPORT, slots_now, tcp

from miresga_core import cookie
from miresga_core.bpf.fixtures import PacketFixture, run_fixture

pytestmark = pytest.mark.root

XDP_DROP, XDP_TX = 1, 3
CADDR, CMAC = CLIENTS[0]
LINUX_SYN_OPTS = [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (12345, 0)), ("NOP", None),
                  ("WScale", 7)]


def synack(cport: int, client_seq: int, isn: int, *, ws: bool, sack: bool,
           tsval: int | None = None) -> bytes:
    """The SYN-ACK built independently of the C: scapy lays out the options we list."""
    opts = [("MSS", VIP_MSS), ("NOP", None)]
    opts += [("WScale", VIP_WSCALE)] if ws else [("NOP", None)] * 3
    opts += [("NOP", None), ("NOP", None)]
    opts += [("SAckOK", b"")] if sack else [("NOP", None)] * 2
    if tsval is not None:  # our TSval and the TSecr both echo the client's TSval
        opts += [("NOP", None), ("NOP", None), ("Timestamp", (tsval, tsval))]
    p = (Ether(src=SW_MAC, dst=CMAC) / IP(src=VIP, dst=CADDR, id=0, flags="DF", ttl=64) /
         TCP(sport=VPORT, dport=cport, flags="SA", seq=isn, ack=client_seq + 1,
             window=VIP_WINDOW, options=opts))
    return bytes(p)


def expected_synacks(cport, client_seq, mss, ws, sack, tsval=None):
    """The SYN-ACK for each slot the switch may be in during the test. The cookie does not
    depend on timestamps (the front-end learns them from the client's later segments)."""
    out = []
    for slot in slots_now():
        isn = cookie.encode(KEY, CADDR, cport, VIP, VPORT, slot, cookie.mss_class(mss), ws,
                            sack)
        out.append((isn, synack(cport, client_seq, isn, ws=ws is not None, sack=sack,
                                tsval=tsval)))
    return out


SYNACK_LEN, SYNACK_TS_LEN = 66, 78  # 12 option bytes; 24 with NOP,NOP,TS

CASES = [
    ("Linux SYN (MSS 1460, SACK, TS, WS 7): SYN-ACK offers MSS 1400, WS, SACK, TS",
     LINUX_SYN_OPTS, 1460, 7, True, 12345),
    ("SYN without options: only MSS in the SYN-ACK (RFC 7323 1.3, RFC 2018 2)",
     [], None, None, False, None),
    ("SYN with MSS and SACK but no window scale: no WS in the SYN-ACK",
     [("MSS", 1220), ("SAckOK", b"")], 1220, None, True, None),
    ("SYN with WS 14 only", [("WScale", 14)], None, 14, False, None),
    ("SYN with TS only, TSval with the top bit set: echoed unchanged",
     [("Timestamp", (0xFEDCBA98, 0))], None, None, False, 0xFEDCBA98),
    ("Linux SYN without TS: the 12-byte SYN-ACK of old",
     [("MSS", 1460), ("SAckOK", b""), ("NOP", None), ("WScale", 7)], 1460, 7, True, None),
]


@pytest.mark.parametrize("desc,opts,mss,ws,sack,tsval", CASES,
                         ids=[c[0][:40] for c in CASES])
def test_syn_gets_cookie_synack(sw, desc, opts, mss, ws, sack, tsval):
    syn = tcp(CADDR, 40001, VIP, VPORT, "S", seq=0x11223344, options=opts, smac=CMAC)
    wants = expected_synacks(40001, 0x11223344, mss, ws, sack, tsval)

    def check(run, obj):
        assert len(run.data) == (SYNACK_LEN if tsval is None else SYNACK_TS_LEN)
        assert run.data in [w for _isn, w in wants], (
            f"SYN-ACK differs from the expected ones; ISN {TCP(run.data[34:]).seq:#x}, "
            f"cookies {[hex(i) for i, _ in wants]}")

    run_fixture(sw.obj, PacketFixture(desc, syn, XDP_TX, check=check), program="miresga_switch")
    isn = Ether(run_fixture(sw.obj, PacketFixture(desc, syn, XDP_TX),
                            program="miresga_switch").data)[TCP].seq
    info = cookie.validate(cookie.CookieSecrets(KEY), isn, CADDR, 40001, VIP, VPORT,
                           slots_now()[0])
    assert info is not None and info.wscale == ws and info.sack == sack
    assert sw.counter("synack") == 2
    assert sw.counter("synack_ts") == (0 if tsval is None else 2)


def test_synack_without_ts_is_unchanged():
    """The 12-byte SYN-ACK is pinned to its bytes before timestamps existed: a frame of a
    SYN without TS must not change (66 bytes, doff 8, these options)."""
    want = synack(40001, 0x11223344, 0x01020304, ws=True, sack=True)
    assert len(want) == SYNACK_LEN and Ether(want)[TCP].dataofs == 8
    assert want[54:] == bytes.fromhex("02040578" "01030307" "01010402")
    ts = synack(40001, 0x11223344, 0x01020304, ws=True, sack=True, tsval=0xFEDCBA98)
    assert len(ts) == SYNACK_TS_LEN and Ether(ts)[TCP].dataofs == 11
    assert ts[54:] == want[54:] + bytes.fromhex("0101080a" "fedcba98" "fedcba98")


def ts_syn(cport: int, ts_len: int) -> bytes:
    """A SYN whose timestamps option (kind 8) says length ``ts_len`` instead of 10."""
    syn = tcp(CADDR, cport, VIP, VPORT, "S", seq=5, options=[("MSS", 1460),
              ("Timestamp", (777, 0))], smac=CMAC)
    raw = bytearray(bytes(syn))
    ts_at = 14 + 20 + 20 + 4  # after Ethernet, IP, TCP and the MSS option
    assert raw[ts_at] == 8 and raw[ts_at + 1] == 10
    raw[ts_at + 1] = ts_len
    return bytes(raw)


def test_syn_with_short_ts_option_gets_synack_without_ts(sw):
    """A kind-8 option of length 8 stays inside the option list: skipped like any option of
    the wrong length (as Linux does), so timestamps count as not offered."""
    wants = expected_synacks(40006, 5, 1460, None, False)
    run = run_fixture(sw.obj, PacketFixture("TS option of length 8: no TS in the SYN-ACK",
                                            ts_syn(40006, 8), XDP_TX),
                      program="miresga_switch")
    assert run.data in [w for _i, w in wants]
    assert sw.counter("synack_ts") == 0 and sw.counter("syn_bad") == 0


def test_syn_with_ts_option_past_the_header_is_dropped(sw):
    syn = ts_syn(40007, 13)
    assert Ether(syn)[TCP].dataofs == 9  # 16 option bytes: MSS, TS at 4, 13 would end at 17
    run_fixture(sw.obj, PacketFixture("TS option length 13 runs past the options", syn,
                                      XDP_DROP), program="miresga_switch")
    assert sw.counter("syn_bad") == 1 and sw.counter("synack") == 0


def test_syn_with_malformed_options_is_dropped(sw):
    syn = tcp(CADDR, 40002, VIP, VPORT, "S", options=[("MSS", 1460)], smac=CMAC)
    raw = bytearray(bytes(syn))
    raw[14 + 20 + 21] = 9  # MSS option length 9 runs past the options
    run_fixture(sw.obj, PacketFixture("option length past the header", bytes(raw), XDP_DROP),
                program="miresga_switch")
    assert sw.counter("syn_bad") == 1


def test_syn_ack_to_vip_is_dropped(sw):
    pkt = tcp(CADDR, 40003, VIP, VPORT, "SA", smac=CMAC)
    run_fixture(sw.obj, PacketFixture("SYN+ACK to a VIP is never valid", pkt, XDP_DROP),
                program="miresga_switch")


def test_syn_without_secret_is_dropped(sw):
    sw.write("cookie_secret", [({"index": 0}, {"k0": 0, "k1": 0})])
    syn = tcp(CADDR, 40004, VIP, VPORT, "S", options=[("MSS", 1460)], smac=CMAC)
    run_fixture(sw.obj, PacketFixture("no cookie secret set: no forgeable SYN-ACK", syn,
                                      XDP_DROP), program="miresga_switch")
    assert sw.counter("syn_nosecret") == 1 and sw.counter("synack") == 0
    with pytest.raises(ValueError, match="all-zero"):
        sw.set_cookie_secret(bytes(8))


def test_syn_with_ip_options_gets_plain_synack(sw):
    from scapy.layers.inet import IPOption_NOP

    syn = tcp(CADDR, 40005, VIP, VPORT, "S", seq=77, options=[("MSS", 1460)], smac=CMAC)
    syn[IP].options = [IPOption_NOP()] * 4
    syn = Ether(bytes(syn))
    assert syn[IP].ihl == 6
    wants = expected_synacks(40005, 77, 1460, None, False)
    run = run_fixture(sw.obj, PacketFixture("SYN with IP options: SYN-ACK without them", syn,
                                            XDP_TX), program="miresga_switch")
    assert run.data in [w for _i, w in wants]
