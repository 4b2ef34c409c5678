/* parde.p4 -- parsers and deparsers.
 *
 * Ingress parser: Ethernet -> ARP | IPv4 -> TCP, and on a SYN (SYN set, ACK clear) the
 * TCP options the cookie needs (MSS, window scale, SACK-permitted; timestamps and NOPs are
 * consumed so the walk can go on). Options of other segments are left in the payload:
 * they are never touched, so no checksum changes because of them. A SYN that comes back
 * from the recirculation port carries the sip_h state header in front of Ethernet.
 *
 * Option walk: a ParserCounter holds the option bytes left (data offset * 4 - 20), set per
 * data offset value from a constant, decremented by each option's length. The walk stops
 * at EOL, at the end of the option area, or at an option kind it does not know (the rest
 * is not needed for the cookie).
 */
#ifndef _MIRESGA_PARDE_P4_
#define _MIRESGA_PARDE_P4_

parser SwitchIngressParser(packet_in pkt,
                           out header_t hdr,
                           out ingress_metadata_t meta,
                           out ingress_intrinsic_metadata_t ig_intr_md) {
    Checksum() tcp_csum;
    ParserCounter() opt_ctr;

    state start {
        pkt.extract(ig_intr_md);
        pkt.advance(PORT_METADATA_SIZE);
        // metadata starts zeroed (bf-p4c initialises it; no @pa_no_init here)
        transition select(ig_intr_md.ingress_port) {
            RECIRC_PORT: parse_sip;
            default: parse_ethernet;
        }
    }

    state parse_sip {
        pkt.extract(hdr.sip);
        transition parse_ethernet;
    }

    state parse_ethernet {
        pkt.extract(hdr.ethernet);
        transition select(hdr.ethernet.ether_type) {
            ETHERTYPE_IPV4: parse_ipv4;
            ETHERTYPE_ARP: parse_arp;
            default: accept;
        }
    }

    state parse_arp {
        pkt.extract(hdr.arp);
        transition accept;
    }

    state parse_ipv4 {
        pkt.extract(hdr.ipv4);
        transition select(hdr.ipv4.ihl, hdr.ipv4.frag_offset, hdr.ipv4.protocol) {
            (5, 0, IP_PROTOCOL_TCP): parse_tcp;
            default: accept;  // IP options, fragments, non-TCP: routed, never rewritten
        }
    }

    state parse_tcp {
        pkt.extract(hdr.tcp);
        // residual: the checksum with the fields a rewrite may change taken out (the old
        // checksum too), so the deparser adds the new values back (rewrite.p4, offload.p4)
        tcp_csum.subtract({hdr.ipv4.src_addr, hdr.ipv4.dst_addr,
                           hdr.tcp.src_port, hdr.tcp.dst_port, hdr.tcp.checksum});
        meta.tcp_residual = tcp_csum.get();
        transition select(hdr.tcp.syn, hdr.tcp.ack) {
            (1, 0): parse_syn_options;
            default: accept;
        }
    }

    state parse_syn_options {
        transition select(hdr.tcp.data_offset) {
            5: accept;
            6: opt_bytes_4;
            7: opt_bytes_8;
            8: opt_bytes_12;
            9: opt_bytes_16;
            10: opt_bytes_20;
            11: opt_bytes_24;
            12: opt_bytes_28;
            13: opt_bytes_32;
            14: opt_bytes_36;
            15: opt_bytes_40;
            default: accept;  // data offset < 5: malformed, ingress counts it
        }
    }

    state opt_bytes_4  { opt_ctr.set(8w4);  transition parse_option; }
    state opt_bytes_8  { opt_ctr.set(8w8);  transition parse_option; }
    state opt_bytes_12 { opt_ctr.set(8w12); transition parse_option; }
    state opt_bytes_16 { opt_ctr.set(8w16); transition parse_option; }
    state opt_bytes_20 { opt_ctr.set(8w20); transition parse_option; }
    state opt_bytes_24 { opt_ctr.set(8w24); transition parse_option; }
    state opt_bytes_28 { opt_ctr.set(8w28); transition parse_option; }
    state opt_bytes_32 { opt_ctr.set(8w32); transition parse_option; }
    state opt_bytes_36 { opt_ctr.set(8w36); transition parse_option; }
    state opt_bytes_40 { opt_ctr.set(8w40); transition parse_option; }

    // the counter is tested first, in its own state: a lookahead at the end of a SYN
    // (the option area ends the packet) would run past the packet
    state parse_option {
        transition select(opt_ctr.is_zero()) {
            true: accept;
            default: parse_option_kind;
        }
    }

    state parse_option_kind {
        transition select(pkt.lookahead<bit<8>>()) {
            TCP_OPT_EOL: accept;
            TCP_OPT_NOP: parse_opt_nop;
            TCP_OPT_MSS: parse_opt_mss;
            TCP_OPT_WSCALE: parse_opt_ws;
            TCP_OPT_SACK_PERM: parse_opt_sack_perm;
            TCP_OPT_TIMESTAMP: parse_opt_ts;
            default: accept;  // an option we do not need: the rest is not read
        }
    }

    state parse_opt_nop {
        pkt.extract(hdr.opt_nop.next);
        opt_ctr.decrement(8w1);
        transition parse_option;
    }

    state parse_opt_mss {
        pkt.extract(hdr.opt_mss);
        opt_ctr.decrement(8w4);
        transition parse_option;
    }

    state parse_opt_ws {
        pkt.extract(hdr.opt_ws);
        opt_ctr.decrement(8w3);
        transition parse_option;
    }

    state parse_opt_sack_perm {
        pkt.extract(hdr.opt_sack_perm);
        opt_ctr.decrement(8w2);
        transition parse_option;
    }

    state parse_opt_ts {
        pkt.extract(hdr.opt_ts);
        opt_ctr.decrement(8w10);
        transition parse_option;
    }
}

