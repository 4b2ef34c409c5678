/* routing.p4 -- destination routing on meta.route_dst (the packet's destination, or the
 * front-end / backend / client a feature chose): prefix -> port and MACs. A miss leaves
 * the packet for the CPU port (set by ingress before routing).
 *
 * @param meta route_dst in; to_cpu out
 */
#ifndef _MIRESGA_ROUTING_P4_
#define _MIRESGA_ROUTING_P4_

control Routing(inout header_t hdr,
                inout ingress_metadata_t meta,
                inout ingress_intrinsic_metadata_for_tm_t ig_tm_md)(bit<32> routes) {
    @name(".forward")
    action forward(bit<16> port, mac_addr_t smac, mac_addr_t dmac) {
        ig_tm_md.ucast_egress_port = port[8:0];
        hdr.ethernet.src_addr = smac;
        hdr.ethernet.dst_addr = dmac;
        meta.to_cpu = 1w0;
    }

    /* Destination routing: IPv4 prefix -> output port and MACs. */
    @name(".route")
    table route {
        key = { meta.route_dst : lpm @name("dst"); }
        actions = { forward; @defaultonly NoAction; }
        default_action = NoAction();
        size = routes;
    }

    apply {
        meta.to_cpu = 1w1;
        ig_tm_md.ucast_egress_port = CPU_PORT;
        route.apply();
    }
}

#endif
