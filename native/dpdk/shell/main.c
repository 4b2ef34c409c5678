/* main.c -- miresga-fe: the C front-end on DPDK.
 *
 *   miresga-fe <EAL args> -- --config FILE [--offload-socket PATH] [--ctl-socket PATH]
 *              [--gateway-mac MAC] [--stats FILE] [--switch-pins DIR]
 *              [--offload-mode auto|direct|channel]
 *
 * Offloads: with --switch-pins (the XdpSwitch pin directory) every shard opens the
 * switch's offload maps itself and applies its offload records there, synchronously
 * (direct mode, fe_switch.h); otherwise they go as numbered batches over the offload
 * socket to the controller, which applies them and acks (channel mode). auto (default):
 * direct when the maps open, else channel; direct: the maps must open, or exit 1.
 *
 * One generic loop per lcore, testpmd style: rx burst -> stage(pkts, n) -> tx burst, a
 * drain timer for the machine's timers and the offload batch, and force_quit on SIGINT /
 * SIGTERM. The loop never looks inside a packet; the stage (fe_io.c) is the front-end.
 *
 * Shards: every EAL lcore (-l / --lcores) runs one shard: its own rx/tx queue pair, its
 * own machine (flow table, counters, timers) and its own offload path (switch map fds or
 * socket); nothing on the packet path is shared or locked. The queues are filled by the NIC's RSS or the
 * af_packet fanout hash, which puts the two directions of a connection (client -> VIP,
 * backend -> client) on unrelated queues, so with several shards each frame goes to the
 * shard that owns its client endpoint (fe_steer.h): frames that arrive elsewhere are
 * handed over a ring (one per shard, multi-producer, single consumer). An idle lcore
 * does not burn its core: after a short spin it waits in poll(2) on the port's packet
 * sockets (af_packet / af_xdp vdevs have no DPDK Rx interrupt), so a frame wakes it at
 * once and a quiet port costs one wake-up a millisecond; without such sockets (a PCI
 * NIC) it backs off to short sleeps instead.
 *
 * Control socket (unix datagram, text): "cookie <hex16> [<hex16>]" sets the cookie keys
 * (the controller reads them from the switch), "stats" writes the stats file now, "quit".
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>

#include "fe_io.h"

#define NB_DESC 512
#define FE_FRAME_MAX 12256 /* an af_packet ring frame of 3 pages, less its header */
#define DRAIN_NS 5000000LL         /* timers and offload batches every 5 ms at the latest */
#define IDLE_SPIN 64               /* empty polls before the loop starts to sleep */
#ifndef IDLE_SLEEP_MAX_US
#define IDLE_SLEEP_MAX_US 1000     /* see docs/dpdk.md, "Idle back-off" */
#endif

#define WAKE_FDS_MAX 16
#ifndef AF_XDP
#define AF_XDP 44
#endif

static volatile sig_atomic_t force_quit;
static struct pollfd wake_fds[WAKE_FDS_MAX];  /* the vdev's packet sockets */
static int nwake;
static struct fe_shard *shards[RTE_MAX_LCORE];
static unsigned nshards;
static const char *opt_config, *opt_offl, *opt_ctl, *opt_stats, *opt_pins;
enum { MODE_AUTO, MODE_DIRECT, MODE_CHANNEL };
static int opt_mode = MODE_AUTO;
static int direct;  /* the mode chosen: 1 direct, 0 channel (or no offloads at all) */
static uint8_t gw_mac[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
static int ctl_fd = -1;
/* cookie keys from the control socket (main lcore) to every shard: a sequence lock --
 * odd generation while the main lcore writes, a shard applies keys it read between two
 * equal even generations */
static _Atomic uint64_t cookie_gen;
static uint8_t cookie_keys[2][8];
static int cookie_has_prev;
static struct rte_ring *rings[FE_MAX_SHARDS];

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);  /* the cookie's slots are wall-clock slots */
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void on_signal(int sig) { (void)sig; force_quit = 1; }

static int unix_dgram(const char *bind_path, const char *connect_path)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if (bind_path) {
		unlink(bind_path);
		snprintf(a.sun_path, sizeof(a.sun_path), "%s", bind_path);
		if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
			goto fail;
	}
	if (connect_path) {
		snprintf(a.sun_path, sizeof(a.sun_path), "%s", connect_path);
		if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
			goto fail;
	}
	return fd;
