/* types.p4 -- typedefs, protocol constants and the ingress metadata of the Miresga switch.
 *
 * Widths here are the widths of the shared table schema
 * (miresga_core/dataplane/schema.py); tests/tofino checks them against it.
 */
#ifndef _MIRESGA_TYPES_P4_
#define _MIRESGA_TYPES_P4_

typedef bit<48> mac_addr_t;
typedef bit<32> ipv4_addr_t;
typedef bit<16> l4_port_t;
typedef bit<16> ether_type_t;
typedef bit<8>  ip_protocol_t;
typedef bit<10> lb_bucket_t;      // LB_BUCKETS = 1024
typedef bit<8>  frontend_index_t; // MAX_FRONTENDS = 64 fits
typedef bit<16> backend_index_t;  // MAX_BACKENDS = 4096 fits
typedef bit<11> bloom_word_t;     // BLOOM_WORDS = 2048
typedef bit<5>  counter_index_t;  // len(COUNTERS) = 26

const ether_type_t ETHERTYPE_IPV4 = 16w0x0800;
const ether_type_t ETHERTYPE_ARP  = 16w0x0806;
const ip_protocol_t IP_PROTOCOL_TCP = 8w6;
const bit<16> ARP_OP_REQUEST = 16w1;
const bit<16> ARP_OP_REPLY   = 16w2;

const bit<8> TCP_OPT_EOL       = 8w0;
const bit<8> TCP_OPT_NOP       = 8w1;
const bit<8> TCP_OPT_MSS       = 8w2;
const bit<8> TCP_OPT_WSCALE    = 8w3;
const bit<8> TCP_OPT_SACK_PERM = 8w4;
const bit<8> TCP_OPT_TIMESTAMP = 8w8;

/* Cookie constants: miresga_core/cookie.py is the definition. */
const bit<16> MSS_CLASS_1 = 16w1220;   // MSS_CLASSES[1]
const bit<16> MSS_CLASS_2 = 16w1440;   // MSS_CLASSES[2]
const bit<16> MSS_CLASS_3 = 16w1460;   // MSS_CLASSES[3]
const bit<4>  WSCALE_NONE = 4w15;
const bit<8>  WSCALE_MAX  = 8w14;
const bit<32> SIP_C2 = 32w0x6c796765;  // HalfSipHash initialisation constants
const bit<32> SIP_C3 = 32w0x74656462;
const bit<32> SIP_LEN_WORD = 32w0x10000000;  // b = message length 16 << 24, no tail

/* Pass numbers of a SYN being hashed (sip_h.pass): 1..4 absorb message words w0..w3,
 * 5 absorbs the length word, 6 and 7 are the finalization. */
const bit<8> SIP_PASS_W0 = 8w1;
const bit<8> SIP_PASS_W1 = 8w2;
const bit<8> SIP_PASS_W2 = 8w3;
const bit<8> SIP_PASS_W3 = 8w4;
const bit<8> SIP_PASS_LEN = 8w5;
const bit<8> SIP_PASS_FIN1 = 8w6;
const bit<8> SIP_PASS_FIN2 = 8w7;

struct ingress_metadata_t {
    bit<1>  is_vip;            // vip hit
    bit<16> vip_mss;           // vip_hit params
    bit<16> vip_window;
    bit<4>  vip_wscale;
    bit<1>  lb_active;         // lb_control params
    bit<1>  lb_changing;
    bit<32> lb_hash;           // CRC-32 of the client: the bucket is its low bits
    lb_bucket_t lb_bucket;
    bit<1>  use_new_table;     // flow found in (or entered into) the Bloom filter
    bloom_word_t bloom_word;
    bit<5>  bloom_bit_a;
    bit<5>  bloom_bit_b;
    bit<32> bloom_mask_a;
    bit<32> bloom_mask_b;
    bit<32> bloom_mask;
    bit<32> bloom_seen;
    frontend_index_t frontend;
    backend_index_t backend;
    bit<8>  offload_mode;
    bit<1>  offloaded;
    bit<1>  from_backend;
    backend_index_t from_backend_index;
    ipv4_addr_t route_dst;     // what the route table looks up
    bit<1>  secret_index;      // cookie_secret key: 0 = current
    bit<32> sip_k0;            // set_secret params
    bit<32> sip_k1;
    bit<32> slot_base;         // set_clock params
    bit<64> slot_base_ns;
    bit<48> slot_delta;
    bit<32> slot;
    bit<2>  mss_cls;
    bit<4>  ws_code;
    bit<1>  sack;
    bit<32> sip_m;             // message word of the current pass
    bit<16> payload_len;
    bit<16> tcp_residual;      // TCP checksum with the rewritten fields taken out
    bit<1>  recirc;            // send to the recirculation port (cookie passes)
    l4_port_t tmp_port;        // swap space for the SYN-ACK
    ipv4_addr_t client_addr;   // the client of the flow (source or destination)
    l4_port_t client_port;
    bit<32> bloom_hv;          // Bloom filter hash of the client
    bit<1>  reflect;           // send back out of the ingress port (ARP reply)
    bit<1>  to_cpu;            // no route: give the packet to the host
    bit<8>  zero8;             // the pseudo header's zero byte (checksum field list)
    bit<16> tcp_len;           // the SYN-ACK's TCP length (checksum field list)
    bit<1>  synack;            // deparser: build the SYN-ACK checksum from scratch
    counter_index_t outcome;   // the one counter index this packet is counted under
}

struct egress_metadata_t {}

#endif
