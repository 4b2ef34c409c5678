"""Packets for the P4 interpreter: parsed headers as the ingress parser would leave them."""

from __future__ import annotations

from typing import Any

from fake_bfrt import FakeSwitch, ip
from p4run import Machine

__all__ = ["FLAGS", "out_port", "recirc_port", "run_packet", "tcp"]

FLAGS = ("cwr", "ece", "urg", "ack", "psh", "rst", "syn", "fin")
IN_PORT = 5


def tcp(m: Machine, src: str, sport: int, dst: str, dport: int, *, flags: str = "A",
        seq: int = 1000, ack: int = 0, payload: int = 0, mss: int | None = None,
        wscale: int | None = None, sack: bool = False, timestamps: bool = False,
        port: int = IN_PORT, tstamp: int = 0) -> Machine:
    """Set ``m`` up with an Ethernet/IPv4/TCP packet; flags letters S A F R P."""
    m.valid |= {"hdr.ethernet", "hdr.ipv4", "hdr.tcp"}
    opt_bytes = 0
    v: dict[str, Any] = {
        "ig_intr_md.ingress_port": port, "ig_prsr_md.global_tstamp": tstamp,
        "hdr.ethernet.ether_type": 0x0800, "hdr.ipv4.version": 4, "hdr.ipv4.ihl": 5,
        "hdr.ipv4.ttl": 64, "hdr.ipv4.protocol": 6, "hdr.ipv4.src_addr": ip(src),
        "hdr.ipv4.dst_addr": ip(dst), "hdr.tcp.src_port": sport, "hdr.tcp.dst_port": dport,
        "hdr.tcp.seq_no": seq, "hdr.tcp.ack_no": ack, "hdr.tcp.window": 64240,
    }
    for letter, name in (("S", "syn"), ("A", "ack"), ("F", "fin"), ("R", "rst"), ("P", "psh")):
        v[f"hdr.tcp.{name}"] = int(letter in flags)
    syn_only = "S" in flags and "A" not in flags
    if syn_only and mss is not None:  # the parser extracts options of SYNs only
        m.valid.add("hdr.opt_mss")
        v.update({"hdr.opt_mss.kind": 2, "hdr.opt_mss.len": 4, "hdr.opt_mss.mss": mss})
    if syn_only and wscale is not None:
        m.valid |= {"hdr.opt_ws", "hdr.opt_nop[0]"}
        v.update({"hdr.opt_ws.kind": 3, "hdr.opt_ws.len": 3, "hdr.opt_ws.shift": wscale,
                  "hdr.opt_nop[0].kind": 1})
    if syn_only and sack:
        m.valid.add("hdr.opt_sack_perm")
        v.update({"hdr.opt_sack_perm.kind": 4, "hdr.opt_sack_perm.len": 2})
    if syn_only and timestamps:
        m.valid.add("hdr.opt_ts")
        v.update({"hdr.opt_ts.kind": 8, "hdr.opt_ts.len": 10})
    opt_bytes = 4 * (mss is not None) + 4 * (wscale is not None) + 2 * sack + 10 * timestamps
    words = (opt_bytes + 3) // 4
    v["hdr.tcp.data_offset"] = 5 + words
    v["hdr.ipv4.total_len"] = 20 + 20 + 4 * words + payload
    m.values.update(v)
    return m


def recirc_port(fake: FakeSwitch) -> int:
    return int(fake.prog.defines["RECIRC_PORT"])


def out_port(m: Machine) -> int:
    return m.get("ig_tm_md.ucast_egress_port")


def run_packet(fake: FakeSwitch, m: Machine, max_passes: int = 12) -> tuple[Machine, int]:
    """Run ingress, following recirculations as the switch would: headers (and their
    validity) survive a pass, metadata does not. Returns (last pass, passes)."""
    for passes in range(1, max_passes + 1):
        fake.run_ingress(m)
        if not m.get("meta.recirc"):
            return m, passes
        if out_port(m) != recirc_port(fake):
            raise AssertionError("recirc set but the packet is not sent to the recirc port")
        nxt = fake.machine()
        nxt.values = {k: v for k, v in m.values.items() if k.startswith("hdr.")}
        nxt.valid = set(m.valid)
        nxt.set("ig_intr_md.ingress_port", recirc_port(fake))
        nxt.set("ig_prsr_md.global_tstamp", m.get("ig_prsr_md.global_tstamp"))
        m = nxt
    raise AssertionError(f"packet still recirculating after {max_passes} passes")
