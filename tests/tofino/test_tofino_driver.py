"""TofinoSwitch's whole lifecycle against the strict fake: bind, initial tables, offload
bursts, front-end changes, secret rotation, counters; and packets run through native/p4
with the entries the driver wrote."""

from __future__ import annotations

import sys

import pytest
from fake_bfrt import FakeSwitch, ip
from pkt import out_port, run_packet, tcp

from miresga_core import cookie
from miresga_core.dataplane import names, schema
from miresga_core.dataplane.driver import rebalance
from miresga_core.dataplane.schema import LB_BUCKETS, OffloadModeId
from miresga_core.dataplane.tofino import (
    TofinoError,
    TofinoSwitch,
    TofinoUnavailable,
    import_bfrt,
)

VIP = ("10.0.0.100", 80)
FRONTENDS = {0: "10.1.0.1", 1: "10.1.0.2", 2: "10.1.0.3"}
BACKENDS = {0: ("10.2.0.1", 8080), 1: ("10.2.0.2", 8080)}
PORTS = {"10.1.0.0/16": 11, "10.2.0.0/16": 12, "0.0.0.0/0": 10}
KEY1, KEY2 = bytes(range(1, 9)), bytes(range(11, 19))


class Clock:
    """The switch's global timestamp, as a test controls it."""

    def __init__(self) -> None:
        self.now = 3 << 36

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def fake():
    return FakeSwitch()


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def sw(fake, clock):
    s = TofinoSwitch(bfrt=fake.client, switch_clock_ns=clock)
    yield s
    s.close()


def _setup(sw):
    sw.set_vip(*VIP, mac="02:00:00:00:00:64", mss=1460, window=65535, wscale=7)
    for prefix, port in PORTS.items():
        sw.set_route(prefix, port, smac="02:00:00:00:00:01", dmac="02:00:00:00:00:02")
    for i, addr in FRONTENDS.items():
        sw.set_frontend(i, addr)
    for i, (addr, port) in BACKENDS.items():
        sw.set_backend(i, addr, port)
    sw.set_frontends(rebalance(None, FRONTENDS), drain=False)
    sw.set_cookie_secret(KEY1)


def _packet(fake, src, sport, dst, dport, **kw):
    m = tcp(fake.machine(), src, sport, dst, dport, **kw)
    return run_packet(fake, m)[0]


# ---------------------------------------------------------------- bind and setup


def test_bind_and_initial_tables(fake, sw):
    assert fake.bound == "miresga"
    _setup(sw)
    assert fake.entries[names.VIP] == {((ip(VIP[0]), None), (80, None)): (
        "vip_hit", {"mss": 1460, "window": 65535, "wscale": 7})}
    assert fake.entries[names.VIP_ADDR][((ip(VIP[0]), None),)] == (
        "arp_reply", {"mac": 0x020000000064})
    assert fake.entries[names.ROUTE][((ip("10.1.0.0"), 16),)][1]["port"] == 11
    assert len(fake.entries[names.LB_INDEX_0]) == LB_BUCKETS
    assert fake.entries[names.LB_INDEX_1] == {}
    assert fake.defaults[names.LB_CONTROL] == ("set_lb_state", {"active": 0, "changing": 0})
    k0, k1 = cookie.key_words(KEY1)
    assert fake.entries[names.COOKIE_SECRET] == {((0, None),): ("set_secret",
                                                                {"k0": k0, "k1": k1})}
    # one RPC for 1024 buckets, one for the 2048 Bloom words
    assert ("add", names.LB_INDEX_0, LB_BUCKETS) in fake.rpcs
    assert ("add", names.BLOOM, schema.table(names.BLOOM).size) in fake.rpcs


def test_rewriting_an_entry_modifies_it(fake, sw):
    _setup(sw)
    before = len(fake.rpcs)
    sw.set_frontend(1, "10.1.0.22")
    assert fake.rpcs[before:] == [("mod", names.FRONTEND, 1)]
    assert fake.entries[names.FRONTEND][((1, None),)] == ("set_frontend_addr",
                                                         {"addr": ip("10.1.0.22")})
    assert sw.read(names.FRONTEND, {"index": 1}) == {"addr": ip("10.1.0.22")}


def test_bind_clears_what_a_previous_controller_left(fake, clock):
    first = TofinoSwitch(bfrt=fake.client, switch_clock_ns=clock)
    _setup(first)
    first.offload_add(("10.9.0.1", 5555), VIP, 0, BACKENDS[0], OffloadModeId.SPLICE)
    second = TofinoSwitch(bfrt=fake.client, switch_clock_ns=clock)
    assert fake.entries[names.OFFLOAD] == {} and fake.entries[names.VIP] == {}
    _setup(second)  # entry_add would fail on leftovers: the clear made room
    assert len(fake.entries[names.VIP]) == 1