control SwitchIngressDeparser(packet_out pkt,
                              inout header_t hdr,
                              in ingress_metadata_t meta,
                              in ingress_intrinsic_metadata_for_deparser_t ig_dprsr_md) {
    Checksum() ipv4_csum;
    Checksum() tcp_csum;

    apply {
        hdr.ipv4.hdr_checksum = ipv4_csum.update({
            hdr.ipv4.version, hdr.ipv4.ihl, hdr.ipv4.diffserv, hdr.ipv4.total_len,
            hdr.ipv4.identification, hdr.ipv4.flags, hdr.ipv4.frag_offset, hdr.ipv4.ttl,
            hdr.ipv4.protocol, hdr.ipv4.src_addr, hdr.ipv4.dst_addr});
        if (meta.synack == 1) {
            // the SYN-ACK: pseudo header + 20 byte header + 12 option bytes, no payload
            // field lists hold fields only (no constants): the pseudo header's zero byte
            // and TCP length are metadata set by synack_build
            hdr.tcp.checksum = tcp_csum.update({
                hdr.ipv4.src_addr, hdr.ipv4.dst_addr, meta.zero8, hdr.ipv4.protocol,
                meta.tcp_len,
                hdr.tcp.src_port, hdr.tcp.dst_port, hdr.tcp.seq_no, hdr.tcp.ack_no,
                hdr.tcp.data_offset, hdr.tcp.res, hdr.tcp.cwr, hdr.tcp.ece, hdr.tcp.urg,
                hdr.tcp.ack, hdr.tcp.psh, hdr.tcp.rst, hdr.tcp.syn, hdr.tcp.fin,
                hdr.tcp.window, hdr.tcp.urgent_ptr,
                hdr.synack_opts.mss_kind, hdr.synack_opts.mss_len, hdr.synack_opts.mss,
                hdr.synack_opts.sack_perm, hdr.synack_opts.ws_nop, hdr.synack_opts.ws_kind,
                hdr.synack_opts.ws_len, hdr.synack_opts.ws_shift});
        } else if (hdr.tcp.isValid()) {
            // incremental: the residual holds everything but the rewritable fields
            hdr.tcp.checksum = tcp_csum.update({
                hdr.ipv4.src_addr, hdr.ipv4.dst_addr, hdr.tcp.src_port, hdr.tcp.dst_port,
                meta.tcp_residual});
        }
        pkt.emit(hdr);
    }
}

/* Egress does nothing: every decision is taken in ingress. */
parser SwitchEgressParser(packet_in pkt,
                          out header_t hdr,
                          out egress_metadata_t meta,
                          out egress_intrinsic_metadata_t eg_intr_md) {
    state start {
        pkt.extract(eg_intr_md);
        transition accept;
    }
}

control SwitchEgress(inout header_t hdr,
                     inout egress_metadata_t meta,
                     in egress_intrinsic_metadata_t eg_intr_md,
                     in egress_intrinsic_metadata_from_parser_t eg_prsr_md,
                     inout egress_intrinsic_metadata_for_deparser_t eg_dprsr_md,
                     inout egress_intrinsic_metadata_for_output_port_t eg_oport_md) {
    apply {}
}

control SwitchEgressDeparser(packet_out pkt,
                             inout header_t hdr,
                             in egress_metadata_t meta,
                             in egress_intrinsic_metadata_for_deparser_t eg_dprsr_md) {
    apply {
        pkt.emit(hdr);
    }
}

#endif
