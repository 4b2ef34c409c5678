"""Feature: TCP timestamps (RFC 7323) carried through the agent, translated like seq.

A forged SYN of a timestamped client connection carries the trailer NOP,NOP,TS(TSval,
ts_base) after the Miresga option (form (b), data offset 13). The kernel must get the
standard options, 8 NOPs where the tag was and the trailer with TSecr 0, same length. The
backend's SYN-ACK teaches ts_delta = ts_base - its TSval; from then on every backend
TSval gets +ts_delta and every client TSecr -ts_delta. A backend without timestamps
clears the flow's TS flag; flows of form (a) SYNs never translate timestamps. The
numbers wrap around 2^32 (agent_pkts.py).
"""

from __future__ import annotations

import pytest
from agent_pkts import (
    B_ISN,
    B_TSVAL,
    BASE,
    BPORT,
    C_ISN,
    C_TSVAL,
    CPORT,
    EGRESS,
    INGRESS,
    KEY1,
    TC_ACT_OK,
    TS_BASE,
    TS_DELTA,
    XDP_DROP,
    XDP_PASS,
    B,
    C,
    establish,
    in_seg,
    m32,
    opt,
    out_seg,
    rewritten_ts_syn,
    synack,
    ts_syn,
)
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from switch_peer import tcp_checksum_ok

from miresga_core.agent.maps import AgentMaps
from miresga_core.bpf import BpfObject, TestRun
from miresga_core.bpf.fixtures import PacketFixture, run_fixtures
from miresga_core.wire import option

pytestmark = pytest.mark.root

BODY = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello"


def flow_state(obj: BpfObject) -> tuple[dict[str, int], list[str]]:
    f = AgentMaps.from_object(obj).flow(C, CPORT, B, BPORT)
    assert f is not None, "no flow recorded"
    return f.state, f.flags


def ts_learned(*, flags: set[str], absent: frozenset[str] | set[str] = frozenset(),
               **fields: int):
    def check(run: TestRun, obj: BpfObject) -> None:
        state, names = flow_state(obj)
        assert flags <= set(names) and not absent & set(names), names
        got = {k: state[k] for k in fields}
        assert got == fields, {k: hex(v) for k, v in got.items()}
    return check


def checksum_valid(run: TestRun, obj: BpfObject) -> None:
    ip = run.data[14:34]
    assert tcp_checksum_ok(ip, run.data[34:]), "TCP checksum of the output is wrong"


def counters(obj: BpfObject) -> dict[str, int]:
    return AgentMaps.from_object(obj).counters()


def establish_ts(obj: BpfObject) -> None:
    assert obj.program(INGRESS).test_run(bytes(ts_syn())).retval == XDP_PASS
    run = obj.program(EGRESS).test_run(bytes(synack(ts=(B_TSVAL, C_TSVAL))))
    assert run.retval == TC_ACT_OK


def test_rewritten_syn_is_independent_of_the_agent() -> None:
    # the expected bytes come from option.py, not from the C code: pin their layout
    raw = bytes(rewritten_ts_syn())[14 + 20:]
    opts = raw[20:52]
    assert raw[12] >> 4 == 13 and len(raw) == 52
    assert opts[:12] == option.rewrite_options(opt())
    assert opts[12:20] == b"\x01" * 8
    assert opts[20:] == bytes([1, 1, 8, 10]) + C_TSVAL.to_bytes(4, "big") + bytes(4)


def test_ts_syn_rewritten_byte_exact(agent: BpfObject) -> None:
    run_fixtures(agent, [
        PacketFixture(
            "form (b) SYN: standard options, NOPs, trailer kept with TSecr 0, no shrink",
            ts_syn(), XDP_PASS, expected=rewritten_ts_syn(),
            check=ts_learned(flags={"TS", "SACK", "WSCALE"}, absent={"TS_DELTA"},
                             ts_base=TS_BASE, seq_base=BASE, client_isn=C_ISN, mss=1460)),
        PacketFixture("the rewritten SYN's checksum verifies on its own", ts_syn(),
                      XDP_PASS, check=checksum_valid),
    ], program=INGRESS)
    c = counters(agent)
    assert (c["SYN_OK"], c["SYN_TS"], c["SYN_RETRANS"]) == (1, 1, 1)


def test_ts_syn_without_scaling_or_sack(agent: BpfObject) -> None:
    o = opt(client_wscale=None, switch_wscale=0, sack_permitted=False, mss=536)
    run_fixtures(agent, [PacketFixture(
        "form (b) SYN of a client without WS/SACK: MSS, NOPs, trailer",
        ts_syn(o, tsval=0), XDP_PASS, expected=rewritten_ts_syn(o, tsval=0),
        check=ts_learned(flags={"TS"}, absent={"SACK", "WSCALE"}, ts_base=TS_BASE))],
        program=INGRESS)


