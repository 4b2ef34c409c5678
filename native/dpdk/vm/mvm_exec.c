/* mvm_exec.c -- the interpreter. Theory of operation: one loop, one switch over the opcode
 * (libpcap's bpf_filter shape); each case is a few lines. The program was verified at load,
 * so register numbers, constant/table/decision indexes and jump targets are in range and the
 * loop ends (forward jumps + loop budget). What the input can influence is checked here:
 * slice bounds are clamped into the input, integer parsing reports overflow, arithmetic
 * wraps (done in uint64_t: no signed overflow). Semantics mirror vm.py line for line. */
#include <string.h>

#include "mvm_internal.h"

#define R(x) r[(x)]

/* Dispatch: computed goto through a table generated from opcodes.py (MVM_FOREACH_OP) where
 * the compiler has it, else the portable switch (build with -DMVM_NO_JUMPTABLE). Cases are
 * written once with VMCASE and end in NEXT / JUMP(pc) / JUMP_IF(cond). */
#if defined(__GNUC__) && !defined(MVM_NO_JUMPTABLE)
#define MVM_USE_JUMPTABLE 1
#define JT_ENTRY(n) &&L_##n,
#define VMCASE(n) case MVM_OP_##n: L_##n:
#define DISPATCH() do { sb = &s[in->b]; goto *jt[in->op]; } while (0)
#else
#define VMCASE(n) case MVM_OP_##n:
#define DISPATCH() continue
#endif
#define GO(target) { in = (target); DISPATCH(); }
#define NEXT GO(in + 1)
#define JUMP(pc) GO(code + (pc))
#define JUMP_IF(cond) GO((cond) ? code + in->j : in + 1)

static const uint8_t empty_input[1];

/* ASCII lower case as a table: no branch per byte in case-insensitive compares */
static const uint8_t lower_tab[256] = {
#define L1(c) ((c) >= 'A' && (c) <= 'Z' ? (c) + 32 : (c))
#define L4(c) L1(c), L1(c + 1), L1(c + 2), L1(c + 3)
#define L16(c) L4(c), L4(c + 4), L4(c + 8), L4(c + 12)
#define L64(c) L16(c), L16(c + 16), L16(c + 32), L16(c + 48)
	L64(0), L64(64), L64(128), L64(192)
#undef L64
#undef L16
#undef L4
#undef L1
};

static inline uint8_t lower(uint8_t c) { return lower_tab[c]; }

static inline int64_t clamp(int64_t v, int64_t lo, int64_t hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

static int eq_ci(const uint8_t *a, const uint8_t *b, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		if (lower(a[i]) != lower(b[i]))
			return 0;
	return 1;
}

static uint32_t fnv1a(const uint8_t *p, int64_t n, int ci)
{
	uint32_t h = 2166136261u;

	for (int64_t i = 0; i < n; i++)
		h = (h ^ (ci ? lower(p[i]) : p[i])) * 16777619u;
	return h;
}

/* cls: the 256-byte form of a class constant (mvm_load builds it) */
static inline int in_class(const uint8_t *cls, uint8_t c) { return cls[c]; }

static inline int same(const uint8_t *a, const uint8_t *b, uint32_t n)
{
	if (n > 16)
		return memcmp(a, b, n) == 0;
	for (uint32_t i = 0; i < n; i++)
		if (a[i] != b[i])
			return 0;
	return 1;
}

/* first occurrence of k (klen >= 1) in h: memchr for the first byte, then compare */
static const uint8_t *find_bytes(const uint8_t *h, int64_t n, const uint8_t *k, uint32_t klen)
{
	const uint8_t *end = h + n, *at;

	while (end - h >= (int64_t)klen && (at = memchr(h, k[0], (size_t)(end - h - klen + 1)))) {
		if (same(at + 1, k + 1, klen - 1))
			return at;
		h = at + 1;
	}
	return NULL;
}

/* length of the longest prefix of q[0..n) in cls; 4 bytes a step while all match */
static inline int64_t span(const uint8_t *cls, const uint8_t *q, int64_t n)
{
	int64_t i = 0;

	while (i + 4 <= n && (cls[q[i]] & cls[q[i + 1]] & cls[q[i + 2]] & cls[q[i + 3]]))
		i += 4;
	while (i < n && in_class(cls, q[i]))
		i++;
	return i;
}

/* where a slice's bytes are: the input, or the scratch area from MVM_SCRATCH_BASE up */
#define AT(x) ((x)->off >= MVM_SCRATCH_BASE ? sc.buf + ((x)->off - MVM_SCRATCH_BASE) : \
	       buf + (x)->off)

