// SPDX-License-Identifier: GPL-2.0
/* The Miresga switch pipeline as an XDP program ("software switch").
 *
 * Theory of operation (docs/switch.md has the full walk):
 *   ARP request for a VIP address      -> reply in place, XDP_TX           (vip_addr)
 *   TCP to a VIP service (vip table):
 *     SYN                              -> cookie SYN-ACK, XDP_TX            (cookie_*)
 *     offloaded, pure ACK / pin mode   -> backend, dst rewritten            (offload, backend)
 *     otherwise                        -> front-end by hash(client), L2 only (lb_*, frontend)
 *   TCP from a backend (backend_addr):
 *     current leg of an offload        -> client, src rewritten to the VIP  (offload_rev)
 *     otherwise                        -> front-end by hash(client)
 *   any other IPv4                     -> route table (LPM): MACs + port, redirect via devmap
 * Every table is declared in miresga_core/dataplane/schema.py; the structs and maps come
 * from generated/switch_tables.h. Checksums are updated incrementally except for the
 * SYN-ACK, which is built from scratch.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define MIRESGA_BPF_MAPS
#include "generated/switch_tables.h"
#include "switch_cookie.h"
#include "switch_csum.h"
#include "switch_hash.h"
#include "switch_parse.h"

char LICENSE[] SEC("license") = "GPL";

#define SYNACK_OPT_LEN 12 /* MSS(4) + NOP,WS(4) + NOP,NOP,SACKOK(4); absent ones are NOPs */
#define SYNACK_TS_OPT_LEN 12 /* NOP,NOP,TS(10): only when the SYN offered timestamps */
#define SYNACK_HDR_LEN (sizeof(struct ethhdr) + sizeof(struct iphdr) + sizeof(struct tcphdr))
/* the two SYN-ACK frames: without and with timestamps (66 and 78 bytes) */
#define SYNACK_LEN (SYNACK_HDR_LEN + SYNACK_OPT_LEN)
#define SYNACK_TS_LEN (SYNACK_LEN + SYNACK_TS_OPT_LEN)
#define IP_DF 0x4000

static __always_inline void count(__u32 idx, __u64 bytes)
{
	struct counters_value *c = bpf_map_lookup_elem(&counters, &idx);

	if (c) {
		c->packets++;
		c->bytes += bytes;
	}
}

/* --------------------------------------------------------------------- forwarding
 * The helpers below are global (non-static, noinline) BPF functions: the verifier checks
 * each once on its own instead of once per call path, which keeps the program far below
 * the verifier's instruction budget. They take the context and scalars only. */

static __always_inline __u32 pkt_len(struct xdp_md *ctx)
{
	return ctx->data_end - ctx->data;
}

/* Route by destination address: set MACs, redirect out of the port (tx_port devmap). */
__noinline int mrs_route(struct xdp_md *ctx, __u32 dst)
{
	void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
	struct route_key key = { .prefixlen = 32, .dst = dst };
	struct ethhdr *eth = data;
	struct route_value *r;
	int ret;

	if ((void *)(eth + 1) > data_end)
		return XDP_DROP;
	r = bpf_map_lookup_elem(&route, &key);
	if (!r) {
		count(MIRESGA_CNT_ROUTE_MISS, pkt_len(ctx));
		return XDP_PASS;
	}
	__builtin_memcpy(eth->h_dest, r->dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, r->smac, ETH_ALEN);
	ret = bpf_redirect_map(&tx_port, r->port, 0);
	if (ret != XDP_REDIRECT) {
		count(MIRESGA_CNT_REDIRECT_FAIL, pkt_len(ctx));
		return XDP_DROP;
	}
	return ret;
}

/* CRC of the client (address, port), both in network order (switch_hash.h). */
__noinline __u32 mrs_flow_crc(__u32 addr, __u32 port, __u32 poly)
{
	__u8 fb[6];

	flow_bytes(fb, addr, port);
	return crc32_6(fb, poly);
}

static __always_inline int bloom_probe(__u32 bit, int set)
{
	__u32 idx = (bit & (MIRESGA_BLOOM_BITS - 1)) / 32;
	struct lb_bloom_value *w = bpf_map_lookup_elem(&lb_bloom, &idx);
	__u32 mask = 1u << (bit & 31);

	if (!w)
		return 0;
	if (set)
		__sync_fetch_and_or(&w->bits, mask);
	return (w->bits & mask) != 0;
}

