"""Feature: window fields are re-expressed in the window scale the switch announced.

The client reads every window with the switch's scale; the backend writes them with its
own. Egress windows become win << backend_ws >> switch_ws, clamped to 65535, and an open
window never rounds down to zero. Equal scales, or a client without scaling, leave the
field alone.
"""

from __future__ import annotations

import pytest
from agent_pkts import B_ISN, BASE, EGRESS, TC_ACT_OK, establish, opt, out_seg

from miresga_core.agent.maps import AgentMaps
from miresga_core.bpf import BpfObject
from miresga_core.bpf.fixtures import PacketFixture, run_fixtures

pytestmark = pytest.mark.root

CASES = [
    # (description, backend_ws, switch_ws, window in, window out)
    ("backend 7, switch 5: x4", 7, 5, 502, 2008),
    ("backend 5, switch 7: /4", 5, 7, 2008, 502),
    ("backend 9, switch 2: clamped to 65535", 9, 2, 4000, 65535),
    ("backend 2, switch 9: open window stays open (1)", 2, 9, 3, 1),
    ("zero window stays zero", 2, 9, 0, 0),
    ("equal scales: untouched", 7, 7, 502, 502),
]


@pytest.mark.parametrize(("description", "bws", "sws", "win", "want"), CASES,
                         ids=[c[0] for c in CASES])
def test_rescale(agent: BpfObject, description: str, bws: int, sws: int, win: int,
                 want: int) -> None:
    establish(agent, opt(switch_wscale=sws), backend_ws=bws)
    run_fixtures(agent, [PacketFixture(
        description, out_seg(B_ISN + 1, b"x", window=win), TC_ACT_OK,
        expected=out_seg(BASE + 1, b"x", window=want), program=EGRESS)])
    f = AgentMaps.from_object(agent).flows()[0]
    assert f.state["win_rewrites"] == (1 if want != win else 0)


def test_no_scaling_client(agent: BpfObject) -> None:
    establish(agent, opt(client_wscale=None, switch_wscale=0), backend_ws=7)
    run_fixtures(agent, [PacketFixture(
        "client without window scaling: backend_ws forced to 0, window untouched",
        out_seg(B_ISN + 1, window=900), TC_ACT_OK, expected=out_seg(BASE + 1, window=900),
        program=EGRESS)])
    assert AgentMaps.from_object(agent).flows()[0].state["backend_ws"] == 0