fail:
	close(fd);
	return -1;
}

static uint64_t get(uint64_t *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }

static void write_stats(void)
{
	static const char *const io_names[FE_NIO] = FE_IO_NAMES;
	char tmp[4200];
	FILE *f;

	if (!opt_stats)
		return;
	snprintf(tmp, sizeof(tmp), "%s.tmp", opt_stats);
	f = fopen(tmp, "w");
	if (!f)
		return;
	fprintf(f, "{\"written_ns\": %ld, \"offload_mode\": \"%s\", \"shards\": [",
		(long)now_ns(), direct ? "direct" : opt_offl ? "channel" : "none");
	for (unsigned i = 0; i < nshards; i++) {
		struct fe_snap *p = &shards[i]->snap;

		fprintf(f, "%s{\"io\": {", i ? ", " : "");
		for (int k = 0; k < FE_NIO; k++)
			fprintf(f, "%s\"%s\": %lu", k ? ", " : "", io_names[k], get(&p->io[k]));
		fprintf(f, "}, \"conns\": %lu, \"legs\": %lu, \"oldest_ns\": %ld, \"machine\": {",
			get(&p->conns), get(&p->legs), (long)get((uint64_t *)&p->oldest_ns));
		for (int c = 0; c < FE_NCOUNTERS; c++)
			fprintf(f, "%s\"%s\": %lu", c ? ", " : "", fe_counter_names[c], get(&p->c[c]));
		fprintf(f, "}}");
	}
	fprintf(f, "]}\n");
	fclose(f);
	rename(tmp, opt_stats);
}

/* Control messages, on the main lcore's drain tick. */
static void control(void)
{
	char msg[256], a[2][64];
	ssize_t n;

	while (ctl_fd >= 0 && (n = recv(ctl_fd, msg, sizeof(msg) - 1, 0)) > 0) {
		uint8_t keys[2][8];
		int k;

		msg[n] = 0;
		k = sscanf(msg, "cookie %63s %63s", a[0], a[1]);
		if (k >= 1) {
			for (int i = 0; i < k; i++)
				for (int j = 0; j < 8; j++)
					if (sscanf(a[i] + 2 * j, "%2hhx", &keys[i][j]) != 1)
						k = -1;
			if (k > 0) {
				atomic_fetch_add(&cookie_gen, 1);  /* odd: being written */
				memcpy(cookie_keys, keys, sizeof(keys));
				cookie_has_prev = k == 2;
				atomic_fetch_add(&cookie_gen, 1);  /* even: complete */
			}
		} else if (!strncmp(msg, "stats", 5)) {
			write_stats();
		} else if (!strncmp(msg, "quit", 4)) {
			force_quit = 1;
		}
	}
}

/* New cookie keys, when the main lcore has published some (see cookie_gen). */
static void take_cookie_keys(struct fe_shard *s)
{
	uint64_t g = atomic_load(&cookie_gen);
	uint8_t keys[2][8];
	int prev;

	if (g == s->cookie_gen || (g & 1))
		return;
	memcpy(keys, cookie_keys, sizeof(keys));
	prev = cookie_has_prev;
	if (atomic_load(&cookie_gen) != g)
		return;  /* rewritten meanwhile: next tick */
	mfe_set_cookie_keys(s->m, keys[0], prev ? keys[1] : NULL);
	s->cookie_gen = g;
}

/* The packet sockets (AF_PACKET, AF_XDP) the vdev opened: the PMDs do not export them,
 * so they are found among our descriptors. poll(2) on them says "frames in the ring". */
static void find_wake_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d)) && nwake < WAKE_FDS_MAX) {
		int fd = atoi(e->d_name), dom = 0;
		socklen_t len = sizeof(dom);
		struct stat st;

		if (fd <= 2 || fd == dirfd(d) || fstat(fd, &st) || !S_ISSOCK(st.st_mode) ||
		    getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &dom, &len) ||
		    (dom != AF_PACKET && dom != AF_XDP))
			continue;
		wake_fds[nwake++] = (struct pollfd){.fd = fd, .events = POLLIN};
	}
	closedir(d);
}

