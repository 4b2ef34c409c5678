/* cookie.p4 -- the keyed SYN cookie SYN-ACK (definition: miresga_core/cookie.py).
 *
 * Theory of operation
 * -------------------
 * cookie = slot[1:0] | mss class | window scale code | sack | HalfSipHash-2-4(key, w0..w3)[22:0]
 * with w0 = client address, w1 = VIP, w2 = client port ++ VIP port and
 * w3 = slot[23:0] ++ 0 ++ mss class ++ ws code ++ sack.
 *
 * A Tofino hash unit computes CRCs (affine functions): it cannot compute a keyed PRF. The
 * HalfSipHash rounds are therefore done with the ALUs, one SipRound in four dependent
 * stages (add / xor / rotate, each container written once per stage; a rotate is a bit
 * rearrangement done in the hash unit through @in_hash). HalfSipHash-2-4 on a 16 byte
 * message needs 4 x 2 + 2 + 4 = 14 SipRounds (56 stages), more than one pass has, so a SYN
 * is recirculated: pass 0 reads the key, the clock and the SYN options and initialises the
 * state; passes 1..7 each run [message word select, pre-xor, 2 SipRounds, post-xor]:
 *   pass 1..4  absorb w0..w3        (v3 ^= m; 2 rounds; v0 ^= m)
 *   pass 5     absorb the length word b = 16 << 24
 *   pass 6     v2 ^= 0xff; 2 rounds
 *   pass 7     2 rounds; hash = v1 ^ v3; the packet becomes the SYN-ACK
 * The state travels in sip_h in front of Ethernet, only on the recirculation port.
 *
 * Every statement of the round and absorb actions writes one field and reads no field the
 * same action wrote before (so sequential P4 semantics equal the parallel semantics of a
 * stage); tests/tofino runs these actions as written and compares with cookie.py.
 *
 * Time slot: slot = base_slot + ((global_tstamp - base_ns) >> 36). The global timestamp is
 * 48 bits of nanoseconds, so the difference is taken modulo 2**48 (3.26 days): the
 * controller rewrites cookie_clock on every secret rotation, well within that.
 *
 * @param hdr  headers; hdr.sip is valid on passes 1..7
 * @param meta vip_mss / vip_window / vip_wscale come from the vip table (vip.p4)
 */
#ifndef _MIRESGA_COOKIE_P4_
#define _MIRESGA_COOKIE_P4_

/* One SipRound of HalfSipHash on s.v0..v3: four stages. */
control SipRound(inout sip_h s) {
    action sip_a() {
        s.v0 = s.v0 + s.v1;
        s.v2 = s.v2 + s.v3;
        @in_hash { s.v1 = s.v1[26:0] ++ s.v1[31:27]; }  // rotl 5
        @in_hash { s.v3 = s.v3[23:0] ++ s.v3[31:24]; }  // rotl 8
    }
    action sip_b() {
        s.v1 = s.v1 ^ s.v0;
        s.v3 = s.v3 ^ s.v2;
        @in_hash { s.v0 = s.v0[15:0] ++ s.v0[31:16]; }  // rotl 16
    }
    action sip_c() {
        s.v0 = s.v0 + s.v3;
        s.v2 = s.v2 + s.v1;
        @in_hash { s.v3 = s.v3[24:0] ++ s.v3[31:25]; }  // rotl 7
        @in_hash { s.v1 = s.v1[18:0] ++ s.v1[31:19]; }  // rotl 13
    }
    action sip_d() {
        s.v3 = s.v3 ^ s.v0;
        s.v1 = s.v1 ^ s.v2;
        @in_hash { s.v2 = s.v2[15:0] ++ s.v2[31:16]; }  // rotl 16
    }
    apply {
        sip_a();
        sip_b();
        sip_c();
        sip_d();
    }
}

