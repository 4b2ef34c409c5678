"""The lab with real kernels: a client's connect() to the VIP completes against the switch
alone, and its first request packet arrives at the front-end the lb_index hash picks."""

from __future__ import annotations

import socket
import time

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from miresga_core.dataplane.flowhash import lb_bucket
from miresga_core.lab import Lab, LabError, LabSpec, down, in_netns, status, up
from miresga_core.lab import topology as topo
from miresga_core.lab.netns import netns_exists

pytestmark = [pytest.mark.root, pytest.mark.netns]

PREFIX = "mrs-"
REQUEST = b"GET /miresga-lab HTTP/1.1\r\nHost: vip\r\n\r\n"
ETH_P_ALL = 0x0003


def _open_capture(ifname: str) -> socket.socket:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((ifname, 0))
    s.setblocking(False)
    return s


def _connect(vip: str, port: int) -> tuple[socket.socket, tuple[str, int], float]:
    s = socket.socket()
    s.settimeout(5)
    t0 = time.perf_counter()
    s.connect((vip, port))
    took = time.perf_counter() - t0
    s.sendall(REQUEST)
    return s, s.getsockname(), took


def _frames(cap: socket.socket, seconds: float) -> list[Ether]:
    out: list[Ether] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and len(out) < 1000:
        try:
            data, addr = cap.recvfrom(65535)
        except BlockingIOError:
            time.sleep(0.01)
            continue
        if addr[2] != socket.PACKET_OUTGOING:
            out.append(Ether(data))
    return out


def _requests(frames: list[Ether], client: tuple[str, int]) -> list[Ether]:
    return [f for f in frames if TCP in f and f[IP].src == client[0]
            and f[TCP].sport == client[1] and bytes(f[TCP].payload).startswith(REQUEST)]


def test_connect_to_vip_and_first_request_reaches_hashed_frontend():
    spec = LabSpec(prefix=PREFIX, clients=1, frontends=2, backends=1)
    with Lab(spec) as lab:
        vip, vport = spec.vips[0]
        caps = [in_netns(fe.ns, _open_capture, fe.ifname) for fe in spec.hosts("frontend")]
        sock = None
        try:
            sock, local, took = in_netns(lab.client().ns, _connect, vip, vport)
            sw = lab.switch()
            try:
                want = sw.buckets()[lb_bucket(*local)]
                counters = sw.counters()
            finally:
                sw.close()
            seen = [_requests(_frames(cap, 1.0), local) for cap in caps]
        finally:
            if sock is not None:
                sock.close()
            for cap in caps:
                cap.close()
        assert took < 1.0, "connect() should complete on the first SYN-ACK"
        assert counters["synack"][0] >= 1 and counters["arp_reply"][0] >= 1
        assert seen[want], f"request not captured at front-end {want}"
        assert not seen[1 - want], "request also reached the other front-end"
        frame = seen[want][0]
        assert frame.dst == lab.frontend(want).mac and frame.src == spec.switch_mac
        assert frame[IP].dst == vip and frame[TCP].dport == vport  # L2 steering only
    assert not any(netns_exists(n) for n in spec.namespaces())
    assert not spec.pin_dir.exists()


def test_up_is_idempotent_and_repairs_partial_labs():
    spec = LabSpec(prefix=PREFIX, clients=1, frontends=1, backends=0)
    try:
        assert "up:" in up(spec)
        assert "already up" in up(spec)
        assert "up (3 namespaces)" in status(spec)
        in_netns(spec.switch_ns, lambda: None)
        topo.netns.remove(f"{PREFIX}f0")  # break it
        assert "PARTIAL" in status(spec)
        assert "up:" in up(spec)  # rebuilt
        assert netns_exists(f"{PREFIX}f0")
        bigger = LabSpec(prefix=PREFIX, clients=2, frontends=1, backends=0)
        assert "up:" in up(bigger)  # another spec with the same prefix: rebuilt to it
        assert netns_exists(f"{PREFIX}c1") and "already up" in up(bigger)
    finally:
        down(spec)
    assert status(spec).endswith("down")


def test_failure_while_building_leaves_nothing(monkeypatch):
    spec = LabSpec(prefix=PREFIX, clients=1, frontends=1, backends=1)

    def broken(_spec):
        raise RuntimeError("injected failure after the links were made")

    monkeypatch.setattr(topo, "_switch_program", broken)
    with pytest.raises(LabError, match="injected failure"):
        up(spec)
    assert not any(netns_exists(n) for n in spec.namespaces())


def test_cli_up_status_down(capsys):
    import argparse

    from miresga_core import cli_lab

    parser = argparse.ArgumentParser()
    cli_lab.add_parser(parser.add_subparsers(dest="command"))

    def run(*argv):
        args = parser.parse_args(list(argv))
        assert args.func(args) == 0
        return capsys.readouterr().out

    try:
        assert "up:" in run("lab", "up", "--prefix", PREFIX, "--clients", "2",
                            "--frontends", "1", "--backends", "0")
        out = run("lab", "status", "--prefix", PREFIX)
        assert "client      1" in out and "xdp prog" in out
    finally:
        assert "down" in run("lab", "down", "--prefix", PREFIX)
    assert not netns_exists(f"{PREFIX}c1")