# ---------------------------------------------------------------- packets through the P4


def test_syn_is_answered_with_a_valid_cookie(fake, sw, clock):
    _setup(sw)
    m = _packet(fake, "10.9.0.1", 40000, *VIP, flags="S", seq=99, mss=1460, wscale=8,
                sack=True, tstamp=clock())
    assert out_port(m) == PORTS["0.0.0.0/0"] and m.get("meta.synack") == 1
    import time

    now_slot = cookie.slot_at(time.time_ns())
    info = cookie.validate(cookie.CookieSecrets(KEY1), m.get("hdr.tcp.seq_no"), "10.9.0.1",
                           40000, *VIP, now_slot)
    assert info is not None and (info.wscale, info.sack, info.mss) == (8, True, 1460)


def test_client_packets_go_to_the_frontend_of_their_bucket(fake, sw):
    _setup(sw)
    m = _packet(fake, "10.9.0.1", 40000, *VIP, flags="A", payload=100)
    fe = m.get("meta.frontend")
    assert m.get("meta.route_dst") == ip(FRONTENDS[fe])
    assert m.get("hdr.ipv4.dst_addr") == ip(VIP[0])  # L2 forwarding: IP untouched
    assert out_port(m) == PORTS["10.1.0.0/16"]


def test_offload_burst_add_and_remove(fake, sw):
    _setup(sw)
    flows = [((f"10.9.{i // 250}.{i % 250 + 1}", 10000 + i), VIP, i % 2, BACKENDS[i % 2],
              OffloadModeId.SPLICE if i % 3 else OffloadModeId.PIN) for i in range(300)]
    before = len(fake.rpcs)
    sw.offload_update(add=flows)
    assert fake.rpcs[before:] == [("add", names.OFFLOAD_REV, 300), ("add", names.OFFLOAD, 300)]
    assert len(fake.entries[names.OFFLOAD]) == len(fake.entries[names.OFFLOAD_REV]) == 300

    client, _vip, index, backend, _mode = flows[1]  # splice
    ack = _packet(fake, *client, *VIP, flags="A")  # pure ACK: straight to the backend
    assert (ack.get("hdr.ipv4.dst_addr"), ack.get("hdr.tcp.dst_port")) == \
        (ip(backend[0]), backend[1])
    assert out_port(ack) == PORTS["10.2.0.0/16"]
    data = _packet(fake, *client, *VIP, flags="PA", payload=300)  # payload: front-end
    assert data.get("hdr.ipv4.dst_addr") == ip(VIP[0])
    assert out_port(data) == PORTS["10.1.0.0/16"]
    pinned = flows[0]
    pdata = _packet(fake, *pinned[0], *VIP, flags="PA", payload=300)  # pin: all to backend
    assert pdata.get("hdr.ipv4.dst_addr") == ip(pinned[3][0])
    resp = _packet(fake, *backend, *client, flags="PA", payload=1400)  # back to the client
    assert (resp.get("hdr.ipv4.src_addr"), resp.get("hdr.tcp.src_port")) == \
        (ip(VIP[0]), VIP[1])
    assert out_port(resp) == PORTS["0.0.0.0/0"]
    other = BACKENDS[1 - index]  # not the current leg: front-end
    late = _packet(fake, *other, *client, flags="PA", payload=10)
    assert late.get("hdr.ipv4.src_addr") == ip(other[0])
    assert out_port(late) == PORTS["10.1.0.0/16"]
    assert sw.counters()["backend_old"][0] == 1

    before = len(fake.rpcs)
    sw.offload_update(remove=[(c, v) for c, v, *_ in flows] + [(("10.99.0.1", 1), VIP)])
    assert fake.rpcs[before:] == [("del", names.OFFLOAD, 300), ("del", names.OFFLOAD_REV, 300)]
    assert fake.entries[names.OFFLOAD] == {} and fake.entries[names.OFFLOAD_REV] == {}
    ack = _packet(fake, *client, *VIP, flags="A")
    assert ack.get("hdr.ipv4.dst_addr") == ip(VIP[0])  # front-end again


def test_single_offload_add_remove(fake, sw):
    _setup(sw)
    sw.offload_add(("10.9.0.1", 4000), VIP, 1, BACKENDS[1], OffloadModeId.PIN)
    assert sw.read(names.OFFLOAD, {"client_addr": "10.9.0.1", "client_port": 4000,
                                   "vip_addr": VIP[0], "vip_port": VIP[1]}) == \
        {"backend": 1, "mode": 1}
    sw.offload_remove(("10.9.0.1", 4000), VIP)
    sw.offload_remove(("10.9.0.1", 4000), VIP)  # missing: not an error
    assert fake.entries[names.OFFLOAD] == {} and fake.entries[names.OFFLOAD_REV] == {}


