/* fe_machine.h -- the packet-level front-end state machine in C: a port of
 * miresga_core/frontend/machine.py (the reference; read its docstring for the protocol).
 * Sans-I/O: packets and the time in, actions out. The actions of one call are appended to
 * an output buffer as records (all integers little-endian):
 *
 *   1 u32 len, len bytes            transmit this IPv4 packet
 *   2 client(u32 ip,u16 port) vip(u32,u16) backend(u32,u16) u8 mode    offload
 *   3 client(u32,u16) vip(u32,u16)                                     unoffload
 *
 * (ip in host order). The DPDK shell sends type 1 out of the port and types 2/3, batched,
 * to the controller; the Python binding turns them into frontend.state actions.
 * Rule programs run in the C VM (native/dpdk/vm): the decision rule is the one of
 * miresga_core/dpdk/decider.py (ProgramDecider), which the reference runs in Python. */
#ifndef FE_MACHINE_H
#define FE_MACHINE_H

#include <stddef.h>
#include <stdint.h>

#include "fe_counters.h"

#define FE_REC_TRANSMIT 1
#define FE_REC_OFFLOAD 2
#define FE_REC_UNOFFLOAD 3

struct mfe;

struct mfe_params {
	int64_t max_head, syn_rto_ns, syn_retries, idle_timeout_ns, offloaded_idle_timeout_ns,
		close_grace_ns, pool_affinity;
};

struct mfe *mfe_new(void);
void mfe_free(struct mfe *m);
void mfe_set_params(struct mfe *m, const struct mfe_params *p);
/* cur: 8 bytes; prev: 8 bytes or NULL */
void mfe_set_cookie_keys(struct mfe *m, const uint8_t *cur, const uint8_t *prev);
/* the agent key (16 bytes) of a slot; slot: the one tags are made with */
int mfe_set_agent_key(struct mfe *m, int slot, const uint8_t *key, int use_slot);
/* A VIP with its rule program (serialized) -- 0, or -1 with err. */
int mfe_add_vip(struct mfe *m, uint32_t ip, uint16_t port, int wscale, int mss,
		const uint8_t *prog, size_t prog_len, char *err, size_t errlen);
/* Append a backend to pool `pool` (program pool index) of a VIP. */
int mfe_add_backend(struct mfe *m, uint32_t vip, uint16_t vport, uint32_t pool, uint32_t ip,
		    uint16_t port);

/* Whether ip:port is one of the machine's VIPs (the steering needs it). */
int mfe_is_vip(const struct mfe *m, uint32_t ip, uint16_t port);

/* One packet / the timers. The actions are in mfe_out() until the next call. */
void mfe_receive(struct mfe *m, const uint8_t *raw, size_t len, int64_t now_ns);
void mfe_expire(struct mfe *m, int64_t now_ns);
const uint8_t *mfe_out(const struct mfe *m, size_t *len);
/* The earliest time expire has work, or INT64_MIN when nothing is pending. */
int64_t mfe_next_deadline(const struct mfe *m);
uint64_t mfe_counter(const struct mfe *m, int idx);
uint32_t mfe_nconns(const struct mfe *m);
/* When the oldest live connection was accepted, or INT64_MIN when there is none. */
int64_t mfe_oldest_ns(const struct mfe *m);
uint32_t mfe_nlegs(const struct mfe *m);
/* out of memory seen (a packet was dropped instead of handled) */
uint64_t mfe_oom(const struct mfe *m);

#endif /* FE_MACHINE_H */
