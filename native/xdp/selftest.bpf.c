// SPDX-License-Identifier: Apache-2.0
/* A tiny program pair that exercises miresga_core.bpf itself (tests/bpf/): an XDP and a tc
 * program sharing maps. UDP to port 9 is bounced (XDP: MACs swapped, XDP_TX), to port 10
 * dropped, anything else passed; every packet is counted. Not used in production. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <linux/udp.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* packets seen: [0] by XDP, [1] by tc */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

/* free-form key/value map for user-space map tests */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
} kv SEC(".maps");

/* per-CPU packet counter */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} pcpu SEC(".maps");

static __always_inline void count(__u32 idx)
{
	__u64 *c = bpf_map_lookup_elem(&counts, &idx);
	__u32 zero = 0;
	__u64 *p = bpf_map_lookup_elem(&pcpu, &zero);

	if (c)
		__sync_fetch_and_add(c, 1);
	if (p)
		*p += 1;
}

/* UDP destination port of an Ethernet/IPv4 (no options) frame, 0 when not UDP. */
static __always_inline int udp_dport(void *data, void *end)
{
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp = (void *)(ip + 1);

	if ((void *)(udp + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP) ||
	    ip->protocol != IPPROTO_UDP || ip->ihl != 5)
		return 0;
	return bpf_ntohs(udp->dest);
}

SEC("xdp")
int selftest_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	int port = udp_dport(data, end);

	count(0);
	if (port == 9) {
		struct ethhdr *eth = data;
		unsigned char tmp[ETH_ALEN];

		__builtin_memcpy(tmp, eth->h_dest, ETH_ALEN);
		__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
		__builtin_memcpy(eth->h_source, tmp, ETH_ALEN);
		return XDP_TX;
	}
	return port == 10 ? XDP_DROP : XDP_PASS;
}

SEC("tc")
int selftest_tc(struct __sk_buff *skb)
{
	count(1);
	return udp_dport((void *)(long)skb->data, (void *)(long)skb->data_end) == 10 ?
		TC_ACT_SHOT : TC_ACT_OK;
}

/* GPL-compatible so the kernel offers every helper; the project itself is Apache-2.0 */
char LICENSE[] SEC("license") = "Dual BSD/GPL";