/* Idle: wait for a frame on the port's sockets (at most IDLE_SLEEP_MAX_US), or sleep. */
static void idle_wait(unsigned *sleep_us)
{
	if (nwake) {
		struct pollfd fds[WAKE_FDS_MAX];

		memcpy(fds, wake_fds, sizeof(fds[0]) * nwake);  /* revents: per caller */
		poll(fds, (nfds_t)nwake, IDLE_SLEEP_MAX_US / 1000 ? IDLE_SLEEP_MAX_US / 1000 : 1);
		return;
	}
	usleep(*sleep_us);  /* adaptive: back off while idle, up to IDLE_SLEEP_MAX_US */
	if (*sleep_us < IDLE_SLEEP_MAX_US)
		*sleep_us *= 2;
}

/* The generic loop: it moves bursts and calls the stage; it never reads a packet. */
static int lcore_loop(void *arg)
{
	struct fe_shard *s = arg;
	struct rte_mbuf *pkts[FE_BURST];
	int64_t last_drain = 0, last_stats = 0;
	unsigned idle = 0, sleep_us = 1;
	int is_main = rte_lcore_id() == rte_get_main_lcore();

	while (!force_quit) {
		uint16_t n = rte_eth_rx_burst(s->port, s->queue, pkts, FE_BURST), kept = n;
		unsigned got = n;
		int64_t now = now_ns();

		if (n && s->nshards > 1)
			kept = fe_dispatch(s, pkts, n);  /* the others' frames go to their rings */
		if (kept)
			fe_stage(s, pkts, kept, now);
		if (s->nshards > 1) {
			/* frames other shards received for this one */
			unsigned k = rte_ring_sc_dequeue_burst(s->rings[s->idx], (void **)pkts,
							       FE_BURST, NULL);

			s->steer_in += k;
			got += k;
			if (k)
				fe_stage(s, pkts, (uint16_t)k, now);
		}
		if (now - last_drain >= DRAIN_NS) {
			take_cookie_keys(s);
			fe_timers(s, now);
			fe_snapshot(s);
			last_drain = now;
			if (is_main) {
				control();
				if (now - last_stats >= 500000000LL) {
					write_stats();
					last_stats = now;
				}
			}
		}
		/* offload requests go out (and are applied) before the frames they concern */
		fe_output(s, now);
		if (got || s->nhold) {
			idle = 0;
			sleep_us = 1;
		} else if (++idle > IDLE_SPIN) {
			idle_wait(&sleep_us);
		}
	}
	fe_snapshot(s);  /* the final figures, for the stats written at exit */
	return 0;
}

static int parse_mac(const char *s, uint8_t *mac)
{
	return sscanf(s, "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &mac[0], &mac[1], &mac[2], &mac[3],
		      &mac[4], &mac[5]) == 6 ? 0 : -1;
}

static int parse_args(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"config", required_argument, 0, 'c'}, {"offload-socket", required_argument, 0, 'o'},
		{"ctl-socket", required_argument, 0, 'k'}, {"gateway-mac", required_argument, 0, 'g'},
		{"stats", required_argument, 0, 's'}, {"switch-pins", required_argument, 0, 'p'},
		{"offload-mode", required_argument, 0, 'm'}, {0, 0, 0, 0},
	};
	int c;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'c': opt_config = optarg; break;
		case 'o': opt_offl = optarg; break;
		case 'k': opt_ctl = optarg; break;
		case 's': opt_stats = optarg; break;
		case 'p': opt_pins = optarg; break;
		case 'm':
			if (!strcmp(optarg, "auto"))
				opt_mode = MODE_AUTO;
			else if (!strcmp(optarg, "direct"))
				opt_mode = MODE_DIRECT;
			else if (!strcmp(optarg, "channel"))
				opt_mode = MODE_CHANNEL;
			else
				return fprintf(stderr, "miresga-fe: bad --offload-mode %s (auto, direct "
					       "or channel)\n", optarg), -1;
			break;
		case 'g':
			if (parse_mac(optarg, gw_mac))
				return fprintf(stderr, "miresga-fe: bad --gateway-mac %s\n", optarg), -1;
			break;
		default:
			return -1;
		}
	}
	if (!opt_config)
		return fprintf(stderr, "miresga-fe: --config is required\n"), -1;
	if (opt_mode == MODE_DIRECT && !opt_pins)
		return fprintf(stderr, "miresga-fe: --offload-mode direct needs --switch-pins\n"), -1;
	if (opt_offl && strlen(opt_offl) + 5 > sizeof(((struct sockaddr_un *)0)->sun_path))
		return fprintf(stderr, "miresga-fe: --offload-socket path too long\n"), -1;
	return 0;
}

