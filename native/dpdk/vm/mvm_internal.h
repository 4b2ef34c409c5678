/* mvm_internal.h -- run state shared by the interpreter (mvm_exec.c) and the HPACK
 * helpers (mvm_hpack.c). Not part of the public API (mvm.h). */
#ifndef MVM_INTERNAL_H
#define MVM_INTERNAL_H

#include "mvm.h"

/* slice registers: offset and length; offsets >= MVM_SCRATCH_BASE are in the scratch area */
struct sl { int64_t off, len; };

/* a decoded HPACK field: scratch-relative offsets */
struct mvm_hfield { uint32_t noff, nlen, voff, vlen; };

/* The per-run scratch area: a bump allocator (helpers only append, slices only cover
 * written bytes), plus the fields of the last hpack_decode. Only used/nf are initialised
 * per run: nothing reads past used. */
struct mvm_scr {
	uint32_t used, nf;
	uint8_t buf[MVM_SCRATCH_LEN];
	struct mvm_hfield f[MVM_MAX_HFIELDS];
};

void mvm_hpack_decode(const uint8_t *blk, int64_t n, int64_t limit, struct mvm_scr *sc,
		      int64_t *r);
void mvm_hpack_find(const struct mvm_prog *p, struct mvm_scr *sc, int64_t *r, struct sl *s);
void mvm_hpack_field(struct mvm_scr *sc, int64_t *r, struct sl *s);
void mvm_scr_cat(const uint8_t *head, const uint8_t *tail, struct mvm_scr *sc, int64_t *r,
		 struct sl *s);

#endif /* MVM_INTERNAL_H */
