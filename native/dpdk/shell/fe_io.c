/* fe_io.c -- see fe_io.h. */
#include "fe_io.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include <rte_ethdev.h>
#include <rte_ether.h>

#include "../fe/fe_steer.h"

/* Move the machine's outputs into frames to send and offload records to flush. */
static void take_outputs(struct fe_shard *s)
{
	size_t len, i = 0;
	const uint8_t *o = mfe_out(s->m, &len);

	while (i < len) {
		if (o[i] == FE_REC_TRANSMIT) {
			uint32_t n = (uint32_t)o[i + 1] | (uint32_t)o[i + 2] << 8 |
				     (uint32_t)o[i + 3] << 16 | (uint32_t)o[i + 4] << 24;
			struct rte_mbuf *mb = NULL;
			uint8_t *d;

			if (s->ntx >= FE_TX_MAX) {
				s->tx_drop++;
			} else if (n + RTE_ETHER_HDR_LEN > (uint32_t)(rte_pktmbuf_data_room_size(s->pool) -
							       RTE_PKTMBUF_HEADROOM)) {
				s->oversize++;
			} else if (!(mb = rte_pktmbuf_alloc(s->pool))) {
				s->tx_nombuf++;
			} else {
				d = (uint8_t *)rte_pktmbuf_append(mb, (uint16_t)(n + RTE_ETHER_HDR_LEN));
				if (!d) {
					rte_pktmbuf_free(mb);
					s->oversize++;
					i += 5 + n;
					continue;
				}
				memcpy(d, s->gw_mac, 6);
				memcpy(d + 6, s->own_mac, 6);
				d[12] = 0x08;
				d[13] = 0x00;
				memcpy(d + RTE_ETHER_HDR_LEN, o + i + 5, n);
				s->tx[s->ntx++] = mb;
			}
			i += 5 + n;
		} else {
			size_t n = o[i] == FE_REC_OFFLOAD ? 20 : 13;

			if (4 + s->offl_len + n > sizeof(s->offl))
				fe_flush_offloads(s);
			if (4 + s->offl_len + n > sizeof(s->offl)) {
				s->offl_drop++;
			} else {
				memcpy(s->offl + 4 + s->offl_len, o + i, n);
				s->offl_len += (uint32_t)n;
			}
			i += n;
		}
	}
}

void fe_stage(struct fe_shard *s, struct rte_mbuf **pkts, uint16_t n, int64_t now_ns)
{
	for (uint16_t k = 0; k < n; k++) {
		struct rte_mbuf *mb = pkts[k];
		const uint8_t *d = rte_pktmbuf_mtod(mb, const uint8_t *);
		uint32_t len = rte_pktmbuf_data_len(mb);

		s->rx++;
		/* IPv4 frames from someone else (af_packet may show us our own sends) */
		if (len < RTE_ETHER_HDR_LEN || d[12] != 0x08 || d[13] != 0x00 ||
		    !memcmp(d + 6, s->own_mac, 6) || mb->nb_segs != 1) {
			s->rx_other++;
		} else {
			mfe_receive(s->m, d + RTE_ETHER_HDR_LEN, len - RTE_ETHER_HDR_LEN, now_ns);
			take_outputs(s);
		}
		rte_pktmbuf_free(mb);
	}
}

void fe_timers(struct fe_shard *s, int64_t now_ns)
{
	mfe_expire(s->m, now_ns);
	take_outputs(s);
}

void fe_flush_offloads(struct fe_shard *s)
{
	uint32_t seq = s->offl_seq + 1;

	if (s->direct) {
		/* synchronous: when this returns the switch has every entry (or the record is
		 * counted failed and its flow stays with the front-end), so nothing waits */
		if (s->offl_len)
			fe_switch_apply(&s->sw, s->offl + 4, s->offl_len, &s->sw_counts);
		s->offl_len = 0;
		return;
	}
	if (!s->offl_len || s->offl_fd < 0) {
		s->offl_len = 0;
		return;
	}
	memcpy(s->offl, &seq, 4); /* little-endian hosts only, like the record layout */
	if (send(s->offl_fd, s->offl, 4 + s->offl_len, MSG_DONTWAIT) < 0) {
		/* the controller is behind (a unix datagram queue is short): keep the batch and
		 * retry on the next turn; only a full batch buffer loses requests */
		if (errno == EAGAIN || errno == ENOBUFS)
			return;
		s->offl_drop++;
	} else {
		s->offl_msgs++;
		s->offl_seq = seq;
	}
	s->offl_len = 0;
}

static void tx_frames(struct fe_shard *s, struct rte_mbuf **f, uint32_t n)
{
	while (n) {
		uint16_t k = n > 512 ? 512 : (uint16_t)n;
		uint16_t sent = rte_eth_tx_burst(s->port, s->queue, f, k);

		s->tx_pkts += sent;
		for (uint16_t i = sent; i < k; i++)
			rte_pktmbuf_free(f[i]);
		s->tx_drop += k - sent;
		f += k;
		n -= k;
	}
}

