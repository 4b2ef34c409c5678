/* vip.p4 -- VIP lookup: TCP services the switch answers SYNs for, and ARP for VIPs.
 *
 * @param hdr  parsed headers (ipv4/tcp for vip, arp for vip_addr)
 * @param meta is_vip, vip_mss, vip_window, vip_wscale are written here
 */
#ifndef _MIRESGA_VIP_P4_
#define _MIRESGA_VIP_P4_

control Vip(inout header_t hdr, inout ingress_metadata_t meta)(bit<32> vip_size) {
    @name(".vip_hit")
    action vip_hit(bit<16> mss, bit<16> window, bit<4> wscale) {
        meta.is_vip = 1w1;
        meta.vip_mss = mss;
        meta.vip_window = window;
        meta.vip_wscale = wscale;
    }

    /* TCP services (VIP address and port) the switch answers SYNs for. */
    @name(".vip")
    table vip {
        key = {
            hdr.ipv4.dst_addr : exact @name("vip_addr");
            hdr.tcp.dst_port  : exact @name("vip_port");
        }
        actions = { vip_hit; @defaultonly NoAction; }
        default_action = NoAction();
        size = vip_size;
    }

    apply {
        vip.apply();
    }
}

control VipArp(inout header_t hdr, inout ingress_metadata_t meta)(bit<32> vip_size) {
    /* The request becomes the reply in place; ingress sends it back out of its port. */
    @name(".arp_reply")
    action arp_reply(mac_addr_t mac) {
        hdr.ethernet.dst_addr = hdr.ethernet.src_addr;
        hdr.ethernet.src_addr = mac;
        hdr.arp.oper = ARP_OP_REPLY;
        hdr.arp.tha = hdr.arp.sha;
        hdr.arp.sha = mac;
        meta.route_dst = hdr.arp.tpa;
        hdr.arp.tpa = hdr.arp.spa;
        hdr.arp.spa = meta.route_dst;
        meta.reflect = 1w1;
        meta.outcome = CTR_ARP_REPLY;
    }

    /* VIP addresses the switch answers ARP requests for. */
    @name(".vip_addr")
    table vip_addr {
        key = { hdr.arp.tpa : exact @name("addr"); }
        actions = { arp_reply; @defaultonly NoAction; }
        default_action = NoAction();
        size = vip_size;
    }

    apply {
        if (hdr.arp.oper == ARP_OP_REQUEST) {
            vip_addr.apply();
        }
    }
}

#endif
