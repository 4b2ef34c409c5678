/* mvm.h -- the Miresga rule VM: load (parse + verify) and run compiled rule programs.
 *
 * The program format, the opcode table and every check are specified in docs/bytecode.md;
 * the Python reference is miresga_core/bytecode/. No DPDK dependency: the front-end, the
 * mvm_run CLI and the CPython extension (mvm_py.c) all link these files alone.
 *
 * Thread safety: a loaded program is read-only; any number of threads may run it. */
#ifndef MVM_H
#define MVM_H

#include <stddef.h>
#include <stdint.h>

#include "mvm_opcodes.h"

struct mvm_insn {
	uint8_t op, a, b, c;
	int32_t imm;
	uint32_t j;
};

struct mvm_bytes {                     /* a constant (points into blob) */
	const uint8_t *p;
	uint32_t len;
	uint8_t *cls;                   /* CLASS_LEN-byte constants: the set as 256 bytes */
	uint32_t nwords;                /* constants used by lookupi: the NUL-separated */
	uint32_t *words;                /* names as (start, length) pairs */
};
struct mvm_table { uint32_t *v; uint32_t len; };        /* a data table (host order) */
struct mvm_decision { uint16_t pool; uint8_t offload; };

struct mvm_prog {
	uint16_t version, helper_abi;
	uint32_t loop_budget;
	uint32_t n_insns, n_consts, n_tables, n_pools, n_decisions;
	struct mvm_insn *code;
	struct mvm_bytes *consts;
	struct mvm_table *tables;
	struct mvm_decision *decisions;
	uint8_t *blob;                  /* private copy of the serialized program */
};

enum mvm_outcome { MVM_ROUTE = 0, MVM_NEEDMORE = 1, MVM_REJECT = 2, MVM_ERROR = 3 };

struct mvm_result {
	int kind;                       /* enum mvm_outcome */
	int32_t decision;               /* ROUTE: decision map index */
	int32_t status;                 /* REJECT: HTTP status */
	const uint8_t *reason;          /* REJECT/ERROR: reason bytes (not NUL terminated) */
	uint32_t reason_len;
	int64_t out[MVM_NFIELDS];       /* setf fields; backend defaults to -1 */
};

/* Parse and verify a serialized program. Returns 0 and *out, or -1 with a message in err
 * (the same text as the Python verifier's ProgramError). */
int mvm_load(const uint8_t *buf, size_t len, struct mvm_prog **out, char *err, size_t errlen);
void mvm_free(struct mvm_prog *p);

/* Instruction checks of a parsed program (mvm_load calls it). */
int mvm_validate(const struct mvm_prog *p, char *err, size_t errlen);

/* Run a verified program on an input. args: up to MVM_NARGS values for r0..r3. */
void mvm_exec(const struct mvm_prog *p, const uint8_t *in, size_t len, const int64_t *args,
	      int nargs, struct mvm_result *res);

/* The canonical one-line text of a result (same as Python's format_outcome). */
int mvm_format_result(const struct mvm_result *r, char *buf, size_t len);

#endif /* MVM_H */
