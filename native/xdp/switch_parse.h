/* Header parsing for the switch: Ethernet, ARP, IPv4, TCP, and the options of a SYN.
 * Every access is bounds-checked against data_end (the verifier insists, and a truncated
 * packet must be counted and dropped, never read past). */
#ifndef MIRESGA_SWITCH_PARSE_H
#define MIRESGA_SWITCH_PARSE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <bpf/bpf_endian.h>
#include "generated/cookie_layout.h"

#define ARPOP_REQUEST_ 1
#define ARPOP_REPLY_ 2
#define IP_MF 0x2000
#define IP_OFFSET 0x1fff
#define TCP_MAX_OPT_LEN 40

/* ARP for IPv4 over Ethernet; addresses as bytes because they are not aligned */
struct arp_eth {
	__be16 htype;
	__be16 ptype;
	__u8 hlen;
	__u8 plen;
	__be16 oper;
	__u8 sha[ETH_ALEN];
	__u8 spa[4];
	__u8 tha[ETH_ALEN];
	__u8 tpa[4];
} __attribute__((packed));

struct pkt {
	void *data;
	void *end;
	__u32 len;
	struct ethhdr *eth;
	void *l3;
	struct iphdr *ip;
	struct tcphdr *tcp;
	__u32 payload_len; /* TCP payload bytes (from the IP total length) */
};

enum parsed {
	PARSED_MALFORMED = 0,
	PARSED_OTHER,   /* not IPv4 or ARP: the host's business */
	PARSED_ARP,
	PARSED_IPV4,    /* IPv4 that is not a first TCP fragment with a full header */
	PARSED_TCP,
};

static __always_inline enum parsed parse_packet(struct pkt *p)
{
	struct ethhdr *eth = p->data;
	struct iphdr *ip;
	struct tcphdr *tcp;
	__u32 ihl, tot, doff;

	if ((void *)(eth + 1) > p->end)
		return PARSED_MALFORMED;
	p->eth = eth;
	p->l3 = eth + 1;
	if (eth->h_proto == bpf_htons(ETH_P_ARP))
		return PARSED_ARP;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return PARSED_OTHER;
	ip = p->l3;
	if ((void *)(ip + 1) > p->end)
		return PARSED_MALFORMED;
	ihl = ip->ihl * 4;
	tot = bpf_ntohs(ip->tot_len);
	if (ip->version != 4 || ihl < sizeof(*ip) || tot < ihl ||
	    (void *)ip + tot > p->end)
		return PARSED_MALFORMED;
	p->ip = ip;
	if (ip->protocol != IPPROTO_TCP || (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET)))
		return PARSED_IPV4;
	tcp = (void *)ip + ihl;
	if ((void *)(tcp + 1) > p->end)
		return PARSED_MALFORMED;
	doff = tcp->doff * 4;
	if (doff < sizeof(*tcp) || ihl + doff > tot)
		return PARSED_MALFORMED;
	p->tcp = tcp;
	p->payload_len = tot - ihl - doff;
	return PARSED_TCP;
}

/* What a SYN offers; the values the cookie SYN-ACK answers. */
struct syn_opts {
	__u32 mss;   /* 0: no option */
	__u32 ws;    /* COOKIE_WSCALE_NONE: no option */
	__u32 sack;  /* SACK-permitted offered */
	__u32 ts;    /* timestamps offered (RFC 7323 3.2) */
	__u32 tsval; /* the SYN's TSval, host order; valid when ts */
};

static __always_inline __u32 get_be32(const __u8 *o)
{
	return (__u32)o[0] << 24 | (__u32)o[1] << 16 | (__u32)o[2] << 8 | o[3];
}

/* MSS, window scale, SACK-permitted and timestamps of a SYN (``s`` holds the defaults on
 * entry). Returns -1 on a malformed option list: a length below 2 or past the options. A
 * known kind with a length other than its own is skipped like an unknown option, as Linux
 * does (tcp_parse_options), so it counts as not offered.
 * The loop walks byte positions (a constant per unrolled step for the verifier) and skips
 * to the next option with ``next``, which keeps verification linear in the 40 bytes. */
static __always_inline int parse_syn_options(struct pkt *p, __u8 *opts, __u32 len,
					     struct syn_opts *s)
{
	__u32 next = 0;

#pragma unroll
	for (__u32 pos = 0; pos < TCP_MAX_OPT_LEN; pos++) {
		__u8 *o = opts + pos;
		__u8 kind, olen;

		if (pos >= len)
			break;
		if (pos < next)
			continue;
		if ((void *)(o + 1) > p->end)
			return -1;
		kind = o[0];
		if (kind == 0) /* end of option list */
			break;
		if (kind == 1) { /* NOP */
			next = pos + 1;
			continue;
		}
		if ((void *)(o + 2) > p->end)
			return -1;
		olen = o[1];
		if (olen < 2 || pos + olen > len)
			return -1;
		if (kind == 2 && olen == 4) {
			if ((void *)(o + 4) > p->end)
				return -1;
			s->mss = (__u32)o[2] << 8 | o[3];
		} else if (kind == 3 && olen == 3) {
			if ((void *)(o + 3) > p->end)
				return -1;
			/* RFC 7323 2.3: a shift above 14 is used as 14 */
			s->ws = o[2] > COOKIE_WSCALE_MAX ? COOKIE_WSCALE_MAX : o[2];
		} else if (kind == 4 && olen == 2) {
			s->sack = 1;
		} else if (kind == 8 && olen == 10) {
			if ((void *)(o + 10) > p->end)
				return -1;
			/* RFC 7323 3.2: kind 8, length 10, TSval then TSecr (0 in a SYN) */
			s->ts = 1;
			s->tsval = get_be32(o + 2);
		}
		next = pos + olen;
	}
	return 0;
}

#endif /* MIRESGA_SWITCH_PARSE_H */
