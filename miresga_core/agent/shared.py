"""What the agent's BPF programs and user space share: structs, enums, names, limits.

The one source of truth; ``native/xdp/agent_shared.h`` is generated from this module
(``python3 -m miresga_core.wire.gen_headers``) and a test fails when it is stale.

Theory of the per-flow state: a flow is keyed from the client's side (client addr/port ->
backend addr/port) in an LRU hash, so ingress packets look it up as they come and egress
packets with addresses and ports swapped. A tagged SYN creates it (SYN_SEEN); the backend's
SYN-ACK sets ``delta`` = backend ISN - ``seq_base`` (F_DELTA); FIN in each direction sets
F_FIN_IN / F_FIN_OUT and, once both are seen, ``closed_ns``; RST sets F_RST and
``closed_ns`` at once. A closed flow keeps translating for ``grace_ns`` (late ACKs and
retransmitted FINs still need it) and is deleted by the first packet after that; a flow
idle for ``idle_timeout_ns`` is deleted the same way, and the LRU evicts whatever nobody
touches any more.

Timestamps (RFC 7323): a tagged SYN with the timestamp trailer (wire/option.py) stores
``ts_base`` and sets F_TS; the backend's SYN-ACK then either teaches ``ts_delta`` = ts_base -
its TSval (F_TS_DELTA) or, without a timestamps option, clears F_TS (the backend has them
off). With F_TS_DELTA egress TSvals get +ts_delta and ingress TSecrs -ts_delta.
"""

from __future__ import annotations

from ..wire.cstruct import CEnum, CStruct, Field

__all__ = [
    "CONFIG", "COUNTERS", "FLOW", "FLOW_FLAGS", "FLOW_KEY", "MAP_CONFIG", "MAP_COUNTERS",
    "MAP_FLOWS", "MAX_FLOWS", "PROG_EGRESS", "PROG_INGRESS", "WSCALE_UNKNOWN",
    "c_constants",
]

# names the loader and the CLI use (KatranLbMaps analogue); the C code declares the same
MAP_FLOWS = "flows"
MAP_CONFIG = "config"
MAP_COUNTERS = "counters"
PROG_INGRESS = "agent_xdp_ingress"
PROG_EGRESS = "agent_tc_egress"

MAX_FLOWS = 65536
WSCALE_UNKNOWN = 0xFF
DEFAULT_IDLE_TIMEOUT_S = 300
DEFAULT_GRACE_S = 10

FLOW_KEY = CStruct("flow_key", [
    Field("client_addr", "be32", "client IPv4 address (the SYN's source)"),
    Field("backend_addr", "be32", "backend IPv4 address"),
    Field("client_port", "be16"),
    Field("backend_port", "be16"),
], doc="LRU key: the flow as seen on ingress")

FLOW_FLAGS = CEnum("flow_flag_bit", "FLOW_BIT_", [
    ("DELTA", "delta learned from the backend's SYN-ACK"),
    ("FIN_IN", "client -> backend FIN seen"),
    ("FIN_OUT", "backend -> client FIN seen"),
    ("RST", "RST seen in either direction"),
    ("SACK", "client negotiated SACK"),
    ("WSCALE", "client negotiated window scaling"),
    ("TS", "client's connection has timestamps (SYN had the trailer)"),
    ("TS_DELTA", "ts_delta learned from the backend's SYN-ACK"),
], doc="bit numbers of flow.flags (FLOW_F_x = 1 << FLOW_BIT_x)")

