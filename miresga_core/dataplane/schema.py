"""The switch pipeline's table schema: the one description every switch target follows.

Theory of operation
-------------------
The Miresga switch is a fixed pipeline of match-action tables (docs/switch.md walks the
packet path). This module declares each table once: its keys (bit width, match kind,
byte order), its one hit action with typed parameters, what a miss does, its size and a
purpose line. Everything else is derived from it:

* the XDP program's key/value C structs and map definitions
  (``native/xdp/generated/switch_tables.h``, written by ``gen_c.py``, drift-tested);
* the byte packing the XDP driver uses to write entries (``Table.pack_key`` /
  ``pack_value``), computed from the same C layout the header gets;
* the Tofino P4 program, which declares the same tables, keys, actions and parameters with
  ``@name(".<table>")`` / ``@name(".<action>")`` and the widths given here.

Widths are P4 widths. The XDP layout rounds each field up to a C type (8/16/32/64 bits,
48-bit MACs as ``__u8[6]``) with natural alignment and explicit padding. Fields marked
``net`` are kept in network byte order in XDP maps, as they appear in packets.

Table kinds: HASH (exact match), LPM, INDEX (array indexed by a small integer key),
SINGLETON (one entry, a P4 table with only a default action), REGISTER (array of words the
data plane writes), COUNTER (indexed packet/byte counters), DEVMAP (XDP only: port ->
ifindex for bpf_redirect_map).
"""

from __future__ import annotations

import enum
import ipaddress
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import names

__all__ = [
    "BLOOM_BITS",
    "BLOOM_WORDS",
    "COUNTERS",
    "LB_BUCKETS",
    "MAX_BACKENDS",
    "MAX_FRONTENDS",
    "MAX_PORTS",
    "SCHEMA",
    "Action",
    "CField",
    "Field",
    "Kind",
    "Match",
    "OffloadModeId",
    "Table",
    "counter_index",
    "markdown",
    "table",
]

# ----------------------------------------------------------------------------- sizes

LB_BUCKETS = 1024  # lb_index buckets; a power of two, the hash is masked
BLOOM_BITS = 65536  # bits of the membership-change Bloom filter (two probes per flow)
BLOOM_WORDS = BLOOM_BITS // 32
MAX_FRONTENDS = 64
MAX_BACKENDS = 4096
MAX_PORTS = 64
MAX_VIPS = 256
OFFLOAD_SIZE = 65536
ROUTE_SIZE = 1024


class Match(enum.Enum):
    EXACT = "exact"
    LPM = "lpm"
    INDEX = "index"  # array index (P4: exact on a small key, or a register index)


class Kind(enum.Enum):
    HASH = "hash"
    LPM = "lpm"
    INDEX = "index"
    SINGLETON = "singleton"
    REGISTER = "register"
    COUNTER = "counter"
    DEVMAP = "devmap"


class OffloadModeId(enum.IntEnum):
    """``offloaded.mode`` values (api.OffloadMode SPLICE / PIN)."""

    SPLICE = 0
    PIN = 1


@dataclass(frozen=True)
class Field:
    """A key field or an action parameter. ``fmt`` says how Python values are given:
    "int", "ipv4" (dotted string or int) or "mac" ("aa:bb:..." or 6 bytes)."""

    name: str
    bits: int
    match: Match = Match.EXACT
    net: bool = False
    fmt: str = "int"
    doc: str = ""


@dataclass(frozen=True)
class Action:
    name: str
    params: tuple[Field, ...]
    doc: str


@dataclass(frozen=True)
class CField:
    """One member of a generated C struct (padding members have ``pad`` True)."""

    name: str
    ctype: str
    offset: int
    size: int
    array: int = 0
    pad: bool = False
    source: Field | None = None


def _ctype(f: Field) -> tuple[str, int, int]:
    """(C type, size, array length) for a field's width."""
    if f.bits == 48:
        return "__u8", 6, 6
    for limit, size in ((8, 1), (16, 2), (32, 4), (64, 8)):
        if f.bits <= limit:
            prefix = "__be" if f.net and size > 1 else "__u"
            return f"{prefix}{size * 8}", size, 0
    raise ValueError(f"field {f.name}: {f.bits} bits is wider than 64")


