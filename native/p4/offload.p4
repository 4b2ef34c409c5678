/* offload.p4 -- offloaded connections, both directions.
 *
 * Client side (OffloadForward): (client, VIP) -> backend index and mode. In `splice` mode
 * only segments without payload (pure ACKs, FIN, RST) go straight to the backend; payload
 * still visits the front-end. In `pin` mode every segment goes to the backend.
 *
 * Backend side (OffloadReverse): a packet from a known backend address:port is sent to
 * the client with its source rewritten to the VIP only when that backend is the one the
 * client is offloaded to now (offload_rev holds the current leg); late packets of an old
 * leg miss and go to the front-end, which drops them. A SYN-ACK always goes to the
 * front-end (it answers a forged SYN), even when a stale offload matches its ports.
 *
 * @param meta offloaded / backend / offload_mode (forward); from_backend (reverse)
 */
#ifndef _MIRESGA_OFFLOAD_P4_
#define _MIRESGA_OFFLOAD_P4_

control OffloadForward(inout header_t hdr, inout ingress_metadata_t meta)(bit<32> flows) {
    @name(".offloaded")
    action offloaded(backend_index_t backend, bit<8> mode) {
        meta.offloaded = 1w1;
        meta.backend = backend;
        meta.offload_mode = mode;
    }

    /* Offloaded connections, client side. */
    @name(".offload")
    table offload {
        key = {
            hdr.ipv4.src_addr : exact @name("client_addr");
            hdr.ipv4.dst_addr : exact @name("vip_addr");
            hdr.tcp.src_port  : exact @name("client_port");
            hdr.tcp.dst_port  : exact @name("vip_port");
        }
        actions = { offloaded; @defaultonly NoAction; }
        default_action = NoAction();
        size = flows;
    }

    apply {
        offload.apply();
    }
}

control OffloadReverse(inout header_t hdr, inout ingress_metadata_t meta)
                      (bit<32> backends, bit<32> flows) {
    @name(".is_backend")
    action is_backend(backend_index_t index) {
        meta.from_backend = 1w1;
        meta.from_backend_index = index;
    }

    /* Backend address:port -> index: recognises backend -> client packets. */
    @name(".backend_addr")
    table backend_addr {
        key = {
            hdr.ipv4.src_addr : exact @name("addr");
            hdr.tcp.src_port  : exact @name("port");
        }
        actions = { is_backend; @defaultonly NoAction; }
        default_action = NoAction();
        size = backends;
    }

    @name(".to_client")
    action to_client(ipv4_addr_t vip_addr, l4_port_t vip_port) {
        hdr.ipv4.src_addr = vip_addr;
        hdr.tcp.src_port = vip_port;
        meta.outcome = CTR_TO_CLIENT;
    }

    action backend_old() { meta.outcome = CTR_BACKEND_OLD; }

    /* Offloaded connections, backend side: (client, current backend) -> VIP. */
    @name(".offload_rev")
    table offload_rev {
        key = {
            hdr.ipv4.dst_addr : exact @name("client_addr");
            hdr.ipv4.src_addr : exact @name("backend_addr");
            hdr.tcp.dst_port  : exact @name("client_port");
            hdr.tcp.src_port  : exact @name("backend_port");
        }
        actions = { to_client; @defaultonly NoAction; }
        default_action = NoAction();
        size = flows;
    }

    apply {
        backend_addr.apply();
        if (meta.from_backend == 1w1) {
            if (hdr.tcp.syn == 1w1) {
                backend_old();  // a SYN-ACK answers a forged SYN: always the front-end's
            } else if (!offload_rev.apply().hit) {
                backend_old();
            }
        }
    }
}

#endif