def test_synack_teaches_ts_delta_and_retransmission_keeps_it(agent: BpfObject) -> None:
    run_fixtures(agent, [
        PacketFixture("form (b) SYN", ts_syn(), XDP_PASS, program=INGRESS),
        PacketFixture(
            "SYN-ACK with TS (not first: scanned): seq -> seq_base, TSval -> ts_base",
            synack(ts=(B_TSVAL, C_TSVAL)), TC_ACT_OK,
            expected=synack(seq=BASE, ts=(TS_BASE, C_TSVAL)),
            check=ts_learned(flags={"TS", "TS_DELTA", "DELTA"}, ts_delta=TS_DELTA),
            program=EGRESS),
        PacketFixture(
            "retransmitted SYN-ACK (later TSval): the first ts_delta stays",
            synack(ts=(B_TSVAL + 300, C_TSVAL)), TC_ACT_OK,
            expected=synack(seq=BASE, ts=(TS_BASE + 300, C_TSVAL)),
            check=ts_learned(flags={"TS_DELTA"}, ts_delta=TS_DELTA), program=EGRESS),
        PacketFixture(
            "retransmitted form (b) SYN: rewritten again, learned state kept",
            ts_syn(), XDP_PASS, expected=rewritten_ts_syn(),
            check=ts_learned(flags={"TS", "TS_DELTA", "DELTA"}, ts_delta=TS_DELTA,
                             ts_base=TS_BASE, delta=m32(B_ISN - BASE)), program=INGRESS),
    ])
    assert counters(agent)["SYN_RETRANS"] == 1


def test_data_and_acks_translated(agent: BpfObject) -> None:
    establish_ts(agent)
    run_fixtures(agent, [
        PacketFixture(
            "backend data: seq and TSval (past the wrap) translated, checksum valid",
            out_seg(B_ISN + 1, BODY, flags="PA", ts=(B_TSVAL + 0x100, C_TSVAL + 5)),
            TC_ACT_OK,
            expected=out_seg(BASE + 1, BODY, flags="PA", ts=(TS_BASE + 0x100, C_TSVAL + 5)),
            check=checksum_valid, program=EGRESS),
        PacketFixture(
            "client ACK: ack + delta, TSecr (our clock) back into the backend's",
            in_seg(BASE + 1 + len(BODY), ts=(C_TSVAL + 9, TS_BASE + 0x100)), XDP_PASS,
            expected=in_seg(B_ISN + 1 + len(BODY), ts=(C_TSVAL + 9, B_TSVAL + 0x100)),
            check=checksum_valid, program=INGRESS),
        PacketFixture(
            "client ACK with TS then SACK (Linux's layout): both translated",
            in_seg(BASE + 1, ts=(C_TSVAL + 10, TS_BASE + 0x200),
                   sack=[(BASE + 3001, BASE + 4449)]), XDP_PASS,
            expected=in_seg(B_ISN + 1, ts=(C_TSVAL + 10, B_TSVAL + 0x200),
                            sack=[(B_ISN + 3001, B_ISN + 4449)]), program=INGRESS),
        PacketFixture(
            "client segment with TSecr 0 (echoes nothing): TSecr stays 0",
            in_seg(BASE + 1, ts=(C_TSVAL + 11, 0)), XDP_PASS,
            expected=in_seg(B_ISN + 1, ts=(C_TSVAL + 11, 0)), program=INGRESS),
    ])
    c = counters(agent)
    # the SYN-ACK's TSval counts on egress too
    assert (c["TS_OUT_TRANSLATED"], c["TS_IN_TRANSLATED"]) == (2, 2)


def with_options(pkt: Ether, options: bytes) -> Ether:
    """``pkt`` with raw TCP option bytes (for layouts scapy would not build)."""
    tcp = pkt[TCP]
    tcp.options = []
    tcp.remove_payload()
    tcp.add_payload(Raw(options))
    tcp.dataofs = 5 + len(options) // 4
    del pkt[IP].len, pkt[IP].chksum, tcp.chksum
    raw = bytes(pkt)
    return Ether(raw)


def test_malformed_options_left_alone(agent: BpfObject) -> None:
    establish_ts(agent)
    ts_len_8 = bytes([1, 1, 8, 8]) + bytes(8)  # a "timestamps" option of length 8
    run_fixtures(agent, [
        PacketFixture(
            "egress: TS option with a wrong length: only seq translated",
            with_options(out_seg(B_ISN + 1), ts_len_8), TC_ACT_OK,
            expected=with_options(out_seg(BASE + 1), ts_len_8), program=EGRESS),
        PacketFixture(
            "ingress: option length 0 before the TS option: only ack translated",
            with_options(in_seg(BASE + 1), bytes([3, 0, 0, 1]) + bytes([8, 10]) +
                         (TS_BASE + 5).to_bytes(4, "big") * 2 + bytes(2)), XDP_PASS,
            expected=with_options(in_seg(B_ISN + 1), bytes([3, 0, 0, 1]) + bytes([8, 10]) +
                                  (TS_BASE + 5).to_bytes(4, "big") * 2 + bytes(2)),
            program=INGRESS),
    ])
    c = counters(agent)
    assert (c["TS_OUT_TRANSLATED"], c["TS_IN_TRANSLATED"]) == (1, 0)  # 1: the SYN-ACK


