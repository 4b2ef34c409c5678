"""Backend -> client: source rewritten to the VIP only for the current leg of an offload;
anything else a backend sends a client goes to the flow's front-end."""

from __future__ import annotations

import pytest
from swtopo import BACKENDS, CLIENTS, FRONTENDS, SW_MAC, VIP, VPORT, client_port_for, rewritten, tcp

from miresga_core.bpf.fixtures import PacketFixture, run_fixtures
from miresga_core.dataplane.schema import OffloadModeId

pytestmark = pytest.mark.root

XDP_REDIRECT = 4
CADDR, CMAC = CLIENTS[1]
B0, B0MAC, B0PORT = BACKENDS[0]
B1, B1MAC, B1PORT = BACKENDS[1]


def test_current_backend_is_rewritten_to_vip(sw):
    port = client_port_for(CADDR, 1, sw.buckets())
    sw.offload_add((CADDR, port), (VIP, VPORT), 0, (B0, B0PORT), OffloadModeId.SPLICE)
    resp = tcp(B0, B0PORT, CADDR, port, "PA", seq=777, ack=2000, payload=b"HTTP/1.1 200 OK\r\n",
               smac=B0MAC)
    run_fixtures(sw.obj, [
        PacketFixture("response of the current backend -> client, source = VIP:80", resp,
                      XDP_REDIRECT, expected=rewritten(resp, smac=SW_MAC, dmac=CMAC,
                                                       ip_src=VIP, sport=VPORT)),
    ], program="miresga_switch")
    assert sw.counter("to_client") == 1


def test_old_backend_leg_and_unoffloaded_go_to_frontend(sw):
    port = client_port_for(CADDR, 1, sw.buckets())
    sw.offload_add((CADDR, port), (VIP, VPORT), 1, (B1, B1PORT), OffloadModeId.SPLICE)
    late = tcp(B0, B0PORT, CADDR, port, "PA", payload=b"late", smac=B0MAC)
    other_port = client_port_for(CADDR, 0, sw.buckets(), start=port + 1)
    synack = tcp(B0, B0PORT, CADDR, other_port, "SA", smac=B0MAC)
    run_fixtures(sw.obj, [
        PacketFixture("late packet of the old backend leg -> front-end, unchanged IP", late,
                      XDP_REDIRECT, expected=rewritten(late, smac=SW_MAC,
                                                       dmac=FRONTENDS[1][1])),
        PacketFixture("backend SYN-ACK to a forged SYN (no offload yet) -> front-end", synack,
                      XDP_REDIRECT, expected=rewritten(synack, smac=SW_MAC,
                                                       dmac=FRONTENDS[0][1])),
    ], program="miresga_switch")
    assert sw.counter("backend_old") == 2 and sw.counter("to_client") == 0


def test_syn_ack_of_the_offloaded_backend_goes_to_frontend(sw):
    """An offload left by a dead front-end (or a reused client port) must not take the
    SYN-ACK of the new connection's forged SYN away from the front-end."""
    port = client_port_for(CADDR, 1, sw.buckets())
    sw.offload_add((CADDR, port), (VIP, VPORT), 0, (B0, B0PORT), OffloadModeId.SPLICE)
    synack = tcp(B0, B0PORT, CADDR, port, "SA", seq=1, ack=2, smac=B0MAC)
    run_fixtures(sw.obj, [
        PacketFixture("SYN-ACK from the offloaded backend -> front-end, unchanged IP",
                      synack, XDP_REDIRECT,
                      expected=rewritten(synack, smac=SW_MAC, dmac=FRONTENDS[1][1])),
    ], program="miresga_switch")
    assert sw.counter("backend_old") == 1 and sw.counter("to_client") == 0


def test_offload_clear_empties_both_directions(sw):
    for i in range(5):
        sw.offload_add((CADDR, 40000 + i), (VIP, VPORT), 0, (B0, B0PORT),
                       OffloadModeId.SPLICE)
    assert sw.offload_clear() == 5
    assert not list(sw.maps["offload"].keys()) and not list(sw.maps["offload_rev"].keys())