static void read_acks(struct fe_shard *s)
{
	uint8_t b[64];
	ssize_t r;

	while ((r = recv(s->offl_fd, b, sizeof(b), MSG_DONTWAIT)) >= 4) {
		uint32_t seq;

		memcpy(&seq, b, 4);
		if ((int32_t)(seq - s->offl_acked) > 0)
			s->offl_acked = seq;
	}
}

void fe_output(struct fe_shard *s, int64_t now_ns)
{
	int waiting;

	fe_flush_offloads(s);
	if (s->offl_fd >= 0 && s->offl_acked != s->offl_seq)
		read_acks(s);
	waiting = s->offl_fd >= 0 && (s->offl_len || s->offl_acked != s->offl_seq);
	if (s->ntx && (waiting || s->nhold)) {
		if (!s->nhold)
			s->hold_since = now_ns;
		for (uint16_t i = 0; i < s->ntx; i++) {
			if (s->nhold < FE_HOLD_MAX)
				s->hold[s->nhold++] = s->tx[i];
			else {
				rte_pktmbuf_free(s->tx[i]);
				s->tx_drop++;
			}
		}
		s->ntx = 0;
	}
	if (s->nhold && (!waiting || now_ns - s->hold_since >= FE_HOLD_NS)) {
		if (waiting)
			s->hold_timeouts++;
		tx_frames(s, s->hold, s->nhold);
		s->nhold = 0;
	}
	if (s->ntx) {
		tx_frames(s, s->tx, s->ntx);
		s->ntx = 0;
	}
}

/* The owner of a frame, or s->idx for what the machine would not parse as ours. */
static unsigned owner(const struct fe_shard *s, const struct rte_mbuf *mb)
{
	const uint8_t *d = rte_pktmbuf_mtod(mb, const uint8_t *);
	uint32_t len = rte_pktmbuf_data_len(mb);
	int o;

	if (len < RTE_ETHER_HDR_LEN || d[12] != 0x08 || d[13] != 0x00 || mb->nb_segs != 1 ||
	    !memcmp(d + 6, s->own_mac, 6))
		return s->idx;
	o = mfe_steer(s->m, d + RTE_ETHER_HDR_LEN, len - RTE_ETHER_HDR_LEN, s->nshards);
	return o < 0 ? s->idx : (unsigned)o;
}

uint16_t fe_dispatch(struct fe_shard *s, struct rte_mbuf **pkts, uint16_t n)
{
	struct rte_mbuf *away[FE_MAX_SHARDS][FE_BURST];
	uint16_t naway[FE_MAX_SHARDS] = {0}, keep = 0;

	for (uint16_t k = 0; k < n; k++) {
		unsigned o = owner(s, pkts[k]);

		if (o == s->idx)
			pkts[keep++] = pkts[k];  /* order kept: a flow's frames stay in sequence */
		else
			away[o][naway[o]++] = pkts[k];
	}
	for (unsigned o = 0; o < s->nshards; o++) {
		unsigned sent;

		if (!naway[o])
			continue;
		sent = rte_ring_mp_enqueue_burst(s->rings[o], (void **)away[o], naway[o], NULL);
		s->steer_out += sent;
		for (unsigned i = sent; i < naway[o]; i++)
			rte_pktmbuf_free(away[o][i]);  /* the owner is far behind: drop, count */
		s->steer_drop += naway[o] - sent;
	}
	return keep;
}

static void put(uint64_t *dst, uint64_t v) { __atomic_store_n(dst, v, __ATOMIC_RELAXED); }

void fe_snapshot(struct fe_shard *s)
{
	const uint64_t io[FE_NIO] = {s->rx, s->rx_other, s->tx_pkts, s->tx_drop, s->tx_nombuf,
				 s->offl_msgs, s->offl_drop, s->oversize, s->hold_timeouts,
				 s->steer_out, s->steer_in, s->steer_drop,
				 s->sw_counts.offload_applied, s->sw_counts.unoffload_applied,
				 s->sw_counts.offload_failed, s->sw_counts.batches};
	uint32_t conns = mfe_nconns(s->m);

	for (int c = 0; c < FE_NCOUNTERS; c++)
		put(&s->snap.c[c], mfe_counter(s->m, c));
	for (int i = 0; i < FE_NIO; i++)
		put(&s->snap.io[i], io[i]);
	put(&s->snap.conns, conns);
	put(&s->snap.legs, mfe_nlegs(s->m));
	put((uint64_t *)&s->snap.oldest_ns, conns ? (uint64_t)mfe_oldest_ns(s->m) : 0);
}