def test_ts_option_after_other_options_found(agent: BpfObject) -> None:
    establish_ts(agent)

    def seg(ack: int, tsecr: int, edges: tuple[int, int]) -> Ether:
        pkt = in_seg(ack)
        pkt[TCP].options = [("SAck", edges), ("NOP", None), ("NOP", None),
                            ("Timestamp", (C_TSVAL, tsecr))]
        del pkt[IP].len, pkt[IP].chksum, pkt[TCP].chksum, pkt[TCP].dataofs
        return Ether(bytes(pkt))

    run_fixtures(agent, [PacketFixture(
        "SACK first, TS last: the scan finds TS, both translated",
        seg(BASE + 1, TS_BASE + 7, (m32(BASE + 3001), m32(BASE + 4449))), XDP_PASS,
        expected=seg(B_ISN + 1, B_TSVAL + 7, (m32(B_ISN + 3001), m32(B_ISN + 4449))),
        program=INGRESS)])


def test_backend_without_timestamps_clears_ts(agent: BpfObject) -> None:
    run_fixtures(agent, [
        PacketFixture("form (b) SYN", ts_syn(), XDP_PASS, program=INGRESS),
        PacketFixture("SYN-ACK without TS: seq translated, TS flag cleared",
                      synack(), TC_ACT_OK, expected=synack(seq=BASE),
                      check=ts_learned(flags={"DELTA"}, absent={"TS", "TS_DELTA"}),
                      program=EGRESS),
        PacketFixture("a stray TS option later is not translated (egress)",
                      out_seg(B_ISN + 1, ts=(B_TSVAL + 1, C_TSVAL)), TC_ACT_OK,
                      expected=out_seg(BASE + 1, ts=(B_TSVAL + 1, C_TSVAL)), program=EGRESS),
        PacketFixture("... nor on ingress",
                      in_seg(BASE + 1, ts=(C_TSVAL, TS_BASE + 1)), XDP_PASS,
                      expected=in_seg(B_ISN + 1, ts=(C_TSVAL, TS_BASE + 1)),
                      program=INGRESS),
    ])
    c = counters(agent)
    assert c["SYNACK_NO_TS"] == 1
    assert (c["TS_OUT_TRANSLATED"], c["TS_IN_TRANSLATED"]) == (0, 0)


def test_form_a_flow_leaves_timestamps_alone(agent: BpfObject) -> None:
    establish(agent)
    run_fixtures(agent, [
        PacketFixture("SYN-ACK with TS of a form (a) flow: TSval unchanged, nothing learned",
                      synack(ts=(B_TSVAL, 0)), TC_ACT_OK,
                      expected=synack(seq=BASE, ts=(B_TSVAL, 0)), program=EGRESS),
        PacketFixture("egress TS option of a form (a) flow: passed unchanged",
                      out_seg(B_ISN + 1, BODY, ts=(B_TSVAL, 77)), TC_ACT_OK,
                      expected=out_seg(BASE + 1, BODY, ts=(B_TSVAL, 77)), program=EGRESS),
        PacketFixture("ingress TS option of a form (a) flow: passed unchanged",
                      in_seg(BASE + 1, ts=(77, B_TSVAL)), XDP_PASS,
                      expected=in_seg(B_ISN + 1, ts=(77, B_TSVAL)), program=INGRESS),
    ])
    state, names = flow_state(agent)
    assert not {"TS", "TS_DELTA"} & set(names) and state["ts_base"] == 0, names
    c = counters(agent)
    assert (c["SYN_TS"], c["TS_OUT_TRANSLATED"], c["TS_IN_TRANSLATED"]) == (0, 0, 0)


@pytest.mark.parametrize(("why", "pkt", "counter"), [
    ("tag made with another key", ts_syn(key=KEY1), "SYN_BAD_TAG"),
    ("trailer is not NOP,NOP,TS", ts_syn(trailer=bytes([8, 10]) + bytes(8) + b"\x01\x01"),
     "SYN_BAD_FORMAT"),
    ("payload after the trailer", ts_syn(payload=b"GET /"), "SYN_BAD_FORMAT"),
])
def test_bad_ts_syn_dropped(agent: BpfObject, why: str, pkt: Ether, counter: str) -> None:
    run_fixtures(agent, [PacketFixture(f"form (b) SYN, {why}: dropped", pkt, XDP_DROP,
                                       program=INGRESS)])
    assert counters(agent)[counter] == 1
    assert AgentMaps.from_object(agent).flows() == []


def test_ip_length_must_match(agent: BpfObject) -> None:
    pkt = ts_syn()
    pkt[IP].len = 20 + 40  # claims form (a) while the frame is form (b)
    run_fixtures(agent, [PacketFixture("form (b) frame with a form (a) IP length: dropped",
                                       Ether(bytes(pkt)), XDP_DROP, program=INGRESS)])
    assert counters(agent)["SYN_BAD_FORMAT"] == 1

