"""A two-namespace lab for the agent (pyroute2): backend <-veth-> peer.

backend namespace: veth with the backend address B/24, a static neighbour entry for the
client address C pointing at the peer's MAC, a real HTTP server, the agent.
peer namespace: the other veth end with NO address, so its kernel neither answers for C
nor resets the backend's packets; the test peer talks through an AF_PACKET socket.

Everything is removed in :meth:`Lab.close` (the namespaces, and with them the veths),
whatever failed before; processes started inside must be stopped first.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

from pyroute2 import IPRoute, NetNS, netns

C_ADDR, B_ADDR = "10.77.0.1", "10.77.0.2"
_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns")


@contextlib.contextmanager
def in_netns(name: str) -> Iterator[None]:
    """Run the calling thread inside namespace ``name`` for the block (sockets created in
    it stay in it afterwards)."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(home)
    finally:
        os.close(target)
        os.close(home)


def nsexec(ns: str, *cmd: str, timeout: float = 20, check: bool = True) -> str:
    proc = subprocess.run(["ip", "netns", "exec", ns, *cmd], capture_output=True, text=True,
                          timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} in {ns}: exit {proc.returncode}: {proc.stderr}")
    return proc.stdout


@dataclass
class Lab:
    tag: str  # short unique suffix
    backend_ns: str = ""
    peer_ns: str = ""
    backend_if: str = ""
    peer_if: str = ""
    backend_mac: str = ""
    peer_mac: str = ""

    def __post_init__(self) -> None:
        self.backend_ns, self.peer_ns = f"mra-b{self.tag}", f"mra-p{self.tag}"
        self.backend_if, self.peer_if = f"mra-b{self.tag}", f"mra-p{self.tag}"

    def up(self) -> Lab:
        netns.create(self.backend_ns)
        netns.create(self.peer_ns)
        with IPRoute() as ipr:
            ipr.link("add", ifname=self.backend_if, kind="veth", peer={"ifname": self.peer_if})
            for ifname, ns in ((self.backend_if, self.backend_ns), (self.peer_if, self.peer_ns)):
                ipr.link("set", index=ipr.link_lookup(ifname=ifname)[0], net_ns_fd=ns)
        with NetNS(self.peer_ns) as ns:
            i = ns.link_lookup(ifname=self.peer_if)[0]
            ns.link("set", index=i, state="up")
            self.peer_mac = ns.get_links(i)[0].get_attr("IFLA_ADDRESS")
        with NetNS(self.backend_ns) as ns:
            ns.link("set", index=ns.link_lookup(ifname="lo")[0], state="up")
            i = ns.link_lookup(ifname=self.backend_if)[0]
            ns.link("set", index=i, state="up")
            ns.addr("add", index=i, address=B_ADDR, prefixlen=24)
            ns.neigh("add", dst=C_ADDR, lladdr=self.peer_mac, ifindex=i, state=0x80)
            self.backend_mac = ns.get_links(i)[0].get_attr("IFLA_ADDRESS")
        # segments of MSS size like a wire (no TSO/GSO super-packets over the veth)
        nsexec(self.backend_ns, "ethtool", "-K", self.backend_if, "tso", "off", "gso", "off")
        return self

    def close(self) -> None:
        """Remove both namespaces (the veth pair goes with them); never raises."""
        for ns in (self.backend_ns, self.peer_ns):
            with contextlib.suppress(Exception):
                netns.remove(ns)
