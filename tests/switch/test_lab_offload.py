"""Offload through the real kernels of the lab (native XDP): a backend's segment reaches
the client as if sent by the VIP (the client's kernel checks the checksums and accepts the
data), and the client's pure ACK reaches the backend with its destination rewritten."""

from __future__ import annotations

import socket
import time

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from miresga_core.dataplane.schema import OffloadModeId
from miresga_core.lab import Lab, LabSpec, in_netns

pytestmark = [pytest.mark.root, pytest.mark.netns]

ETH_P_ALL = 0x0003
RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"


def _capture(ifname: str) -> socket.socket:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((ifname, 0))
    s.setblocking(False)
    return s


def _drain(cap: socket.socket, seconds: float, want) -> list[tuple[int, Ether]]:
    out = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and len(out) < 500:
        try:
            data, addr = cap.recvfrom(65535)
        except BlockingIOError:
            if any(want(f) for _t, f in out):
                break
            time.sleep(0.01)
            continue
        out.append((addr[2], Ether(data)))
    return out


def _connect(vip: str, port: int) -> socket.socket:
    s = socket.socket()
    s.settimeout(5)
    s.connect((vip, port))
    return s


def _send_frame(ifname: str, frame: bytes) -> None:
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as s:
        s.bind((ifname, 0))
        s.send(frame)


def _checksums_ok(frame: Ether) -> bool:
    again = Ether(bytes(frame))
    del again[IP].chksum
    del again[TCP].chksum
    again = Ether(bytes(again))
    return again[IP].chksum == frame[IP].chksum and again[TCP].chksum == frame[TCP].chksum


@pytest.mark.parametrize("mode", ["native", "generic"])
def test_offloaded_flow_through_real_kernels(mode):
    spec = LabSpec(prefix="mrs-", clients=1, frontends=1, backends=1, xdp_mode=mode)
    with Lab(spec) as lab:
        vip, vport = spec.vips[0]
        client, backend = lab.client(), lab.backend()
        ccap = in_netns(client.ns, _capture, client.ifname)
        bcap = in_netns(backend.ns, _capture, backend.ifname)
        sock = None
        try:
            sock = in_netns(client.ns, _connect, vip, vport)
            cport = sock.getsockname()[1]
            hs = _drain(ccap, 0.5, lambda f: False)
            syn = next(f for t, f in hs if TCP in f and f[TCP].flags == "S")
            synack = next(f for t, f in hs if TCP in f and f[TCP].flags == "SA")
            sw = lab.switch()
            try:
                sw.offload_add((client.addr, cport), (vip, vport), 0,
                               (backend.addr, spec.backend_port), OffloadModeId.SPLICE)
            finally:
                sw.close()
            # the backend answers (as the agent would after translating sequence numbers)
            seg = (Ether(src=backend.mac, dst=spec.switch_mac) /
                   IP(src=backend.addr, dst=client.addr) /
                   TCP(sport=spec.backend_port, dport=cport, flags="PA",
                       seq=synack[TCP].seq + 1, ack=syn[TCP].seq + 1, window=502) / RESPONSE)
            in_netns(backend.ns, _send_frame, backend.ifname, bytes(seg))
            got = sock.recv(4096)
            acks = _drain(bcap, 2.0, lambda f: TCP in f and f[IP].src == client.addr)
        finally:
            if sock is not None:
                sock.close()
            ccap.close()
            bcap.close()
    assert got == RESPONSE, "the client kernel accepted the backend's segment as the VIP's"
    pure = [f for t, f in acks if t != socket.PACKET_OUTGOING and TCP in f
            and f[IP].src == client.addr and f[TCP].flags == "A"]
    assert pure, "the client's pure ACK did not reach the backend"
    ack = pure[0]
    assert (ack[IP].dst, ack[TCP].dport) == (backend.addr, spec.backend_port)
    assert ack[TCP].ack == synack[TCP].seq + 1 + len(RESPONSE)
    assert ack.dst == backend.mac and _checksums_ok(ack)