FLOW = CStruct("flow", [
    Field("seq_base", "u32", "switch ISN: server-side sequence base"),
    Field("delta", "u32", "backend ISN - seq_base (valid with FLOW_F_DELTA)"),
    Field("client_isn", "u32", "sequence number of the SYN"),
    Field("flags", "u32", "FLOW_F_* bits (u32 so BPF can set bits atomically)"),
    Field("ts_base", "u32", "client's TSecr from the SYN trailer (valid with FLOW_F_TS)"),
    Field("ts_delta", "u32", "ts_base - backend SYN-ACK TSval (valid with FLOW_F_TS_DELTA)"),
    Field("mss", "u16", "client MSS from the option"),
    Field("client_ws", "u8", "client window scale"),
    Field("switch_ws", "u8", "window scale the switch announced to the client"),
    Field("backend_ws", "u8", "backend's window scale, 0xff until its SYN-ACK"),
    Field("created_ns", "u64", "bpf_ktime_get_ns() at the SYN"),
    Field("last_ns", "u64", "last packet either way"),
    Field("closed_ns", "u64", "both FINs or a RST seen at; 0 while open"),
    Field("pkts_in", "u64"),
    Field("pkts_out", "u64"),
    Field("bytes_in", "u64", "IP bytes client -> backend"),
    Field("bytes_out", "u64", "IP bytes backend -> client"),
    Field("sack_rewrites", "u32", "ingress SACK blocks translated"),
    Field("win_rewrites", "u32", "egress window fields rescaled"),
], doc="per-flow state, value of the flows LRU hash")

CONFIG = CStruct("agent_config", [
    Field("keys", "u64", "SipHash keys: slot 0 = keys[0..1], slot 1 = keys[2..3]", count=4),
    Field("key_mask", "u32", "bit n: key slot n is set"),
    Field("flags", "u32", "reserved, 0"),
    Field("idle_timeout_ns", "u64", "flows idle this long are dropped"),
    Field("grace_ns", "u64", "closed flows keep translating this long"),
], doc="single entry of the config array, written by user space")

COUNTERS = CEnum("agent_counter", "CNT_", [
    ("SYN_OK", "tagged SYN accepted, flow created, option rewritten"),
    ("SYN_BAD_TAG", "Miresga SYN with a wrong tag: dropped"),
    ("SYN_NO_KEY", "Miresga SYN for an unset key slot: dropped"),
    ("SYN_BAD_FORMAT", "Miresga SYN malformed (version, payload, fields): dropped"),
    ("SYN_RETRANS", "retransmitted Miresga SYN of a known flow"),
    ("FLOW_TABLE_FULL", "flow could not be stored"),
    ("SYNACK_LEARNED", "backend SYN-ACK: delta learned"),
    ("IN_NO_DELTA", "ingress non-SYN before the backend's SYN-ACK: dropped"),
    ("IN_TRANSLATED", "ingress packet of a flow: ack/SACK translated"),
    ("OUT_TRANSLATED", "egress packet of a flow: seq translated"),
    ("SACK_BLOCKS", "ingress SACK blocks translated"),
    ("WIN_RESCALED", "egress window field rescaled"),
    ("FIN_IN", "FIN client -> backend"),
    ("FIN_OUT", "FIN backend -> client"),
    ("RST", "RST either way"),
    ("CLOSED_REMOVED", "closed flow removed after the grace period"),
    ("IDLE_REMOVED", "idle flow removed"),
    ("PASS_FOREIGN", "packet of no Miresga flow passed untouched"),
    ("SYN_TS", "tagged SYN with the timestamp trailer accepted"),
    ("SYNACK_NO_TS", "backend SYN-ACK without timestamps: flow's TS flag cleared"),
    ("TS_IN_TRANSLATED", "ingress TSecr translated into the backend's clock"),
    ("TS_OUT_TRANSLATED", "egress TSval translated into the client's view"),
], doc="index of the per-CPU global counters array")


def c_constants() -> list[tuple[str, int, str]]:
    return [
        ("AGENT_MAX_FLOWS", MAX_FLOWS, "flows LRU capacity"),
        ("AGENT_WSCALE_UNKNOWN", WSCALE_UNKNOWN, "backend_ws before the SYN-ACK"),
    ] + [(f"FLOW_F_{n}", 1 << i, d) for i, (n, d) in enumerate(FLOW_FLAGS.members)]
