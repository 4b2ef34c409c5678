"""Backend FIN and RST of an offloaded flow go through the front-end (it forwards them and
removes the offload once both sides closed); other backend packets go to the client."""

from __future__ import annotations

import pytest
from swtopo import BACKENDS, CLIENTS, FRONTENDS, SW_MAC, VIP, VPORT, client_port_for, rewritten, tcp

from miresga_core.bpf.fixtures import PacketFixture, run_fixtures
from miresga_core.dataplane.schema import OffloadModeId

pytestmark = pytest.mark.root

XDP_REDIRECT = 4
CADDR, CMAC = CLIENTS[0]
BADDR, BMAC, BPORT = BACKENDS[1]


@pytest.mark.parametrize("flags", ["FA", "R", "RA"])
def test_backend_fin_rst_to_frontend(sw, flags):
    port = client_port_for(CADDR, 1, sw.buckets())
    sw.offload_add((CADDR, port), (VIP, VPORT), 1, (BADDR, BPORT), OffloadModeId.SPLICE)
    pkt = tcp(BADDR, BPORT, CADDR, port, flags, seq=9000, ack=2000, smac=BMAC)
    data = tcp(BADDR, BPORT, CADDR, port, "PA", seq=9000, ack=2000, payload=b"x" * 10,
               smac=BMAC)
    run_fixtures(sw.obj, [
        PacketFixture(f"backend [{flags}] of an offloaded flow -> its front-end, unchanged IP",
                      pkt, XDP_REDIRECT, expected=rewritten(pkt, smac=SW_MAC,
                                                            dmac=FRONTENDS[1][1])),
        PacketFixture("backend data of the same flow -> client, source rewritten to the VIP",
                      data, XDP_REDIRECT, expected=rewritten(data, smac=SW_MAC, dmac=CMAC,
                                                             ip_src=VIP, sport=VPORT)),
    ], program="miresga_switch")
