// SPDX-License-Identifier: GPL-2.0
/* XDP_PASS, nothing else. The lab attaches it to every host's eth0: a veth delivers frames
 * that its peer sends with XDP_TX / XDP_REDIRECT only when it runs NAPI, and an attached
 * XDP program is the dependable way to get that (docs/lab.md, "veth and XDP"). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

SEC("xdp")
int lab_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}
