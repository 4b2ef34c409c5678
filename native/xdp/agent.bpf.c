// SPDX-License-Identifier: Apache-2.0
/* Miresga back-end agent: splices a backend's ordinary kernel TCP connection into the
 * client's connection (ARCHITECTURE.md, splice protocol steps 3-8).
 *
 * Theory of operation. Sequence spaces: the client's bytes keep the client's numbers end
 * to end (the forged SYN uses seq = client ISN). The server side differs: the client was
 * told ISN = seq_base by the switch, the backend's kernel picks its own ISN. Everything
 * that leaves or enters this host is in the switch's space; only the backend's kernel
 * sees its own. With delta = backend ISN - seq_base:
 *   egress (tc)   seq -= delta, window rescaled backend_ws -> switch_ws
 *   ingress (XDP) ack += delta, every SACK block edge += delta
 * Checksums are updated incrementally (egress through bpf_l4_csum_replace, which also
 * does the right thing for CHECKSUM_PARTIAL skbs; ingress by RFC 1624 arithmetic).
 *
 * Timestamps (RFC 7323) get the same treatment as sequence numbers, for the same reason:
 * the switch answered the client's SYN and echoed its timestamps, so the client's
 * connection has them and the backend leg must too (BBR paces noticeably slower without
 * RTT samples from timestamps). The client accepted our clock as ts_base (the forged
 * SYN's trailer carries it); the backend's kernel runs its own. With
 * ts_delta = ts_base - the backend SYN-ACK's TSval:
 *   egress (tc)   TSval += ts_delta (the client's PAWS check sees our clock continue)
 *   ingress (XDP) TSecr -= ts_delta (the backend's RTT samples are in its own clock)
 * The client's TSval and the backend's TSecr are in the client's clock on both legs.
 *
 * Life of a flow (struct flow in agent_shared.h, generated from Python):
 *   tagged SYN in  -> tag checked, flow stored, option rewritten to MSS/WS/SACK_OK
 *                     (+ ts_base and FLOW_F_TS when the SYN has the timestamp trailer)
 *   SYN-ACK out    -> delta and backend_ws learned, seq translated to seq_base;
 *                     ts_delta learned (FLOW_F_TS_DELTA) or FLOW_F_TS cleared
 *   data/ACKs      -> translated as above
 *   FIN each way   -> passed; closed_ns set once both are seen
 *   RST            -> passed; closed_ns set
 *   closed + grace / idle timeout -> the next packet deletes the flow and passes as is
 * Anything without a flow passes untouched. IPv4 only; IP options mean "not ours". */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <linux/tcp.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "miresga_option.h"
#include "agent_shared.h"
#include "agent_maps.h"
#include "agent_csum.h"
#include "agent_siphash.h"

#define TCPOPT_EOL 0
#define TCPOPT_NOP 1
#define TCPOPT_WINDOW 3
#define TCPOPT_SACK 5
#define MAX_OPTIONS 10 /* 40 option bytes hold at most this many non-NOP options */
#define MAX_SACK_BLOCKS 4
#define ETH_IP_TCP_LEN (sizeof(struct ethhdr) + sizeof(struct iphdr) + sizeof(struct tcphdr))
#define MIRESGA_SYN_TCP_LEN (sizeof(struct tcphdr) + MIRESGA_OPT_LEN)
#define REWRITTEN_TCP_LEN (sizeof(struct tcphdr) + MIRESGA_OPT_REWRITE_LEN)
/* form (b) of the forged SYN: the Miresga option, then NOP,NOP,TS(TSval, ts_base); the
 * rewritten SYN keeps this length (the trailer's TS option stays where it is) */
#define MIRESGA_SYN_TS_TCP_LEN (MIRESGA_SYN_TCP_LEN + MIRESGA_OPT_TS_TRAILER_LEN)
#define TS_TRAILER_OFF MIRESGA_OPT_LEN /* option offset of the trailer */
#define TS_TSVAL_OFF 2 /* TSval within the timestamps option */
#define TS_TSECR_OFF 6 /* TSecr within the timestamps option */

