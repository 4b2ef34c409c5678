"""The SYN-ACK native/p4 builds, run through the P4 interpreter pass by pass: its ISN is
miresga_core.cookie's cookie (golden vectors and generated inputs), and the rest of the
segment is a correct SYN-ACK."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from fake_bfrt import FakeSwitch, ip
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pkt import out_port, run_packet, tcp

from miresga_core import cookie
from miresga_core.dataplane import schema

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "tests" / "vectors" / "cookie.toml"
VIP, VPORT = "10.0.0.100", 80
CLIENT_PORT = 7  # route out to the client


def _switch(key: bytes, slot: int, *, vip_mss: int = 1460, vip_window: int = 65535,
            vip_wscale: int = 7, vip: str = VIP, vport: int = VPORT) -> FakeSwitch:
    fake = FakeSwitch()
    fake.bound = fake.program
    k0, k1 = cookie.key_words(key)
    fake.entries["vip"][((ip(vip), None), (vport, None))] = (
        "vip_hit", {"mss": vip_mss, "window": vip_window, "wscale": vip_wscale})
    fake.entries["cookie_secret"][((0, None),)] = ("set_secret", {"k0": k0, "k1": k1})
    # slot = base_slot + ((tstamp - base_ns) >> 36): with base_ns 0 and a small tstamp,
    # the slot is base_slot
    fake.defaults["cookie_clock"] = ("set_clock", {"base_slot": slot & 0xFFFFFFFF,
                                                   "base_ns": 0})
    fake.entries["route"][((0, 0),)] = ("forward", {"port": CLIENT_PORT, "smac": 0xA,
                                                    "dmac": 0xB})
    return fake


def _syn_ack(key, client, cport, vip, vport, slot, mss, wscale, sack, **kw):
    fake = _switch(key, slot, vip=vip, vport=vport, **kw)
    m = tcp(fake.machine(), client, cport, vip, vport, flags="S", seq=0x12345678, mss=mss,
            wscale=wscale, sack=sack, timestamps=True, tstamp=1000)
    m, passes = run_packet(fake, m)
    return fake, m, passes


def _vectors():
    if not VECTORS.is_file():
        return []
    return tomllib.loads(VECTORS.read_text())["cookie"]


def _opt(v):
    return None if v == "none" else v


@pytest.mark.skipif(not VECTORS.is_file(), reason="tests/vectors/cookie.toml arrives with "
                    "the switch branch (issue 6)")
@pytest.mark.parametrize("vec", _vectors(), ids=lambda v: v["description"])
def test_p4_cookie_equals_golden_vectors(vec):
    _fake, m, _ = _syn_ack(bytes.fromhex(vec["key"]), vec["client"], vec["client_port"],
                           vec["vip"], vec["vip_port"], vec["slot"], _opt(vec["mss"]),
                           _opt(vec["wscale"]), vec["sack"])
    assert m.get("hdr.tcp.seq_no") == vec["cookie"], vec["description"]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=st.binary(min_size=8, max_size=8).filter(any),
       client=st.integers(1, 2**32 - 1), cport=st.integers(1, 65535),
       vport=st.integers(1, 65535), slot=st.integers(0, 2**32 - 1),
       mss=st.one_of(st.none(), st.integers(0, 65535)),
       wscale=st.one_of(st.none(), st.integers(0, 255)), sack=st.booleans())
def test_p4_cookie_equals_cookie_py(key, client, cport, vport, slot, mss, wscale, sack):
    client_s = str(__import__("ipaddress").IPv4Address(client))
    _fake, m, passes = _syn_ack(key, client_s, cport, "192.0.2.1", vport, slot, mss,
                                wscale, sack)
    expected = cookie.encode(key, client_s, cport, "192.0.2.1", vport, slot,
                             cookie.mss_class(mss), wscale, sack)
    assert m.get("hdr.tcp.seq_no") == expected
    assert passes == 8  # pass 0 + 7 hash passes
    info = cookie.validate(cookie.CookieSecrets(key), expected, client_s, cport,
                           "192.0.2.1", vport, slot)
    assert info is not None and info.sack == sack


def test_syn_ack_segment():
    key = bytes(range(8))
    fake, m, _passes = _syn_ack(key, "10.0.0.1", 40000, VIP, VPORT, 5, 1460, 7, True,
                               vip_mss=1400, vip_window=29200, vip_wscale=9)
    g = m.get
    assert (g("hdr.ipv4.src_addr"), g("hdr.ipv4.dst_addr")) == (ip(VIP), ip("10.0.0.1"))
    assert (g("hdr.tcp.src_port"), g("hdr.tcp.dst_port")) == (VPORT, 40000)
    assert g("hdr.tcp.ack_no") == 0x12345679
    assert (g("hdr.tcp.syn"), g("hdr.tcp.ack"), g("hdr.tcp.fin"), g("hdr.tcp.rst")) == \
        (1, 1, 0, 0)
    assert g("hdr.tcp.window") == 29200  # never scaled in a SYN-ACK
    assert g("hdr.tcp.data_offset") == 8 and g("hdr.ipv4.total_len") == 52
    assert g("hdr.synack_opts.mss") == 1400
    assert g("hdr.synack_opts.sack_perm") == 0x01010402
    assert (g("hdr.synack_opts.ws_kind"), g("hdr.synack_opts.ws_shift")) == (3, 9)
    # the client's options and the hash state are gone; the SYN-ACK options are in
    assert m.valid == {"hdr.ethernet", "hdr.ipv4", "hdr.tcp", "hdr.synack_opts"}
    assert g("meta.synack") == 1 and out_port(m) == CLIENT_PORT
    assert fake.counters == {schema.counter_index("synack"): (1, 64)}  # counted once


def test_syn_ack_without_client_options():
    _fake, m, _ = _syn_ack(b"\x01" * 8, "10.0.0.1", 40000, VIP, VPORT, 5, None, None, False)
    # RFC 7323: no window scale (and no SACK-permitted) unless the SYN offered it
    assert m.get("hdr.synack_opts.sack_perm") == 0x01010101
    assert [m.get(f"hdr.synack_opts.ws_{f}") for f in ("nop", "kind", "len", "shift")] == \
        [1, 1, 1, 1]
    cookie_value = m.get("hdr.tcp.seq_no")
    assert cookie_value >> cookie.WSCALE_POS & 0xF == cookie.WSCALE_NONE
    assert cookie_value >> cookie.MSS_POS & 3 == 0


def test_slot_comes_from_the_global_timestamp():
    key = bytes(range(8))
    fake = _switch(key, 100)
    fake.defaults["cookie_clock"] = ("set_clock", {"base_slot": 100, "base_ns": 5 << 36})
    # three slots after base_ns, plus some phase
    m = tcp(fake.machine(), "10.0.0.1", 1234, VIP, VPORT, flags="S", mss=1460,
            tstamp=(8 << 36) + 12345)
    m, _ = run_packet(fake, m)
    assert m.get("hdr.tcp.seq_no") == cookie.encode(key, "10.0.0.1", 1234, VIP, VPORT, 103,
                                                   3, None, False)


def test_syn_with_fin_is_dropped_and_not_answered():
    fake = _switch(b"\x01" * 8, 1)
    m = tcp(fake.machine(), "10.0.0.1", 1234, VIP, VPORT, flags="SF")
    m, passes = run_packet(fake, m)
    assert passes == 1 and m.get("ig_dprsr_md.drop_ctl") == 1
    assert fake.counters == {schema.counter_index("syn_bad"): (1, 64)}


def test_no_secret_no_syn_ack():
    """The all-zero key (the table's default) means no secret yet: SYNs are dropped."""
    fake = _switch(b"\x01" * 8, 1)
    del fake.entries["cookie_secret"][((0, None),)]
    m = tcp(fake.machine(), "10.0.0.1", 1234, VIP, VPORT, flags="S", mss=1460)
    m, passes = run_packet(fake, m)
    assert passes == 1 and m.get("ig_dprsr_md.drop_ctl") == 1
    assert "hdr.sip" not in m.valid
    assert fake.counters == {schema.counter_index("syn_nosecret"): (1, 64)}