def test_offload_clear_deletes_every_entry(fake, sw):
    _setup(sw)
    for port in (4000, 4001, 4002):
        sw.offload_add(("10.9.0.1", port), VIP, 1, BACKENDS[1], OffloadModeId.SPLICE)
    assert sw.offload_clear() == 3
    assert fake.entries[names.OFFLOAD] == {} and fake.entries[names.OFFLOAD_REV] == {}
    assert sw.read(names.OFFLOAD, {"client_addr": "10.9.0.1", "client_port": 4000,
                                   "vip_addr": VIP[0], "vip_port": VIP[1]}) is None


def test_frontend_change_keeps_new_flows_on_the_new_table(fake, sw):
    _setup(sw)
    old = sw.buckets()
    new = rebalance(old, [0, 1])  # front-end 2 leaves
    sw.set_frontends(new)
    assert sw.lb_state() == (0, True)
    assert fake.defaults[names.LB_CONTROL][1] == {"active": 0, "changing": 1}
    # find a client whose bucket moves
    for port in range(20000, 20400):
        probe = _packet(fake, "10.9.1.1", port, *VIP, flags="A")
        bucket = probe.get("meta.lb_bucket")
        if old[bucket] != new[bucket]:
            break
    else:
        pytest.fail("no client bucket changes front-end")
    assert probe.get("meta.frontend") == old[bucket]  # an old flow stays put
    _packet(fake, "10.9.1.1", port, *VIP, flags="S", mss=1460)  # a new flow starts now
    assert any(fake.registers[names.BLOOM].values())
    after = _packet(fake, "10.9.1.1", port, *VIP, flags="A")
    assert after.get("meta.frontend") == new[bucket]  # found in the Bloom filter
    sw.finish_change()
    assert sw.lb_state() == (1, False)
    assert not any(fake.registers[names.BLOOM].values())
    final = _packet(fake, "10.9.1.1", port, *VIP, flags="A")
    assert final.get("meta.frontend") == new[bucket]
    with pytest.raises(ValueError, match="no front-end change"):
        sw.finish_change()


# ---------------------------------------------------------------- secrets and counters


def test_secret_rotation(fake, sw, clock):
    _setup(sw)
    secrets = sw.rotate_cookie_secret(KEY2)
    assert (secrets.current, secrets.previous) == (KEY2, KEY1)
    keys = fake.entries[names.COOKIE_SECRET]
    assert keys[((0, None),)][1] == dict(zip(("k0", "k1"), cookie.key_words(KEY2),
                                             strict=True))
    assert keys[((1, None),)][1] == dict(zip(("k0", "k1"), cookie.key_words(KEY1),
                                             strict=True))
    # the data plane signs with the new key; a front-end still accepts the old one
    import time

    now_slot = cookie.slot_at(time.time_ns())
    m = _packet(fake, "10.9.0.1", 40001, *VIP, flags="S", mss=1460, tstamp=clock())
    info = cookie.validate(secrets, m.get("hdr.tcp.seq_no"), "10.9.0.1", 40001, *VIP,
                           now_slot)
    assert info is not None and not info.previous_secret
    old = cookie.encode(KEY1, "10.9.0.1", 40001, *VIP, now_slot, 3, None, False)
    assert cookie.validate(secrets, old, "10.9.0.1", 40001, *VIP, now_slot).previous_secret
    # the clock follows the switch timestamp given (48 bits)
    clock.now = (1 << 48) + 12345
    sw.rotate_cookie_secret()
    assert fake.defaults[names.COOKIE_CLOCK][1]["base_ns"] <= 12345


def test_cookie_secret_needs_the_switch_clock(fake):
    sw = TofinoSwitch(bfrt=fake.client)
    before = len(fake.rpcs)
    with pytest.raises(TofinoError, match="switch_clock_ns"):
        sw.set_cookie_secret(KEY1)
    assert len(fake.rpcs) == before  # refused before any write
    with pytest.raises(TofinoError, match="set_cookie_secret first"):
        sw.rotate_cookie_secret()


def test_counters(fake, sw):
    _setup(sw)
    assert sw.counters()["rx"] == (0, 0)
    _packet(fake, "10.9.0.1", 40000, *VIP, flags="S", mss=1460)
    _packet(fake, "10.9.0.1", 40000, *VIP, flags="A", payload=10)
    _packet(fake, "10.9.0.1", 40000, "10.50.0.1", 80, flags="A")  # no VIP: routed
    got = sw.counters()
    assert set(got) == {name for name, _ in schema.COUNTERS}
    assert got["synack"] == (1, 64) and got["to_frontend"] == (1, 64)
    assert got["routed"] == (1, 64)
    assert got["rx"] == (3, 192)
    assert sw.counter("synack") == 1


