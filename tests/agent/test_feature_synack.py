"""Feature: the backend's SYN-ACK teaches the agent delta and the backend's window scale.

On tc egress the SYN-ACK's sequence number becomes seq_base (the switch's ISN), so the
front-end sees the handshake in the switch's space; delta = backend ISN - seq_base (mod
2^32) and backend_ws are stored. Its window is not rescaled (RFC 7323: SYN windows are
never scaled).
"""

from __future__ import annotations

import pytest
from agent_pkts import (
    B_ISN,
    BASE,
    BPORT,
    CPORT,
    DELTA,
    EGRESS,
    INGRESS,
    TC_ACT_OK,
    B,
    C,
    miresga_syn,
    opt,
    synack,
)

from miresga_core.agent.maps import AgentMaps
from miresga_core.bpf import BpfObject
from miresga_core.bpf.fixtures import UNCHANGED, PacketFixture, run_fixtures

pytestmark = pytest.mark.root


def learned(delta: int, backend_ws: int):
    def check(run: object, obj: BpfObject) -> None:
        f = AgentMaps.from_object(obj).flow(C, CPORT, B, BPORT)
        assert f is not None and "DELTA" in f.flags
        assert (f.state["delta"], f.state["backend_ws"]) == (delta, backend_ws)
    return check


def test_synack_learns_delta(agent: BpfObject) -> None:
    run_fixtures(agent, [
        PacketFixture("tagged SYN", miresga_syn(opt(switch_wscale=5)), 2, program=INGRESS),
        PacketFixture("SYN-ACK: seq becomes seq_base, window untouched, delta learned",
                      synack(ws=7), TC_ACT_OK, expected=synack(seq=BASE, ws=7),
                      check=learned(DELTA, 7), program=EGRESS),
        PacketFixture("retransmitted SYN-ACK translates the same way",
                      synack(ws=7), TC_ACT_OK, expected=synack(seq=BASE, ws=7),
                      check=learned(DELTA, 7), program=EGRESS),
    ])
    assert AgentMaps.from_object(agent).counters()["SYNACK_LEARNED"] == 2


def test_backend_without_window_scaling(agent: BpfObject) -> None:
    run_fixtures(agent, [
        PacketFixture("tagged SYN", miresga_syn(), 2, program=INGRESS),
        PacketFixture("SYN-ACK without WS option: backend_ws 0", synack(ws=None), TC_ACT_OK,
                      expected=synack(seq=BASE, ws=None), check=learned(DELTA, 0),
                      program=EGRESS),
    ])


def test_synack_of_unknown_flow_is_foreign(agent: BpfObject) -> None:
    run_fixtures(agent, [PacketFixture("SYN-ACK with no Miresga SYN before: untouched",
                                       synack(), TC_ACT_OK, expected=UNCHANGED,
                                       program=EGRESS)])
    assert B_ISN != BASE