control Cookie(inout header_t hdr,
               inout ingress_metadata_t meta,
               in ingress_intrinsic_metadata_from_parser_t ig_prsr_md)
              (bit<32> secret_size) {
    SipRound() round_1;
    SipRound() round_2;

    /* ---- pass 0: key, clock, SYN options, state initialisation */

    @name(".set_secret")
    action set_secret(bit<32> k0, bit<32> k1) {
        meta.sip_k0 = k0;
        meta.sip_k1 = k1;
    }

    /* SYN cookie keys: index 0 current (used here), 1 previous (front-ends only). */
    @name(".cookie_secret")
    table cookie_secret {
        key = { meta.secret_index : exact @name("index"); }
        actions = { set_secret; }
        default_action = set_secret(0, 0);
        size = secret_size;
    }

    @name(".set_clock")
    action set_clock(bit<32> base_slot, bit<64> base_ns) {
        meta.slot_base = base_slot;
        meta.slot_base_ns = base_ns;
    }

    /* Cookie time base written by the controller (a single default entry). */
    @name(".cookie_clock")
    table cookie_clock {
        actions = { set_clock; }
        default_action = set_clock(0, 0);
        size = 1;
    }

    action slot_delta() { meta.slot_delta = ig_prsr_md.global_tstamp - meta.slot_base_ns[47:0]; }
    action slot_add()   { meta.slot = meta.slot_base + (20w0 ++ meta.slot_delta[47:36]); }
    action mss_class_0() { meta.mss_cls = 2w0; }
    action mss_class_1() { meta.mss_cls = 2w1; }
    action mss_class_2() { meta.mss_cls = 2w2; }
    action mss_class_3() { meta.mss_cls = 2w3; }
    action ws_none()  { meta.ws_code = WSCALE_NONE; }
    action ws_clamp() { meta.ws_code = 4w14; }
    action ws_copy()  { meta.ws_code = hdr.opt_ws.shift[3:0]; }
    action no_secret() { meta.outcome = CTR_SYN_NOSECRET; }
    action sack_yes() { meta.sack = 1w1; }
    action sack_no()  { meta.sack = 1w0; }

    action sip_init() {
        hdr.sip.setValid();
        hdr.sip.v0 = meta.sip_k0;
        hdr.sip.v1 = meta.sip_k1;
        hdr.sip.v2 = meta.sip_k0 ^ SIP_C2;
        hdr.sip.v3 = meta.sip_k1 ^ SIP_C3;
        hdr.sip.w3 = meta.slot[23:0] ++ 1w0 ++ meta.mss_cls ++ meta.ws_code ++ meta.sack;
        hdr.sip.pass = SIP_PASS_W0;
    }

    /* ---- passes 1..7: absorb and finalise */

    action msg_w0()  { meta.sip_m = hdr.ipv4.src_addr; }
    action msg_w1()  { meta.sip_m = hdr.ipv4.dst_addr; }
    action msg_w2()  { meta.sip_m = hdr.tcp.src_port ++ hdr.tcp.dst_port; }
    action msg_w3()  { meta.sip_m = hdr.sip.w3; }
    action msg_len() { meta.sip_m = SIP_LEN_WORD; }
    action absorb_pre()  { hdr.sip.v3 = hdr.sip.v3 ^ meta.sip_m; }
    action absorb_post() { hdr.sip.v0 = hdr.sip.v0 ^ meta.sip_m; }
    action final_pre()   { hdr.sip.v2 = hdr.sip.v2 ^ 32w0xff; }
    action next_pass() {
        hdr.sip.pass = hdr.sip.pass + 8w1;
        meta.recirc = 1w1;
    }
    action recirculate() { meta.recirc = 1w1; }
    action sip_out() { hdr.sip.v0 = hdr.sip.v1 ^ hdr.sip.v3; }

    /* Turn the SYN into the SYN-ACK, in place; routing sends it back to the client. */
    action synack_build() {
        meta.route_dst = hdr.ipv4.src_addr;
        hdr.ipv4.src_addr = hdr.ipv4.dst_addr;
        hdr.ipv4.dst_addr = meta.route_dst;
        hdr.ipv4.total_len = 16w52;
        meta.zero8 = 8w0;
        meta.tcp_len = 16w32;  // 20 byte header + 12 option bytes
        hdr.ipv4.ttl = 8w64;
        meta.tmp_port = hdr.tcp.src_port;
        hdr.tcp.src_port = hdr.tcp.dst_port;
        hdr.tcp.dst_port = meta.tmp_port;
        hdr.tcp.ack_no = hdr.tcp.seq_no + 32w1;
        hdr.tcp.seq_no = hdr.sip.w3[9:8] ++ hdr.sip.w3[6:5] ++ hdr.sip.w3[4:1]
                         ++ hdr.sip.w3[0:0] ++ hdr.sip.v0[22:0];
        hdr.tcp.data_offset = 4w8;
        hdr.tcp.res = 4w0;
        hdr.tcp.cwr = 1w0;
        hdr.tcp.ece = 1w0;
        hdr.tcp.urg = 1w0;
        hdr.tcp.ack = 1w1;
        hdr.tcp.psh = 1w0;
        hdr.tcp.rst = 1w0;
        hdr.tcp.syn = 1w1;
        hdr.tcp.fin = 1w0;
        hdr.tcp.window = meta.vip_window;
        hdr.tcp.urgent_ptr = 16w0;
        hdr.synack_opts.setValid();
        hdr.synack_opts.mss_kind = TCP_OPT_MSS;
        hdr.synack_opts.mss_len = 8w4;
        hdr.synack_opts.mss = meta.vip_mss;
        hdr.opt_mss.setInvalid();
        hdr.opt_ws.setInvalid();
        hdr.opt_sack_perm.setInvalid();
        hdr.opt_ts.setInvalid();
        hdr.sip.setInvalid();
        meta.synack = 1w1;
    }
    action synack_nops() {
        hdr.opt_nop[0].setInvalid();
        hdr.opt_nop[1].setInvalid();
        hdr.opt_nop[2].setInvalid();
        hdr.opt_nop[3].setInvalid();
        hdr.opt_nop[4].setInvalid();
        hdr.opt_nop[5].setInvalid();
        hdr.opt_nop[6].setInvalid();
        hdr.opt_nop[7].setInvalid();
    }
    action synack_sack_yes() { hdr.synack_opts.sack_perm = 32w0x01010402; }
    action synack_sack_no()  { hdr.synack_opts.sack_perm = 32w0x01010101; }
    action synack_ws_yes() {
        hdr.synack_opts.ws_nop = TCP_OPT_NOP;
        hdr.synack_opts.ws_kind = TCP_OPT_WSCALE;
        hdr.synack_opts.ws_len = 8w3;
        hdr.synack_opts.ws_shift = 4w0 ++ meta.vip_wscale;
    }
    action synack_ws_no() {
        hdr.synack_opts.ws_nop = TCP_OPT_NOP;
        hdr.synack_opts.ws_kind = TCP_OPT_NOP;
        hdr.synack_opts.ws_len = TCP_OPT_NOP;
        hdr.synack_opts.ws_shift = TCP_OPT_NOP;
    }

    apply {
        if (!hdr.sip.isValid()) {
            cookie_secret.apply();
            cookie_clock.apply();
            if (meta.sip_k0 == 32w0 && meta.sip_k1 == 32w0) {
                // the all-zero key means "no secret set yet": never sign with it
                no_secret();
            } else {
                slot_delta();
                slot_add();
                if (!hdr.opt_mss.isValid()) {
                    mss_class_0();
                } else if (hdr.opt_mss.mss >= MSS_CLASS_3) {
                    mss_class_3();
                } else if (hdr.opt_mss.mss >= MSS_CLASS_2) {
                    mss_class_2();
                } else if (hdr.opt_mss.mss >= MSS_CLASS_1) {
                    mss_class_1();
                } else {
                    mss_class_0();
                }
                if (!hdr.opt_ws.isValid()) {
                    ws_none();
                } else if (hdr.opt_ws.shift > WSCALE_MAX) {
                    ws_clamp();
                } else {
                    ws_copy();
                }
                if (hdr.opt_sack_perm.isValid()) {
                    sack_yes();
                } else {
                    sack_no();
                }
                sip_init();
                recirculate();
            }
        } else {
            if (hdr.sip.pass == SIP_PASS_W0) {
                msg_w0();
            } else if (hdr.sip.pass == SIP_PASS_W1) {
                msg_w1();
            } else if (hdr.sip.pass == SIP_PASS_W2) {
                msg_w2();
            } else if (hdr.sip.pass == SIP_PASS_W3) {
                msg_w3();
            } else if (hdr.sip.pass == SIP_PASS_LEN) {
                msg_len();
            }
            if (hdr.sip.pass <= SIP_PASS_LEN) {
                absorb_pre();
            } else if (hdr.sip.pass == SIP_PASS_FIN1) {
                final_pre();
            }
            round_1.apply(hdr.sip);
            round_2.apply(hdr.sip);
            if (hdr.sip.pass <= SIP_PASS_LEN) {
                absorb_post();
            }
            if (hdr.sip.pass == SIP_PASS_FIN2) {
                sip_out();
                if (hdr.sip.w3[0:0] == 1w1) {
                    synack_sack_yes();
                } else {
                    synack_sack_no();
                }
                if (hdr.sip.w3[4:1] != WSCALE_NONE) {
                    synack_ws_yes();
                } else {
                    synack_ws_no();
                }
                synack_nops();
                synack_build();
            } else {
                next_pass();
            }
        }
    }
}

#endif