static void hdr_find(const struct mvm_prog *p, const uint8_t *blk, int64_t *r, struct sl *s)
{
	s[0] = (struct sl){ 0, 0 };
	if (r[1] < 0 || r[1] >= p->n_consts) {
		r[0] = -1;
		return;
	}
	const struct mvm_bytes *want = &p->consts[r[1]];
	int64_t n = s[1].len, pos = 0;

	while (pos < n) {
		const uint8_t *nl = memchr(blk + pos, '\n', (size_t)(n - pos));
		int64_t end = nl ? nl - blk : n;
		int64_t line_end = end > pos && blk[end - 1] == '\r' ? end - 1 : end;
		const uint8_t *colon = memchr(blk + pos, ':', (size_t)(line_end - pos));
		if (colon && colon - (blk + pos) == want->len && eq_ci(blk + pos, want->p, want->len)) {
			int64_t lo = colon - blk + 1, hi = line_end;
			while (lo < hi && (blk[lo] == ' ' || blk[lo] == '\t'))
				lo++;
			while (hi > lo && (blk[hi - 1] == ' ' || blk[hi - 1] == '\t'))
				hi--;
			r[0] = 1;
			s[0] = (struct sl){ s[1].off + lo, hi - lo };
			return;
		}
		pos = end + 1;
	}
	r[0] = 0;
}

