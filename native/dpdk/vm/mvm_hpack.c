/* mvm_hpack.c -- the HPACK helpers (ids 16..19), mirroring miresga_core/bytecode/hpack_vm.py
 * decision for decision (which mirrors the hpack package, the prototype's decoder). Theory
 * of operation: the decoder reads the block with explicit bounds (every read checks the
 * remaining length), writes names and values into the scratch area (refusing, not
 * truncating, when it is full) and keeps the dynamic table as scratch slices, newest first.
 * The Huffman state machine and the static table are generated (mvm_hpack_tables.h). */
#include <string.h>

#include "mvm_internal.h"
#include "mvm_hpack_tables.h"

#define VARINT_MAX 5
#define NDYN (MVM_HPACK_TABLE_SIZE / 32)    /* an entry costs at least 32 bytes */

enum { BAD = -1, OVERSIZE = -2, FULL = -3 };

struct dec {
	const uint8_t *blk;
	int64_t n;
	struct mvm_scr *sc;
	struct mvm_hfield dyn[NDYN];    /* name/value slices only (noff, nlen, voff, vlen) */
	int ndyn;
	int64_t size, maxsize;
	int err;
};

/* prefix-bit integer at pos; returns the next position or -1 with d->err set */
static int64_t integer(struct dec *d, int64_t pos, int prefix, int64_t *value)
{
	if (pos >= d->n)
		return d->err = BAD, -1;
	int64_t top = (1 << prefix) - 1, v = d->blk[pos] & top, used = 1, shift = 0;
	if (v == top) {
		for (;;) {
			if (pos + used >= d->n)
				return d->err = BAD, -1;
			uint8_t octet = d->blk[pos + used++];
			v += (int64_t)(octet & 127) << shift;
			if (octet < 128)
				break;
			shift += 7;
			if (used > VARINT_MAX)
				return d->err = BAD, -1;
		}
	}
	*value = v;
	return pos + used;
}

static int put(struct dec *d, const uint8_t *p, int64_t n, uint32_t *off)
{
	struct mvm_scr *sc = d->sc;
	if (n > MVM_SCRATCH_LEN - sc->used)
		return d->err = FULL, -1;
	if (n)
		memcpy(sc->buf + sc->used, p, (size_t)n);
	*off = sc->used;
	sc->used += (uint32_t)n;
	return 0;
}

static int huffman(struct dec *d, const uint8_t *p, int64_t n, uint32_t *off, uint32_t *len)
{
	struct mvm_scr *sc = d->sc;
	uint32_t start = sc->used, at = start;
	uint8_t state = 0, flags = 0;
	int full = 0;

	if (n == 0)
		return *off = start, *len = 0, 0;
	/* like hpack_vm: the whole string decodes (BAD wins) before the scratch limit counts */
	for (int64_t i = 0; i < n; i++) {
		for (int half = 0; half < 2; half++) {
			uint8_t nib = half ? p[i] & 15 : p[i] >> 4;
			const struct mvm_huff *t = &mvm_huff_fsm[state * 16 + nib];
			state = t->state;
			flags = t->flags;
			if (flags & 4)
				return d->err = BAD, -1;
			if (flags & 2) {
				if (at < MVM_SCRATCH_LEN)
					sc->buf[at++] = t->sym;
				else
					full = 1;
			}
		}
	}
	if (!(flags & 1))
		return d->err = BAD, -1;
	if (full)
		return d->err = FULL, -1;
	sc->used = at;
	*off = start;
	*len = at - start;
	return 0;
}

/* a length-prefixed, maybe Huffman-coded string at pos -> scratch slice; next position */
static int64_t string(struct dec *d, int64_t pos, uint32_t *off, uint32_t *len)
{
	int64_t n, start = integer(d, pos, 7, &n);
	if (start < 0)
		return -1;
	if (n > d->n - start)
		return d->err = BAD, -1;
	if (d->blk[pos] & 0x80) {
		if (huffman(d, d->blk + start, n, off, len))
			return -1;
	} else {
		if (put(d, d->blk + start, n, off))
			return -1;
		*len = (uint32_t)n;
	}
	return start + n;
}

/* table entry index -> field; name_only: copy only a static entry's name */
static int entry(struct dec *d, int64_t index, struct mvm_hfield *f, int name_only)
{
	if (index >= 1 && index <= MVM_HPACK_NSTATIC) {
		const struct mvm_hpack_static *e = &mvm_hpack_static[index - 1];
		f->nlen = e->nlen;
		if (put(d, (const uint8_t *)e->name, e->nlen, &f->noff))
			return -1;
		if (name_only)
			return 0;
		f->vlen = e->vlen;
		return put(d, (const uint8_t *)e->value, e->vlen, &f->voff);
	}
	int64_t k = index - MVM_HPACK_NSTATIC - 1;
	if (k < 0 || k >= d->ndyn)
		return d->err = BAD, -1;
	*f = d->dyn[k];
	return 0;
}

static void evict(struct dec *d)
{
	while (d->size > d->maxsize) {
		const struct mvm_hfield *e = &d->dyn[--d->ndyn];
		d->size -= (int64_t)e->nlen + e->vlen + 32;
	}
}

