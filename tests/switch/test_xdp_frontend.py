"""ACK and payload of a new (not offloaded) connection -> the front-end lb_index picks."""

from __future__ import annotations

import pytest
from swtopo import CLIENTS, FRONTENDS, SW_MAC, VIP, VPORT, client_port_for, rewritten, tcp

from miresga_core.bpf.fixtures import PacketFixture, run_fixtures
from miresga_core.dataplane.flowhash import lb_bucket

pytestmark = pytest.mark.root

XDP_DROP, XDP_REDIRECT = 1, 4
CADDR, CMAC = CLIENTS[0]


@pytest.mark.parametrize("fe", range(len(FRONTENDS)))
def test_ack_and_payload_go_to_hashed_frontend(sw, fe):
    port = client_port_for(CADDR, fe, sw.buckets())
    fe_mac = FRONTENDS[fe][1]
    ack = tcp(CADDR, port, VIP, VPORT, "A", seq=1001, ack=5001, smac=CMAC)
    data = tcp(CADDR, port, VIP, VPORT, "PA", seq=1001, ack=5001, payload=b"GET / HTTP/1.1\r\n",
               smac=CMAC)
    fin = tcp(CADDR, port, VIP, VPORT, "FA", seq=1017, ack=5001, smac=CMAC)
    run_fixtures(sw.obj, [
        PacketFixture(f"handshake ACK -> front-end {fe}, only MACs rewritten (IP dst stays "
                      "the VIP)", ack, XDP_REDIRECT,
                      expected=rewritten(ack, smac=SW_MAC, dmac=fe_mac)),
        PacketFixture(f"request payload -> same front-end {fe}", data, XDP_REDIRECT,
                      expected=rewritten(data, smac=SW_MAC, dmac=fe_mac)),
        PacketFixture(f"FIN of a non-offloaded flow -> front-end {fe}", fin, XDP_REDIRECT,
                      expected=rewritten(fin, smac=SW_MAC, dmac=fe_mac)),
    ], program="miresga_switch")
    assert sw.counter("to_frontend") == 3 and sw.counter("offload_miss") == 3


def test_many_clients_spread_over_frontends_as_python_predicts(sw):
    """The XDP hash and flowhash.lb_bucket agree for many clients, not just chosen ones."""
    buckets = sw.buckets()
    seen = set()
    for port in range(50000, 50040):
        pkt = tcp(CADDR, port, VIP, VPORT, "A", smac=CMAC)
        fe_mac = FRONTENDS[buckets[lb_bucket(CADDR, port)]][1]
        seen.add(fe_mac)
        run_fixtures(sw.obj, [PacketFixture(f"client port {port}", pkt, XDP_REDIRECT,
                                            expected=rewritten(pkt, smac=SW_MAC, dmac=fe_mac))],
                     program="miresga_switch")
    assert len(seen) == len(FRONTENDS)


def test_empty_frontend_entry_drops_and_counts(sw):
    sw.write("frontend", [({"index": 0}, {"addr": "0.0.0.0"})])
    port = client_port_for(CADDR, 0, sw.buckets())
    pkt = tcp(CADDR, port, VIP, VPORT, "A", smac=CMAC)
    run_fixtures(sw.obj, [PacketFixture("front-end 0 removed from the frontend table", pkt,
                                        XDP_DROP)], program="miresga_switch")
    assert sw.counter("no_frontend") == 1
