/* fe_io.h -- the front-end's side of the DPDK shell: configuration file, the processing
 * stage over a burst, the offload channel and the control socket. main.c holds the
 * generic I/O loop, which never looks inside a packet. */
#ifndef FE_IO_H
#define FE_IO_H

#include <stdint.h>

#include <rte_mbuf.h>

#include "../fe/fe_config.h"
#include "../fe/fe_machine.h"

#define FE_BURST 32
#define FE_TX_MAX 512   /* packets a burst may produce before the rest are counted lost */

struct fe_shard {
	struct mfe *m;
	uint16_t port, queue;
	struct rte_mempool *pool;
	uint8_t own_mac[6], gw_mac[6];
	struct rte_mbuf *tx[FE_TX_MAX];
	uint16_t ntx;
	uint8_t offl[65000];      /* offload/unoffload records waiting for the next flush */
	uint32_t offl_len;
	int offl_fd;              /* unix datagram socket to the controller, or -1 */
	uint64_t cookie_gen;      /* last cookie-key generation applied */
	uint64_t rx, rx_other, tx_pkts, tx_drop, tx_nombuf, offl_msgs, offl_drop, oversize;
};

/* The processing stage: a burst of received frames in (they are freed), frames to send
 * in s->tx (s->ntx), offload records appended to s->offl. */
void fe_stage(struct fe_shard *s, struct rte_mbuf **pkts, uint16_t n, int64_t now_ns);

/* Timers of the machine; outputs as in fe_stage. */
void fe_timers(struct fe_shard *s, int64_t now_ns);

/* Send the waiting offload records to the controller as one datagram. */
void fe_flush_offloads(struct fe_shard *s);

#endif /* FE_IO_H */