# ---------------------------------------------------------------- refusals


def test_bad_entries_refuse_the_batch_before_any_rpc(fake, sw):
    _setup(sw)
    before = len(fake.rpcs)
    with pytest.raises(ValueError, match="does not fit in 16 bits"):
        sw.write(names.BACKEND, [({"index": 5}, {"addr": "10.2.0.5", "port": 80}),
                                 ({"index": 6}, {"addr": "10.2.0.6", "port": 70000})])
    with pytest.raises(ValueError, match="out of range"):
        sw.write(names.FRONTEND, [({"index": 64}, {"addr": "10.1.0.9"})])
    with pytest.raises(ValueError, match="not an IPv4 address"):
        sw.write(names.FRONTEND, [({"index": 3}, {"addr": "frontend-3"})])
    with pytest.raises(ValueError, match="expected parameters"):
        sw.write(names.VIP, [({"vip_addr": "10.0.0.1", "vip_port": 1}, {"mss": 1})])
    with pytest.raises(ValueError, match="not a Tofino port"):
        sw.set_route("10.3.0.0/16", 512, smac="02:00:00:00:00:01", dmac="02:00:00:00:00:02")
    with pytest.raises(ValueError, match="not a Tofino table"):
        sw.write(names.TX_PORT, [({"index": 1}, {"ifindex": 3})])
    with pytest.raises(ValueError, match="written by the data plane"):
        sw.write(names.COUNTERS, [({"index": 1}, {"packets": 0, "bytes": 0})])
    assert len(fake.rpcs) == before
    assert ((5, None),) not in fake.entries[names.BACKEND]


def test_switch_refusal_is_reported_with_the_table(fake, sw):
    _setup(sw)
    fake.entries[names.BACKEND][((7, None),)] = ("set_backend_addr", {"addr": 1, "port": 1})
    with pytest.raises(TofinoError, match=r"backend: entry_add of 2 entries refused"):
        sw.write(names.BACKEND, [({"index": 6}, {"addr": "10.2.0.6", "port": 80}),
                                 ({"index": 7}, {"addr": "10.2.0.7", "port": 80})])
    # ROLLBACK_ON_ERROR: the good entry of the batch did not land either
    assert ((6, None),) not in fake.entries[names.BACKEND]


def test_wrong_program_is_refused(fake):
    fake.program = "something_else"
    with pytest.raises(TofinoUnavailable):
        TofinoSwitch(bfrt=fake.client)


def test_missing_bfrt_grpc_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setenv("SDE_INSTALL", str(tmp_path))
    monkeypatch.setitem(sys.modules, "bfrt_grpc", None)  # not importable
    with pytest.raises(TofinoUnavailable, match="ships with the Intel") as exc:
        import_bfrt()
    assert "SDE_INSTALL" in str(exc.value)


def test_bfrt_grpc_is_found_under_sde_install(monkeypatch, tmp_path):
    pkg = tmp_path / "lib" / "python3.11" / "site-packages" / "tofino" / "bfrt_grpc"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "client.py").write_text("MARK = 'sde'\n")
    monkeypatch.setenv("SDE_INSTALL", str(tmp_path))
    monkeypatch.setattr(sys, "path", list(sys.path))
    for mod in ("bfrt_grpc", "bfrt_grpc.client"):
        monkeypatch.delitem(sys.modules, mod, raising=False)
    assert import_bfrt().MARK == "sde"


def test_buckets_are_the_xdp_switch_buckets(fake, sw):
    """Same flow hash as native/xdp (flowhash.py): a client has one bucket on both."""
    from miresga_core.dataplane import flowhash

    _setup(sw)
    for client in (("10.9.0.1", 40000), ("192.0.2.77", 1), ("203.0.113.250", 65535)):
        m = _packet(fake, *client, *VIP, flags="A")
        assert m.get("meta.lb_bucket") == flowhash.lb_bucket(*client)
        assert m.get("meta.lb_hash") == __import__("zlib").crc32(flowhash.flow_bytes(*client))
    sw.set_frontends(rebalance(sw.buckets(), [0, 1]))  # a change: the Bloom hash runs
    m = _packet(fake, "10.9.0.1", 40000, *VIP, flags="A")
    assert m.get("meta.bloom_hv") == flowhash.crc32c(flowhash.flow_bytes("10.9.0.1", 40000))