def c_layout(fields: Sequence[Field], *, lpm: bool = False) -> tuple[list[CField], int]:
    """Natural-alignment layout with explicit padding, as clang lays out the struct."""
    out: list[CField] = []
    offset = 0
    max_align = 1
    pads = 0
    items: list[tuple[str, str, int, int, Field | None]] = []
    if lpm:
        items.append(("prefixlen", "__u32", 4, 0, None))
    for f in fields:
        ctype, size, array = _ctype(f)
        items.append((f.name, ctype, size, array, f))
    for name, ctype, size, array, src in items:
        align = 1 if array else size
        max_align = max(max_align, align)
        if offset % align:
            gap = align - offset % align
            out.append(CField(f"_pad{pads}", "__u8", offset, gap, gap, pad=True))
            pads += 1
            offset += gap
        out.append(CField(name, ctype, offset, size, array, source=src))
        offset += size
    if offset % max_align:
        gap = max_align - offset % max_align
        out.append(CField(f"_pad{pads}", "__u8", offset, gap, gap, pad=True))
        offset += gap
    return out, offset


def _encode(f: Field, value: Any, size: int) -> bytes:
    if f.fmt == "mac":
        raw = bytes.fromhex(value.replace(":", "")) if isinstance(value, str) else bytes(value)
        if len(raw) != 6:
            raise ValueError(f"{f.name}: {value!r} is not a MAC address")
        return raw
    if f.fmt == "ipv4" and not isinstance(value, int):
        value = int(ipaddress.IPv4Address(value))
    if isinstance(value, bool):
        value = int(value)
    if not isinstance(value, int):
        raise TypeError(f"{f.name}: expected an integer, got {value!r}")
    if not 0 <= value < (1 << f.bits):
        raise ValueError(f"{f.name}: {value} does not fit in {f.bits} bits")
    return int(value).to_bytes(size, "big" if f.net else sys.byteorder)


def _decode(f: Field, raw: bytes) -> Any:
    if f.fmt == "mac":
        return ":".join(f"{b:02x}" for b in raw)
    value = int.from_bytes(raw, "big" if f.net else sys.byteorder)
    return str(ipaddress.IPv4Address(value)) if f.fmt == "ipv4" else value


def _pack(layout: list[CField], size: int, values: Mapping[str, Any], what: str) -> bytes:
    wanted = {c.name for c in layout if not c.pad}
    unknown = set(values) - wanted
    missing = wanted - set(values)
    if unknown or missing:
        raise ValueError(f"{what}: unknown fields {sorted(unknown)}, missing {sorted(missing)}")
    buf = bytearray(size)
    for c in layout:
        if c.pad:
            continue
        src = c.source or Field(c.name, 32)
        buf[c.offset:c.offset + c.size] = _encode(src, values[c.name], c.size)
    return bytes(buf)


def _unpack(layout: list[CField], raw: bytes) -> dict[str, Any]:
    out = {}
    for c in layout:
        if not c.pad:
            out[c.name] = _decode(c.source or Field(c.name, 32), raw[c.offset:c.offset + c.size])
    return out


@dataclass(frozen=True)
class Table:
    """One match-action table. ``action`` is the hit action (None for registers,
    counters); ``default`` says, in words, what a miss does (the P4 default action)."""

    name: str
    purpose: str
    kind: Kind
    size: int
    keys: tuple[Field, ...] = ()
    action: Action | None = None
    default: str = "NoAction"
    targets: frozenset[str] = frozenset({"xdp", "tofino"})
    value_fields: tuple[Field, ...] = field(default=())

    @property
    def params(self) -> tuple[Field, ...]:
        return self.action.params if self.action else self.value_fields

    def key_layout(self) -> tuple[list[CField], int]:
        if self.kind in (Kind.INDEX, Kind.SINGLETON, Kind.REGISTER, Kind.COUNTER, Kind.DEVMAP):
            return c_layout([Field("index", 32)])  # BPF arrays are indexed by __u32
        return c_layout(self.keys, lpm=self.kind is Kind.LPM)

    def value_layout(self) -> tuple[list[CField], int]:
        return c_layout(self.params)

    def pack_key(self, **values: Any) -> bytes:
        layout, size = self.key_layout()
        return _pack(layout, size, values, f"{self.name} key")

    def pack_value(self, **values: Any) -> bytes:
        layout, size = self.value_layout()
        return _pack(layout, size, values, f"{self.name} value")

    def unpack_key(self, raw: bytes) -> dict[str, Any]:
        return _unpack(self.key_layout()[0], raw)

    def unpack_value(self, raw: bytes) -> dict[str, Any]:
        return _unpack(self.value_layout()[0], raw)


