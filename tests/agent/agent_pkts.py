"""Packet builders shared by the agent's BPF_PROG_TEST_RUN fixtures (scapy).

One flow, fixed numbers chosen to wrap around 2^32 so translation bugs show:
client C 10.9.0.1:40000, backend B 10.9.0.2:8080, switch ISN (seq_base) 0xffffff00,
backend ISN 0x00000010, client ISN 1000. Timestamps wrap too: the client accepted our
clock at ts_base 0xfffffff0, the backend's SYN-ACK says 0x00001000.
"""

from __future__ import annotations

from typing import Any

from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from miresga_core.wire import option
from miresga_core.wire.option import MiresgaOption

KEY = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
KEY1 = bytes.fromhex("f0e0d0c0b0a090807060504030201000")
C, CPORT, B, BPORT = "10.9.0.1", 40000, "10.9.0.2", 8080
BASE, B_ISN, C_ISN = 0xFFFFFF00, 0x00000010, 1000
DELTA = (B_ISN - BASE) & 0xFFFFFFFF
TS_BASE, B_TSVAL, C_TSVAL = 0xFFFFFFF0, 0x00001000, 0x12345678
TS_DELTA = (TS_BASE - B_TSVAL) & 0xFFFFFFFF
MAC_C, MAC_B = "02:00:00:00:09:01", "02:00:00:00:09:02"
XDP_DROP, XDP_PASS = 1, 2
TC_ACT_OK = 0
INGRESS, EGRESS = "agent_xdp_ingress", "agent_tc_egress"


def m32(n: int) -> int:
    return n & 0xFFFFFFFF


def opt(**kw: Any) -> MiresgaOption:
    fields = {"seq_base": BASE, "mss": 1460, "client_wscale": 7, "switch_wscale": 7,
              "sack_permitted": True}
    fields.update(kw)
    return MiresgaOption(**fields)


def miresga_syn(o: MiresgaOption | None = None, *, key: bytes = KEY, seq: int = C_ISN,
                raw_option: bytes | None = None, payload: bytes = b"") -> Ether:
    """The front-end's forged SYN: source C, the Miresga option as its only option."""
    o = o or opt()
    data = raw_option if raw_option is not None else option.encode(
        o, key=key, saddr=C, daddr=B, sport=CPORT, dport=BPORT, seq=seq)
    return (Ether(src=MAC_C, dst=MAC_B) / IP(src=C, dst=B, id=7) /
            TCP(sport=CPORT, dport=BPORT, seq=seq, flags="S", window=64240, dataofs=10) /
            Raw(data + payload))


def ts_syn(o: MiresgaOption | None = None, *, key: bytes = KEY, seq: int = C_ISN,
           tsval: int = C_TSVAL, ts_base: int = TS_BASE, trailer: bytes | None = None,
           payload: bytes = b"") -> Ether:
    """Form (b) of the forged SYN: the Miresga option, then the timestamp trailer."""
    o = o or opt()
    data = option.encode(o, key=key, saddr=C, daddr=B, sport=CPORT, dport=BPORT, seq=seq)
    data += trailer if trailer is not None else option.ts_trailer(tsval, ts_base)
    return (Ether(src=MAC_C, dst=MAC_B) / IP(src=C, dst=B, id=7) /
            TCP(sport=CPORT, dport=BPORT, seq=seq, flags="S", window=64240, dataofs=13) /
            Raw(data + payload))


def rewritten_ts_syn(o: MiresgaOption | None = None, *, seq: int = C_ISN,
                     tsval: int = C_TSVAL) -> Ether:
    """What the backend's kernel must receive for a form (b) SYN: the standard options, 8
    NOPs where the tag was, the trailer with TSecr 0 (same length, no shrink)."""
    o = o or opt()
    opts = option.rewrite_options(o) + b"\x01" * 8 + option.ts_trailer(tsval, 0)
    return (Ether(src=MAC_C, dst=MAC_B) / IP(src=C, dst=B, id=7) /
            TCP(sport=CPORT, dport=BPORT, seq=seq, flags="S", window=64240, dataofs=13) /
            Raw(opts))


def ts_opts(ts: tuple[int, int] | None) -> list[Any]:
    """Linux's layout of the timestamps option in a non-SYN segment: NOP, NOP, TS."""
    return [] if ts is None else [("NOP", None), ("NOP", None),
                                  ("Timestamp", (m32(ts[0]), m32(ts[1])))]


def rewritten_syn(o: MiresgaOption | None = None, *, seq: int = C_ISN) -> Ether:
    """What the backend's kernel must receive instead."""
    o = o or opt()
    return (Ether(src=MAC_C, dst=MAC_B) / IP(src=C, dst=B, id=7) /
            TCP(sport=CPORT, dport=BPORT, seq=seq, flags="S", window=64240, dataofs=8) /
            Raw(option.rewrite_options(o)))


def synack(*, seq: int = B_ISN, ws: int | None = 7, window: int = 65160,
           ts: tuple[int, int] | None = None) -> Ether:
    """The backend's SYN-ACK (its own ISN, its own options; Linux's order with ``ts``)."""
    opts: list[Any] = [("MSS", 1460), ("SAckOK", b"")]
    if ts is not None:
        opts += [("Timestamp", (m32(ts[0]), m32(ts[1])))]
    if ws is not None:
        opts += [("NOP", None), ("WScale", ws)]
    return (Ether(src=MAC_B, dst=MAC_C) / IP(src=B, dst=C, id=9) /
            TCP(sport=BPORT, dport=CPORT, seq=seq, ack=C_ISN + 1, flags="SA",
                window=window, options=opts))


def out_seg(seq: int, payload: bytes = b"", *, flags: str = "A", window: int = 502,
            ack: int = C_ISN + 1, ts: tuple[int, int] | None = None) -> Ether:
    """Backend -> client segment (backend's sequence space before translation)."""
    return (Ether(src=MAC_B, dst=MAC_C) / IP(src=B, dst=C, id=11) /
            TCP(sport=BPORT, dport=CPORT, seq=m32(seq), ack=m32(ack), flags=flags,
                window=window, options=ts_opts(ts)) / Raw(payload))


def in_seg(ack: int, payload: bytes = b"", *, flags: str = "A", seq: int = C_ISN + 1,
           sack: list[tuple[int, int]] | None = None, window: int = 1024,
           ts: tuple[int, int] | None = None) -> Ether:
    """Client -> backend segment (switch's sequence space before translation)."""
    opts: list[Any] = ts_opts(ts)
    if sack:
        opts += [("NOP", None), ("NOP", None),
                 ("SAck", tuple(m32(x) for edge in sack for x in edge))]
    return (Ether(src=MAC_C, dst=MAC_B) / IP(src=C, dst=B, id=13) /
            TCP(sport=CPORT, dport=BPORT, seq=m32(seq), ack=m32(ack), flags=flags,
                window=window, options=opts) / Raw(payload))


def establish(obj: Any, o: MiresgaOption | None = None, *, backend_ws: int | None = 7) -> None:
    """Run the tagged SYN (ingress) and the backend's SYN-ACK (egress) through ``obj``."""
    assert obj.program(INGRESS).test_run(bytes(miresga_syn(o))).retval == XDP_PASS
    assert obj.program(EGRESS).test_run(bytes(synack(ws=backend_ws))).retval == TC_ACT_OK