/* During a membership change, remember a flow that starts now (its SYN). */
static __always_inline void bloom_add(__u32 len, __be32 caddr, __be16 cport)
{
	__u32 zero = 0;
	struct lb_control_value *ctl = bpf_map_lookup_elem(&lb_control, &zero);
	__u32 h;

	if (!ctl || !ctl->changing)
		return;
	h = mrs_flow_crc(caddr, cport, CRC32C_POLY);
	bloom_probe(h, 1);
	bloom_probe(h >> 16, 1);
	count(MIRESGA_CNT_BLOOM_INSERT, len);
}

/* lb_index: flows are placed by the active table, except flows that started during a
 * change (in the Bloom filter), which already follow the new one. The packet is sent to
 * the front-end at L2: its IP header still says VIP. */
__noinline int mrs_to_frontend(struct xdp_md *ctx, __u32 caddr, __u32 cport)
{
	__u32 zero = 0, len = pkt_len(ctx);
	struct lb_control_value *ctl = bpf_map_lookup_elem(&lb_control, &zero);
	__u32 table = 0, bucket, fe;
	struct lb_index_0_value *slot;
	struct frontend_value *f;

	if (ctl) {
		table = ctl->active & 1;
		if (ctl->changing) {
			__u32 h = mrs_flow_crc(caddr, cport, CRC32C_POLY);

			if (bloom_probe(h, 0) && bloom_probe(h >> 16, 0)) {
				table ^= 1;
				count(MIRESGA_CNT_BLOOM_HIT, len);
			}
		}
	}
	bucket = mrs_flow_crc(caddr, cport, CRC32_POLY) & (MIRESGA_LB_BUCKETS - 1);
	slot = table ? bpf_map_lookup_elem(&lb_index_1, &bucket)
		     : bpf_map_lookup_elem(&lb_index_0, &bucket);
	if (!slot)
		goto none;
	fe = slot->frontend;
	f = bpf_map_lookup_elem(&frontend, &fe);
	if (!f || !f->addr)
		goto none;
	count(MIRESGA_CNT_TO_FRONTEND, len);
	return mrs_route(ctx, f->addr);
none:
	count(MIRESGA_CNT_NO_FRONTEND, len);
	return XDP_DROP;
}

/* Offloaded client packet to its backend: destination address and port rewritten. */
static __always_inline int to_backend(struct xdp_md *ctx, struct pkt *p, __u32 index)
{
	struct backend_value *b = bpf_map_lookup_elem(&backend, &index);
	__be32 old_addr = p->ip->daddr;
	__be16 old_port = p->tcp->dest;

	if (!b || !b->addr) {
		count(MIRESGA_CNT_NO_BACKEND, p->len);
		return XDP_DROP;
	}
	p->ip->daddr = b->addr;
	p->tcp->dest = b->port;
	csum_replace4(&p->ip->check, old_addr, b->addr);
	csum_replace4(&p->tcp->check, old_addr, b->addr); /* pseudo-header */
	csum_replace2(&p->tcp->check, old_port, b->port);
	count(MIRESGA_CNT_TO_BACKEND, p->len);
	return mrs_route(ctx, b->addr);
}

/* --------------------------------------------------------------------- SYN-ACK */

/* The options of a SYN into *s, or -1 when they are malformed. A pointer argument: the
 * TSval takes 32 bits of its own, more than a packed return value leaves room for. */
__noinline int mrs_syn_options(struct xdp_md *ctx, __u32 off, __u32 len, struct syn_opts *s)
{
	struct pkt p = {
		.data = (void *)(long)ctx->data, .end = (void *)(long)ctx->data_end,
	};

	if (!s) /* a global function's pointer argument may be NULL for the verifier */
		return -1;
	s->mss = 0;
	s->ws = COOKIE_WSCALE_NONE;
	s->sack = 0;
	s->ts = 0;
	s->tsval = 0;
	if (off > 128 || len > TCP_MAX_OPT_LEN)
		return -1;
	return parse_syn_options(&p, (__u8 *)p.data + off, len, s);
}

/* HalfSipHash-2-4 of the cookie message (switch_cookie.h); key = k1 << 32 | k0. */
__noinline __u32 mrs_cookie_hash(__u64 key, __u32 client, __u32 vip, __u32 ports, __u32 w3)
{
	return halfsiphash24_4w((__u32)key, key >> 32, client, vip, ports, w3);
}

static __always_inline void put_be32(__u8 *o, __u32 v)
{
	o[0] = v >> 24;
	o[1] = v >> 16;
	o[2] = v >> 8;
	o[3] = v;
}

/* The 12 option bytes every SYN-ACK carries.
 * RFC 7323 1.3 / RFC 2018 2: WS and SACK-permitted only if the SYN offered them; the
 * slots of absent ones are NOPs so that the layout (and the checksum code) stays fixed. */