# ----------------------------------------------------------------------------- fields

def _ip(name: str, doc: str = "", match: Match = Match.EXACT) -> Field:
    return Field(name, 32, match=match, net=True, fmt="ipv4", doc=doc)


def _port(name: str, doc: str = "") -> Field:
    return Field(name, 16, net=True, doc=doc)


def _mac(name: str, doc: str = "") -> Field:
    return Field(name, 48, fmt="mac", doc=doc)


_LB_BITS = LB_BUCKETS.bit_length() - 1

SCHEMA: tuple[Table, ...] = (
    Table(
        names.VIP, "TCP services the switch answers SYNs for (VIP address and port).",
        Kind.HASH, MAX_VIPS,
        keys=(_ip("vip_addr"), _port("vip_port")),
        action=Action("vip_hit", (
            Field("mss", 16, doc="MSS the SYN-ACK advertises (the switch's own, clamps)"),
            Field("window", 16, doc="window of the SYN-ACK (never scaled, RFC 7323 2.2)"),
            Field("wscale", 4, doc="window scale offered when the client offered one"),
        ), "Mark the packet as VIP traffic; SYNs get a cookie SYN-ACK."),
        default="not a VIP service: route normally",
    ),
    Table(
        names.VIP_ADDR, "VIP addresses the switch answers ARP requests for.",
        Kind.HASH, MAX_VIPS,
        keys=(_ip("addr"),),
        action=Action("arp_reply", (_mac("mac", "MAC the ARP reply announces"),),
                      "Turn the ARP request into a reply in place and send it back out."),
        default="pass to the host (XDP_PASS) / CPU port",
    ),
    Table(
        names.LB_CONTROL, "Which lb_index table is active, and whether a front-end "
        "membership change is in progress.",
        Kind.SINGLETON, 1,
        action=Action("set_lb_state", (
            Field("active", 1, doc="lb_index table used for flows not in the Bloom filter"),
            Field("changing", 1, doc="1 while a change is running: SYNs enter the Bloom "
                  "filter and flows found there use the other table"),
        ), "Set the lb_index state (controller writes it)."),
        default="active=0, changing=0",
    ),
    Table(
        names.LB_INDEX_0, "Front-end by client-hash bucket (table 0 of 2).",
        Kind.INDEX, LB_BUCKETS,
        keys=(Field("bucket", _LB_BITS, match=Match.INDEX),),
        action=Action("set_frontend", (Field("frontend", 8, doc="frontend table index"),),
                      "Steer the flow to this front-end."),
        default="empty entry reads as frontend 0",
    ),
    Table(
        names.LB_INDEX_1, "Front-end by client-hash bucket (table 1 of 2).",
        Kind.INDEX, LB_BUCKETS,
        keys=(Field("bucket", _LB_BITS, match=Match.INDEX),),
        action=Action("set_frontend", (Field("frontend", 8, doc="frontend table index"),),
                      "Steer the flow to this front-end."),
        default="empty entry reads as frontend 0",
    ),
    Table(
        names.BLOOM, "Bloom filter of flows whose SYN arrived during a front-end "
        "membership change (bit array, two probes).",
        Kind.REGISTER, BLOOM_WORDS,
        value_fields=(Field("bits", 32),),
        default="written by the data plane on SYN while changing; cleared by the controller",
    ),
    Table(
        names.FRONTEND, "Front-end servers by index: where their packets are sent.",
        Kind.INDEX, MAX_FRONTENDS,
        keys=(Field("index", 8, match=Match.INDEX),),
        action=Action("set_frontend_addr", (_ip("addr", "front-end address, resolved by route"),),
                      "L2-forward the packet (IP untouched) towards this front-end."),
        default="addr 0.0.0.0: drop (counted as no_frontend)",
    ),
    Table(
        names.BACKEND, "Backend servers by index: the address an offloaded flow is sent to.",
        Kind.INDEX, MAX_BACKENDS,
        keys=(Field("index", 16, match=Match.INDEX),),
        action=Action("set_backend_addr", (_ip("addr"), _port("port")),
                      "Rewrite the destination to this backend."),
        default="addr 0.0.0.0: drop (counted as no_backend)",
    ),
    Table(
        names.BACKEND_ADDR, "Backend address:port -> index: recognises backend -> client "
        "packets.",
        Kind.HASH, MAX_BACKENDS,
        keys=(_ip("addr"), _port("port")),
        action=Action("is_backend", (Field("index", 16),),
                      "Packet is from a backend: look up offload_rev."),
        default="not from a backend: route normally",
    ),
    Table(
        names.OFFLOAD, "Offloaded connections, client side: (client, VIP) -> backend and "
        "mode.",
        Kind.HASH, OFFLOAD_SIZE,
        keys=(_ip("client_addr"), _ip("vip_addr"), _port("client_port"), _port("vip_port")),
        action=Action("offloaded", (
            Field("backend", 16, doc="backend table index"),
            Field("mode", 8, doc="0 splice (payload to the front-end), 1 pin (all to backend)"),
        ), "Pure ACKs (and in pin mode all packets) go to the backend."),
        default="not offloaded: front-end by lb_index",
    ),
    Table(
        names.OFFLOAD_REV, "Offloaded connections, backend side: (client, current backend) "
        "-> VIP.",
        Kind.HASH, OFFLOAD_SIZE,
        keys=(_ip("client_addr"), _ip("backend_addr"), _port("client_port"),
              _port("backend_port")),
        action=Action("to_client", (_ip("vip_addr"), _port("vip_port")),
                      "Rewrite the source to the VIP and route to the client."),
        default="old or unknown backend leg: front-end by lb_index",
    ),
    Table(
        names.ROUTE, "Destination routing: IPv4 prefix -> output port and MACs.",
        Kind.LPM, ROUTE_SIZE,
        keys=(_ip("dst", match=Match.LPM),),
        action=Action("forward", (
            Field("port", 16, doc="switch port (XDP: tx_port index; Tofino: 9-bit port)"),
            _mac("smac", "source MAC written on the way out"),
            _mac("dmac", "destination MAC (next hop)"),
        ), "Set MACs and send out of the port."),
        default="pass to the host (XDP_PASS) / CPU port",
    ),
    Table(
        names.TX_PORT, "XDP only: switch port -> egress ifindex (devmap for redirect).",
        Kind.DEVMAP, MAX_PORTS,
        value_fields=(Field("ifindex", 32),),
        targets=frozenset({"xdp"}),
        default="no such port: the packet is dropped and counted (redirect_fail)",
    ),
    Table(
        names.COOKIE_SECRET, "SYN cookie keys: index 0 current, 1 previous (cookie.py).",
        Kind.INDEX, 2,
        keys=(Field("index", 1, match=Match.INDEX),),
        action=Action("set_secret", (Field("k0", 32), Field("k1", 32)),
                      "HalfSipHash key words (k0 = key bytes 0..3 little-endian)."),
        default="zero key: SYNs are dropped (syn_nosecret) until the controller sets one",
    ),
    Table(
        names.COOKIE_CLOCK, "SYN cookie time base: slot = base_slot + ((now - base_ns) >> "
        "SLOT_SHIFT), now the switch's monotonic ns clock.",
        Kind.SINGLETON, 1,
        action=Action("set_clock", (Field("base_slot", 32), Field("base_ns", 64)),
                      "Align the switch's clock to the controller's wall-clock slots."),
        default="base 0: slot counts from the switch clock's zero",
    ),
    Table(
        names.COUNTERS, "Packet and byte counters per table outcome and verdict.",
        Kind.COUNTER, 0,  # size filled below from COUNTERS
        value_fields=(Field("packets", 64), Field("bytes", 64)),
    ),
)

