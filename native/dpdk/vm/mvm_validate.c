/* mvm_validate.c -- the verifier: the constraint table of mvm_opcodes.h (generated from
 * opcodes.py) applied to every field of every instruction, then the context rule that the
 * last instruction must not fall off the end. Forward-only jumps plus the loop budget bound
 * execution (docs/bytecode.md, "Bounded execution"). Messages match verifier.py exactly. */
#include <inttypes.h>
#include <stdio.h>

#include "mvm.h"

/* why value does not fit operand o at pc, written to why; 0 when it fits */
static int check_operand(const struct mvm_prog *p, uint32_t pc, const struct mvm_operand *o,
			 int64_t v, char *why, size_t n)
{
	switch (o->kind) {
	case MVM_K_NONE:
		return v == 0 ? 0 : snprintf(why, n, "must be 0, got %" PRId64, v);
	case MVM_K_IREG:
		return v < MVM_NREGS ? 0 : snprintf(why, n, "register r%" PRId64 " does not exist", v);
	case MVM_K_SREG:
		return v < MVM_NSREGS ? 0 : snprintf(why, n, "register s%" PRId64 " does not exist", v);
	case MVM_K_CONST:
	case MVM_K_CLASS:
		if (v < 0 || v >= p->n_consts)
			return snprintf(why, n, "const %" PRId64 " out of range (%u consts)", v,
					p->n_consts);
		if (o->kind == MVM_K_CLASS && p->consts[v].len != MVM_CLASS_LEN)
			return snprintf(why, n, "const %" PRId64 " is not a %d-byte class", v,
					MVM_CLASS_LEN);
		return 0;
	case MVM_K_TABLE:
		return v >= 0 && v < p->n_tables ? 0 :
			snprintf(why, n, "table %" PRId64 " out of range (%u tables)", v, p->n_tables);
	case MVM_K_FIELD:
		return v < MVM_NFIELDS ? 0 :
			snprintf(why, n, "result field %" PRId64 " does not exist", v);
	case MVM_K_DECISION:
		return v >= 0 && v < p->n_decisions ? 0 :
			snprintf(why, n, "decision %" PRId64 " out of range (%u decisions)", v,
				 p->n_decisions);
	case MVM_K_HELPER:
		for (int i = 0; i < MVM_NHELPERS; i++)
			if (mvm_helpers[i].id == v && mvm_helpers[i].abi <= p->helper_abi)
				return 0;
		return snprintf(why, n, "unknown helper %" PRId64 " for helper ABI %u", v,
				p->helper_abi);
	case MVM_K_INT:
		return v >= o->lo && v <= o->hi ? 0 :
			snprintf(why, n, "%" PRId64 " outside %" PRId64 "..%" PRId64, v, o->lo, o->hi);
	case MVM_K_FWD:
		if (v <= pc)
			return snprintf(why, n, "jump target %" PRId64 " is not forward", v);
		return v < p->n_insns ? 0 :
			snprintf(why, n, "jump target %" PRId64 " past the end", v);
	case MVM_K_BACK:
		return v < pc ? 0 : snprintf(why, n, "jump target %" PRId64 " is not backward", v);
	}
	return snprintf(why, n, "bad operand kind %u", o->kind);  /* a generator bug */
}

int mvm_validate(const struct mvm_prog *p, char *err, size_t errlen)
{
	char why[160];

	for (uint32_t pc = 0; pc < p->n_insns; pc++) {
		const struct mvm_insn *in = &p->code[pc];
		if (in->op >= MVM_OP__COUNT) {
			snprintf(err, errlen, "insn %u: unknown opcode %u", pc, in->op);
			return -1;
		}
		const struct mvm_opinfo *op = &mvm_ops[in->op];
		const int64_t v[5] = { in->a, in->b, in->c, in->imm, in->j };
		for (int f = 0; f < 5; f++) {
			if (check_operand(p, pc, &op->f[f], v[f], why, sizeof(why))) {
				snprintf(err, errlen, "insn %u (%s): %s: %s", pc, op->name,
					 mvm_operand_names[f], why);
				return -1;
			}
		}
	}
	const struct mvm_opinfo *last = &mvm_ops[p->code[p->n_insns - 1].op];
	if (!last->terminal) {
		snprintf(err, errlen, "insn %u (%s): falls off the end", p->n_insns - 1, last->name);
		return -1;
	}
	return 0;
}