static __always_inline void synack_options(__u8 *opt, const struct vip_value *svc,
					   const struct syn_opts *syn)
{
	opt[0] = 2;
	opt[1] = 4;
	opt[2] = svc->mss >> 8;
	opt[3] = svc->mss & 0xff;
	opt[4] = 1;
	opt[5] = syn->ws == COOKIE_WSCALE_NONE ? 1 : 3;
	opt[6] = syn->ws == COOKIE_WSCALE_NONE ? 1 : 3;
	opt[7] = syn->ws == COOKIE_WSCALE_NONE ? 1 : (svc->wscale > 14 ? 14 : svc->wscale);
	opt[8] = 1;
	opt[9] = 1;
	opt[10] = syn->sack ? 4 : 1;
	opt[11] = syn->sack ? 2 : 1;
}

/* NOP, NOP, TS: only when the SYN offered timestamps (RFC 7323 3.2: a SYN-ACK may carry
 * TS only then). TSecr echoes the SYN's TSval as RFC 7323 4.3 asks. Our own first TSval is
 * the client's TSval too: it needs no clock and no state, and RFC 7323 5.4 only asks later
 * values to be monotonic from it (the agent continues from it on the backend legs). The
 * cookie does not record TS: the front-end learns it from the client's later segments. */
static __always_inline void synack_ts_option(__u8 *opt, __u32 tsval)
{
	opt[0] = 1;
	opt[1] = 1;
	opt[2] = 8;
	opt[3] = 10;
	put_be32(opt + 4, tsval);
	put_be32(opt + 8, tsval);
}

static __always_inline int syn_ack(struct xdp_md *ctx, struct pkt *p,
				   const struct vip_value *svc)
{
	struct syn_opts syn;
	__u8 client_mac[ETH_ALEN], vip_mac[ETH_ALEN];
	__be32 caddr = p->ip->saddr, vaddr = p->ip->daddr;
	__be16 cport = p->tcp->source, vport = p->tcp->dest;
	__u32 client_seq = bpf_ntohl(p->tcp->seq);
	__u32 key0 = 0, zero = 0, isn, slot = 0, sum, opt_len, len;
	struct cookie_secret_value *sec;
	struct cookie_clock_value *clk;
	struct ethhdr *eth;
	struct iphdr *ip;
	struct tcphdr *tcp;
	__u8 *opt;
	void *data, *data_end;

	if (mrs_syn_options(ctx, (void *)(p->tcp + 1) - p->data,
			    p->tcp->doff * 4 - sizeof(struct tcphdr), &syn) < 0) {
		count(MIRESGA_CNT_SYN_BAD, p->len);
		return XDP_DROP;
	}
	opt_len = syn.ts ? SYNACK_OPT_LEN + SYNACK_TS_OPT_LEN : SYNACK_OPT_LEN;
	len = syn.ts ? SYNACK_TS_LEN : SYNACK_LEN;
	sec = bpf_map_lookup_elem(&cookie_secret, &key0);
	clk = bpf_map_lookup_elem(&cookie_clock, &zero);
	if (!sec || !clk)
		return XDP_ABORTED;
	if (!sec->k0 && !sec->k1) { /* a known key would make every cookie forgeable */
		count(MIRESGA_CNT_SYN_NOSECRET, p->len);
		return XDP_DROP;
	}
	{
		__u64 now = bpf_ktime_get_ns();

		if (now > clk->base_ns)
			slot = clk->base_slot + (__u32)((now - clk->base_ns) >> COOKIE_SLOT_SHIFT);
		else
			slot = clk->base_slot;
	}
	{
		__u32 cls = miresga_mss_class(syn.mss);
		__u32 w3 = (slot & COOKIE_SLOT_MSG_MASK) << 8 | cls << 5 | syn.ws << 1 | syn.sack;
		__u32 h = mrs_cookie_hash((__u64)sec->k1 << 32 | sec->k0, bpf_ntohl(caddr),
					  bpf_ntohl(vaddr),
					  (__u32)bpf_ntohs(cport) << 16 | bpf_ntohs(vport), w3);

		isn = (slot & 3) << COOKIE_SLOT_POS | cls << COOKIE_MSS_POS |
		      syn.ws << COOKIE_WSCALE_POS | syn.sack << COOKIE_SACK_POS |
		      (h & COOKIE_HASH_MASK);
	}
	__builtin_memcpy(client_mac, p->eth->h_source, ETH_ALEN);
	__builtin_memcpy(vip_mac, p->eth->h_dest, ETH_ALEN);
	bloom_add(p->len, caddr, cport);

	/* resize to exactly the SYN-ACK; every pointer is stale afterwards */
	if (bpf_xdp_adjust_tail(ctx, (int)len - (int)p->len)) {
		count(MIRESGA_CNT_SYN_BAD, p->len);
		return XDP_DROP;
	}
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (data + SYNACK_LEN > data_end)
		return XDP_ABORTED;
	eth = data;
	ip = data + sizeof(*eth);
	tcp = (void *)(ip + 1);
	opt = (__u8 *)(tcp + 1);

	__builtin_memcpy(eth->h_dest, client_mac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, vip_mac, ETH_ALEN);
	eth->h_proto = bpf_htons(ETH_P_IP);

	ip->version = 4;
	ip->ihl = 5;
	ip->tos = 0;
	ip->tot_len = bpf_htons(sizeof(*ip) + sizeof(*tcp) + opt_len);
	ip->id = 0;
	ip->frag_off = bpf_htons(IP_DF);
	ip->ttl = 64;
	ip->protocol = IPPROTO_TCP;
	ip->check = 0;
	ip->saddr = vaddr;
	ip->daddr = caddr;
	ip->check = csum_fold32(csum_words((__u16 *)ip, sizeof(*ip) / 2, 0));

	__builtin_memset(tcp, 0, sizeof(*tcp));
	tcp->source = vport;
	tcp->dest = cport;
	tcp->seq = bpf_htonl(isn);
	tcp->ack_seq = bpf_htonl(client_seq + 1);
	tcp->doff = (sizeof(*tcp) + opt_len) / 4;
	tcp->syn = 1;
	tcp->ack = 1;
	tcp->window = bpf_htons(svc->window);

	synack_options(opt, svc, &syn);

	/* pseudo-header: saddr, daddr, zero+proto, TCP length */
	sum = csum_words((__u16 *)&ip->saddr, 4, 0);
	sum += bpf_htons(IPPROTO_TCP);
	sum += bpf_htons(sizeof(*tcp) + opt_len);
	sum = csum_words((__u16 *)tcp, (sizeof(*tcp) + SYNACK_OPT_LEN) / 2, sum);
	if (syn.ts) { /* the TS trailer, summed on its own: both lengths stay constants */
		__u8 *ts_opt = opt + SYNACK_OPT_LEN;

		if ((void *)(ts_opt + SYNACK_TS_OPT_LEN) > data_end)
			return XDP_ABORTED;
		synack_ts_option(ts_opt, syn.tsval);
		sum = csum_words((__u16 *)ts_opt, SYNACK_TS_OPT_LEN / 2, sum);
		count(MIRESGA_CNT_SYNACK_TS, len);
	}
	tcp->check = csum_fold32(sum);

	count(MIRESGA_CNT_SYNACK, len);
	return XDP_TX;
}

