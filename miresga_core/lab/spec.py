"""The lab's description: how many of each host, the address plan, the switch settings.

Address plan (inside the lab's own namespaces only), for ``net`` = 10.77.0.0/16:
clients 10.77.1.<i+1>, front-ends 10.77.2.<i+1>, backends 10.77.3.<i+1>, VIPs as given
(default 10.77.255.1:80). Every host has one interface ``eth0`` in ``<prefix><role><i>``,
linked to the switch namespace ``<prefix>sw`` whose side is named ``<role><i>`` and whose
switch ports are numbered clients first, then front-ends, then backends.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ROLES", "Host", "LabSpec"]

ROLES = {"client": ("c", 1), "frontend": ("f", 2), "backend": ("b", 3)}
_PREFIX = re.compile(r"^[a-z][a-z0-9]{0,5}-$")
MAX_PER_ROLE = 200


@dataclass(frozen=True)
class Host:
    role: str
    index: int
    ns: str  # its namespace
    port_name: str  # the switch-side interface, in the switch namespace
    port: int  # switch port number (tx_port index)
    addr: str
    mac: str
    ifname: str = "eth0"


@dataclass(frozen=True)
class LabSpec:
    """A lab topology. ``switch`` False builds namespaces and links without the XDP program
    (the switch namespace then forwards nothing)."""

    prefix: str = "ml-"
    clients: int = 1
    frontends: int = 1
    backends: int = 1
    vips: tuple[tuple[str, int], ...] = (("10.77.255.1", 80),)
    net: str = "10.77.0.0/16"
    backend_port: int = 8080
    switch_mac: str = "02:4d:00:00:ff:01"
    switch: bool = True
    xdp_mode: str = "native"
    vip_mss: int = 1460
    pin_root: Path = field(default=Path("/sys/fs/bpf/miresga"))

    def __post_init__(self) -> None:
        if not _PREFIX.match(self.prefix):
            raise ValueError(f"prefix {self.prefix!r}: 1-6 lower-case letters/digits then '-'")
        for role in ("clients", "frontends", "backends"):
            n = getattr(self, role)
            if not 0 <= n <= MAX_PER_ROLE:
                raise ValueError(f"{role}: {n} out of range 0..{MAX_PER_ROLE}")
        net = ipaddress.IPv4Network(self.net)
        if net.prefixlen > 16:
            raise ValueError(f"net {self.net}: need a /16 or larger for the address plan")
        if not self.vips:
            raise ValueError("at least one VIP is needed")
        for addr, port in self.vips:
            if ipaddress.IPv4Address(addr) not in net:
                raise ValueError(f"VIP {addr} is outside the lab net {self.net}")
            if not 0 < port < 65536:
                raise ValueError(f"VIP port {port} out of range")
        if self.xdp_mode not in ("native", "generic"):
            raise ValueError(f"xdp_mode {self.xdp_mode!r}: native or generic")

    @property
    def switch_ns(self) -> str:
        return f"{self.prefix}sw"

    @property
    def pin_dir(self) -> Path:
        return self.pin_root / f"lab-{self.prefix.rstrip('-')}"

    @property
    def prefixlen(self) -> int:
        return ipaddress.IPv4Network(self.net).prefixlen

    def hosts(self, role: str | None = None) -> list[Host]:
        out: list[Host] = []
        base = int(ipaddress.IPv4Network(self.net).network_address)
        port = 0
        for r, (code, octet) in ROLES.items():
            for i in range(getattr(self, r + "s")):
                if role in (None, r):
                    out.append(Host(
                        r, i, f"{self.prefix}{code}{i}", f"{code}{i}", port,
                        str(ipaddress.IPv4Address(base + (octet << 8) + i + 1)),
                        f"02:4d:{octet:02x}:00:{(i + 1) >> 8:02x}:{(i + 1) & 0xff:02x}"))
                port += 1
        return out

    def namespaces(self) -> list[str]:
        return [self.switch_ns] + [h.ns for h in self.hosts()]

    def owns(self, ns: str) -> bool:
        """Whether a namespace name belongs to a lab with this prefix (any size)."""
        return re.fullmatch(re.escape(self.prefix) + r"(sw|[cfb]\d+)", ns) is not None
