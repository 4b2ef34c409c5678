/* fe_steer.h -- which shard (lcore) owns a packet.
 *
 * A connection's state lives in one shard, but its packets come in two directions with
 * different tuples: client -> VIP (src = client) and, on the forged connection to the
 * backend, backend -> client (dst = client: the forged SYN's source is the client). The
 * client endpoint (address, port) is in both, so it is the steering key: the shard is a
 * hash of it. Every flow-keyed table of the machine (connections, legs, old legs) is
 * keyed by the client endpoint plus one other endpoint, so no state is shared between
 * shards. Pure C, DPDK-free: the shell, the tests (ctypes) and the replay use it. */
#ifndef FE_STEER_H
#define FE_STEER_H

#include <stddef.h>
#include <stdint.h>

struct mfe;

/* The shard of a client endpoint among n (n >= 1): an even spread over many clients. */
unsigned fe_steer_client(uint32_t ip, uint16_t port, unsigned n);

/* The shard owning an IPv4 packet (layer-3 bytes) for machine m's VIPs, or -1 when the
 * packet is not IPv4/TCP the machine could parse: any shard may take it (it only counts
 * it as malformed). */
int mfe_steer(const struct mfe *m, const uint8_t *raw, size_t len, unsigned n);

#endif /* FE_STEER_H */
