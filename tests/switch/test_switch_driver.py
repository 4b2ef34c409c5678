"""The target-independent controller logic of SwitchDriver, on the in-memory target (no
root). The XDP target runs the same code in the BPF fixtures."""

from __future__ import annotations

import pytest

from miresga_core.dataplane import names
from miresga_core.dataplane.driver import rebalance
from miresga_core.dataplane.memory import MemorySwitch
from miresga_core.dataplane.schema import LB_BUCKETS, OffloadModeId

C, V, B = ("10.0.1.1", 40000), ("10.0.255.1", 80), ("10.0.3.1", 8080)


def test_offload_both_directions_and_remove():
    sw = MemorySwitch()
    sw.set_backend(3, *B)
    sw.offload_add(C, V, 3, B, OffloadModeId.PIN)
    assert sw.read(names.OFFLOAD, {"client_addr": C[0], "client_port": C[1],
                                   "vip_addr": V[0], "vip_port": V[1]}) == {"backend": 3,
                                                                            "mode": 1}
    assert sw.read(names.OFFLOAD_REV, {"client_addr": C[0], "client_port": C[1],
                                       "backend_addr": B[0], "backend_port": B[1]}) == {
        "vip_addr": V[0], "vip_port": V[1]}
    sw.offload_remove(C, V)
    assert sw.tables[names.OFFLOAD] == {} and sw.tables[names.OFFLOAD_REV] == {}
    sw.offload_remove(C, V)  # absent: not an error


def test_offload_clear_and_what_cannot_be_cleared():
    sw = MemorySwitch()
    sw.set_backend(3, *B)
    for port in (40000, 40001):
        sw.offload_add((C[0], port), V, 3, B, OffloadModeId.SPLICE)
    assert sw.offload_clear() == 2
    assert sw.tables[names.OFFLOAD] == {} and sw.tables[names.OFFLOAD_REV] == {}
    assert sw.read(names.BACKEND, {"index": 3}) is not None  # other tables untouched
    with pytest.raises(ValueError, match="only hash and LPM"):
        sw.clear(names.BACKEND)


def test_membership_change_state_machine():
    sw = MemorySwitch()
    first = rebalance(None, [0, 1])
    sw.set_frontends(first, drain=False)
    assert sw.lb_state() == (0, False) and sw.buckets() == first
    second = rebalance(first, [1, 2])
    sw.write(names.BLOOM, [({"index": 5}, {"bits": 0xFF})])
    sw.set_frontends(second)
    assert sw.lb_state() == (0, True)
    assert sw.buckets() == first and sw.buckets(1) == second
    assert sw.read(names.BLOOM, {"index": 5}) == {"bits": 0}  # cleared at the start
    sw.finish_change()
    assert sw.lb_state() == (1, False) and sw.buckets() == second


def test_refusals():
    sw = MemorySwitch()
    with pytest.raises(ValueError, match="unknown fields"):
        sw.write(names.VIP, [({"vip_addr": "10.0.0.1", "vip_port": 80, "proto": 6},
                              {"mss": 1, "window": 1, "wscale": 1})])
    with pytest.raises(ValueError, match="out of range"):
        sw.set_frontend(64, "10.0.2.1")
    with pytest.raises(ValueError, match="counters"):
        sw.write(names.COUNTERS, [({"index": 0}, {"packets": 1, "bytes": 1})])
    with pytest.raises(ValueError, match="buckets"):
        sw.set_frontends([0] * (LB_BUCKETS - 1))
    vips = [({"addr": f"10.0.{i // 250}.{i % 250 + 1}"}, {"mac": "02:00:00:00:00:01"})
            for i in range(257)]
    sw.write(names.VIP_ADDR, vips[:256])
    sw.write(names.VIP_ADDR, vips[:3])  # replacing existing entries needs no room
    with pytest.raises(OSError, match="full"):
        sw.write(names.VIP_ADDR, vips[256:])


def test_cookie_secret_and_clock():
    sw = MemorySwitch()
    sw.set_cookie_secret(bytes(range(1, 9)), bytes(range(9, 17)))
    assert sw.read(names.COOKIE_SECRET, {"index": 0}) == {"k0": 0x04030201,
                                                          "k1": 0x08070605}
    assert sw.read(names.COOKIE_SECRET, {"index": 1})["k0"] == 0x0C0B0A09
    clock = sw.read(names.COOKIE_CLOCK, {"index": 0})
    assert clock["base_slot"] > 0 and clock["base_ns"] >= 0
