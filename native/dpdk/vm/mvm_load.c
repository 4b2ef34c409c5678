/* mvm_load.c -- parse the serialized program container (layout: docs/bytecode.md and
 * miresga_core/bytecode/program.py) into struct mvm_prog, then run mvm_validate.
 * Every refusal message matches program.decode() word for word. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mvm.h"

struct rd { const uint8_t *p; size_t len, pos; };

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

/* take n bytes or report which section is truncated */
static const uint8_t *take(struct rd *r, size_t n)
{
	const uint8_t *at;

	if (r->len - r->pos < n)
		return NULL;
	at = r->p + r->pos;
	r->pos += n;
	return at;
}

static uint16_t le16(const uint8_t *b) { return (uint16_t)(b[0] | b[1] << 8); }
static uint32_t le32(const uint8_t *b)
{
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

#define TAKE(ptr, n, what) do { \
	if (!((ptr) = take(&r, (n)))) { \
		fail(err, errlen, "truncated program (%s)", what); \
		goto bad; \
	} } while (0)

#define LIMIT(n, max, what) do { \
	if ((n) > (max)) { \
		fail(err, errlen, "too many %s (%u > %u)", what, (unsigned)(n), (unsigned)(max)); \
		goto bad; \
	} } while (0)

void mvm_free(struct mvm_prog *p)
{
	if (!p)
		return;
	if (p->tables)
		for (uint32_t i = 0; i < p->n_tables; i++)
			free(p->tables[i].v);
	if (p->consts)
		for (uint32_t i = 0; i < p->n_consts; i++)
			free(p->consts[i].cls), free(p->consts[i].words);
	free(p->code);
	free(p->consts);
	free(p->tables);
	free(p->decisions);
	free(p->blob);
	free(p);
}

static int load_code(struct mvm_prog *p, struct rd *rp, char *err, size_t errlen)
{
	struct rd r = *rp;
	const uint8_t *b;

	for (uint32_t i = 0; i < p->n_insns; i++) {
		TAKE(b, 12, "code");
		p->code[i] = (struct mvm_insn){ b[0], b[1], b[2], b[3], (int32_t)le32(b + 4),
						le32(b + 8) };
	}
	*rp = r;
	return 0;
bad:
	return -1;
}

static int load_data(struct mvm_prog *p, struct rd *rp, char *err, size_t errlen)
{
	struct rd r = *rp;
	const uint8_t *b;

	for (uint32_t i = 0; i < p->n_consts; i++) {
		TAKE(b, 4, "consts");
		uint32_t n = le32(b);
		if (n > MVM_MAX_CONST_LEN)
			return fail(err, errlen, "const %u too long (%u > %u)", i, n, MVM_MAX_CONST_LEN);
		TAKE(b, n, "consts");
		p->consts[i] = (struct mvm_bytes){ b, n, NULL, 0, NULL };
		if (n == MVM_CLASS_LEN) {  /* byte lookups are faster than bit tests in scans */
			p->consts[i].cls = malloc(256);
			if (!p->consts[i].cls)
				return fail(err, errlen, "out of memory");
			for (int c = 0; c < 256; c++)
				p->consts[i].cls[c] = b[c >> 3] >> (c & 7) & 1;
		}
	}
	for (uint32_t i = 0; i < p->n_tables; i++) {
		TAKE(b, 4, "tables");
		uint32_t n = le32(b);
		if (n == 0 || n > MVM_MAX_TABLE_LEN)
			return fail(err, errlen, "table %u length %u outside 1..%u", i, n,
				    MVM_MAX_TABLE_LEN);
		TAKE(b, (size_t)n * 4, "tables");
		p->tables[i].v = malloc((size_t)n * sizeof(uint32_t));
		if (!p->tables[i].v)
			return fail(err, errlen, "out of memory");
		p->tables[i].len = n;
		for (uint32_t k = 0; k < n; k++)
			p->tables[i].v[k] = le32(b + 4 * k);
	}
	for (uint32_t i = 0; i < p->n_pools; i++) {
		TAKE(b, 1, "pools");
		const uint8_t *name;
		TAKE(name, b[0], "pools");
		(void)name;
	}
	for (uint32_t i = 0; i < p->n_decisions; i++) {
		TAKE(b, 4, "decisions");
		uint16_t pool = le16(b);
		if (pool >= p->n_pools)
			return fail(err, errlen, "decision %u: pool %u out of range (%u pools)", i,
				    pool, p->n_pools);
		if (b[2] >= MVM_NOFFLOAD)
			return fail(err, errlen, "decision %u: bad offload mode %u", i, b[2]);
		p->decisions[i] = (struct mvm_decision){ pool, b[2] };
		const uint8_t *name;
		TAKE(name, b[3], "decisions");
		(void)name;
	}
	*rp = r;
	return 0;
bad:
	return -1;
}

