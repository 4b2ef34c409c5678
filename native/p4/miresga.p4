/* miresga.p4 -- the Miresga switch for Tofino (TNA): features, sizes, includes, wiring.
 *
 * Build: native/p4/README.md. Tables and actions are defined in the feature files and
 * carry stable control-plane names (@name(".x")) from miresga_core/dataplane/names.py.
 */

#include <core.p4>
#if __TARGET_TOFINO__ == 2
#include <t2na.p4>
#else
#include <tna.p4>
#endif

/* ---------------------------------------------------------------- Target ports */
/* Recirculation port of pipe 0 used by the cookie passes, and the CPU port the packets
 * nobody routes go to. Board specific: override with -DRECIRC_PORT= / -DCPU_PORT=. */
#ifndef RECIRC_PORT
#if __TARGET_TOFINO__ == 2
#define RECIRC_PORT 6
#else
#define RECIRC_PORT 68
#endif
#endif
#ifndef CPU_PORT
#if __TARGET_TOFINO__ == 2
#define CPU_PORT 0
#else
#define CPU_PORT 192
#endif
#endif

/* ---------------------------------------------------------------- Table sizes */
/* Equal to miresga_core/dataplane/schema.py (tests/tofino checks it). */
#define VIP_TABLE_SIZE       256
#define LB_BUCKETS           1024
#define BLOOM_WORDS          2048
#define FRONTEND_TABLE_SIZE  64
#define BACKEND_TABLE_SIZE   4096
#define OFFLOAD_TABLE_SIZE   65536
#define ROUTE_TABLE_SIZE     1024
#define COOKIE_SECRETS       2

const bit<8> OFFLOAD_MODE_PIN = 8w1;  // schema.OffloadModeId.PIN

/* ---------------------------------------------------------------- Features */
#include "types.p4"
#include "generated/counters.p4"
#include "headers.p4"
#include "parde.p4"
#include "vip.p4"
#include "cookie.p4"
#include "steering.p4"
#include "offload.p4"
#include "rewrite.p4"
#include "routing.p4"
#include "counters.p4"

