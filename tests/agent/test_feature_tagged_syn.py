"""Feature: a tagged Miresga SYN is accepted, recorded, and rewritten for the kernel.

The forged SYN's only option is the Miresga option; the kernel must get the same SYN with
MSS / window scale / SACK-permitted in its place (8 bytes shorter, checksums right) and the
flow must be recorded with the sequence base and the client's parameters.
"""

from __future__ import annotations

import pytest
from agent_pkts import (
    BASE,
    BPORT,
    C_ISN,
    CPORT,
    INGRESS,
    KEY,
    KEY1,
    XDP_PASS,
    B,
    C,
    miresga_syn,
    opt,
    rewritten_syn,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from miresga_core.agent.maps import AgentMaps
from miresga_core.bpf import BpfObject
from miresga_core.bpf.fixtures import PacketFixture, run_fixtures

pytestmark = pytest.mark.root


def flow_is(**want: object):
    def check(run: object, obj: BpfObject) -> None:
        entry = AgentMaps.from_object(obj).flow(C, CPORT, B, BPORT)
        assert entry is not None, "no flow recorded"
        got = {k: entry.state[k] for k in want if k != "flag_names"}
        assert got == {k: v for k, v in want.items() if k != "flag_names"}, got
        if "flag_names" in want:
            assert entry.flags == want["flag_names"], entry.flags
    return check


FIXTURES = [
    PacketFixture(
        "tagged SYN (MSS 1460, ws 7/7, SACK): option rewritten, flow recorded",
        miresga_syn(), XDP_PASS, expected=rewritten_syn(),
        check=flow_is(seq_base=BASE, client_isn=C_ISN, mss=1460, client_ws=7, switch_ws=7,
                      backend_ws=0xFF, flag_names=["SACK", "WSCALE"])),
    PacketFixture(
        "the same SYN retransmitted is accepted again and keeps the flow",
        miresga_syn(), XDP_PASS, expected=rewritten_syn(),
        check=lambda run, obj: _counter_is(obj, "SYN_RETRANS", 1)),
]


def _counter_is(obj: BpfObject, name: str, value: int) -> None:
    got = AgentMaps.from_object(obj).counters()[name]
    assert got == value, f"counter {name} = {got}, want {value}"


def test_tagged_syn(agent: BpfObject) -> None:
    run_fixtures(agent, FIXTURES, program=INGRESS)
    _counter_is(agent, "SYN_OK", 1)


def test_client_without_scaling_or_sack(agent: BpfObject) -> None:
    o = opt(client_wscale=None, switch_wscale=0, sack_permitted=False, mss=536)
    run_fixtures(agent, [PacketFixture(
        "SYN of a client that offered neither window scaling nor SACK: only MSS + NOPs",
        miresga_syn(o), XDP_PASS, expected=rewritten_syn(o),
        check=flow_is(mss=536, client_ws=0, switch_ws=0, flags=0))], program=INGRESS)


def test_key_slot_one(agent: BpfObject, maps: AgentMaps) -> None:
    maps.set_config((KEY, KEY1))
    o = opt(key_slot=1)
    run_fixtures(agent, [PacketFixture(
        "SYN tagged with the key in slot 1 (rotation) is accepted",
        miresga_syn(o, key=KEY1), XDP_PASS, expected=rewritten_syn(o))], program=INGRESS)


@settings(max_examples=10, deadline=None)
@given(key=st.binary(min_size=16, max_size=16), base=st.integers(0, 2**32 - 1),
       seq=st.integers(0, 2**32 - 1), mss=st.integers(1, 65535))
def test_c_siphash_matches_python(key: bytes, base: int, seq: int, mss: int) -> None:
    # a fresh object per example: the tag the Python side computes must verify in BPF
    from miresga_core.bpf import build_object

    with BpfObject.load_file(build_object("agent")) as obj:
        AgentMaps.from_object(obj).set_config((key, None))
        o = opt(seq_base=base, mss=mss)
        run = obj.program(INGRESS).test_run(bytes(miresga_syn(o, key=key, seq=seq)))
        assert run.retval == XDP_PASS
        assert run.data == bytes(rewritten_syn(o, seq=seq))
