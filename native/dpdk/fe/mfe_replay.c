/* mfe_replay -- run a recorded front-end trace through the C machine, DPDK-free.
 *
 *   mfe_replay CONFIG TRACE [REPEAT [SHARDS]]
 *
 * TRACE is binary (miresga_core/dpdk/tracebin.py writes it): records of
 *   u8 kind (0 packet, 1 timers) | i64 now_ns | u32 len | len bytes       (little-endian)
 * Prints the FNV-1a 64 digest of every output record (the action stream of fe_machine.h,
 * each call's output prefixed by its u32 length), the packet count and the machine's
 * packets per second (best of REPEAT runs, each on fresh machines).
 *
 * SHARDS > 1 is miresga-fe's multi-lcore path without DPDK: one machine per shard, each
 * on its own thread, each taking the packets fe_steer.h gives it (and every timer
 * record); it prints one digest per shard (digest0 ...) over that shard's calls, and the
 * packets per second of all shards together (wall clock) and per core (each thread's
 * packets over its own CPU time: what one core does, whatever else shares the machine).
 * Every thread steers every packet of the trace (miresga-fe steers each once), so
 * steering is counted SHARDS times. Machines are configured before the clock starts. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fe_config.h"
#include "fe_machine.h"
#include "fe_steer.h"

#define MAX_SHARDS 64

struct run {
	struct mfe *m;
	const uint8_t *buf;
	long size;
	unsigned shard, nshards;
	uint64_t digest, packets;
	double cpu_s;
	int failed;
};

static uint64_t fnv(uint64_t h, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ULL;
	return h;
}

static double clock_s(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* One shard's pass over the trace (the whole trace when nshards is 1). */
static void *run_shard(void *arg)
{
	struct run *r = arg;
	struct mfe *m = r->m;
	uint64_t h = 0xcbf29ce484222325ULL, n = 0;
	double cpu0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
	long i = 0;

	while (i + 13 <= r->size) {
		const uint8_t *rec = r->buf + i;
		int64_t t;
		uint32_t len;
		size_t olen;
		const uint8_t *o;
		uint8_t l4[4];

		memcpy(&t, rec + 1, 8);
		memcpy(&len, rec + 9, 4);
		if (i + 13 + (long)len > r->size) {
			fprintf(stderr, "mfe_replay: truncated record at %ld\n", i);
			r->failed = 1;
			break;
		}
		i += 13 + (long)len;
		if (rec[0] == 0) {
			int owner = r->nshards > 1 ? mfe_steer(m, rec + 13, len, r->nshards) : 0;

			if ((owner < 0 ? 0u : (unsigned)owner) != r->shard)
				continue;  /* another shard's packet */
			mfe_receive(m, rec + 13, len, t);
			n++;
		} else {
			mfe_expire(m, t);
		}
		o = mfe_out(m, &olen);
		memcpy(l4, &(uint32_t){(uint32_t)olen}, 4);
		h = fnv(fnv(h, l4, 4), o, olen);
	}
	r->digest = h;
	r->packets = n;
	r->cpu_s = clock_s(CLOCK_THREAD_CPUTIME_ID) - cpu0;
	return NULL;
}

static uint8_t *read_file(const char *path, long *size)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf;

	if (!f) {
		perror(path);
		return NULL;
	}
	fseek(f, 0, SEEK_END);
	*size = ftell(f);
	rewind(f);
	buf = malloc(*size > 0 ? (size_t)*size : 1);
	if (buf && fread(buf, 1, (size_t)*size, f) != (size_t)*size) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	if (!buf)
		fprintf(stderr, "mfe_replay: cannot read %s\n", path);
	return buf;
}

int main(int argc, char **argv)
{
	static struct run runs[MAX_SHARDS];
	pthread_t th[MAX_SHARDS];
	int repeat = argc > 3 ? atoi(argv[3]) : 1;
	int nshards = argc > 4 ? atoi(argv[4]) : 1;
	double best = 1e30, best_core = 0;
	uint64_t packets = 0;
	uint8_t *buf;
	long size;

	if (argc < 3) {
		fprintf(stderr, "usage: mfe_replay CONFIG TRACE [REPEAT [SHARDS]]\n");
		return 2;
	}
	if (nshards < 1 || nshards > MAX_SHARDS) {
		fprintf(stderr, "mfe_replay: SHARDS must be 1..%d\n", MAX_SHARDS);
		return 2;
	}
	if (!(buf = read_file(argv[2], &size)))
		return 2;
	for (int rep = 0; rep < (repeat > 0 ? repeat : 1); rep++) {
		double t0, core = 0;

		for (int s = 0; s < nshards; s++) {
			runs[s] = (struct run){mfe_new(), buf, size, (unsigned)s, (unsigned)nshards,
					       0, 0, 0, 0};
			if (!runs[s].m || fe_load_config(runs[s].m, argv[1]))
				return 2;
		}
		t0 = clock_s(CLOCK_MONOTONIC);
		for (int s = 0; s < nshards; s++) {
			if (nshards == 1)
				run_shard(&runs[0]);
			else if (pthread_create(&th[s], NULL, run_shard, &runs[s]))
				return fprintf(stderr, "mfe_replay: pthread_create failed\n"), 2;
		}
		for (int s = 0; nshards > 1 && s < nshards; s++)
			pthread_join(th[s], NULL);
		t0 = clock_s(CLOCK_MONOTONIC) - t0;
		best = t0 < best ? t0 : best;
		packets = 0;
		for (int s = 0; s < nshards; s++) {
			if (runs[s].failed)
				return 2;
			packets += runs[s].packets;
			core += runs[s].cpu_s;
			mfe_free(runs[s].m);
		}
		core = packets / (core > 0 ? core : 1e-9);  /* packets per CPU-second */
		best_core = core > best_core ? core : best_core;
	}
	free(buf);
	if (nshards == 1) {
		printf("digest %016llx", (unsigned long long)runs[0].digest);
	} else {
		for (int s = 0; s < nshards; s++)
			printf("%sdigest%d %016llx packets%d %llu", s ? " " : "", s,
			       (unsigned long long)runs[s].digest, s,
			       (unsigned long long)runs[s].packets);
	}
	printf(" packets %llu pps %.0f pps_core %.0f\n", (unsigned long long)packets,
	       packets / best, best_core);
	return 0;
}