struct pkt {
	struct iphdr *ip;
	struct tcphdr *tcp;
	void *end;
};

/* Ethernet + IPv4 (no options, not a fragment) + TCP, or -1. */
static __always_inline int parse_tcp(void *data, void *end, struct pkt *p)
{
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct tcphdr *tcp = (void *)(ip + 1);

	if ((void *)(tcp + 1) > end)
		return -1;
	if (eth->h_proto != bpf_htons(ETH_P_IP) || ip->ihl != 5 || ip->protocol != IPPROTO_TCP)
		return -1;
	if (ip->frag_off & bpf_htons(0x3fff) || tcp->doff < 5)
		return -1;
	p->ip = ip;
	p->tcp = tcp;
	p->end = end;
	return 0;
}

/* Removes the flow if it is closed past its grace period or idle past the timeout. */
static __always_inline int flow_expire(struct flow *f, struct flow_key *key, __u64 now)
{
	struct agent_config *cfg = get_config();
	__u32 why;

	if (!cfg)
		return 0;
	/* signed: another CPU (ingress vs egress) may have stored a last_ns / closed_ns
	 * later than the ``now`` this CPU read; unsigned, that difference wraps and a busy
	 * flow would be removed as idle in the middle of a transfer */
	if (f->closed_ns && (__s64)(now - f->closed_ns) > (__s64)cfg->grace_ns)
		why = CNT_CLOSED_REMOVED;
	else if (cfg->idle_timeout_ns &&
		 (__s64)(now - f->last_ns) > (__s64)cfg->idle_timeout_ns)
		why = CNT_IDLE_REMOVED;
	else
		return 0;
	bpf_map_delete_elem(&flows, key);
	count(why);
	count(CNT_PASS_FOREIGN);
	return 1;
}

/* FIN/RST bookkeeping shared by both directions. */
static __always_inline void flow_lifecycle(struct flow *f, struct tcphdr *tcp, __u32 fin_bit,
					   __u32 fin_counter, __u64 now)
{
	if (tcp->rst) {
		__sync_fetch_and_or(&f->flags, FLOW_F_RST);
		if (!f->closed_ns)
			f->closed_ns = now;
		count(CNT_RST);
		return;
	}
	if (!tcp->fin)
		return;
	__sync_fetch_and_or(&f->flags, fin_bit);
	count(fin_counter);
	if ((f->flags & (FLOW_F_FIN_IN | FLOW_F_FIN_OUT)) == (FLOW_F_FIN_IN | FLOW_F_FIN_OUT) &&
	    !f->closed_ns)
		f->closed_ns = now;
}

/* ------------------------------------------------------------------ ingress (XDP) */

static __always_inline int is_miresga_syn(struct pkt *p)
{
	__u8 *opt = (__u8 *)(p->tcp + 1);

	__u32 len = p->tcp->doff * 4;

	if (!p->tcp->syn || p->tcp->ack ||
	    (len != MIRESGA_SYN_TCP_LEN && len != MIRESGA_SYN_TS_TCP_LEN))
		return 0;
	if ((void *)(opt + 4) > p->end)
		return 0;
	return opt[0] == MIRESGA_OPT_KIND && opt[1] == MIRESGA_OPT_LEN &&
	       opt[2] == (MIRESGA_OPT_EXID >> 8) && opt[3] == (MIRESGA_OPT_EXID & 0xff);
}

