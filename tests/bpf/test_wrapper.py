"""miresga_core.bpf against the real kernel: load, test-run, maps, pins, errors."""

from __future__ import annotations

import errno
import os
import struct
import uuid
from pathlib import Path

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from miresga_core.bpf import (
    NOEXIST,
    BpfError,
    BpfObject,
    Map,
    ensure_bpffs,
    pinned_id,
    possible_cpus,
    remove_pin_dir,
    unpin,
)
from miresga_core.bpf.fixtures import (
    UNCHANGED,
    FixtureFailure,
    PacketFixture,
    run_fixture,
    run_fixtures,
)

pytestmark = pytest.mark.root

XDP_DROP, XDP_PASS, XDP_TX = 1, 2, 3
TC_ACT_OK, TC_ACT_SHOT = 0, 2
A, B = "02:00:00:00:00:0a", "02:00:00:00:00:0b"


def udp(port: int) -> Ether:
    return Ether(src=A, dst=B) / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(dport=port) / b"x"


def u32(n: int) -> bytes:
    return struct.pack("=I", n)


def u64(n: int) -> bytes:
    return struct.pack("=Q", n)


def test_programs_and_maps_are_found_by_name(selftest: BpfObject) -> None:
    assert set(selftest.program_names()) == {"selftest_xdp", "selftest_tc"}
    assert {"counts", "kv", "pcpu"} <= set(selftest.map_names())
    assert selftest.program("selftest_xdp").type == 6  # BPF_PROG_TYPE_XDP
    assert selftest.program("selftest_tc").type == 3  # BPF_PROG_TYPE_SCHED_CLS
    kv = selftest.map("kv")
    assert (kv.key_size, kv.value_size, kv.max_entries) == (4, 8, 16)
    with pytest.raises(KeyError, match="no program 'nope'"):
        selftest.program("nope")
    with pytest.raises(KeyError, match="no map 'nope'"):
        selftest.map("nope")


def test_test_run_verdicts_and_output(selftest: BpfObject) -> None:
    xdp = selftest.program("selftest_xdp")
    run = xdp.test_run(bytes(udp(9)))
    assert run.retval == XDP_TX
    out = Ether(run.data)
    assert (out.src, out.dst) == (B, A)  # the program swapped MACs
    assert xdp.test_run(bytes(udp(10))).retval == XDP_DROP
    assert xdp.test_run(bytes(udp(53))).retval == XDP_PASS
    tc = selftest.program("selftest_tc")
    assert tc.test_run(bytes(udp(10))).retval == TC_ACT_SHOT
    assert tc.test_run(bytes(udp(11))).retval == TC_ACT_OK
    counts = selftest.map("counts")
    assert counts.lookup(u32(0)) == u64(3)
    assert counts.lookup(u32(1)) == u64(2)
    # per-CPU map: one 8-byte slot per possible CPU, summing to every run
    slots = selftest.map("pcpu").lookup_percpu(u32(0))
    assert slots is not None and len(slots) == possible_cpus()
    assert sum(struct.unpack("=Q", s)[0] for s in slots) == 5


def test_output_too_small_is_enospc(selftest: BpfObject) -> None:
    with pytest.raises(BpfError) as info:
        selftest.program("selftest_xdp").test_run(bytes(udp(53)), out_size=10)
    assert info.value.errno == errno.ENOSPC


def test_map_update_lookup_delete_iterate(selftest: BpfObject) -> None:
    kv = selftest.map("kv")
    assert kv.lookup(u32(1)) is None
    for i in range(5):
        kv.update(u32(i), u64(i * 100))
    assert kv.lookup(u32(3)) == u64(300)
    assert sorted(kv.keys()) == sorted(u32(i) for i in range(5))
    assert dict(kv.items())[u32(4)] == u64(400)
    with pytest.raises(BpfError) as info:
        kv.update(u32(1), u64(1), NOEXIST)
    assert info.value.errno == errno.EEXIST
    assert kv.delete(u32(1)) is True
    assert kv.delete(u32(1)) is False
    assert kv.clear() == 4
    assert list(kv.keys()) == []
    with pytest.raises(ValueError, match="key is 3 bytes, want 4"):
        kv.lookup(b"abc")
    with pytest.raises(ValueError, match="value is 2 bytes, want 8"):
        kv.update(u32(1), b"ab")


