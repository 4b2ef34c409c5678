"""miresga-fe (DPDK, af_packet vdev, --no-huge --no-pci) in a network namespace: the
frames it sends for a generated session are the reference machine's packets, byte for
byte, its offload datagrams are the reference's offload requests (channel mode) or its
own writes to a real switch's maps leave them as the reference's requests applied by the
Python OffloadApplier would (direct mode), it does not burn a core while idle, and it
exits cleanly on SIGTERM.

Topology: namespace mrd-f<tag> holds one veth end, driven by miresga-fe; namespace
mrd-s<tag> holds the other end, where the test plays clients and backends (and the
switch) through an AF_PACKET socket. No addresses: no kernel answers for anyone.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import socket
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import tracegen

from bench.fe_world import COOKIE_KEY, VIP, S, frontend_config
from miresga_core.cookie import SLOT_SHIFT, CookieSecrets
from miresga_core.dpdk import build
from miresga_core.dpdk.process import FeProcess, write_config
from miresga_core.dpdk.shards import Sharded
from miresga_core.frontend import Frontend, FrontendConfig, trace
from miresga_core.frontend.state import Transmit

pytestmark = [pytest.mark.root, pytest.mark.netns]
_libc = ctypes.CDLL(None, use_errno=True)


@contextlib.contextmanager
def in_netns(name: str) -> Iterator[None]:
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if _libc.setns(target, 0x40000000):
            raise OSError(ctypes.get_errno(), "setns")
        try:
            yield
        finally:
            _libc.setns(home, 0x40000000)
    finally:
        os.close(target)
        os.close(home)


@pytest.fixture
def lab() -> Iterator[dict[str, str]]:
    from pyroute2 import IPRoute, NetNS, netns
    tag = uuid.uuid4().hex[:6]
    fe_ns, sw_ns, fe_if, sw_if = f"mrd-f{tag}", f"mrd-s{tag}", f"mrdf{tag}", f"mrds{tag}"
    netns.create(fe_ns)
    netns.create(sw_ns)
    try:
        with IPRoute() as ipr:
            ipr.link("add", ifname=fe_if, kind="veth", peer={"ifname": sw_if})
            for ifname, ns in ((fe_if, fe_ns), (sw_if, sw_ns)):
                ipr.link("set", index=ipr.link_lookup(ifname=ifname)[0], net_ns_fd=ns)
        macs = {}
        for ns, ifname in ((fe_ns, fe_if), (sw_ns, sw_if)):
            subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-qw",
                            "net.ipv6.conf.all.disable_ipv6=1"], check=True)
            with NetNS(ns) as n:
                i = n.link_lookup(ifname=ifname)[0]
                n.link("set", index=i, mtu=9000, state="up")
                macs[ns] = n.get_links(i)[0].get_attr("IFLA_ADDRESS")
        yield {"fe_ns": fe_ns, "sw_ns": sw_ns, "fe_if": fe_if, "sw_if": sw_if,
               "fe_mac": macs[fe_ns], "sw_mac": macs[sw_ns]}
    finally:
        for ns in (fe_ns, sw_ns):
            with contextlib.suppress(Exception):
                netns.remove(ns)


def _cfg() -> FrontendConfig:
    # no timer may fire during the run: the reference is not given the shell's clock
    return frontend_config(max_head=3000, syn_rto_ns=3600 * S, idle_timeout_ns=3600 * S,
                           close_grace_ns=3600 * S)


class Wire:
    """Stands in for the reference inside tracegen.World: each packet goes to the
    reference AND over the veth to miresga-fe; the frames that come back must be the
    reference's packets."""

    def __init__(self, ref: Frontend, sock: socket.socket, fe: FeProcess, hdr: bytes,
                 fe_mac: bytes) -> None:
        self.fe, self.ref, self.sock, self.proc, self.hdr = ref, ref, sock, fe, hdr
        self.fe_mac = fe_mac
        self.sent = self.frames_ok = 0
        self.offloads_want: list = []
        self.offloads_got: list = []

    def receive(self, raw: bytes, now: int) -> list:
        if not raw or (len(raw) >= 20 and raw[0] >> 4 == 4 and
                       int.from_bytes(raw[6:8], "big") & 0x3FFF):
            # an empty payload does not cross a veth, and the af_packet vdev's fanout
            # socket asks the kernel to defragment, which holds a lone IP fragment
            # (the machine would drop it as malformed anyway)
            return []
        want = self.ref.receive(raw, now)
        self.offloads_want += [a for a in want if not isinstance(a, Transmit)]
        self.sock.send(self.hdr + raw)
        self.sent += 1
        pkts = [a.packet for a in want if isinstance(a, Transmit)]
        got = self.collect(len(pkts), 2.0 if pkts else 0.01)
        if got != pkts:
            self.proc.control("stats")
            time.sleep(0.2)
        assert got == pkts, (f"packet {self.sent} ({len(raw)} bytes): {len(got)} frames, "
                             f"want {len(pkts)}; {self.proc.stats()}")
        self.frames_ok += len(got)
        self.offloads_got += self.proc.offloads()  # a controller drains the socket
        return want

    def expire(self, now: int) -> list:
        return []

    def collect(self, n: int, timeout: float) -> list[bytes]:
        out: list[bytes] = []
        deadline = time.monotonic() + timeout
        while len(out) < n or timeout <= 0.01:
            left = deadline - time.monotonic()
            # play the controller: apply (record) and acknowledge offload batches, which
            # releases the frames the shard holds for them
            self.offloads_got += self.proc.offloads()
            ready = select.select([self.sock, self.proc.sock], [], [], max(0.0, left))[0]
            if left <= 0 or not ready:
                break
            if self.sock not in ready:
                continue
            frame = self.sock.recv(65535)
            if frame[6:12] == self.fe_mac and frame[12:14] == b"\x08\x00":
                out.append(frame[14:])
        return out


