"""Front-end membership change: two lb_index tables + a Bloom filter keep every live flow
on its front-end while the assignment changes."""

from __future__ import annotations

import pytest
from swtopo import CLIENTS, FRONTENDS, SW_MAC, VIP, VPORT, client_port_for, rewritten, tcp

from miresga_core.bpf.fixtures import PacketFixture, run_fixtures
from miresga_core.dataplane.flowhash import lb_bucket

pytestmark = pytest.mark.root

XDP_TX, XDP_REDIRECT = 3, 4
CADDR, CMAC = CLIENTS[0]


def _to(sw, port, fe, desc):
    pkt = tcp(CADDR, port, VIP, VPORT, "PA", payload=b"GET", smac=CMAC)
    return PacketFixture(desc, pkt, XDP_REDIRECT,
                         expected=rewritten(pkt, smac=SW_MAC, dmac=FRONTENDS[fe][1]))


def test_change_keeps_old_and_new_flows_on_their_frontends(sw):
    old = sw.buckets()
    new = [1 - fe for fe in old]  # the worst case: every bucket changes hands
    old_port = client_port_for(CADDR, 0, old)  # a flow that started before the change
    new_port = client_port_for(CADDR, 0, old, start=old_port + 1)  # SYN during the change
    assert new[lb_bucket(CADDR, new_port)] == 1

    run_fixtures(sw.obj, [_to(sw, old_port, 0, "before the change: flow on front-end 0")],
                 program="miresga_switch")
    sw.set_frontends(new)  # staged: table 1 gets the new assignment, changing = 1
    assert sw.lb_state() == (0, True)
    syn = tcp(CADDR, new_port, VIP, VPORT, "S", options=[("MSS", 1460)], smac=CMAC)
    run_fixtures(sw.obj, [
        _to(sw, old_port, 0, "during the change: the old flow stays on front-end 0"),
        PacketFixture("during the change: a new flow's SYN is answered and remembered in "
                      "the Bloom filter", syn, XDP_TX),
        _to(sw, new_port, 1, "during the change: the new flow follows the new table (1)"),
    ], program="miresga_switch")
    assert sw.counter("bloom_insert") == 1 and sw.counter("bloom_hit") == 1

    sw.finish_change()  # new table active, filter cleared
    assert sw.lb_state() == (1, False)
    run_fixtures(sw.obj, [
        _to(sw, new_port, 1, "after the change: the new flow is still on front-end 1"),
    ], program="miresga_switch")
    assert sw.buckets() == new
    assert all(v == bytes(4) for _k, v in sw.maps["lb_bloom"].items())


def test_change_errors_and_direct_write(sw):
    with pytest.raises(ValueError, match="no front-end change"):
        sw.finish_change()
    sw.set_frontends([0] * len(sw.buckets()))
    with pytest.raises(ValueError, match="running"):
        sw.set_frontends([1] * len(sw.buckets()))
    with pytest.raises(ValueError, match="buckets"):
        sw.set_frontends([0, 1])
    sw.finish_change()
    sw.set_frontends([1] * len(sw.buckets()), drain=False)  # no flows to protect: at once
    port = 40000
    run_fixtures(sw.obj, [_to(sw, port, 1, "direct write: every flow on front-end 1")],
                 program="miresga_switch")