void mvm_exec(const struct mvm_prog *p, const uint8_t *buf, size_t len, const int64_t *args,
	      int nargs, struct mvm_result *res)
{
	int64_t r[MVM_NREGS] = { 0 };
	struct sl s[MVM_NSREGS] = { { 0, 0 } };
	uint32_t budget = p->loop_budget;
	const struct mvm_insn *const code = p->code;
	/* inputs are capped below the scratch area's offsets (docs/bytecode.md) */
	const int64_t n = len < (size_t)MVM_SCRATCH_BASE ? (int64_t)len : MVM_SCRATCH_BASE - 1;
	struct mvm_scr sc;      /* only used/nf need a value: nothing reads past used */

	if (!buf)
		buf = empty_input;
	for (int i = 0; i < nargs && i < MVM_NARGS; i++)
		r[i] = args[i];
	s[0].len = n;
	sc.used = sc.nf = 0;
	memset(res, 0, sizeof(*res));
	res->decision = -1;
	res->out[MVM_F_BACKEND] = -1;

	const struct mvm_insn *in = code;
	const struct sl *sb;
#ifdef MVM_USE_JUMPTABLE
	static const void *const jt[MVM_OP__COUNT] = { MVM_FOREACH_OP(JT_ENTRY) };
	DISPATCH();
#endif
	for (;;) {
		sb = &s[in->b];
		switch (in->op) {
		VMCASE(NOP) NEXT;
		VMCASE(ROUTE)
			res->kind = MVM_ROUTE;
			res->decision = in->imm;
			return;
		VMCASE(NEEDMORE)
			res->kind = MVM_NEEDMORE;
			return;
		VMCASE(REJECT)
			res->kind = MVM_REJECT;
			res->status = in->imm;
			res->reason = p->consts[in->j].p;
			res->reason_len = p->consts[in->j].len;
			return;
		VMCASE(JMP) JUMP(in->j);
		VMCASE(LOOP)
			if (budget == 0) {
				static const char msg[] = "loop budget exhausted";
				res->kind = MVM_ERROR;
				res->reason = (const uint8_t *)msg;
				res->reason_len = sizeof(msg) - 1;
				return;
			}
			budget--;
			JUMP(in->j);
		VMCASE(JEQ) JUMP_IF(R(in->a) == R(in->b));
		VMCASE(JNE) JUMP_IF(R(in->a) != R(in->b));
		VMCASE(JLT) JUMP_IF(R(in->a) < R(in->b));
		VMCASE(JGE) JUMP_IF(R(in->a) >= R(in->b));
		VMCASE(JEQI) JUMP_IF(R(in->a) == in->imm);
		VMCASE(JNEI) JUMP_IF(R(in->a) != in->imm);
		VMCASE(JLTI) JUMP_IF(R(in->a) < in->imm);
		VMCASE(JGEI) JUMP_IF(R(in->a) >= in->imm);
		VMCASE(MOVI) R(in->a) = in->imm; NEXT;
		VMCASE(MOV) R(in->a) = R(in->b); NEXT;
		VMCASE(ADDI) R(in->a) = (int64_t)((uint64_t)R(in->a) + (uint64_t)(int64_t)in->imm); NEXT;
		VMCASE(ADD) R(in->a) = (int64_t)((uint64_t)R(in->a) + (uint64_t)R(in->b)); NEXT;
		VMCASE(SUB) R(in->a) = (int64_t)((uint64_t)R(in->a) - (uint64_t)R(in->b)); NEXT;
		VMCASE(ORI) R(in->a) |= in->imm; NEXT;
		VMCASE(ANDI) R(in->a) &= in->imm; NEXT;
		VMCASE(SLEN) R(in->a) = sb->len; NEXT;
		VMCASE(SOFF) R(in->a) = sb->off; NEXT;
		VMCASE(SMOV) s[in->a] = *sb; NEXT;
		VMCASE(STAKE)
		VMCASE(STAKEI) {
			int64_t k = clamp(in->op == MVM_OP_STAKE ? R(in->c) : in->imm, 0, sb->len);
			s[in->a] = (struct sl){ sb->off, k };
			NEXT;
		}
		VMCASE(SDROP)
		VMCASE(SDROPI) {
			int64_t k = clamp(in->op == MVM_OP_SDROP ? R(in->c) : in->imm, 0, sb->len);
			s[in->a] = (struct sl){ sb->off + k, sb->len - k };
			NEXT;
		}
		VMCASE(SRANGE) {
			int64_t lo = clamp(R(in->b), 0, n), hi = clamp(R(in->c), lo, n);
			s[in->a] = (struct sl){ lo, hi - lo };
			NEXT;
		}
		VMCASE(FIND) {
			const struct mvm_bytes *k = &p->consts[in->imm];
			const uint8_t *at = k->len == 0 ? AT(sb) :
				find_bytes(AT(sb), sb->len, k->p, k->len);
			R(in->a) = at ? at - (AT(sb)) : -1;
			NEXT;
		}
		VMCASE(FINDB) {
			const uint8_t *at = memchr(AT(sb), in->imm, (size_t)sb->len);
			R(in->a) = at ? at - (AT(sb)) : -1;
			NEXT;
		}
		VMCASE(SPANC) {
			R(in->a) = span(p->consts[in->imm].cls, AT(sb), sb->len);
			NEXT;
		}
		VMCASE(RSPANC) {
			const uint8_t *cls = p->consts[in->imm].cls, *q = AT(sb);
			int64_t i = 0;
			while (i < sb->len && in_class(cls, q[sb->len - 1 - i]))
				i++;
			R(in->a) = i;
			NEXT;
		}
		VMCASE(BYTEI) R(in->a) = in->imm < sb->len ? AT(sb)[in->imm] : -1; NEXT;
		VMCASE(BYTE) {
			int64_t k = R(in->c);
			R(in->a) = k >= 0 && k < sb->len ? AT(sb)[k] : -1;
			NEXT;
		}
		VMCASE(JSEQ)
		VMCASE(JSEQI)
		VMCASE(JSPRE)
		VMCASE(JSPREI) {
			const struct sl *sa = &s[in->a];
			const struct mvm_bytes *k = &p->consts[in->imm];
			int prefix = in->op == MVM_OP_JSPRE || in->op == MVM_OP_JSPREI;
			int ci = in->op == MVM_OP_JSEQI || in->op == MVM_OP_JSPREI;
			int ok = prefix ? sa->len >= k->len : sa->len == k->len;
			if (ok && k->len)
				ok = ci ? eq_ci(AT(sa), k->p, k->len) :
					  same(AT(sa), k->p, k->len);
			JUMP_IF(ok);
		}
		VMCASE(JSSEQ) {
			const struct sl *sa = &s[in->a];
			JUMP_IF(sa->len == sb->len &&
				same(AT(sa), AT(sb), (uint32_t)sa->len));
		}
		VMCASE(PARSEU) {
			const uint8_t *q = AT(sb);
			int64_t v = 0;
			int ok = sb->len > 0;
			for (int64_t i = 0; ok && i < sb->len; i++) {
				int d = q[i] - '0';
				if (d < 0 || d > 9 || v > (INT64_MAX - d) / 10)
					ok = 0;
				else
					v = v * 10 + d;
			}
			if (!ok)
				JUMP(in->j);
			R(in->a) = v;
			NEXT;
		}
		VMCASE(HASH) R(in->a) = fnv1a(AT(sb), sb->len, 0); NEXT;
		VMCASE(HASHI) R(in->a) = fnv1a(AT(sb), sb->len, 1); NEXT;
		VMCASE(TLOOK) {
			const struct mvm_table *t = &p->tables[in->imm];
			R(in->a) = t->v[(uint64_t)R(in->b) % t->len];
			NEXT;
		}
		VMCASE(TLEN) R(in->a) = p->tables[in->imm].len; NEXT;
		VMCASE(SETF) res->out[in->a] = R(in->b); NEXT;
		VMCASE(CALL)
			/* the verifier admits only known helper ids */
			switch (in->imm) {
			case MVM_HELPER_HDR_FIND: hdr_find(p, AT(&s[1]), r, s); break;
			case MVM_HELPER_HPACK_DECODE:
				mvm_hpack_decode(AT(&s[1]), s[1].len, r[1], &sc, r);
				break;
			case MVM_HELPER_HPACK_FIND: mvm_hpack_find(p, &sc, r, s); break;
			case MVM_HELPER_HPACK_FIELD: mvm_hpack_field(&sc, r, s); break;
			case MVM_HELPER_SCR_CAT: mvm_scr_cat(AT(&s[0]), AT(&s[1]), &sc, r, s); break;
			}
			NEXT;
		VMCASE(SLINE) {
			struct sl *sa = &s[in->a], *sr = &s[in->b];
			const uint8_t *q = AT(sr);
			const uint8_t *nl = memchr(q, '\n', (size_t)sr->len);
			if (!nl)
				JUMP(in->j);
			int64_t lf = nl - q, n = lf > 0 && q[lf - 1] == '\r' ? lf - 1 : lf;
			int64_t off = sr->off;
			*sr = (struct sl){ off + lf + 1, sr->len - lf - 1 };
			*sa = (struct sl){ off, n };
			NEXT;
		}
		VMCASE(STRIM) {
			struct sl *sa = &s[in->a];
			const uint8_t *cls = p->consts[in->imm].cls, *q = AT(sa);
			int64_t lo = span(cls, q, sa->len), hi = sa->len;
			while (hi > lo && in_class(cls, q[hi - 1]))
				hi--;
			*sa = (struct sl){ sa->off + lo, hi - lo };
			NEXT;
		}
		VMCASE(LOOKUPI) {
			const struct mvm_bytes *k = &p->consts[in->imm];
			const uint8_t *q = AT(sb);
			int64_t found = -1;
			for (uint32_t w = 0; w < k->nwords; w++) {
				if (k->words[2 * w + 1] == sb->len &&
				    eq_ci(q, k->p + k->words[2 * w], k->words[2 * w + 1])) {
					found = w;
					break;
				}
			}
			R(in->a) = found;
			NEXT;
		}
		VMCASE(JNALL) {
			const struct sl *sa = &s[in->a];
			JUMP_IF(span(p->consts[in->imm].cls, AT(sa), sa->len) != sa->len);
		}
		default:
			/* unreachable for a verified program; refuse rather than guess */
			res->kind = MVM_ERROR;
			return;
		}
	}
}