#: counter index -> (name, meaning). Position is the index; never reorder, only append.
COUNTERS: tuple[tuple[str, str], ...] = (
    ("rx", "packets seen"),
    ("malformed", "truncated or unparsable headers: dropped"),
    ("vip_hit", "TCP to a VIP service"),
    ("vip_miss", "IPv4 to no VIP service: routed"),
    ("arp_reply", "ARP requests for a VIP answered"),
    ("arp_other", "ARP not for a VIP: passed to the host"),
    ("synack", "SYN answered with a cookie SYN-ACK"),
    ("syn_bad", "SYN with bad options or flags: dropped"),
    ("offload_hit", "client packet of an offloaded flow"),
    ("offload_miss", "client packet of a non-offloaded flow"),
    ("to_frontend", "sent to a front-end"),
    ("to_backend", "sent to a backend (destination rewritten)"),
    ("to_client", "backend packet sent to the client (source rewritten to the VIP)"),
    ("backend_old", "backend packet of a non-current leg: sent to the front-end"),
    ("bloom_insert", "SYN recorded in the Bloom filter during a change"),
    ("bloom_hit", "flow found in the Bloom filter: new lb_index table used"),
    ("no_frontend", "lb_index or frontend entry empty: dropped"),
    ("no_backend", "backend entry empty: dropped"),
    ("routed", "forwarded by the route table"),
    ("route_miss", "no route: passed to the host"),
    ("redirect_fail", "devmap has no such port: dropped"),
    ("xdp_aborted", "verdict XDP_ABORTED"),
    ("xdp_drop", "verdict XDP_DROP"),
    ("xdp_pass", "verdict XDP_PASS"),
    ("xdp_tx", "verdict XDP_TX"),
    ("xdp_redirect", "verdict XDP_REDIRECT"),
    ("syn_nosecret", "SYN dropped: no cookie secret set yet (all-zero key)"),
    ("synack_ts", "cookie SYN-ACK that carries timestamps (XDP only; also counted in synack)"),
)

