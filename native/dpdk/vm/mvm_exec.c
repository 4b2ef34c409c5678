/* mvm_exec.c -- the interpreter. Theory of operation: one loop, one switch over the opcode
 * (libpcap's bpf_filter shape); each case is a few lines. The program was verified at load,
 * so register numbers, constant/table/decision indexes and jump targets are in range and the
 * loop ends (forward jumps + loop budget). What the input can influence is checked here:
 * slice bounds are clamped into the input, integer parsing reports overflow, arithmetic
 * wraps (done in uint64_t: no signed overflow). Semantics mirror vm.py line for line. */
#define _GNU_SOURCE
#include <string.h>

#include "mvm.h"

#define R(x) r[(x)]
#define NEXT pc++; break
#define JUMP_IF(cond) pc = (cond) ? in->j : pc + 1; break

static const uint8_t empty_input[1];

static inline uint8_t lower(uint8_t c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

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

static inline int in_class(const uint8_t *cls, uint8_t c) { return cls[c >> 3] >> (c & 7) & 1; }

/* slice registers: offset and length into the input */
struct sl { int64_t off, len; };

static void hdr_find(const struct mvm_prog *p, const uint8_t *buf, int64_t *r, struct sl *s)
{
	s[0] = (struct sl){ 0, 0 };
	if (r[1] < 0 || r[1] >= p->n_consts) {
		r[0] = -1;
		return;
	}
	const struct mvm_bytes *want = &p->consts[r[1]];
	const uint8_t *blk = buf + s[1].off;
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
	uint32_t budget = p->loop_budget, pc = 0;
	const int64_t n = (int64_t)len;

	if (!buf)
		buf = empty_input;
	for (int i = 0; i < nargs && i < MVM_NARGS; i++)
		r[i] = args[i];
	s[0].len = n;
	memset(res, 0, sizeof(*res));
	res->decision = -1;
	res->out[MVM_F_BACKEND] = -1;

	for (;;) {
		const struct mvm_insn *in = &p->code[pc];
		const struct sl *sb = &s[in->b];
		switch (in->op) {
		case MVM_OP_NOP: NEXT;
		case MVM_OP_ROUTE:
			res->kind = MVM_ROUTE;
			res->decision = in->imm;
			return;
		case MVM_OP_NEEDMORE:
			res->kind = MVM_NEEDMORE;
			return;
		case MVM_OP_REJECT:
			res->kind = MVM_REJECT;
			res->status = in->imm;
			res->reason = p->consts[in->j].p;
			res->reason_len = p->consts[in->j].len;
			return;
		case MVM_OP_JMP: pc = in->j; break;
		case MVM_OP_LOOP:
			if (budget == 0) {
				static const char msg[] = "loop budget exhausted";
				res->kind = MVM_ERROR;
				res->reason = (const uint8_t *)msg;
				res->reason_len = sizeof(msg) - 1;
				return;
			}
			budget--;
			pc = in->j;
			break;
		case MVM_OP_JEQ: JUMP_IF(R(in->a) == R(in->b));
		case MVM_OP_JNE: JUMP_IF(R(in->a) != R(in->b));
		case MVM_OP_JLT: JUMP_IF(R(in->a) < R(in->b));
		case MVM_OP_JGE: JUMP_IF(R(in->a) >= R(in->b));
		case MVM_OP_JEQI: JUMP_IF(R(in->a) == in->imm);
		case MVM_OP_JNEI: JUMP_IF(R(in->a) != in->imm);
		case MVM_OP_JLTI: JUMP_IF(R(in->a) < in->imm);
		case MVM_OP_JGEI: JUMP_IF(R(in->a) >= in->imm);
		case MVM_OP_MOVI: R(in->a) = in->imm; NEXT;
		case MVM_OP_MOV: R(in->a) = R(in->b); NEXT;
		case MVM_OP_ADDI: R(in->a) = (int64_t)((uint64_t)R(in->a) + (uint64_t)(int64_t)in->imm); NEXT;
		case MVM_OP_ADD: R(in->a) = (int64_t)((uint64_t)R(in->a) + (uint64_t)R(in->b)); NEXT;
		case MVM_OP_SUB: R(in->a) = (int64_t)((uint64_t)R(in->a) - (uint64_t)R(in->b)); NEXT;
		case MVM_OP_ORI: R(in->a) |= in->imm; NEXT;
		case MVM_OP_ANDI: R(in->a) &= in->imm; NEXT;
		case MVM_OP_SLEN: R(in->a) = sb->len; NEXT;
		case MVM_OP_SOFF: R(in->a) = sb->off; NEXT;
		case MVM_OP_SMOV: s[in->a] = *sb; NEXT;
		case MVM_OP_STAKE:
		case MVM_OP_STAKEI: {
			int64_t k = clamp(in->op == MVM_OP_STAKE ? R(in->c) : in->imm, 0, sb->len);
			s[in->a] = (struct sl){ sb->off, k };
			NEXT;
		}
		case MVM_OP_SDROP:
		case MVM_OP_SDROPI: {
			int64_t k = clamp(in->op == MVM_OP_SDROP ? R(in->c) : in->imm, 0, sb->len);
			s[in->a] = (struct sl){ sb->off + k, sb->len - k };
			NEXT;
		}
		case MVM_OP_SRANGE: {
			int64_t lo = clamp(R(in->b), 0, n), hi = clamp(R(in->c), lo, n);
			s[in->a] = (struct sl){ lo, hi - lo };
			NEXT;
		}
		case MVM_OP_FIND: {
			const struct mvm_bytes *k = &p->consts[in->imm];
			const uint8_t *at = k->len == 0 ? buf + sb->off :
				memmem(buf + sb->off, (size_t)sb->len, k->p, k->len);
			R(in->a) = at ? at - (buf + sb->off) : -1;
			NEXT;
		}
		case MVM_OP_FINDB: {
			const uint8_t *at = memchr(buf + sb->off, in->imm, (size_t)sb->len);
			R(in->a) = at ? at - (buf + sb->off) : -1;
			NEXT;
		}
		case MVM_OP_SPANC: {
			const uint8_t *cls = p->consts[in->imm].p, *q = buf + sb->off;
			int64_t i = 0;
			while (i < sb->len && in_class(cls, q[i]))
				i++;
			R(in->a) = i;
			NEXT;
		}
		case MVM_OP_RSPANC: {
			const uint8_t *cls = p->consts[in->imm].p, *q = buf + sb->off;
			int64_t i = 0;
			while (i < sb->len && in_class(cls, q[sb->len - 1 - i]))
				i++;
			R(in->a) = i;
			NEXT;
		}
		case MVM_OP_BYTEI: R(in->a) = in->imm < sb->len ? buf[sb->off + in->imm] : -1; NEXT;
		case MVM_OP_BYTE: {
			int64_t k = R(in->c);
			R(in->a) = k >= 0 && k < sb->len ? buf[sb->off + k] : -1;
			NEXT;
		}
		case MVM_OP_JSEQ:
		case MVM_OP_JSEQI:
		case MVM_OP_JSPRE:
		case MVM_OP_JSPREI: {
			const struct sl *sa = &s[in->a];
			const struct mvm_bytes *k = &p->consts[in->imm];
			int prefix = in->op == MVM_OP_JSPRE || in->op == MVM_OP_JSPREI;
			int ci = in->op == MVM_OP_JSEQI || in->op == MVM_OP_JSPREI;
			int ok = prefix ? sa->len >= k->len : sa->len == k->len;
			if (ok && k->len)
				ok = ci ? eq_ci(buf + sa->off, k->p, k->len) :
					  memcmp(buf + sa->off, k->p, k->len) == 0;
			JUMP_IF(ok);
		}
		case MVM_OP_JSSEQ: {
			const struct sl *sa = &s[in->a];
			JUMP_IF(sa->len == sb->len &&
				(sa->len == 0 || memcmp(buf + sa->off, buf + sb->off, (size_t)sa->len) == 0));
		}
		case MVM_OP_PARSEU: {
			const uint8_t *q = buf + sb->off;
			int64_t v = 0;
			int ok = sb->len > 0;
			for (int64_t i = 0; ok && i < sb->len; i++) {
				int d = q[i] - '0';
				if (d < 0 || d > 9 || v > (INT64_MAX - d) / 10)
					ok = 0;
				else
					v = v * 10 + d;
			}
			if (!ok) {
				pc = in->j;
				break;
			}
			R(in->a) = v;
			NEXT;
		}
		case MVM_OP_HASH: R(in->a) = fnv1a(buf + sb->off, sb->len, 0); NEXT;
		case MVM_OP_HASHI: R(in->a) = fnv1a(buf + sb->off, sb->len, 1); NEXT;
		case MVM_OP_TLOOK: {
			const struct mvm_table *t = &p->tables[in->imm];
			R(in->a) = t->v[(uint64_t)R(in->b) % t->len];
			NEXT;
		}
		case MVM_OP_TLEN: R(in->a) = p->tables[in->imm].len; NEXT;
		case MVM_OP_SETF: res->out[in->a] = R(in->b); NEXT;
		case MVM_OP_CALL:
			/* the verifier admits only known helper ids */
			if (in->imm == MVM_HELPER_HDR_FIND)
				hdr_find(p, buf, r, s);
			NEXT;
		default:
			/* unreachable for a verified program; refuse rather than guess */
			res->kind = MVM_ERROR;
			return;
		}
	}
}
