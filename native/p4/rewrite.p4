/* rewrite.p4 -- destination rewrite of offloaded client packets to their backend.
 * (The source rewrite of backend packets to the VIP is offload_rev's to_client.)
 *
 * @param meta backend: the backend table index chosen by the offload table
 */
#ifndef _MIRESGA_REWRITE_P4_
#define _MIRESGA_REWRITE_P4_

control BackendRewrite(inout header_t hdr, inout ingress_metadata_t meta)(bit<32> backends) {
    @name(".set_backend_addr")
    action set_backend_addr(ipv4_addr_t addr, l4_port_t port) {
        hdr.ipv4.dst_addr = addr;
        hdr.tcp.dst_port = port;
        meta.route_dst = addr;
        meta.outcome = CTR_TO_BACKEND;
    }

    action no_backend() { meta.outcome = CTR_NO_BACKEND; }

    /* Backend servers by index: the address an offloaded flow is sent to. */
    @name(".backend")
    table backend {
        key = { meta.backend : exact @name("index"); }
        actions = { set_backend_addr; @defaultonly NoAction; }
        default_action = NoAction();
        size = backends;
    }

    apply {
        if (!backend.apply().hit) {
            no_backend();
        }
    }
}

#endif
