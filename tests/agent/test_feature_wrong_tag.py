"""Feature: Miresga SYNs that do not authenticate are dropped and leave no state.

Wrong key, a field changed after tagging, a key slot the controller never set, a
different 4-tuple or sequence number than the tag was made for, and malformed options
(version, payload after the option) all end in XDP_DROP with their own counter.
"""

from __future__ import annotations

import pytest
from agent_pkts import BPORT, C_ISN, CPORT, INGRESS, KEY, XDP_DROP, B, C, miresga_syn, opt

from miresga_core.agent.maps import AgentMaps
from miresga_core.bpf import BpfObject
from miresga_core.bpf.fixtures import PacketFixture, run_fixture
from miresga_core.wire import option

pytestmark = pytest.mark.root

GOOD = option.encode(opt(), key=KEY, saddr=C, daddr=B, sport=CPORT, dport=BPORT, seq=C_ISN)


def flipped(i: int) -> bytes:
    raw = bytearray(GOOD)
    raw[i] ^= 0x10
    return bytes(raw)


def other_version() -> bytes:
    raw = bytearray(GOOD)
    raw[4] = (2 << 4) | (raw[4] & 0xF)
    return bytes(raw)


CASES = [
    ("tag made with another key", miresga_syn(key=bytes(16)), "SYN_BAD_TAG"),
    ("sequence base changed after tagging", miresga_syn(raw_option=flipped(9)), "SYN_BAD_TAG"),
    ("MSS changed after tagging", miresga_syn(raw_option=flipped(7)), "SYN_BAD_TAG"),
    ("tag bit flipped", miresga_syn(raw_option=flipped(15)), "SYN_BAD_TAG"),
    ("tag for another client seq", miresga_syn(raw_option=GOOD, seq=C_ISN + 1), "SYN_BAD_TAG"),
    ("key slot 1 requested but never set", miresga_syn(opt(key_slot=1)), "SYN_NO_KEY"),
    ("unknown option version", miresga_syn(raw_option=other_version()), "SYN_BAD_FORMAT"),
    ("payload after the option", miresga_syn(payload=b"GET /"), "SYN_BAD_FORMAT"),
]


@pytest.mark.parametrize(("description", "packet", "counter"), CASES,
                         ids=[c[0] for c in CASES])
def test_rejected(agent: BpfObject, maps: AgentMaps, description: str, packet: object,
                  counter: str) -> None:
    run_fixture(agent, PacketFixture(description, packet, XDP_DROP), program=INGRESS)
    assert maps.flows() == [], "a rejected SYN must not create state"
    counters = maps.counters()
    assert counters[counter] == 1, counters
    assert counters["SYN_OK"] == 0


def test_wrong_tag_does_not_touch_existing_flow(agent: BpfObject, maps: AgentMaps) -> None:
    run_fixture(agent, PacketFixture("good SYN", miresga_syn(), 2), program=INGRESS)
    before = maps.flow(C, CPORT, B, BPORT)
    run_fixture(agent, PacketFixture("forged SYN with another base for the same tuple",
                                     miresga_syn(opt(seq_base=5), key=bytes(16)), XDP_DROP),
                program=INGRESS)
    assert maps.flow(C, CPORT, B, BPORT) == before
