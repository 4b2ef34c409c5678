/* Maps of the back-end agent. Names are mirrored in miresga_core/agent/shared.py
 * (MAP_FLOWS, MAP_CONFIG, MAP_COUNTERS); structs come from the generated agent_shared.h. */
#ifndef MIRESGA_AGENT_MAPS_H
#define MIRESGA_AGENT_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "agent_shared.h"

/* per-flow splice state, keyed from the client's side; LRU so forgotten flows age out */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, AGENT_MAX_FLOWS);
	__type(key, struct flow_key);
	__type(value, struct flow);
} flows SEC(".maps");

/* one entry: tag keys and timeouts, written by user space before attaching */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct agent_config);
} config SEC(".maps");

/* global counters (enum agent_counter), per CPU so hot paths need no atomics */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, CNT_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

static __always_inline void count(__u32 idx)
{
	__u64 *c = bpf_map_lookup_elem(&counters, &idx);

	if (c)
		*c += 1;
}

static __always_inline struct agent_config *get_config(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&config, &zero);
}

#endif