/* 0 when the option's tag verifies, else the counter that says why not. */
static __always_inline int check_tag(struct pkt *p, __u8 *opt)
{
	struct agent_config *cfg = get_config();
	__u64 m0, m1, m2, tag, k0, k1;
	int slot = (opt[4] & MIRESGA_OPT_F_KEY_SLOT) ? 1 : 0;

	if (!cfg || !(cfg->key_mask & (1U << slot)))
		return CNT_SYN_NO_KEY;
	k0 = slot ? cfg->keys[2] : cfg->keys[0];
	k1 = slot ? cfg->keys[3] : cfg->keys[1];
	/* message = saddr|daddr, sport|dport|seq, option bytes 4..11 (option.py) */
	__builtin_memcpy(&m0, &p->ip->saddr, 8);
	__builtin_memcpy(&m1, p->tcp, 8);
	__builtin_memcpy(&m2, opt + 4, 8);
	__builtin_memcpy(&tag, opt + MIRESGA_OPT_TAG_OFF, 8);
	return siphash24_24(k0, k1, m0, m1, m2) == tag ? 0 : CNT_SYN_BAD_TAG;
}

/* TCP checksum of the rewritten SYN (a header of ``len`` bytes, no payload), from
 * scratch: two thirds of the header changed, incremental updates would cost more. ``len``
 * is a constant at each call site (the loop unrolls; the caller bounds-checked it). */
static __always_inline void syn_checksum(struct pkt *p, const __u32 len)
{
	__u16 *w = (__u16 *)p->tcp;
	__u32 s = 0;
	__u32 i;

	p->tcp->check = 0;
#pragma unroll
	for (i = 0; i < len / 2; i++)
		s += w[i];
	s += (p->ip->saddr >> 16) + (p->ip->saddr & 0xffff);
	s += (p->ip->daddr >> 16) + (p->ip->daddr & 0xffff);
	s += bpf_htons(IPPROTO_TCP) + bpf_htons(len);
	p->tcp->check = ~csum_fold32(s);
}

static __always_inline __u32 load_be32(__u8 *at)
{
	__u32 v;

	__builtin_memcpy(&v, at, 4);
	return bpf_ntohl(v);
}

/* The forged SYN ends right after its options (no payload), so form (a) can shrink its
 * tail; the trailer of form (b) must be Linux's NOP,NOP,TS layout (option.py). */
static __always_inline int syn_format_ok(struct xdp_md *ctx, struct pkt *p, __u32 tcp_len)
{
	__u8 *trailer = (__u8 *)(p->tcp + 1) + TS_TRAILER_OFF;

	if ((void *)p->tcp + tcp_len > p->end ||
	    ctx->data_end - ctx->data != sizeof(struct ethhdr) + sizeof(struct iphdr) + tcp_len ||
	    p->ip->tot_len != bpf_htons(sizeof(struct iphdr) + tcp_len))
		return 0;
	if (tcp_len == MIRESGA_SYN_TCP_LEN)
		return 1;
	if ((void *)(trailer + MIRESGA_OPT_TS_TRAILER_LEN) > p->end)
		return 0;
	return trailer[0] == TCPOPT_NOP && trailer[1] == TCPOPT_NOP &&
	       trailer[2] == MIRESGA_OPT_TS_KIND && trailer[3] == MIRESGA_OPT_TS_LEN;
}

/* Form (b): the trailer's TS option stays for the backend (TSval is the client's); the
 * Miresga option's last 8 bytes become NOPs and TSecr, which carried ts_base, becomes 0
 * (a SYN has nothing to echo, RFC 7323 3.2). The length does not change. */
static __always_inline void rewrite_ts_syn(struct pkt *p, __u8 *opt)
{
	if ((void *)p->tcp + MIRESGA_SYN_TS_TCP_LEN > p->end)
		return; /* checked by syn_format_ok; repeated for the verifier */
	__builtin_memset(opt + MIRESGA_OPT_REWRITE_LEN, TCPOPT_NOP,
			 MIRESGA_OPT_LEN - MIRESGA_OPT_REWRITE_LEN);
	__builtin_memset(opt + TS_TRAILER_OFF + 2 + TS_TSECR_OFF, 0, 4);
	syn_checksum(p, MIRESGA_SYN_TS_TCP_LEN);
}

