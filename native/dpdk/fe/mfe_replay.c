/* mfe_replay -- run a recorded front-end trace through the C machine, DPDK-free.
 *
 *   mfe_replay CONFIG TRACE [REPEAT]
 *
 * TRACE is binary (miresga_core/dpdk/tracebin.py writes it): records of
 *   u8 kind (0 packet, 1 timers) | i64 now_ns | u32 len | len bytes       (little-endian)
 * Prints the FNV-1a 64 digest of every output record (the action stream of fe_machine.h,
 * each call's output prefixed by its u32 length), the packet count and the machine's
 * packets per second on one core (best of REPEAT runs, each on a fresh machine). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fe_config.h"
#include "fe_machine.h"

static uint64_t fnv(uint64_t h, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ULL;
	return h;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	FILE *f;
	uint8_t *buf;
	long size;
	int repeat = argc > 3 ? atoi(argv[3]) : 1;
	double best = 1e30;
	uint64_t digest = 0, packets = 0;

	if (argc < 3) {
		fprintf(stderr, "usage: mfe_replay CONFIG TRACE [REPEAT]\n");
		return 2;
	}
	f = fopen(argv[2], "rb");
	if (!f) {
		perror(argv[2]);
		return 2;
	}
	fseek(f, 0, SEEK_END);
	size = ftell(f);
	rewind(f);
	buf = malloc(size > 0 ? (size_t)size : 1);
	if (!buf || fread(buf, 1, (size_t)size, f) != (size_t)size) {
		fprintf(stderr, "mfe_replay: cannot read %s\n", argv[2]);
		return 2;
	}
	fclose(f);
	for (int r = 0; r < (repeat > 0 ? repeat : 1); r++) {
		struct mfe *m = mfe_new();
		uint64_t h = 0xcbf29ce484222325ULL, n = 0;
		double t0;
		long i = 0;

		if (!m || fe_load_config(m, argv[1]))
			return 2;
		t0 = now_s();
		while (i + 13 <= size) {
			int64_t t;
			uint32_t len;
			size_t olen;
			const uint8_t *o;
			uint8_t l4[4];

			memcpy(&t, buf + i + 1, 8);
			memcpy(&len, buf + i + 9, 4);
			if (i + 13 + (long)len > size) {
				fprintf(stderr, "mfe_replay: truncated record at %ld\n", i);
				return 2;
			}
			if (buf[i] == 0) {
				mfe_receive(m, buf + i + 13, len, t);
				n++;
			} else {
				mfe_expire(m, t);
			}
			o = mfe_out(m, &olen);
			memcpy(l4, &(uint32_t){(uint32_t)olen}, 4);
			h = fnv(fnv(h, l4, 4), o, olen);
			i += 13 + (long)len;
		}
		t0 = now_s() - t0;
		best = t0 < best ? t0 : best;
		digest = h;
		packets = n;
		mfe_free(m);
	}
	free(buf);
	printf("digest %016llx packets %llu pps %.0f\n", (unsigned long long)digest,
	       (unsigned long long)packets, packets / best);
	return 0;
}
