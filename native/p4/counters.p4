/* counters.p4 -- one packet/byte counter per outcome (index: generated/counters.p4).
 *
 * A Tofino counter array is updated once per packet per pass, so each packet is counted
 * under one index: the last outcome ingress recorded in meta.outcome. The XDP program
 * counts several indices per packet (rx, vip_hit, ...); on Tofino those stay 0 and the
 * driver reports rx as the sum of all outcomes (docs/tofino.md).
 */
#ifndef _MIRESGA_COUNTERS_P4_
#define _MIRESGA_COUNTERS_P4_

control Outcome(in ingress_metadata_t meta)(bit<32> outcomes) {
    /* Packet and byte counters per table outcome and verdict. */
    @name(".counters")
    Counter<bit<64>, counter_index_t>(outcomes, CounterType_t.PACKETS_AND_BYTES) counters;

    apply {
        counters.count(meta.outcome);
    }
}

#endif
