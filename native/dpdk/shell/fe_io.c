/* fe_io.c -- see fe_io.h. */
#include "fe_io.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <rte_ether.h>

static int hexbytes(const char *hex, uint8_t *out, size_t n)
{
	if (strlen(hex) != 2 * n)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (sscanf(hex + 2 * i, "%2hhx", &out[i]) != 1)
			return -1;
	return 0;
}

static int ip4(const char *s, uint32_t *ip)
{
	struct in_addr a;

	if (inet_pton(AF_INET, s, &a) != 1)
		return -1;
	*ip = ntohl(a.s_addr);
	return 0;
}

static int load_file(const char *path, uint8_t **buf, size_t *len)
{
	FILE *f = fopen(path, "rb");
	long n;

	if (!f)
		return -1;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	*buf = malloc(n > 0 ? (size_t)n : 1);
	*len = *buf && n > 0 ? fread(*buf, 1, (size_t)n, f) : 0;
	fclose(f);
	return *buf ? 0 : -1;
}

/* One line of the configuration (see docs/dpdk.md, "configuration file"). */
static int config_line(struct mfe *m, char *line, char *err, size_t errlen)
{
	char a[4][128];
	long long p[6];
	uint8_t k1[16], k2[16];
	uint32_t ip, ip2;
	unsigned port, port2, pool;
	int ws, mss, slot, n;

	if (sscanf(line, "cookie %127s %127s", a[0], a[1]) >= 1) {
		n = sscanf(line, "cookie %127s %127s", a[0], a[1]);
		if (hexbytes(a[0], k1, 8) || (n == 2 && hexbytes(a[1], k2, 8)))
			return snprintf(err, errlen, "cookie keys are 16 hex digits"), -1;
		mfe_set_cookie_keys(m, k1, n == 2 ? k2 : NULL);
	} else if (sscanf(line, "agent_key %d %127s %d", &slot, a[0], &n) == 3) {
		if (hexbytes(a[0], k1, 16) || mfe_set_agent_key(m, slot, k1, n))
			return snprintf(err, errlen, "agent key: slot 0/1 and 32 hex digits"), -1;
	} else if (sscanf(line, "params %lld %lld %lld %lld %lld %lld", &p[0], &p[1], &p[2], &p[3],
			  &p[4], &p[5]) == 6) {
		struct mfe_params mp = {p[0], p[1], p[2], p[3], p[4], p[5]};
		mfe_set_params(m, &mp);
	} else if (sscanf(line, "vip %127s %u %d %d %127s", a[0], &port, &ws, &mss, a[1]) == 5) {
		uint8_t *prog;
		size_t len;
		int r;

		if (ip4(a[0], &ip) || port > 65535)
			return snprintf(err, errlen, "vip: bad address %s:%u", a[0], port), -1;
		if (load_file(a[1], &prog, &len))
			return snprintf(err, errlen, "vip: cannot read program %s: %s", a[1],
					strerror(errno)), -1;
		r = mfe_add_vip(m, ip, (uint16_t)port, ws, mss, prog, len, err, errlen);
		free(prog);
		return r;
	} else if (sscanf(line, "backend %127s %u %u %127s %u", a[0], &port, &pool, a[1], &port2) == 5) {
		if (ip4(a[0], &ip) || ip4(a[1], &ip2) ||
		    mfe_add_backend(m, ip, (uint16_t)port, pool, ip2, (uint16_t)port2))
			return snprintf(err, errlen, "backend: unknown VIP/pool or bad address"), -1;
	} else if (line[0] != '#' && line[0] != '\n' && line[0]) {
		return snprintf(err, errlen, "unknown line"), -1;
	}
	return 0;
}

int fe_load_config(struct mfe *m, const char *path)
{
	char line[1024], err[256] = "";
	FILE *f = fopen(path, "r");
	int no = 0;

	if (!f) {
		fprintf(stderr, "miresga-fe: cannot open config %s: %s\n", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		no++;
		if (config_line(m, line, err, sizeof(err))) {
			fprintf(stderr, "miresga-fe: %s:%d: %s\n", path, no, err);
			fclose(f);
			return -1;
		}
	}
	fclose(f);
	return 0;
}

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

			if (s->offl_len + n > sizeof(s->offl))
				fe_flush_offloads(s);
			if (s->offl_len + n > sizeof(s->offl)) {
				s->offl_drop++;
			} else {
				memcpy(s->offl + s->offl_len, o + i, n);
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
	if (!s->offl_len || s->offl_fd < 0) {
		s->offl_len = 0;
		return;
	}
	if (send(s->offl_fd, s->offl, s->offl_len, MSG_DONTWAIT) < 0) {
		/* the controller is behind (a unix datagram queue is short): keep the batch and
		 * retry on the next turn; only a full batch buffer loses requests */
		if (errno == EAGAIN || errno == ENOBUFS)
			return;
		s->offl_drop++;
	} else {
		s->offl_msgs++;
	}
	s->offl_len = 0;
}