/* Form (a): the 12 standard option bytes end the header, the frame loses 8 bytes. */
static __always_inline int shrink_syn(struct xdp_md *ctx, struct pkt *p)
{
	__u16 old_len = p->ip->tot_len;

	p->tcp->doff = REWRITTEN_TCP_LEN / 4;
	p->ip->tot_len = bpf_htons(sizeof(struct iphdr) + REWRITTEN_TCP_LEN);
	csum_update16(&p->ip->check, old_len, p->ip->tot_len);
	syn_checksum(p, REWRITTEN_TCP_LEN);
	if (bpf_xdp_adjust_tail(ctx, -(int)MIRESGA_OPT_SHRINK))
		return XDP_DROP;
	return XDP_PASS;
}

/* rewrite in place: MSS | NOP,WS or NOPs | NOP,NOP,SACK_OK or NOPs (option.py) */
static __always_inline void rewrite_option(__u8 *opt, __u8 flags, __u8 ws, __u16 mss)
{
	opt[0] = 2;
	opt[1] = 4;
	opt[2] = mss >> 8;
	opt[3] = mss & 0xff;
	opt[4] = TCPOPT_NOP;
	opt[5] = flags & MIRESGA_OPT_F_WSCALE_OK ? TCPOPT_WINDOW : TCPOPT_NOP;
	opt[6] = flags & MIRESGA_OPT_F_WSCALE_OK ? 3 : TCPOPT_NOP;
	opt[7] = flags & MIRESGA_OPT_F_WSCALE_OK ? ws >> 4 : TCPOPT_NOP;
	opt[8] = TCPOPT_NOP;
	opt[9] = TCPOPT_NOP;
	opt[10] = flags & MIRESGA_OPT_F_SACK_OK ? 4 : TCPOPT_NOP;
	opt[11] = flags & MIRESGA_OPT_F_SACK_OK ? 2 : TCPOPT_NOP;
}

static __always_inline int ingress_syn(struct xdp_md *ctx, struct pkt *p, struct flow_key *key,
				       __u64 now)
{
	__u8 *opt = (__u8 *)(p->tcp + 1);
	__u32 tcp_len = p->tcp->doff * 4;
	int has_ts = tcp_len == MIRESGA_SYN_TS_TCP_LEN;
	struct flow *old, f = {};
	__u16 mss;
	__u8 flags, ws;
	int bad;

	if ((void *)(opt + MIRESGA_OPT_LEN) > p->end || !syn_format_ok(ctx, p, tcp_len))
		goto bad_format;
	flags = opt[4];
	ws = opt[5];
	mss = ((__u16)opt[6] << 8) | opt[7];
	if ((flags >> 4) != MIRESGA_OPT_VERSION || !mss || (ws >> 4) > MIRESGA_OPT_WSCALE_MAX ||
	    (ws & 0xf) > MIRESGA_OPT_WSCALE_MAX)
		goto bad_format;
	bad = check_tag(p, opt);
	if (bad) {
		count(bad);
		return XDP_DROP;
	}
	f.seq_base = ((__u32)opt[8] << 24) | ((__u32)opt[9] << 16) | ((__u32)opt[10] << 8) | opt[11];
	f.client_isn = bpf_ntohl(p->tcp->seq);
	old = bpf_map_lookup_elem(&flows, key);
	if (old && old->client_isn == f.client_isn && old->seq_base == f.seq_base) {
		old->last_ns = now; /* retransmitted SYN: keep what the SYN-ACK taught us */
		count(CNT_SYN_RETRANS);
	} else {
		f.mss = mss;
		f.flags = (flags & MIRESGA_OPT_F_SACK_OK ? FLOW_F_SACK : 0) |
			  (flags & MIRESGA_OPT_F_WSCALE_OK ? FLOW_F_WSCALE : 0);
		f.client_ws = flags & MIRESGA_OPT_F_WSCALE_OK ? ws >> 4 : 0;
		f.switch_ws = flags & MIRESGA_OPT_F_WSCALE_OK ? ws & 0xf : 0;
		f.backend_ws = AGENT_WSCALE_UNKNOWN;
		f.created_ns = f.last_ns = now;
		f.pkts_in = 1;
		f.bytes_in = sizeof(struct iphdr) + (has_ts ? tcp_len : REWRITTEN_TCP_LEN);
		if (has_ts) { /* the trailer's TSecr: the last timestamp of ours the client took */
			f.ts_base = load_be32(opt + TS_TRAILER_OFF + 2 + TS_TSECR_OFF);
			f.flags |= FLOW_F_TS;
		}
		if (bpf_map_update_elem(&flows, key, &f, BPF_ANY)) {
			count(CNT_FLOW_TABLE_FULL);
			return XDP_DROP;
		}
		count(CNT_SYN_OK);
		if (has_ts)
			count(CNT_SYN_TS);
	}
	rewrite_option(opt, flags, ws, mss);
	if (!has_ts)
		return shrink_syn(ctx, p);
	rewrite_ts_syn(p, opt);
	return XDP_PASS;

bad_format:
	count(CNT_SYN_BAD_FORMAT);
	return XDP_DROP;
}