/* --------------------------------------------------------------------- stages */

static __always_inline int handle_arp(struct pkt *p)
{
	struct arp_eth *arp = p->l3;
	struct vip_addr_key key = {};
	struct vip_addr_value *v;

	if ((void *)(arp + 1) > p->end) {
		count(MIRESGA_CNT_MALFORMED, p->len);
		return XDP_DROP;
	}
	__builtin_memcpy(&key.addr, arp->tpa, 4);
	if (arp->oper != bpf_htons(ARPOP_REQUEST_) || arp->htype != bpf_htons(1) ||
	    arp->ptype != bpf_htons(ETH_P_IP) || arp->hlen != 6 || arp->plen != 4 ||
	    !(v = bpf_map_lookup_elem(&vip_addr, &key))) {
		count(MIRESGA_CNT_ARP_OTHER, p->len);
		return XDP_PASS;
	}
	arp->oper = bpf_htons(ARPOP_REPLY_);
	__builtin_memcpy(arp->tha, arp->sha, ETH_ALEN);
	__builtin_memcpy(arp->tpa, arp->spa, 4);
	__builtin_memcpy(arp->sha, v->mac, ETH_ALEN);
	__builtin_memcpy(arp->spa, &key.addr, 4);
	__builtin_memcpy(p->eth->h_dest, p->eth->h_source, ETH_ALEN);
	__builtin_memcpy(p->eth->h_source, v->mac, ETH_ALEN);
	count(MIRESGA_CNT_ARP_REPLY, p->len);
	return XDP_TX;
}

