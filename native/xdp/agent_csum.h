/* Internet checksum helpers for XDP, where the bpf_l3/l4_csum_replace helpers (skb only)
 * are not available. Incremental updates follow RFC 1624 (HC' = ~(~HC + ~m + m')); the
 * one's-complement sum is byte-order independent, so network-order values go in as they
 * are. Ingress frames are assumed to carry complete checksums (true for frames from a
 * wire or a raw socket; see docs/agent.md). */
#ifndef MIRESGA_AGENT_CSUM_H
#define MIRESGA_AGENT_CSUM_H

#include <linux/types.h>

static __always_inline __u16 csum_fold32(__u32 s)
{
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)s;
}

static __always_inline void csum_update16(__u16 *csum, __u16 from, __u16 to)
{
	__u32 s = (__u16)~*csum;

	s += (__u16)~from;
	s += to;
	*csum = ~csum_fold32(s);
}

static __always_inline void csum_update32(__u16 *csum, __u32 from, __u32 to)
{
	csum_update16(csum, (__u16)(from >> 16), (__u16)(to >> 16));
	csum_update16(csum, (__u16)from, (__u16)to);
}

#endif
