"""Every switch table / BPF map name, defined once (Katran's ``KatranLbMaps`` idea).

The XDP program's map variables, the generated C header, the XDP driver and the future P4
program (``@name(".<table>")``) all use these strings. A table renamed here is renamed
everywhere by regeneration; nothing else spells a table name.

BPF object names are limited to 15 characters (BPF_OBJ_NAME_LEN - 1), so every name here
stays within that; ``schema.py`` asserts it.
"""

from __future__ import annotations

__all__ = [
    "ALL_TABLES",
    "BACKEND",
    "BACKEND_ADDR",
    "BLOOM",
    "COOKIE_CLOCK",
    "COOKIE_SECRET",
    "COUNTERS",
    "FRONTEND",
    "LB_CONTROL",
    "LB_INDEX_0",
    "LB_INDEX_1",
    "OFFLOAD",
    "OFFLOAD_REV",
    "PROGRAM",
    "ROUTE",
    "TX_PORT",
    "VIP",
    "VIP_ADDR",
]

#: the XDP entry function (SEC("xdp")) and the P4 ingress control's name stem
PROGRAM = "miresga_switch"

VIP = "vip"
VIP_ADDR = "vip_addr"
LB_CONTROL = "lb_control"
LB_INDEX_0 = "lb_index_0"
LB_INDEX_1 = "lb_index_1"
BLOOM = "lb_bloom"
FRONTEND = "frontend"
BACKEND = "backend"
BACKEND_ADDR = "backend_addr"
OFFLOAD = "offload"
OFFLOAD_REV = "offload_rev"
ROUTE = "route"
TX_PORT = "tx_port"
COOKIE_SECRET = "cookie_secret"
COOKIE_CLOCK = "cookie_clock"
COUNTERS = "counters"

ALL_TABLES = (
    VIP, VIP_ADDR, LB_CONTROL, LB_INDEX_0, LB_INDEX_1, BLOOM, FRONTEND, BACKEND, BACKEND_ADDR,
    OFFLOAD, OFFLOAD_REV, ROUTE, TX_PORT, COOKIE_SECRET, COOKIE_CLOCK, COUNTERS,
)