static __always_inline int handle_vip(struct xdp_md *ctx, struct pkt *p,
				      const struct vip_value *svc)
{
	struct tcphdr *tcp = p->tcp;
	struct offload_key key = {
		.client_addr = p->ip->saddr, .vip_addr = p->ip->daddr,
		.client_port = tcp->source, .vip_port = tcp->dest,
	};
	struct offload_value *o;

	count(MIRESGA_CNT_VIP_HIT, p->len);
	if (tcp->syn) {
		if (tcp->ack || tcp->rst || tcp->fin) {
			count(MIRESGA_CNT_SYN_BAD, p->len);
			return XDP_DROP;
		}
		return syn_ack(ctx, p, svc);
	}
	o = bpf_map_lookup_elem(&offload, &key);
	if (!o) {
		count(MIRESGA_CNT_OFFLOAD_MISS, p->len);
		return mrs_to_frontend(ctx, key.client_addr, key.client_port);
	}
	count(MIRESGA_CNT_OFFLOAD_HIT, p->len);
	/* pure ACK: ACK alone, no payload. FIN and RST go where payload goes (splice: the
	 * front-end, which owns the request stream and forwards them) */
	if (o->mode == MIRESGA_OFFLOAD_PIN ||
	    (tcp->ack && !tcp->fin && !tcp->rst && p->payload_len == 0))
		return to_backend(ctx, p, o->backend);
	return mrs_to_frontend(ctx, key.client_addr, key.client_port);
}

static __always_inline int handle_backend(struct xdp_md *ctx, struct pkt *p)
{
	struct offload_rev_key key = {
		.client_addr = p->ip->daddr, .backend_addr = p->ip->saddr,
		.client_port = p->tcp->dest, .backend_port = p->tcp->source,
	};
	struct offload_rev_value *r = bpf_map_lookup_elem(&offload_rev, &key);

	/* A SYN-ACK answers a forged SYN: it is the front-end's even when an offload of the
	 * same client port exists (one whose front-end died or that a new connection on the
	 * reused port replaces); sent to the client it would stall the new connection. */
	if (!r || p->tcp->syn) {
		/* not offloaded yet (the SYN-ACK of a forged SYN) or an old leg */
		count(MIRESGA_CNT_BACKEND_OLD, p->len);
		return mrs_to_frontend(ctx, key.client_addr, key.client_port);
	}
	/* FIN and RST go through the front-end (which forwards them): it owns the
	 * connection's lifecycle and removes the offload once both sides are closed */
	if (p->tcp->fin || p->tcp->rst)
		return mrs_to_frontend(ctx, key.client_addr, key.client_port);
	p->ip->saddr = r->vip_addr;
	p->tcp->source = r->vip_port;
	csum_replace4(&p->ip->check, key.backend_addr, r->vip_addr);
	csum_replace4(&p->tcp->check, key.backend_addr, r->vip_addr);
	csum_replace2(&p->tcp->check, key.backend_port, r->vip_port);
	count(MIRESGA_CNT_TO_CLIENT, p->len);
	return mrs_route(ctx, key.client_addr);
}

static __always_inline int process(struct xdp_md *ctx, struct pkt *p)
{
	struct vip_key vkey = {};
	struct backend_addr_key bkey = {};
	struct vip_value *svc;
	int ret;

	switch (parse_packet(p)) {
	case PARSED_ARP:
		return handle_arp(p);
	case PARSED_OTHER:
		return XDP_PASS;
	case PARSED_IPV4:
		goto routed;
	case PARSED_TCP:
		break;
	default:
		count(MIRESGA_CNT_MALFORMED, p->len);
		return XDP_DROP;
	}
	vkey.vip_addr = p->ip->daddr;
	vkey.vip_port = p->tcp->dest;
	svc = bpf_map_lookup_elem(&vip, &vkey);
	if (svc)
		return handle_vip(ctx, p, svc);
	bkey.addr = p->ip->saddr;
	bkey.port = p->tcp->source;
	if (bpf_map_lookup_elem(&backend_addr, &bkey))
		return handle_backend(ctx, p);
routed:
	count(MIRESGA_CNT_VIP_MISS, p->len);
	ret = mrs_route(ctx, p->ip->daddr);
	if (ret == XDP_REDIRECT)
		count(MIRESGA_CNT_ROUTED, p->len);
	return ret;
}

SEC("xdp")
int miresga_switch(struct xdp_md *ctx)
{
	struct pkt p = {};
	__u32 len = ctx->data_end - ctx->data;
	int verdict;

	p.data = (void *)(long)ctx->data;
	p.end = (void *)(long)ctx->data_end;
	p.len = len;
	count(MIRESGA_CNT_RX, len);
	verdict = process(ctx, &p);
	if (verdict >= XDP_ABORTED && verdict <= XDP_REDIRECT)
		count(MIRESGA_CNT_XDP_ABORTED + verdict, len);
	return verdict;
}
