/* mvm_run -- run a compiled program on inputs; the C side of the golden vector tests.
 *
 *   mvm_run PROGRAM [INPUTS]          print "ok" or "refused: <reason>", then one result
 *                                     line per input record
 *   mvm_run -n COUNT PROGRAM INPUTS   the same for COUNT decisions (for valgrind counts)
 *   mvm_run -b SECONDS PROGRAM INPUTS run the inputs round robin for SECONDS of CPU time, print
 *                                     "decisions=N seconds=S rate=R" (bench/vm)
 *
 * INPUTS is a sequence of records: u32 length, u8 nargs, nargs x i64 (r0..), bytes. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mvm.h"

struct rec { const uint8_t *data; uint32_t len; int nargs; int64_t args[MVM_NARGS]; };

static uint8_t *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	size_t cap = 0, n = 0, got;

	if (!f)
		return NULL;
	do {
		if (n == cap) {
			cap = cap ? cap * 2 : 4096;
			uint8_t *nb = realloc(buf, cap);
			if (!nb) {
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = nb;
		}
		got = fread(buf + n, 1, cap - n, f);
		n += got;
	} while (got);
	fclose(f);
	*len = n;
	return buf;
}

static int parse_inputs(const uint8_t *b, size_t len, struct rec **out, size_t *count)
{
	size_t pos = 0, n = 0, cap = 0;
	struct rec *recs = NULL;

	while (pos < len) {
		struct rec r = { 0 };
		if (len - pos < 5)
			goto bad;
		memcpy(&r.len, b + pos, 4);
		r.nargs = b[pos + 4];
		pos += 5;
		if (r.nargs > MVM_NARGS || len - pos < (size_t)r.nargs * 8)
			goto bad;
		memcpy(r.args, b + pos, (size_t)r.nargs * 8);
		pos += (size_t)r.nargs * 8;
		if (len - pos < r.len)
			goto bad;
		/* a private copy per input, so ASan sees reads past its end */
		uint8_t *copy = malloc(r.len ? r.len : 1);
		if (!copy)
			goto bad;
		memcpy(copy, b + pos, r.len);
		r.data = copy;
		pos += r.len;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			struct rec *nr = realloc(recs, cap * sizeof(*recs));
			if (!nr)
				goto bad;
			recs = nr;
		}
		recs[n++] = r;
	}
	*out = recs;
	*count = n;
	return 0;
bad:
	free(recs);
	return -1;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);  /* CPU time: the machine may be shared */
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int bench(const struct mvm_prog *p, const struct rec *recs, size_t n, double seconds,
		 unsigned long long count)
{
	struct mvm_result res;
	unsigned long long done = 0, sink = 0;
	double start = now(), t = start;

	while (count ? done < count : t - start < seconds) {
		for (int k = 0; k < 1000; k++) {
			const struct rec *r = &recs[done % n];
			mvm_exec(p, r->data, r->len, r->args, r->nargs, &res);
			sink += (unsigned)res.kind + (unsigned)res.decision;
			done++;
		}
		t = now();
	}
	printf("decisions=%llu seconds=%.3f rate=%.0f sink=%llu\n", done, t - start,
	       done / (t - start), sink);
	return 0;
}

int main(int argc, char **argv)
{
	double seconds = -1;
	unsigned long long count = 0;
	size_t plen = 0, ilen = 0, n = 0;
	struct mvm_prog *p;
	struct rec *recs = NULL;
	char err[256], line[1024];

	if (argc > 2 && strcmp(argv[1], "-b") == 0) {
		seconds = atof(argv[2]);
		argv += 2;
		argc -= 2;
	} else if (argc > 2 && strcmp(argv[1], "-n") == 0) {
		count = strtoull(argv[2], NULL, 10);
		seconds = 0;
		argv += 2;
		argc -= 2;
	}
	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: mvm_run [-b SECONDS | -n COUNT] PROGRAM [INPUTS]\n");
		return 2;
	}
	uint8_t *prog = slurp(argv[1], &plen);
	if (!prog) {
		fprintf(stderr, "mvm_run: cannot read %s\n", argv[1]);
		return 2;
	}
	if (mvm_load(prog, plen, &p, err, sizeof(err)) < 0) {
		printf("refused: %s\n", err);
		free(prog);
		return 1;
	}
	free(prog);
	if (argc == 3) {
		uint8_t *in = slurp(argv[2], &ilen);
		if (!in || parse_inputs(in, ilen, &recs, &n) < 0) {
			fprintf(stderr, "mvm_run: bad inputs file %s\n", argv[2]);
			free(in);
			mvm_free(p);
			return 2;
		}
		free(in);
	}
	if (seconds >= 0) {
		if (!n) {
			fprintf(stderr, "mvm_run: -b needs inputs\n");
			return 2;
		}
		bench(p, recs, n, seconds, count);
	} else {
		printf("ok\n");
		for (size_t i = 0; i < n; i++) {
			struct mvm_result res;
			mvm_exec(p, recs[i].data, recs[i].len, recs[i].args, recs[i].nargs, &res);
			mvm_format_result(&res, line, sizeof(line));
			printf("%s\n", line);
		}
	}
	for (size_t i = 0; i < n; i++)
		free((void *)recs[i].data);
	free(recs);
	mvm_free(p);
	return 0;
}