/* Offset (from the end of the fixed TCP header) of the first option of ``kind``, or -1.
 * A plain bounded scan; callers bounds-check what they read at the offset. */
static __always_inline int find_option(struct pkt *p, __u8 kind)
{
	__u8 *opts = (__u8 *)(p->tcp + 1);
	__u32 optlen = (p->tcp->doff - 5) * 4, off = 0;
	int i;

	for (i = 0; i < MAX_OPTIONS; i++) {
		__u8 *o = opts + (off & 63);

		if (off >= optlen || (void *)(o + 2) > p->end || o[0] == TCPOPT_EOL)
			return -1;
		if (o[0] == kind)
			return off & 63;
		if (o[0] == TCPOPT_NOP) {
			off++;
			continue;
		}
		if (o[1] < 2)
			return -1;
		off += o[1];
	}
	return -1;
}

/* The segment's timestamps option (its kind byte; all 10 bytes inside the TCP header and
 * the packet) or NULL. Linux puts NOP,NOP,TS first in every non-SYN segment, so that is
 * tried before the bounded scan; malformed options give NULL (packet left untouched). */
static __always_inline __u8 *ts_option(struct pkt *p)
{
	__u8 *opts = (__u8 *)(p->tcp + 1), *o;
	__u32 optlen = (p->tcp->doff - 5) * 4;
	int at;

	if (optlen < 2 + MIRESGA_OPT_TS_LEN || (void *)(opts + 2 + MIRESGA_OPT_TS_LEN) > p->end)
		goto scan;
	if (opts[0] == TCPOPT_NOP && opts[1] == TCPOPT_NOP && opts[2] == MIRESGA_OPT_TS_KIND &&
	    opts[3] == MIRESGA_OPT_TS_LEN)
		return opts + 2;
scan:
	at = find_option(p, MIRESGA_OPT_TS_KIND);
	if (at < 0 || (__u32)at + MIRESGA_OPT_TS_LEN > optlen)
		return NULL;
	o = opts + (at & 63);
	if ((void *)(o + MIRESGA_OPT_TS_LEN) > p->end || o[1] != MIRESGA_OPT_TS_LEN)
		return NULL;
	return o;
}

/* TSecr -= ts_delta: the client echoes our clock, the backend wants its own back. A zero
 * TSecr echoes nothing (RFC 7323 3.2) and stays zero. Returns 1 when it changed it. */
static __always_inline int ingress_ts(struct pkt *p, __u32 ts_delta)
{
	__u8 *o = ts_option(p);
	__u32 old, new;

	if (!o)
		return 0;
	__builtin_memcpy(&old, o + TS_TSECR_OFF, 4);
	if (!old)
		return 0;
	new = bpf_htonl(bpf_ntohl(old) - ts_delta);
	__builtin_memcpy(o + TS_TSECR_OFF, &new, 4);
	csum_update32(&p->tcp->check, old, new);
	return 1;
}