/* One hand-over ring per shard: any lcore may put a frame on it, only its owner takes. */
static int make_rings(void)
{
	for (unsigned i = 0; i < nshards; i++) {
		char name[32];

		snprintf(name, sizeof(name), "mfe_steer%u", i);
		rings[i] = rte_ring_create(name, FE_RING_SIZE, rte_socket_id(), RING_F_SC_DEQ);
		if (!rings[i]) {
			fprintf(stderr, "miresga-fe: ring %s: %s\n", name, rte_strerror(rte_errno));
			return -1;
		}
	}
	return 0;
}

/* Direct or channel mode (see the top): a probe open of the switch maps decides. */
static int choose_offload_mode(void)
{
	struct fe_switch sw;
	char err[256];

	if (opt_mode == MODE_CHANNEL || !opt_pins) {
		direct = 0;
	} else if (fe_switch_open(&sw, opt_pins, err, sizeof(err))) {
		if (opt_mode == MODE_DIRECT)
			return fprintf(stderr, "miresga-fe: direct offload: %s\n", err), -1;
		fprintf(stderr, "miresga-fe: switch maps do not open (%s): offloads go over the "
			"channel\n", err);
		direct = 0;
	} else {
		fe_switch_close(&sw);
		direct = 1;
	}
	fprintf(stderr, "miresga-fe: offloads: %s%s\n", direct ? "direct, maps under " :
		opt_offl ? "channel " : "none (no switch pins, no offload socket)",
		direct ? opt_pins : opt_offl ? opt_offl : "");
	return 0;
}

/* A shard's own offload path: its switch map fds (direct) or its bound socket. */
static int shard_offload(struct fe_shard *s)
{
	char err[256];

	s->sw = (struct fe_switch){-1, -1, -1, -1};
	s->offl_fd = -1;
	if (direct) {
		if (fe_switch_open(&s->sw, opt_pins, err, sizeof(err)))
			return fprintf(stderr, "miresga-fe: direct offload: %s\n", err), -1;
		s->direct = 1;
		return 0;
	}
	if (!opt_offl)
		return 0;
	/* each shard binds <offload socket>.<queue> so the controller can answer (acks);
	 * a path, not an abstract address: those do not cross network namespaces */
	snprintf(s->offl_path, sizeof(s->offl_path), "%s.%u", opt_offl, s->idx);
	s->offl_fd = unix_dgram(s->offl_path, opt_offl);
	if (s->offl_fd < 0)
		return fprintf(stderr, "miresga-fe: offload socket %s: %s\n", opt_offl,
			       strerror(errno)), -1;
	return 0;
}

static int port_init(uint16_t port, uint16_t nq, struct rte_mempool *pool)
{
	struct rte_eth_conf conf = {0};
	struct rte_eth_dev_info info;
	int r = rte_eth_dev_info_get(port, &info);

	if (r)
		return r;
	if (info.max_rx_queues < nq || info.max_tx_queues < nq) {
		fprintf(stderr, "miresga-fe: port %u has %u rx / %u tx queues, %u lcores need one "
			"pair each (af_packet vdev: qpairs=%u)\n", port, info.max_rx_queues,
			info.max_tx_queues, nq, nq);
		return -EINVAL;
	}
	if (nq > 1) {
		conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
		conf.rx_adv_conf.rss_conf.rss_hf = RTE_ETH_RSS_IP & info.flow_type_rss_offloads;
	}
	if ((r = rte_eth_dev_configure(port, nq, nq, &conf)))
		return r;
	for (uint16_t q = 0; q < nq; q++) {
		if ((r = rte_eth_rx_queue_setup(port, q, NB_DESC, rte_eth_dev_socket_id(port), NULL,
						pool)) ||
		    (r = rte_eth_tx_queue_setup(port, q, NB_DESC, rte_eth_dev_socket_id(port), NULL)))
			return r;
	}
	if ((r = rte_eth_dev_start(port)))
		return r;
	rte_eth_promiscuous_enable(port);  /* frames are addressed to the VIP's gateway */
	return 0;
}

