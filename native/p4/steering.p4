/* steering.p4 -- front-end steering: hash(client) -> bucket -> front-end.
 *
 * Two lb_index tables let the controller change the front-end set without breaking live
 * connections: the new assignment is written into the inactive table and `changing` is
 * set; SYNs that arrive meanwhile are recorded in a Bloom filter, and flows found there
 * use the new table. finish_change flips `active`, clears `changing` and the filter.
 *
 * The Bloom filter is blocked: one 32-bit word per flow, two bits in it, so a flow costs
 * one register access (a Tofino register array can be accessed once per pass). The XDP
 * switch probes two words of a flat bit array instead; only the controller's "clear"
 * touches the filter, so the layouts may differ. A bit mask
 * 1 << n needs a variable shift, which the ALUs do not have: it is built from five
 * conditional constant shifts.
 *
 * @param meta client_addr / client_port: the flow's client; frontend and route_dst out
 */
#ifndef _MIRESGA_STEERING_P4_
#define _MIRESGA_STEERING_P4_

control Steering(inout header_t hdr, inout ingress_metadata_t meta)
                (bit<32> buckets, bit<32> bloom_words, bit<32> frontends) {
    /* The XDP switch's flow hashes (miresga_core/dataplane/flowhash.py) over the client
     * address and port: CRC-32 (IEEE) picks the bucket, so a client lands on the same
     * front-end on either target; CRC-32C feeds the Bloom filter. */
    CRCPolynomial<bit<32>>(32w0x1EDC6F41, true, false, false, 32w0xFFFFFFFF, 32w0xFFFFFFFF)
        crc32c_poly;
    Hash<bit<32>>(HashAlgorithm_t.CRC32) bucket_hash;
    Hash<bit<32>>(HashAlgorithm_t.CUSTOM, crc32c_poly) bloom_hash;

    /* Bloom filter of flows whose SYN arrived during a front-end membership change. */
    @name(".lb_bloom")
    Register<bit<32>, bloom_word_t>(bloom_words, 0) lb_bloom;

    RegisterAction<bit<32>, bloom_word_t, bit<32>>(lb_bloom) bloom_insert = {
        void apply(inout bit<32> value, out bit<32> seen) {
            seen = value;
            value = value | meta.bloom_mask;
        }
    };
    RegisterAction<bit<32>, bloom_word_t, bit<32>>(lb_bloom) bloom_query = {
        void apply(inout bit<32> value, out bit<32> seen) {
            seen = value;
        }
    };

    @name(".set_lb_state")
    action set_lb_state(bit<1> active, bit<1> changing) {
        meta.lb_active = active;
        meta.lb_changing = changing;
    }

    /* Which lb_index table is active, and whether a membership change is running. */
    @name(".lb_control")
    table lb_control {
        actions = { set_lb_state; }
        default_action = set_lb_state(0, 0);
        size = 1;
    }

    @name(".set_frontend")
    action set_frontend(frontend_index_t frontend) {
        meta.frontend = frontend;
    }

    /* Front-end by client-hash bucket, table 0 of 2. */
    @name(".lb_index_0")
    table lb_index_0 {
        key = { meta.lb_bucket : exact @name("bucket"); }
        actions = { set_frontend; }
        default_action = set_frontend(0);
        size = buckets;
    }

    /* Front-end by client-hash bucket, table 1 of 2. */
    @name(".lb_index_1")
    table lb_index_1 {
        key = { meta.lb_bucket : exact @name("bucket"); }
        actions = { set_frontend; }
        default_action = set_frontend(0);
        size = buckets;
    }

    @name(".set_frontend_addr")
    action set_frontend_addr(ipv4_addr_t addr) {
        meta.route_dst = addr;
        meta.outcome = CTR_TO_FRONTEND;
    }

    action no_frontend() { meta.outcome = CTR_NO_FRONTEND; }

    /* Front-end servers by index: where their packets are sent (IP header untouched). */
    @name(".frontend")
    table frontend {
        key = { meta.frontend : exact @name("index"); }
        actions = { set_frontend_addr; @defaultonly NoAction; }
        default_action = NoAction();
        size = frontends;
    }

    action bucket_of_hash() { meta.lb_bucket = meta.lb_hash[9:0]; }
    action bloom_index() {
        meta.bloom_word = meta.bloom_hv[10:0];
        meta.bloom_bit_a = meta.bloom_hv[15:11];
        meta.bloom_bit_b = meta.bloom_hv[20:16];
        meta.bloom_mask_a = 32w1;
        meta.bloom_mask_b = 32w1;
    }
    action shift_a_16() { meta.bloom_mask_a = meta.bloom_mask_a << 16; }
    action shift_a_8()  { meta.bloom_mask_a = meta.bloom_mask_a << 8; }
    action shift_a_4()  { meta.bloom_mask_a = meta.bloom_mask_a << 4; }
    action shift_a_2()  { meta.bloom_mask_a = meta.bloom_mask_a << 2; }
    action shift_a_1()  { meta.bloom_mask_a = meta.bloom_mask_a << 1; }
    action shift_b_16() { meta.bloom_mask_b = meta.bloom_mask_b << 16; }
    action shift_b_8()  { meta.bloom_mask_b = meta.bloom_mask_b << 8; }
    action shift_b_4()  { meta.bloom_mask_b = meta.bloom_mask_b << 4; }
    action shift_b_2()  { meta.bloom_mask_b = meta.bloom_mask_b << 2; }
    action shift_b_1()  { meta.bloom_mask_b = meta.bloom_mask_b << 1; }
    action bloom_mask() { meta.bloom_mask = meta.bloom_mask_a | meta.bloom_mask_b; }
    action bloom_seen() { meta.bloom_seen = meta.bloom_seen & meta.bloom_mask; }
    action use_new_table() { meta.use_new_table = 1w1; }

    apply {
        lb_control.apply();
        meta.lb_hash = bucket_hash.get({meta.client_addr, meta.client_port});
        bucket_of_hash();
        if (meta.lb_changing == 1w1) {
            meta.bloom_hv = bloom_hash.get({meta.client_addr, meta.client_port});
            bloom_index();
            if (meta.bloom_bit_a[4:4] == 1w1) { shift_a_16(); }
            if (meta.bloom_bit_a[3:3] == 1w1) { shift_a_8(); }
            if (meta.bloom_bit_a[2:2] == 1w1) { shift_a_4(); }
            if (meta.bloom_bit_a[1:1] == 1w1) { shift_a_2(); }
            if (meta.bloom_bit_a[0:0] == 1w1) { shift_a_1(); }
            if (meta.bloom_bit_b[4:4] == 1w1) { shift_b_16(); }
            if (meta.bloom_bit_b[3:3] == 1w1) { shift_b_8(); }
            if (meta.bloom_bit_b[2:2] == 1w1) { shift_b_4(); }
            if (meta.bloom_bit_b[1:1] == 1w1) { shift_b_2(); }
            if (meta.bloom_bit_b[0:0] == 1w1) { shift_b_1(); }
            bloom_mask();
            if (hdr.tcp.syn == 1w1 && hdr.tcp.ack == 1w0) {
                meta.bloom_seen = bloom_insert.execute(meta.bloom_word);
                use_new_table();
                meta.outcome = CTR_BLOOM_INSERT;
            } else {
                meta.bloom_seen = bloom_query.execute(meta.bloom_word);
                bloom_seen();
                if (meta.bloom_seen == meta.bloom_mask) {
                    use_new_table();
                }
            }
        }
        if (hdr.tcp.syn == 1w0 || hdr.tcp.ack == 1w1) {
            if (meta.lb_active == meta.use_new_table) {
                lb_index_0.apply();
            } else {
                lb_index_1.apply();
            }
            if (!frontend.apply().hit) {
                no_frontend();
            }
        }
    }
}

#endif