/* Adds delta to both edges of every SACK block; returns how many blocks it changed. */
static __always_inline __u32 ingress_sack(struct pkt *p, __u32 delta)
{
	int at = find_option(p, TCPOPT_SACK);
	__u8 *o;
	__u32 b, nblocks;

	if (at < 0)
		return 0;
	o = (__u8 *)(p->tcp + 1) + (at & 63);
	if ((void *)(o + 2) > p->end)
		return 0;
	nblocks = o[1] < 10 ? 0 : ((__u32)o[1] - 2) >> 3;
	if (nblocks > MAX_SACK_BLOCKS)
		nblocks = MAX_SACK_BLOCKS;
	for (b = 0; b < nblocks; b++) {
		__u8 *edge = o + 2 + (b & 3) * 8;
		__u32 old0, old1, new0, new1;

		if ((void *)(edge + 8) > p->end)
			break;
		__builtin_memcpy(&old0, edge, 4);
		__builtin_memcpy(&old1, edge + 4, 4);
		new0 = bpf_htonl(bpf_ntohl(old0) + delta);
		new1 = bpf_htonl(bpf_ntohl(old1) + delta);
		__builtin_memcpy(edge, &new0, 4);
		__builtin_memcpy(edge + 4, &new1, 4);
		csum_update32(&p->tcp->check, old0, new0);
		csum_update32(&p->tcp->check, old1, new1);
	}
	return b;
}

static __always_inline int ingress_flow(struct pkt *p, struct flow *f, struct flow_key *key,
					__u64 now)
{
	struct tcphdr *tcp = p->tcp;
	__u32 blocks = 0;

	if (flow_expire(f, key, now))
		return XDP_PASS;
	if (tcp->syn) { /* a plain SYN reusing the tuple is not ours */
		count(CNT_PASS_FOREIGN);
		return XDP_PASS;
	}
	if (!(f->flags & FLOW_F_DELTA)) {
		if (tcp->rst) { /* the client gives up before the backend answered */
			flow_lifecycle(f, tcp, FLOW_F_FIN_IN, CNT_FIN_IN, now);
			return XDP_PASS;
		}
		count(CNT_IN_NO_DELTA);
		return XDP_DROP;
	}
	if (tcp->ack) {
		__u32 old = tcp->ack_seq, new = bpf_htonl(bpf_ntohl(old) + f->delta);

		tcp->ack_seq = new;
		csum_update32(&tcp->check, old, new);
	}
	if ((f->flags & FLOW_F_SACK) && tcp->doff > 5)
		blocks = ingress_sack(p, f->delta);
	if (blocks) {
		__sync_fetch_and_add(&f->sack_rewrites, blocks);
		count(CNT_SACK_BLOCKS);
	}
	if ((f->flags & FLOW_F_TS_DELTA) && tcp->doff > 5 && ingress_ts(p, f->ts_delta))
		count(CNT_TS_IN_TRANSLATED);
	flow_lifecycle(f, tcp, FLOW_F_FIN_IN, CNT_FIN_IN, now);
	f->last_ns = now;
	__sync_fetch_and_add(&f->pkts_in, 1);
	__sync_fetch_and_add(&f->bytes_in, bpf_ntohs(p->ip->tot_len));
	count(CNT_IN_TRANSLATED);
	return XDP_PASS;
}

SEC("xdp")
int agent_xdp_ingress(struct xdp_md *ctx)
{
	struct pkt p;
	struct flow_key key;
	struct flow *f;
	__u64 now;

	if (parse_tcp((void *)(long)ctx->data, (void *)(long)ctx->data_end, &p)) {
		count(CNT_PASS_FOREIGN);
		return XDP_PASS;
	}
	key.client_addr = p.ip->saddr;
	key.backend_addr = p.ip->daddr;
	key.client_port = p.tcp->source;
	key.backend_port = p.tcp->dest;
	now = bpf_ktime_get_ns();
	if (is_miresga_syn(&p))
		return ingress_syn(ctx, &p, &key, now);
	f = bpf_map_lookup_elem(&flows, &key);
	if (!f) {
		count(CNT_PASS_FOREIGN);
		return XDP_PASS;
	}
	return ingress_flow(&p, f, &key, now);
}