int main(int argc, char **argv)
{
	int ret = rte_eal_init(argc, argv);
	struct rte_mempool *pool;
	struct rte_ether_addr mac;
	unsigned lcore, i = 0;
	int rc = 1;

	if (ret < 0) {
		fprintf(stderr, "miresga-fe: EAL init failed: %s\n", rte_strerror(rte_errno));
		return 1;
	}
	if (parse_args(argc - ret, argv + ret))
		goto out;
	if (rte_eth_dev_count_avail() < 1) {
		fprintf(stderr, "miresga-fe: no ethdev port (give --vdev=net_af_packet0,iface=...)\n");
		goto out;
	}
	nshards = rte_lcore_count();
	if (nshards > FE_MAX_SHARDS) {
		fprintf(stderr, "miresga-fe: %u lcores given, at most %d\n", nshards, FE_MAX_SHARDS);
		goto out;
	}
	if (nshards > 1 && (ret = make_rings()))
		goto out;
	/* room for a 9000-byte MTU frame in one segment: the stage takes single segments */
	pool = rte_pktmbuf_pool_create("mfe_pool", 2048 * nshards, 128, 0,
				       FE_FRAME_MAX + RTE_PKTMBUF_HEADROOM, rte_socket_id());
	if (!pool) {
		fprintf(stderr, "miresga-fe: mbuf pool: %s\n", rte_strerror(rte_errno));
		goto out;
	}
	if ((ret = port_init(0, (uint16_t)nshards, pool))) {
		fprintf(stderr, "miresga-fe: port 0 setup failed: %s\n", rte_strerror(-ret));
		goto out;
	}
	rte_eth_macaddr_get(0, &mac);
	find_wake_fds();
	fprintf(stderr, "miresga-fe: idle wait: %s\n",
		nwake ? "poll on the packet sockets" : "sleep");
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	if (choose_offload_mode())
		goto out;
	if (opt_ctl && (ctl_fd = unix_dgram(opt_ctl, NULL)) < 0) {
		fprintf(stderr, "miresga-fe: control socket %s: %s\n", opt_ctl, strerror(errno));
		goto out;
	}
	RTE_LCORE_FOREACH(lcore) {
		struct fe_shard *s = calloc(1, sizeof(*s));

		if (!s || !(s->m = mfe_new()) || fe_load_config(s->m, opt_config))
			goto out;
		s->port = 0;
		s->queue = (uint16_t)i;
		s->idx = i;
		s->nshards = nshards;
		s->rings = rings;
		s->pool = pool;
		memcpy(s->own_mac, mac.addr_bytes, 6);
		memcpy(s->gw_mac, gw_mac, 6);
		shards[i++] = s;  /* before the offload path: freed on the way out if it fails */
		if (shard_offload(s))
			goto out;
	}
	fprintf(stderr, "miresga-fe: %u shard(s) on port 0, running\n", nshards);
	i = 0;
	RTE_LCORE_FOREACH_WORKER(lcore)
		rte_eal_remote_launch(lcore_loop, shards[++i], lcore);
	lcore_loop(shards[0]);
	rte_eal_mp_wait_lcore();
	write_stats();
	rc = 0;
	rte_eth_dev_stop(0);
	rte_eth_dev_close(0);
out:
	for (i = 0; i < nshards; i++)
		if (shards[i]) {
			mfe_free(shards[i]->m);
			fe_switch_close(&shards[i]->sw);
			if (shards[i]->offl_fd >= 0) {
				close(shards[i]->offl_fd);
				unlink(shards[i]->offl_path);
			}
			free(shards[i]);
		}
	if (ctl_fd >= 0) {
		close(ctl_fd);
		unlink(opt_ctl);
	}
	for (i = 0; i < nshards && i < FE_MAX_SHARDS; i++)
		if (rings[i]) {
			struct rte_mbuf *mb = NULL;

			while (!rte_ring_dequeue(rings[i], (void **)&mb))
				rte_pktmbuf_free(mb);
			rte_ring_free(rings[i]);
		}
	rte_eal_cleanup();
	return rc;
}