def _clear_of_slot_boundary(seconds: float) -> None:
    """Wait until a cookie slot boundary is at least ``seconds`` away: the reference is
    given the time before the shell reads its own clock, and a boundary between the two
    would turn a previous-slot cookie valid on one side only."""
    left = ((1 << SLOT_SHIFT) - time.time_ns() % (1 << SLOT_SHIFT)) / S
    if left < seconds:
        time.sleep(left + 0.5)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


TRACE_BACKENDS = ["10.0.2.1", "10.0.2.2", "10.0.2.3", "10.0.2.4"]  # tracegen.CONFIG, :8080


@contextlib.contextmanager
def switches(tmp_path: Path) -> Iterator[tuple[object, object]]:
    """Two loaded XDP switches knowing the trace's backends: one pinned for miresga-fe
    (direct mode), one for the Python OffloadApplier (the reference). The pins live on a
    bpffs mounted under tmp_path: ``ip netns exec`` remounts /sys, which hides
    /sys/fs/bpf from the binary."""
    from miresga_core.bpf.bpffs import ensure_bpffs
    from miresga_core.dataplane.xdp import XdpSwitch

    fs = tmp_path / "bpffs"
    ensure_bpffs(fs)
    try:
        c_sw = XdpSwitch.load(pin_dir=fs / "sw")
        try:
            ref_sw = XdpSwitch.load()
            try:
                for sw in (c_sw, ref_sw):
                    for i, host in enumerate(TRACE_BACKENDS):
                        sw.set_backend(i + 1, host, 8080)
                yield c_sw, ref_sw
            finally:
                ref_sw.close()
        finally:
            c_sw.close()
    finally:
        subprocess.run(["umount", "-l", str(fs)], check=False, timeout=10)


def _offload_maps(sw) -> tuple[dict[bytes, bytes], dict[bytes, bytes]]:
    from miresga_core.dataplane import names
    return (dict(sw.maps[names.OFFLOAD].items(None)),
            dict(sw.maps[names.OFFLOAD_REV].items(None)))


@pytest.mark.parametrize("workers,asan,direct", [
    (1, False, False), (2, False, False), (2, True, False), (1, False, True),
    (2, True, True)],
    ids=["1-lcore", "2-lcores", "2-lcores-asan", "1-lcore-direct", "2-lcores-asan-direct"])
def test_dpdk_frontend_matches_reference_on_the_wire(lab, registry, tmp_path, workers, asan,
                                                     direct):
    """With 2 workers (lcores, shards) every frame is still the reference's: the shard
    that owns the flow answers, wherever the fanout put the packet. The asan cases run
    the binary built with ASan + UBSan (shell, steering, rings, machine, VM, direct
    offload), which aborts at the first error: the exit code says."""
    if not build.dpdk_available():
        pytest.skip("DPDK development files missing (libdpdk-dev)")
    with contextlib.ExitStack() as stack:
        sws = stack.enter_context(switches(tmp_path)) if direct else None
        _run_wire(lab, registry, tmp_path, workers, asan, sws)