/* ------------------------------------------------------------------ egress (tc) */

/* The window scale option of a SYN-ACK, 0 when it has none. */
static __always_inline __u8 synack_wscale(struct pkt *p)
{
	int at = find_option(p, TCPOPT_WINDOW);
	__u8 *o;

	if (at < 0)
		return 0;
	o = (__u8 *)(p->tcp + 1) + (at & 63);
	if ((void *)(o + 3) > p->end || o[1] != 3)
		return 0;
	return o[2] > MIRESGA_OPT_WSCALE_MAX ? MIRESGA_OPT_WSCALE_MAX : o[2];
}

/* Window value of the backend's scale re-expressed in the switch's scale. */
static __always_inline __u16 rescale_window(__u16 win, __u8 from, __u8 to)
{
	__u32 w = ((__u32)win << (from & 0xf)) >> (to & 0xf);

	if (w > 0xffff)
		w = 0xffff;
	if (!w && win) /* never turn an open window into a zero window */
		w = 1;
	return (__u16)w;
}

/* The Ethernet/IPv4/TCP headers of the skb with the whole TCP header (options included:
 * window scale, timestamps) in the linear area, or -1. Pulling invalidates packet
 * pointers, so ``p`` is parsed again afterwards. */
static __always_inline int egress_parse(struct __sk_buff *skb, struct pkt *p)
{
	__u32 tcp_len;

	if ((void *)(long)skb->data + ETH_IP_TCP_LEN > (void *)(long)skb->data_end)
		bpf_skb_pull_data(skb, ETH_IP_TCP_LEN);
	if (parse_tcp((void *)(long)skb->data, (void *)(long)skb->data_end, p))
		return -1;
	tcp_len = p->tcp->doff * 4;
	if ((void *)p->tcp + tcp_len <= p->end)
		return 0;
	bpf_skb_pull_data(skb, sizeof(struct ethhdr) + sizeof(struct iphdr) + tcp_len);
	return parse_tcp((void *)(long)skb->data, (void *)(long)skb->data_end, p);
}

/* The SYN-ACK of a flow whose client has timestamps: learn ts_delta from its TSval, or,
 * without a timestamps option (the backend has them off), clear FLOW_F_TS so nothing is
 * translated. Learned once: a retransmitted SYN-ACK carries a later TSval, and keeping the
 * first delta keeps the backend's clock monotonic in the client's view. */
static __always_inline void synack_learn_ts(struct pkt *p, struct flow *f)
{
	__u8 *o;

	if (!(f->flags & FLOW_F_TS) || (f->flags & FLOW_F_TS_DELTA))
		return;
	o = ts_option(p);
	if (!o) {
		__sync_fetch_and_and(&f->flags, ~(__u32)FLOW_F_TS);
		count(CNT_SYNACK_NO_TS);
		return;
	}
	f->ts_delta = f->ts_base - load_be32(o + TS_TSVAL_OFF);
	__sync_fetch_and_or(&f->flags, FLOW_F_TS_DELTA);
}

static __always_inline void synack_learn(struct pkt *p, struct flow *f)
{
	f->delta = bpf_ntohl(p->tcp->seq) - f->seq_base;
	f->backend_ws = (f->flags & FLOW_F_WSCALE) ? synack_wscale(p) : 0;
	__sync_fetch_and_or(&f->flags, FLOW_F_DELTA);
	count(CNT_SYNACK_LEARNED);
	synack_learn_ts(p, f);
}

/* The window rescaled into the switch's scale, written in place; 0 when unchanged. */
static __always_inline __u16 egress_window(struct pkt *p, struct flow *f)
{
	__u16 old_win = p->tcp->window, new_win;

	/* RFC 7323: the window of a SYN-ACK is never scaled */
	if (p->tcp->syn || !(f->flags & FLOW_F_WSCALE) || f->backend_ws == f->switch_ws)
		return 0;
	new_win = bpf_htons(rescale_window(bpf_ntohs(old_win), f->backend_ws, f->switch_ws));
	if (new_win == old_win)
		return 0;
	p->tcp->window = new_win;
	__sync_fetch_and_add(&f->win_rewrites, 1);
	count(CNT_WIN_RESCALED);
	return new_win;
}

