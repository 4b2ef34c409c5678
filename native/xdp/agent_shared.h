/* GENERATED FILE - DO NOT EDIT.
 * Source of truth: miresga_core/agent/shared.py
 * Regenerate: python3 -m miresga_core.wire.gen_headers
 * tests/agent/test_generated_headers.py fails when this copy is stale. */
#ifndef MIRESGA_AGENT_SHARED_H
#define MIRESGA_AGENT_SHARED_H

#include <linux/types.h>

#define AGENT_MAX_FLOWS      65536 /* flows LRU capacity */
#define AGENT_WSCALE_UNKNOWN 255 /* backend_ws before the SYN-ACK */
#define FLOW_F_DELTA         1 /* delta learned from the backend's SYN-ACK */
#define FLOW_F_FIN_IN        2 /* client -> backend FIN seen */
#define FLOW_F_FIN_OUT       4 /* backend -> client FIN seen */
#define FLOW_F_RST           8 /* RST seen in either direction */
#define FLOW_F_SACK          16 /* client negotiated SACK */
#define FLOW_F_WSCALE        32 /* client negotiated window scaling */
#define FLOW_F_TS            64 /* client's connection has timestamps (SYN had the trailer) */
#define FLOW_F_TS_DELTA      128 /* ts_delta learned from the backend's SYN-ACK */

/* bit numbers of flow.flags (FLOW_F_x = 1 << FLOW_BIT_x) */
enum flow_flag_bit {
	FLOW_BIT_DELTA = 0, /* delta learned from the backend's SYN-ACK */
	FLOW_BIT_FIN_IN = 1, /* client -> backend FIN seen */
	FLOW_BIT_FIN_OUT = 2, /* backend -> client FIN seen */
	FLOW_BIT_RST = 3, /* RST seen in either direction */
	FLOW_BIT_SACK = 4, /* client negotiated SACK */
	FLOW_BIT_WSCALE = 5, /* client negotiated window scaling */
	FLOW_BIT_TS = 6, /* client's connection has timestamps (SYN had the trailer) */
	FLOW_BIT_TS_DELTA = 7, /* ts_delta learned from the backend's SYN-ACK */
	FLOW_BIT_COUNT = 8,
};

/* index of the per-CPU global counters array */
enum agent_counter {
	CNT_SYN_OK = 0, /* tagged SYN accepted, flow created, option rewritten */
	CNT_SYN_BAD_TAG = 1, /* Miresga SYN with a wrong tag: dropped */
	CNT_SYN_NO_KEY = 2, /* Miresga SYN for an unset key slot: dropped */
	CNT_SYN_BAD_FORMAT = 3, /* Miresga SYN malformed (version, payload, fields): dropped */
	CNT_SYN_RETRANS = 4, /* retransmitted Miresga SYN of a known flow */
	CNT_FLOW_TABLE_FULL = 5, /* flow could not be stored */
	CNT_SYNACK_LEARNED = 6, /* backend SYN-ACK: delta learned */
	CNT_IN_NO_DELTA = 7, /* ingress non-SYN before the backend's SYN-ACK: dropped */
	CNT_IN_TRANSLATED = 8, /* ingress packet of a flow: ack/SACK translated */
	CNT_OUT_TRANSLATED = 9, /* egress packet of a flow: seq translated */
	CNT_SACK_BLOCKS = 10, /* ingress SACK blocks translated */
	CNT_WIN_RESCALED = 11, /* egress window field rescaled */
	CNT_FIN_IN = 12, /* FIN client -> backend */
	CNT_FIN_OUT = 13, /* FIN backend -> client */
	CNT_RST = 14, /* RST either way */
	CNT_CLOSED_REMOVED = 15, /* closed flow removed after the grace period */
	CNT_IDLE_REMOVED = 16, /* idle flow removed */
	CNT_PASS_FOREIGN = 17, /* packet of no Miresga flow passed untouched */
	CNT_SYN_TS = 18, /* tagged SYN with the timestamp trailer accepted */
	CNT_SYNACK_NO_TS = 19, /* backend SYN-ACK without timestamps: flow's TS flag cleared */
	CNT_TS_IN_TRANSLATED = 20, /* ingress TSecr translated into the backend's clock */
	CNT_TS_OUT_TRANSLATED = 21, /* egress TSval translated into the client's view */
	CNT_COUNT = 22,
};

/* LRU key: the flow as seen on ingress */
struct flow_key {
	__be32 client_addr; /* client IPv4 address (the SYN's source) */
	__be32 backend_addr; /* backend IPv4 address */
	__be16 client_port;
	__be16 backend_port;
};
_Static_assert(sizeof(struct flow_key) == 12, "flow_key layout");

/* per-flow state, value of the flows LRU hash */
struct flow {
	__u32 seq_base; /* switch ISN: server-side sequence base */
	__u32 delta; /* backend ISN - seq_base (valid with FLOW_F_DELTA) */
	__u32 client_isn; /* sequence number of the SYN */
	__u32 flags; /* FLOW_F_* bits (u32 so BPF can set bits atomically) */
	__u32 ts_base; /* client's TSecr from the SYN trailer (valid with FLOW_F_TS) */
	__u32 ts_delta; /* ts_base - backend SYN-ACK TSval (valid with FLOW_F_TS_DELTA) */
	__u16 mss; /* client MSS from the option */
	__u8 client_ws; /* client window scale */
	__u8 switch_ws; /* window scale the switch announced to the client */
	__u8 backend_ws; /* backend's window scale, 0xff until its SYN-ACK */
	__u8 _pad0[3];
	__u64 created_ns; /* bpf_ktime_get_ns() at the SYN */
	__u64 last_ns; /* last packet either way */
	__u64 closed_ns; /* both FINs or a RST seen at; 0 while open */
	__u64 pkts_in;
	__u64 pkts_out;
	__u64 bytes_in; /* IP bytes client -> backend */
	__u64 bytes_out; /* IP bytes backend -> client */
	__u32 sack_rewrites; /* ingress SACK blocks translated */
	__u32 win_rewrites; /* egress window fields rescaled */
};
_Static_assert(sizeof(struct flow) == 96, "flow layout");

/* single entry of the config array, written by user space */
struct agent_config {
	__u64 keys[4]; /* SipHash keys: slot 0 = keys[0..1], slot 1 = keys[2..3] */
	__u32 key_mask; /* bit n: key slot n is set */
	__u32 flags; /* reserved, 0 */
	__u64 idle_timeout_ns; /* flows idle this long are dropped */
	__u64 grace_ns; /* closed flows keep translating this long */
};
_Static_assert(sizeof(struct agent_config) == 56, "agent_config layout");

#endif /* MIRESGA_AGENT_SHARED_H */
