/* headers.p4 -- packet headers and the header struct of the Miresga switch. */
#ifndef _MIRESGA_HEADERS_P4_
#define _MIRESGA_HEADERS_P4_

header ethernet_h {
    mac_addr_t   dst_addr;
    mac_addr_t   src_addr;
    ether_type_t ether_type;
}

/* ARP for IPv4 over Ethernet only (htype 1, ptype 0x0800). */
header arp_h {
    bit<16>     htype;
    bit<16>     ptype;
    bit<8>      hlen;
    bit<8>      plen;
    bit<16>     oper;
    mac_addr_t  sha;
    ipv4_addr_t spa;
    mac_addr_t  tha;
    ipv4_addr_t tpa;
}

header ipv4_h {
    bit<4>        version;
    bit<4>        ihl;
    bit<8>        diffserv;
    bit<16>       total_len;
    bit<16>       identification;
    bit<3>        flags;
    bit<13>       frag_offset;
    bit<8>        ttl;
    ip_protocol_t protocol;
    bit<16>       hdr_checksum;
    ipv4_addr_t   src_addr;
    ipv4_addr_t   dst_addr;
}

header tcp_h {
    l4_port_t src_port;
    l4_port_t dst_port;
    bit<32>   seq_no;
    bit<32>   ack_no;
    bit<4>    data_offset;
    bit<4>    res;
    bit<1>    cwr;
    bit<1>    ece;
    bit<1>    urg;
    bit<1>    ack;
    bit<1>    psh;
    bit<1>    rst;
    bit<1>    syn;
    bit<1>    fin;
    bit<16>   window;
    bit<16>   checksum;
    bit<16>   urgent_ptr;
}

/* SYN options the cookie needs (parsed on SYNs only, see parde.p4). */
header tcp_opt_nop_h       { bit<8> kind; }
header tcp_opt_mss_h       { bit<8> kind; bit<8> len; bit<16> mss; }
header tcp_opt_ws_h        { bit<8> kind; bit<8> len; bit<8> shift; }
header tcp_opt_sack_perm_h { bit<8> kind; bit<8> len; }
header tcp_opt_ts_h        { bit<8> kind; bit<8> len; bit<32> tsval; bit<32> tsecr; }

/* Options of the SYN-ACK the switch writes: 12 bytes, data offset 8.
 *   mss(4) | NOP NOP sack-permitted(2), or NOP x4 | NOP window scale(3), or NOP x4 */
header synack_opts_h {
    bit<8>  mss_kind;
    bit<8>  mss_len;
    bit<16> mss;
    bit<32> sack_perm;    // 0x01010402 or 0x01010101
    bit<8>  ws_nop;
    bit<8>  ws_kind;      // 3 or NOP
    bit<8>  ws_len;       // 3 or NOP
    bit<8>  ws_shift;     // shift or NOP
}

/* HalfSipHash state carried by a SYN between recirculation passes (cookie.p4).
 * Only ever seen on the recirculation port: never on the wire. */
header sip_h {
    bit<32> v0;
    bit<32> v1;
    bit<32> v2;
    bit<32> v3;
    bit<32> w3;     // message word 3 (time slot and SYN options), fixed on pass 0
    bit<8>  pass;
}

struct header_t {
    sip_h                  sip;
    ethernet_h             ethernet;
    arp_h                  arp;
    ipv4_h                 ipv4;
    tcp_h                  tcp;
    tcp_opt_nop_h[8]       opt_nop;
    tcp_opt_mss_h          opt_mss;
    tcp_opt_ws_h           opt_ws;
    tcp_opt_sack_perm_h    opt_sack_perm;
    tcp_opt_ts_h           opt_ts;
    synack_opts_h          synack_opts;
}

#endif