/* ---------------------------------------------------------------- Ingress */
control SwitchIngress(inout header_t hdr,
                      inout ingress_metadata_t meta,
                      in ingress_intrinsic_metadata_t ig_intr_md,
                      in ingress_intrinsic_metadata_from_parser_t ig_prsr_md,
                      inout ingress_intrinsic_metadata_for_deparser_t ig_dprsr_md,
                      inout ingress_intrinsic_metadata_for_tm_t ig_tm_md) {
    VipArp(VIP_TABLE_SIZE) vip_arp;
    Vip(VIP_TABLE_SIZE) vip_lookup;
    Cookie(COOKIE_SECRETS) cookie;
    Steering(LB_BUCKETS, BLOOM_WORDS, FRONTEND_TABLE_SIZE) steering;
    OffloadForward(OFFLOAD_TABLE_SIZE) offload_fwd;
    OffloadReverse(BACKEND_TABLE_SIZE, OFFLOAD_TABLE_SIZE) offload_rev;
    BackendRewrite(BACKEND_TABLE_SIZE) backend_rewrite;
    Routing(ROUTE_TABLE_SIZE) routing;
    Outcome(COUNTERS_SIZE) outcome;

    action payload_len() {
        meta.payload_len = hdr.ipv4.total_len - 16w20;
    }
    action payload_len_tcp() {
        meta.payload_len = meta.payload_len - (10w0 ++ hdr.tcp.data_offset ++ 2w0);
    }
    action client_is_src() {
        meta.client_addr = hdr.ipv4.src_addr;
        meta.client_port = hdr.tcp.src_port;
    }
    action client_is_dst() {
        meta.client_addr = hdr.ipv4.dst_addr;
        meta.client_port = hdr.tcp.dst_port;
    }
    action set_outcome(counter_index_t index) { meta.outcome = index; }

    apply {
        bit<1> steer = 0;
        bit<1> syn_to_vip = 0;
        bit<1> old_leg = 0;
        set_outcome(CTR_RX);
        if (hdr.arp.isValid()) {
            set_outcome(CTR_ARP_OTHER);
            vip_arp.apply(hdr, meta);
        } else if (hdr.tcp.isValid() && hdr.tcp.data_offset < 4w5) {
            set_outcome(CTR_MALFORMED);
        } else if (hdr.tcp.isValid()) {
            payload_len();
            payload_len_tcp();
            vip_lookup.apply(hdr, meta);
            if (hdr.sip.isValid()) {
                // a SYN between cookie passes: only the cookie runs
                set_outcome(CTR_SYNACK);
            } else if (meta.is_vip == 1w1) {
                client_is_src();
                if (hdr.tcp.syn == 1w1 && hdr.tcp.ack == 1w0) {
                    if (hdr.tcp.rst == 1w1 || hdr.tcp.fin == 1w1) {
                        set_outcome(CTR_SYN_BAD);
                    } else {
                        set_outcome(CTR_SYNACK);
                        syn_to_vip = 1w1;
                        steer = 1w1;  // only records the SYN in the Bloom filter
                    }
                } else {
                    set_outcome(CTR_OFFLOAD_MISS);
                    offload_fwd.apply(hdr, meta);
                    if (meta.offloaded == 1w1 &&
                        (meta.offload_mode == OFFLOAD_MODE_PIN || meta.payload_len == 16w0)) {
                        backend_rewrite.apply(hdr, meta);
                    } else {
                        steer = 1w1;
                    }
                }
            } else {
                set_outcome(CTR_VIP_MISS);
                offload_rev.apply(hdr, meta);
                if (meta.outcome == CTR_BACKEND_OLD) {
                    client_is_dst();
                    steer = 1w1;
                    old_leg = 1w1;
                }
            }
        } else if (hdr.ipv4.isValid()) {
            set_outcome(CTR_VIP_MISS);
        }

        if (steer == 1w1) {
            steering.apply(hdr, meta);
            if (old_leg == 1w1 && meta.outcome == CTR_TO_FRONTEND) {
                set_outcome(CTR_BACKEND_OLD);  // counted as what it is: a stale leg
            }
        }
        if (syn_to_vip == 1w1 || hdr.sip.isValid()) {
            cookie.apply(hdr, meta, ig_prsr_md);
        }

        if (meta.reflect == 1w1) {
            ig_tm_md.ucast_egress_port = ig_intr_md.ingress_port;
        } else if (meta.recirc == 1w1) {
            ig_tm_md.ucast_egress_port = RECIRC_PORT;
        } else if (meta.outcome == CTR_MALFORMED || meta.outcome == CTR_SYN_BAD ||
                   meta.outcome == CTR_SYN_NOSECRET ||
                   meta.outcome == CTR_NO_FRONTEND || meta.outcome == CTR_NO_BACKEND) {
            ig_dprsr_md.drop_ctl = 3w1;
        } else if (hdr.ipv4.isValid()) {
            if (meta.route_dst == 32w0) {
                meta.route_dst = hdr.ipv4.dst_addr;
            }
            routing.apply(hdr, meta, ig_tm_md);
            if (meta.to_cpu == 1w1 && meta.outcome == CTR_VIP_MISS) {
                set_outcome(CTR_ROUTE_MISS);
            } else if (meta.outcome == CTR_VIP_MISS) {
                set_outcome(CTR_ROUTED);
            }
        } else {
            ig_tm_md.ucast_egress_port = CPU_PORT;
        }
        if (!hdr.sip.isValid() || meta.synack == 1w1) {
            outcome.apply(meta);  // a SYN is counted once, when its SYN-ACK leaves
        }
    }
}

/* ---------------------------------------------------------------- Switch */
Pipeline(SwitchIngressParser(),
         SwitchIngress(),
         SwitchIngressDeparser(),
         SwitchEgressParser(),
         SwitchEgress(),
         SwitchEgressDeparser()) pipe;

Switch(pipe) main;
