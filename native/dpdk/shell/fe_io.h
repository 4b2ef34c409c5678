/* fe_io.h -- the front-end's side of the DPDK shell: configuration file, the processing
 * stage over a burst, the offload channel and the control socket. main.c holds the
 * generic I/O loop, which never looks inside a packet. */
#ifndef FE_IO_H
#define FE_IO_H

#include <stdint.h>

#include <rte_mbuf.h>
#include <rte_ring.h>

#include "../fe/fe_config.h"
#include "../fe/fe_machine.h"
#include "fe_switch.h"

#define FE_BURST 32
#define FE_TX_MAX 512   /* packets a burst may produce before the rest are counted lost */
#define FE_HOLD_MAX 4096 /* frames held while an offload batch is being applied */
#define FE_HOLD_NS 50000000LL /* the longest a frame waits for the controller's ack */
#define FE_MAX_SHARDS 32  /* lcores (shards) miresga-fe runs at most */
#define FE_RING_SIZE 4096 /* frames waiting to be handed to one shard */

#define FE_NIO 16
#define FE_IO_NAMES {"rx", "rx_other", "tx", "tx_drop", "tx_nombuf", "offload_msgs", \
		     "offload_drop", "oversize", "hold_timeouts", "steer_out", "steer_in", \
		     "steer_drop", "offload_applied", "unoffload_applied", "offload_failed", \
		     "offload_batches"}

/* What the stats writer (main lcore) reads of a shard: its own lcore copies it on each
 * drain tick with relaxed atomic stores, so no lcore ever reads another one's machine
 * (whose tables change under it) or tears a counter. */
struct fe_snap {
	uint64_t c[FE_NCOUNTERS];
	uint64_t io[FE_NIO];     /* FE_IO_NAMES order */
	uint64_t conns, legs;
	int64_t oldest_ns;       /* 0 when there is no connection */
};

struct fe_shard {
	struct mfe *m;            /* this shard's machine: its flow table, counters, timers */
	unsigned idx, nshards;    /* this shard's number (= its queue), and how many there are */
	struct rte_ring **rings;  /* one per shard: frames handed to their owner (MP enqueue,
				   * SC dequeue) */
	uint16_t port, queue;
	struct rte_mempool *pool;
	uint8_t own_mac[6], gw_mac[6];
	struct rte_mbuf *tx[FE_TX_MAX];
	uint16_t ntx;
	uint8_t offl[4 + 65000];  /* u32 batch number, then the records of the next batch */
	uint32_t offl_len;        /* record bytes after the batch number */
	int direct;               /* offloads applied to the switch's maps here (sw), not
				   * sent to the controller */
	struct fe_switch sw;      /* this shard's own fds of the switch maps (direct mode) */
	struct fe_switch_counts sw_counts;
	int offl_fd;              /* unix datagram socket to the controller, or -1 */
	char offl_path[108];      /* where it is bound (acks come back there) */
	uint32_t offl_seq, offl_acked; /* last batch sent / last batch the controller applied */
	struct rte_mbuf *hold[FE_HOLD_MAX];
	uint32_t nhold;
	int64_t hold_since;
	uint64_t hold_timeouts;
	uint64_t cookie_gen;      /* last cookie-key generation applied */
	uint64_t rx, rx_other, tx_pkts, tx_drop, tx_nombuf, offl_msgs, offl_drop, oversize;
	uint64_t steer_out, steer_in, steer_drop; /* handed to / taken from / lost on a ring */
	struct fe_snap snap;
};

/* Steering (more than one shard): the frames of pkts this shard owns stay in pkts (their
 * count is returned), the others go to their owner's ring (fe_steer.h: the client
 * endpoint decides, so both directions of a connection meet in one shard). Frames the
 * machine cannot parse stay here: any shard drops them alike. */
uint16_t fe_dispatch(struct fe_shard *s, struct rte_mbuf **pkts, uint16_t n);

/* Copy the shard's figures into s->snap (called by the shard's own lcore). */
void fe_snapshot(struct fe_shard *s);

/* The processing stage: a burst of received frames in (they are freed), frames to send
 * in s->tx (s->ntx), offload records appended to s->offl. */
void fe_stage(struct fe_shard *s, struct rte_mbuf **pkts, uint16_t n, int64_t now_ns);

/* Timers of the machine; outputs as in fe_stage. */
void fe_timers(struct fe_shard *s, int64_t now_ns);

/* Apply the waiting offload records to the switch (direct mode), or send them to the
 * controller as one datagram (channel mode). */
void fe_flush_offloads(struct fe_shard *s);

/* The end of a loop turn: offload batch out, then frames out. Direct mode applies the
 * batch synchronously, so the frames go at once. In channel mode frames produced while
 * a batch is not yet applied by the controller are held (in order) until its ack or
 * FE_HOLD_NS: the switch must know a new backend leg before the packets that open it
 * leave, as in the Python shell, or the client's ACKs still reach the old backend,
 * whose RST then reaches the client. */
void fe_output(struct fe_shard *s, int64_t now_ns);

#endif /* FE_IO_H */