/* lookupi compares against the names of a NUL-separated constant: split them once */
static int split_words(struct mvm_prog *p, char *err, size_t errlen)
{
	for (uint32_t pc = 0; pc < p->n_insns; pc++) {
		if (p->code[pc].op != MVM_OP_LOOKUPI)
			continue;
		struct mvm_bytes *k = &p->consts[p->code[pc].imm];
		if (k->words)
			continue;
		uint32_t n = 1, w = 0, start = 0;
		for (uint32_t i = 0; i < k->len; i++)
			n += k->p[i] == 0;
		k->words = malloc(sizeof(uint32_t) * 2 * n);
		if (!k->words)
			return fail(err, errlen, "out of memory");
		for (uint32_t i = 0; i <= k->len; i++) {
			if (i < k->len && k->p[i] != 0)
				continue;
			k->words[2 * w] = start;
			k->words[2 * w + 1] = i - start;
			w++;
			start = i + 1;
		}
		k->nwords = n;
	}
	return 0;
}

int mvm_load(const uint8_t *buf, size_t len, struct mvm_prog **out, char *err, size_t errlen)
{
	struct mvm_prog *p = calloc(1, sizeof(*p));
	struct rd r = { NULL, len, 0 };
	const uint8_t *h;

	*out = NULL;
	if (!p)
		return fail(err, errlen, "out of memory");
	p->blob = malloc(len ? len : 1);
	if (!p->blob) {
		fail(err, errlen, "out of memory");
		goto bad;
	}
	if (len)
		memcpy(p->blob, buf, len);
	r.p = p->blob;
	TAKE(h, 32, "header");
	if (memcmp(h, MVM_MAGIC, 4) != 0) {
		fail(err, errlen, "bad magic (not an MVM program)");
		goto bad;
	}
	p->version = le16(h + 4);
	p->helper_abi = le16(h + 6);
	p->loop_budget = le32(h + 8);
	p->n_insns = le32(h + 12);
	p->n_consts = le32(h + 16);
	p->n_tables = le32(h + 20);
	p->n_pools = le32(h + 24);
	p->n_decisions = le32(h + 28);
	if (p->version != MVM_FMT_VERSION) {
		fail(err, errlen, "unsupported format version %u (this VM: %u)", p->version,
		     MVM_FMT_VERSION);
		goto bad;
	}
	if (p->helper_abi > MVM_HELPER_ABI) {
		fail(err, errlen, "unsupported helper ABI %u (this VM: %u)", p->helper_abi,
		     MVM_HELPER_ABI);
		goto bad;
	}
	if (p->loop_budget > MVM_MAX_LOOP_BUDGET) {
		fail(err, errlen, "loop budget %u exceeds %u", p->loop_budget, MVM_MAX_LOOP_BUDGET);
		goto bad;
	}
	if (p->n_insns == 0) {
		fail(err, errlen, "empty program");
		goto bad;
	}
	LIMIT(p->n_insns, MVM_MAX_INSNS, "instructions");
	LIMIT(p->n_consts, MVM_MAX_CONSTS, "constants");
	LIMIT(p->n_tables, MVM_MAX_TABLES, "tables");
	LIMIT(p->n_pools, MVM_MAX_POOLS, "pools");
	LIMIT(p->n_decisions, MVM_MAX_DECISIONS, "decisions");
	p->code = calloc(p->n_insns, sizeof(*p->code));
	p->consts = calloc(p->n_consts + 1, sizeof(*p->consts));
	p->tables = calloc(p->n_tables + 1, sizeof(*p->tables));
	p->decisions = calloc(p->n_decisions + 1, sizeof(*p->decisions));
	if (!p->code || !p->consts || !p->tables || !p->decisions) {
		fail(err, errlen, "out of memory");
		goto bad;
	}
	if (load_code(p, &r, err, errlen) < 0 || load_data(p, &r, err, errlen) < 0)
		goto bad;
	if (r.pos != r.len) {
		fail(err, errlen, "%zu trailing bytes after program", r.len - r.pos);
		goto bad;
	}
	if (mvm_validate(p, err, errlen) < 0 || split_words(p, err, errlen) < 0)
		goto bad;
	*out = p;
	return 0;
bad:
	mvm_free(p);
	return -1;
}