/* TSval += ts_delta in place (the backend's clock into the client's view); the old and
 * new values go to *old_ts / *new_ts for the checksum. Returns 1 when it changed it. */
static __always_inline int egress_ts(struct pkt *p, struct flow *f, __u32 *old_ts,
				     __u32 *new_ts)
{
	__u8 *o;

	if (!(f->flags & FLOW_F_TS_DELTA) || p->tcp->doff <= 5)
		return 0;
	o = ts_option(p);
	if (!o)
		return 0;
	__builtin_memcpy(old_ts, o + TS_TSVAL_OFF, 4);
	*new_ts = bpf_htonl(bpf_ntohl(*old_ts) + f->ts_delta);
	__builtin_memcpy(o + TS_TSVAL_OFF, new_ts, 4);
	count(CNT_TS_OUT_TRANSLATED);
	return 1;
}

/* seq, window and TSval of an egress segment of a flow with a delta. The fields are
 * written directly first; the checksum helpers come last because they invalidate packet
 * pointers. */
static __always_inline void egress_translate(struct __sk_buff *skb, struct pkt *p,
					     struct flow *f)
{
	__u32 csum_off = sizeof(struct ethhdr) + sizeof(struct iphdr) +
			 __builtin_offsetof(struct tcphdr, check);
	__u32 old_seq = p->tcp->seq, new_seq = bpf_htonl(bpf_ntohl(old_seq) - f->delta);
	__u16 old_win = p->tcp->window, new_win;
	__u32 old_ts = 0, new_ts = 0;
	int ts;

	p->tcp->seq = new_seq;
	new_win = egress_window(p, f);
	ts = egress_ts(p, f, &old_ts, &new_ts);
	count(CNT_OUT_TRANSLATED);
	bpf_l4_csum_replace(skb, csum_off, old_seq, new_seq, 4);
	if (new_win)
		bpf_l4_csum_replace(skb, csum_off, old_win, new_win, 2);
	if (ts)
		bpf_l4_csum_replace(skb, csum_off, old_ts, new_ts, 4);
}

SEC("tc")
int agent_tc_egress(struct __sk_buff *skb)
{
	struct flow_key key;
	struct flow *f;
	struct pkt p;
	__u64 now;

	if (skb->protocol != bpf_htons(ETH_P_IP) || egress_parse(skb, &p))
		goto foreign;
	key.client_addr = p.ip->daddr;
	key.backend_addr = p.ip->saddr;
	key.client_port = p.tcp->dest;
	key.backend_port = p.tcp->source;
	f = bpf_map_lookup_elem(&flows, &key);
	if (!f)
		goto foreign;
	now = bpf_ktime_get_ns();
	if (flow_expire(f, &key, now))
		return TC_ACT_OK;
	if (p.tcp->syn && p.tcp->ack)
		synack_learn(&p, f);
	flow_lifecycle(f, p.tcp, FLOW_F_FIN_OUT, CNT_FIN_OUT, now);
	f->last_ns = now;
	__sync_fetch_and_add(&f->pkts_out, 1);
	__sync_fetch_and_add(&f->bytes_out, bpf_ntohs(p.ip->tot_len));
	if (!(f->flags & FLOW_F_DELTA)) /* e.g. the backend refuses the SYN with a RST */
		return TC_ACT_OK;
	egress_translate(skb, &p, f);
	return TC_ACT_OK;

foreign:
	count(CNT_PASS_FOREIGN);
	return TC_ACT_OK;
}

/* GPL-compatible so the kernel offers every helper; the project itself is Apache-2.0 */
char LICENSE[] SEC("license") = "Dual BSD/GPL";