def _run_wire(lab, registry, tmp_path, workers, asan, sws) -> None:
    secrets = CookieSecrets(COOKIE_KEY)
    conf = write_config(tmp_path / "cfg", _cfg(), {VIP: tracegen.decider(registry)}, secrets)
    fe = FeProcess(tmp_path / "run", lab["fe_if"], netns=lab["fe_ns"],
                   gateway_mac=lab["sw_mac"], workers=workers, asan=asan,
                   switch_pins=sws[0].pin_dir if sws else None,
                   offload_mode="direct" if sws else "channel")
    fe.start(conf)
    try:
        assert fe.offload_mode_used() == ("direct" if sws else "channel"), fe.log()
        with in_netns(lab["sw_ns"]):
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
        sock.bind((lab["sw_if"], 0x0800))
        fe_mac = bytes.fromhex(lab["fe_mac"].replace(":", ""))
        hdr = fe_mac + bytes.fromhex(lab["sw_mac"].replace(":", "")) + b"\x08\x00"
        # with N lcores the reference is N machines behind the same steering
        # (round-robin rotates per shard): miresga_core.dpdk.shards
        ref = Sharded([Frontend(_cfg(), tracegen.decider(registry), secrets)
                       for _ in range(workers)], [VIP])
        wire = Wire(ref, sock, fe, hdr, fe_mac)
        w = tracegen.World(registry, 11)
        w.rec = trace.Recorder(wire)  # type: ignore[arg-type]
        w.tick = lambda: None  # no simulated time: the shell runs on the real clock
        _clear_of_slot_boundary(40)
        for _ in range(300):
            w.now = time.time_ns()
            w.step()
        assert wire.sent >= 250 and wire.frames_ok >= 50
        time.sleep(0.1)
        wire.offloads_got += fe.offloads()
        if sws:
            # nothing came over the channel; the switch maps hold what the reference's
            # requests, applied by the Python OffloadApplier, leave (offloads of one
            # flow stay in its shard, so per-flow order is kept across shards)
            from miresga_core.frontend.shell import OffloadApplier
            assert wire.offloads_got == [] and wire.offloads_want
            applier = OffloadApplier(sws[1])
            applier.apply(wire.offloads_want)
            fe.control("stats")
            time.sleep(0.2)
            direct = fe.direct_counters()
            assert _offload_maps(sws[0]) == _offload_maps(sws[1])
            assert direct["offload_applied"] == applier.counters["offload_applied"] > 0
            assert direct["unoffload_applied"] == applier.counters["unoffload_applied"]
            assert direct["offload_failed"] == applier.counters["offload_failed"] == 0
        elif workers == 1:
            assert wire.offloads_got == wire.offloads_want and wire.offloads_want
        else:  # each shard has its own offload socket: order across them is not kept
            assert Counter(wire.offloads_got) == Counter(wire.offloads_want)
            assert wire.offloads_want
        # idle: the loop waits in poll(2) on the af_packet sockets (well under a core)
        assert "idle wait: poll on the packet sockets" in fe.log()
        pid = fe.proc.pid
        c0, t0 = _cpu_seconds(pid), time.monotonic()
        time.sleep(2.0)
        share = (_cpu_seconds(pid) - c0) / (time.monotonic() - t0)
        if not asan:  # instrumented code is slower; idle is measured without it
            assert share < 0.3 * workers, f"idle miresga-fe used {share:.0%} of a core"
        fe.control("stats")
        time.sleep(0.2)
        counters = fe.machine_counters()
        diff = {k: (counters.get(k, 0), v) for k, v in ref.counters.items()
                if counters.get(k, 0) != v}
        assert diff == {}, (fe.stats()["shards"][0]["io"], wire.sent)
        for shard in fe.stats()["shards"]:
            io = shard["io"]
            assert io["hold_timeouts"] == 0 and io["offload_drop"] == 0, io
            assert io["steer_drop"] == 0, io
        if workers > 1:  # both shards owned flows, and frames took the ring hop
            shards = fe.stats()["shards"]
            assert all(sh["machine"]["cookie_ok"] > 0 for sh in shards), shards
            assert sum(sh["io"]["steer_out"] for sh in shards) > 0, shards
            assert (sum(sh["io"]["steer_out"] for sh in shards)
                    == sum(sh["io"]["steer_in"] for sh in shards))
        sock.close()
    finally:
        rc = fe.stop()
        print(fe.log())
    assert rc == 0
    assert "Sanitizer" not in fe.log() and "runtime error" not in fe.log()


def test_switch_maps_that_do_not_open(lab, registry, tmp_path):
    """auto: said in the log, offloads go over the channel; direct: a clear error, exit."""
    if not build.dpdk_available():
        pytest.skip("DPDK development files missing (libdpdk-dev)")
    conf = write_config(tmp_path / "cfg", _cfg(), {VIP: tracegen.decider(registry)},
                        CookieSecrets(COOKIE_KEY))
    nowhere = tmp_path / "no-pins"
    fe = FeProcess(tmp_path / "run", lab["fe_if"], netns=lab["fe_ns"],
                   gateway_mac=lab["sw_mac"], switch_pins=nowhere)
    fe.start(conf)
    try:
        assert fe.offload_mode_used() == "channel"
        assert f"switch maps do not open ({nowhere}/offload: No such file" in fe.log()
    finally:
        assert fe.stop() == 0
    fe = FeProcess(tmp_path / "run2", lab["fe_if"], netns=lab["fe_ns"],
                   gateway_mac=lab["sw_mac"], switch_pins=nowhere, offload_mode="direct")
    with pytest.raises(RuntimeError, match=f"direct offload: {nowhere}/offload: No such"):
        fe.start(conf)
    assert not fe.alive()
