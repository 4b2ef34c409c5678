"""The switch topology every BPF_PROG_TEST_RUN fixture of tests/switch runs against.

Ports point at ``lo`` in the devmap: a test run never transmits (the verdict and the
rewritten packet are the result), so any existing ifindex will do. Each host has its own
MAC, so the output packet's destination MAC says which port/host it went to.
"""

from __future__ import annotations

import time

from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from miresga_core import cookie
from miresga_core.dataplane.flowhash import lb_bucket
from miresga_core.dataplane.xdp import XdpSwitch, rebalance

SW_MAC = "02:00:00:00:ff:01"
VIP, VPORT = "10.77.255.1", 80
VIP_MSS, VIP_WINDOW, VIP_WSCALE = 1400, 65535, 7
KEY = bytes.fromhex("0001020304050607")

CLIENTS = [("10.77.1.1", "02:00:00:01:00:01"), ("10.77.1.2", "02:00:00:01:00:02")]
FRONTENDS = [("10.77.2.1", "02:00:00:02:00:01"), ("10.77.2.2", "02:00:00:02:00:02")]
BACKENDS = [("10.77.3.1", "02:00:00:03:00:01", 8080), ("10.77.3.2", "02:00:00:03:00:02", 8080)]
OTHER = ("10.77.9.9", "02:00:00:09:00:09")  # a host that is neither of the above


def configure(sw: XdpSwitch) -> None:
    sw.set_vip(VIP, VPORT, mac=SW_MAC, mss=VIP_MSS, window=VIP_WINDOW, wscale=VIP_WSCALE)
    hosts = [(a, m) for a, m in CLIENTS + FRONTENDS] + [(a, m) for a, m, _ in BACKENDS]
    hosts.append(OTHER)
    for port, (addr, mac) in enumerate(hosts):
        sw.set_port(port, 1)
        sw.set_route(f"{addr}/32", port, smac=SW_MAC, dmac=mac)
    for i, (addr, _mac) in enumerate(FRONTENDS):
        sw.set_frontend(i, addr)
    for i, (addr, _mac, port) in enumerate(BACKENDS):
        sw.set_backend(i, addr, port)
    sw.set_frontends(rebalance(None, range(len(FRONTENDS))), drain=False)
    sw.set_cookie_secret(KEY)


def frontend_of(client: str, port: int, buckets: list[int]) -> tuple[str, str]:
    """The front-end (addr, mac) the lb_index hash picks for a client."""
    return FRONTENDS[buckets[lb_bucket(client, port)]]


def client_port_for(client: str, frontend: int, buckets: list[int], start: int = 40000) -> int:
    """A client port whose flow hashes to ``frontend``."""
    for port in range(start, start + 5000):
        if buckets[lb_bucket(client, port)] == frontend:
            return port
    raise AssertionError("no port hashes to that front-end")


def tcp(src: str, sport: int, dst: str, dport: int, flags: str, *, seq: int = 1000,
        ack: int = 0, payload: bytes = b"", options=(), smac: str = CLIENTS[0][1],
        dmac: str = SW_MAC) -> Ether:
    pkt = (Ether(src=smac, dst=dmac) / IP(src=src, dst=dst, id=7, ttl=61) /
           TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack, window=5000,
               options=list(options)))
    return pkt / payload if payload else pkt


def rewritten(pkt: Ether, *, smac=None, dmac=None, ip_src=None, ip_dst=None, sport=None,
              dport=None) -> bytes:
    """``pkt`` with fields changed and checksums recomputed from scratch by scapy: what
    the incremental updates in the switch must produce."""
    p = Ether(bytes(pkt))
    for layer, name, value in ((Ether, "src", smac), (Ether, "dst", dmac), (IP, "src", ip_src),
                               (IP, "dst", ip_dst), (TCP, "sport", sport),
                               (TCP, "dport", dport)):
        if value is not None:
            setattr(p[layer], name, value)
    del p[IP].chksum
    del p[TCP].chksum
    return bytes(p)


def slots_now() -> tuple[int, int]:
    """The cookie slot now and a moment later (a test may straddle a boundary)."""
    now = cookie.slot_at(time.time_ns())
    return now, now + 1