def test_full_hash_map_refuses_with_e2big(selftest: BpfObject) -> None:
    kv = selftest.map("kv")
    for i in range(kv.max_entries):
        kv.update(u32(i), u64(i))
    with pytest.raises(BpfError) as info:
        kv.update(u32(999), u64(0))
    assert info.value.errno == errno.E2BIG
    assert len(list(kv.keys())) == kv.max_entries


def test_pin_open_pinned_and_reuse(tmp_path: Path) -> None:
    from miresga_core.bpf import build_object

    ensure_bpffs()
    pins = Path("/sys/fs/bpf/miresga-test") / f"mra-{uuid.uuid4().hex[:8]}"
    pins.mkdir(parents=True)
    try:
        with BpfObject.load_file(build_object("selftest")) as first:
            first.map("kv").update(u32(7), u64(77))
            first.map("kv").pin(pins / "kv")
        # the pin outlives the object; another opener sees the same map
        with Map.from_pinned(pins / "kv") as kv:
            assert kv.name == "kv" and kv.key_size == 4 and kv.value_size == 8
            assert kv.lookup(u32(7)) == u64(77)
            assert pinned_id(pins / "kv") > 0
        # a second load can adopt the pinned map instead of creating a new one
        second = BpfObject.open(build_object("selftest"))
        with second:
            second.reuse_map("kv", pins / "kv")
            second.load()
            assert second.map("kv").lookup(u32(7)) == u64(77)
        assert unpin(pins / "kv") is True and unpin(pins / "kv") is False
    finally:
        remove_pin_dir(pins)
    assert not pins.exists()
    assert not pins.parent.exists()


def test_missing_object_and_verifier_refusal(tmp_path: Path) -> None:
    with pytest.raises(BpfError, match="no such file"):
        BpfObject.open(tmp_path / "absent.bpf.o")
    bad = tmp_path / "bad.bpf.o"
    bad.write_bytes(b"not an elf")
    with pytest.raises(BpfError):
        BpfObject.open(bad)


def test_fixture_runner_reports_mismatches(selftest: BpfObject) -> None:
    ok = [
        PacketFixture("port 9 bounces with MACs swapped", udp(9), XDP_TX,
                      expected=Ether(src=B, dst=A) / udp(9)[IP]),
        PacketFixture("port 53 passes untouched", udp(53), XDP_PASS, expected=UNCHANGED),
        PacketFixture("tc drops port 10", udp(10), TC_ACT_SHOT, program="selftest_tc",
                      check=lambda run, obj: None),
    ]
    runs = run_fixtures(selftest, ok, program="selftest_xdp")
    assert [r.retval for r in runs] == [XDP_TX, XDP_PASS, TC_ACT_SHOT]
    with pytest.raises(FixtureFailure, match=r"\[wrong verdict\].*XDP_PASS, want XDP_DROP"):
        run_fixture(selftest, PacketFixture("wrong verdict", udp(53), XDP_DROP),
                    program="selftest_xdp")
    with pytest.raises(FixtureFailure, match=r"\[wrong output\].*differs at byte 5"):
        run_fixture(selftest, PacketFixture("wrong output", udp(9), XDP_TX, expected=UNCHANGED),
                    program="selftest_xdp")

    def fails(run: object, obj: object) -> None:
        raise AssertionError("custom check said no")

    with pytest.raises(FixtureFailure, match="custom check said no"):
        run_fixture(selftest, PacketFixture("check", udp(53), XDP_PASS, check=fails),
                    program="selftest_xdp")


def test_unprivileged_message_is_clear() -> None:
    # a BpfError names the call and the errno text, so the CLI can print it as is
    err = BpfError(errno.EPERM, "bpf_object__load(x)")
    assert "Operation not permitted" in str(err) and err.errno == errno.EPERM
    assert os.strerror(errno.EPERM) in str(err)