SCHEMA = tuple(
    Table(t.name, t.purpose, t.kind, len(COUNTERS), t.keys, t.action, t.default, t.targets,
          t.value_fields) if t.kind is Kind.COUNTER else t
    for t in SCHEMA
)

_BY_NAME = {t.name: t for t in SCHEMA}


def table(name: str) -> Table:
    """The table called ``name``; KeyError names the known tables."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"no switch table {name!r}; known: {', '.join(_BY_NAME)}") from None


def counter_index(name: str) -> int:
    for i, (cname, _doc) in enumerate(COUNTERS):
        if cname == name:
            return i
    raise KeyError(f"no counter {name!r}")


def _check() -> None:
    seen = set()
    for t in SCHEMA:
        assert t.name in names.ALL_TABLES, t.name
        assert len(t.name) <= 15, t.name
        assert t.name not in seen, t.name
        seen.add(t.name)
    assert seen == set(names.ALL_TABLES)
    # P4 @name(".x") is global: a table and an action may not share a name
    actions = {t.action.name for t in SCHEMA if t.action}
    assert not actions & seen, actions & seen
    assert LB_BUCKETS & (LB_BUCKETS - 1) == 0 and BLOOM_BITS & (BLOOM_BITS - 1) == 0


_check()


def markdown() -> str:
    """The schema as the reference section of docs/switch.md (regenerated by gen_c)."""
    out = ["| table | kind | size | key (bits, match) | hit action (param bits) | miss |",
           "| --- | --- | --- | --- | --- | --- |"]
    for t in SCHEMA:
        if t.kind in (Kind.SINGLETON,):
            keys = "(none: one entry)"
        elif t.keys:
            keys = ", ".join(f"`{k.name}` {k.bits} {k.match.value}" for k in t.keys)
        else:
            keys = "`index` (array)"
        if t.action:
            act = f"`{t.action.name}`(" + ", ".join(f"{p.name} {p.bits}"
                                                    for p in t.action.params) + ")"
        else:
            act = "data: " + ", ".join(f"{p.name} {p.bits}" for p in t.value_fields)
        xdp_only = " (XDP only)" if "tofino" not in t.targets else ""
        out.append(f"| `{t.name}`{xdp_only} | {t.kind.value} | {t.size} | {keys} | {act} | "
                   f"{t.default} |")
    out += ["", "Purpose of each table:", ""]
    out += [f"- `{t.name}`: {t.purpose}" for t in SCHEMA]
    out += ["", "Counters (index: name, meaning):", ""]
    out += [f"{i}. `{name}`: {doc}" for i, (name, doc) in enumerate(COUNTERS)]
    return "\n".join(out) + "\n"