static void add(struct dec *d, const struct mvm_hfield *f)
{
	int64_t size = (int64_t)f->nlen + f->vlen + 32;
	if (size > d->maxsize) {
		d->ndyn = 0;
		d->size = 0;
		return;
	}
	/* size <= maxsize <= 4096 and every entry >= 32 bytes: at most NDYN after evict, so
	 * one free slot before evicting is enough when the table is full */
	if (d->ndyn == NDYN) {
		const struct mvm_hfield *e = &d->dyn[--d->ndyn];
		d->size -= (int64_t)e->nlen + e->vlen + 32;
	}
	memmove(&d->dyn[1], &d->dyn[0], sizeof(d->dyn[0]) * (size_t)d->ndyn);
	d->dyn[0] = *f;
	d->ndyn++;
	d->size += size;
	evict(d);
}

static int64_t literal(struct dec *d, int64_t pos, int prefix, struct mvm_hfield *f)
{
	int64_t index, nxt = integer(d, pos, prefix, &index);
	if (nxt < 0)
		return -1;
	if (index) {
		if (entry(d, index, f, 1))
			return -1;
	} else if ((nxt = string(d, pos + 1, &f->noff, &f->nlen)) < 0) {
		return -1;
	}
	return string(d, nxt, &f->voff, &f->vlen);
}

static int decode(struct dec *d, int64_t limit)
{
	struct mvm_scr *sc = d->sc;
	int64_t pos = 0, inflated = 0;

	while (pos < d->n) {
		uint8_t first = d->blk[pos];
		struct mvm_hfield f;
		if (first & 0x80) {
			int64_t index;
			if ((pos = integer(d, pos, 7, &index)) < 0 || entry(d, index, &f, 0))
				return d->err;
		} else if (first & 0x40) {
			if ((pos = literal(d, pos, 6, &f)) < 0)
				return d->err;
			add(d, &f);
		} else if (first & 0x20) {
			int64_t newmax;
			if (sc->nf)
				return BAD;     /* size updates only at the start of a block */
			if ((pos = integer(d, pos, 5, &newmax)) < 0)
				return d->err;
			if (newmax > MVM_HPACK_TABLE_SIZE)
				return BAD;
			d->maxsize = newmax;
			evict(d);
			continue;
		} else if ((pos = literal(d, pos, 4, &f)) < 0) {
			return d->err;
		}
		inflated += (int64_t)f.nlen + f.vlen + 32;
		/* same order as hpack_vm: the list grows, then the size and count checks */
		if (sc->nf < MVM_MAX_HFIELDS)
			sc->f[sc->nf] = f;
		sc->nf++;
		if (inflated > limit)
			return OVERSIZE;
		if (sc->nf > MVM_MAX_HFIELDS)
			return FULL;
	}
	return (int)sc->nf;
}

void mvm_hpack_decode(const uint8_t *blk, int64_t n, int64_t limit, struct mvm_scr *sc,
		      int64_t *r)
{
	struct dec d = { .blk = blk, .n = n, .sc = sc, .maxsize = MVM_HPACK_TABLE_SIZE };

	sc->nf = 0;
	int rc = decode(&d, limit);
	if (rc < 0)
		sc->nf = 0;
	r[0] = rc;
}

void mvm_hpack_find(const struct mvm_prog *p, struct mvm_scr *sc, int64_t *r, struct sl *s)
{
	s[0] = (struct sl){ 0, 0 };
	if (r[1] < 0 || r[1] >= p->n_consts) {
		r[0] = -1;
		return;
	}
	const struct mvm_bytes *want = &p->consts[r[1]];
	for (uint32_t i = 0; i < sc->nf; i++) {
		const struct mvm_hfield *f = &sc->f[i];
		if (f->nlen == want->len && (!f->nlen || !memcmp(sc->buf + f->noff, want->p, f->nlen))) {
			r[0] = 1;
			s[0] = (struct sl){ MVM_SCRATCH_BASE + f->voff, f->vlen };
			return;
		}
	}
	r[0] = 0;
}

void mvm_hpack_field(struct mvm_scr *sc, int64_t *r, struct sl *s)
{
	if (r[1] >= 0 && r[1] < sc->nf) {
		const struct mvm_hfield *f = &sc->f[r[1]];
		r[0] = 1;
		s[0] = (struct sl){ MVM_SCRATCH_BASE + f->noff, f->nlen };
		s[2] = (struct sl){ MVM_SCRATCH_BASE + f->voff, f->vlen };
	} else {
		r[0] = 0;
		s[0] = s[2] = (struct sl){ 0, 0 };
	}
}

void mvm_scr_cat(const uint8_t *head, const uint8_t *tail, struct mvm_scr *sc, int64_t *r,
		 struct sl *s)
{
	int64_t end = MVM_SCRATCH_BASE + sc->used;
	int at_end = s[0].len > 0 && s[0].off + s[0].len == end;
	int64_t need = s[1].len + (at_end ? 0 : s[0].len);

	if (need > MVM_SCRATCH_LEN - sc->used) {
		r[0] = 0;
		return;
	}
	int64_t start = at_end ? s[0].off : end;
	/* memmove: head or tail may already be scratch bytes */
	if (!at_end && s[0].len) {
		memmove(sc->buf + sc->used, head, (size_t)s[0].len);
		sc->used += (uint32_t)s[0].len;
	}
	if (s[1].len)
		memmove(sc->buf + sc->used, tail, (size_t)s[1].len);
	sc->used += (uint32_t)s[1].len;
	r[0] = 1;
	s[0] = (struct sl){ start, s[0].len + s[1].len };
}
