"""Small MVM programs that expose what the HPACK helpers decoded, for the equivalence tests
(hpack == Python VM == C VM) of test_hpack_helper.py and the http2 plugin."""

from __future__ import annotations

from collections.abc import Sequence

from miresga_core.bytecode.opcodes import OP_BY_NAME
from miresga_core.bytecode.program import Decision, Insn, Program

OPS = OP_BY_NAME
REASONS = (b"bad HPACK block", b"header list too large", b"scratch full", b"mismatch")


def _status(code: int) -> tuple[int, bytes]:
    return {-1: (400, REASONS[0]), -2: (431, REASONS[1]), -3: (431, REASONS[2])}[code]


def expect_program(fields: Sequence[tuple[bytes, bytes]], limit: int,
                   pieces: int = 1) -> Program:
    """Route d0 iff the input, cut into ``pieces`` parts joined again with scr_cat (so the
    block is decoded from the scratch area when pieces > 1), decodes to exactly ``fields``;
    else reject with the helper's error (400/431) or 500 "mismatch"."""
    consts = list(REASONS)
    code: list[Insn] = [Insn(OPS["movi"], a=5, imm=0)]
    if pieces > 1:  # s0 = empty, then append equal parts of the input (s3 = rest)
        code += [Insn(OPS["smov"], a=3, b=0), Insn(OPS["slen"], a=6, b=0),
                 Insn(OPS["stakei"], a=0, b=0, imm=0)]
        for k in range(pieces):
            last = k == pieces - 1
            code += [Insn(OPS["smov"], a=1, b=3)] if last else [
                Insn(OPS["stakei"], a=1, b=3, imm=1 + k), Insn(OPS["sdropi"], a=3, b=3, imm=1 + k)]
            code += [Insn(OPS["call"], imm=19)]
        code += [Insn(OPS["smov"], a=1, b=0)]
    else:
        code += [Insn(OPS["smov"], a=1, b=0)]
    code += [Insn(OPS["movi"], a=1, imm=limit), Insn(OPS["call"], imm=16)]
    fixups: list[tuple[int, int]] = []  # (pc, reason index) of jumps to a reject
    for err, idx in ((-1, 0), (-2, 1), (-3, 2)):
        fixups.append((len(code), idx * 10 + (-err)))
        code.append(Insn(OPS["jeqi"], a=0, imm=err))
    fixups.append((len(code), 3))
    code.append(Insn(OPS["jnei"], a=0, imm=len(fields)))
    for i, (name, value) in enumerate(fields):
        consts += [name, value]
        code += [Insn(OPS["movi"], a=1, imm=i), Insn(OPS["call"], imm=18)]
        code += [Insn(OPS["jseq"], a=0, imm=len(consts) - 2, j=len(code) + 2)]
        fixups.append((len(code), 3))
        code.append(Insn(OPS["jmp"]))
        code += [Insn(OPS["jseq"], a=2, imm=len(consts) - 1, j=len(code) + 2)]
        fixups.append((len(code), 3))
        code.append(Insn(OPS["jmp"]))
    code.append(Insn(OPS["route"], imm=0))
    targets = {}
    for key, (status, reason) in ((3, (500, 3)), (1, (400, 0)), (12, (431, 1)), (23, (431, 2))):
        targets[key] = len(code)
        code.append(Insn(OPS["reject"], imm=status, j=reason))
    for pc, key in fixups:
        insn = code[pc]
        code[pc] = Insn(insn.op, a=insn.a, imm=insn.imm, j=targets[key])
    return Program(tuple(code), tuple(consts), (), ("p",), (Decision(0),))


def expected_outcome(fields: Sequence[tuple[bytes, bytes]] | int) -> str:
    """The canonical result line of expect_program for a decode result (or error code)."""
    if isinstance(fields, int):
        status, reason = _status(fields)
        return f'reject {status} "{reason.decode()}"'
    return "route decision=0 backend=-1 head_len=0 framing=0 content_length=0 flags=0"


def digest_program(limit: int) -> Program:
    """Decode the whole input; head_len = r0, content_length = a rolling hash over every
    decoded name and value (in order) -- for the C/Python differential on random input."""
    i = Insn
    code = [i(OPS["smov"], a=1, b=0), i(OPS["movi"], a=1, imm=limit), i(OPS["call"], imm=16),
            i(OPS["mov"], a=7, b=0), i(OPS["setf"], a=0, b=7), i(OPS["movi"], a=8, imm=0),
            i(OPS["movi"], a=9, imm=0)]
    top = len(code)
    code += [i(OPS["jge"], a=8, b=7, j=top + 12),
             i(OPS["mov"], a=1, b=8), i(OPS["call"], imm=18),
             i(OPS["hash"], a=10, b=0), i(OPS["hash"], a=11, b=2),
             i(OPS["add"], a=9, b=9), i(OPS["add"], a=9, b=10), i(OPS["add"], a=9, b=9),
             i(OPS["add"], a=9, b=11), i(OPS["addi"], a=8, imm=1), i(OPS["nop"]),
             i(OPS["loop"], j=top),
             i(OPS["setf"], a=2, b=9), i(OPS["route"], imm=0)]
    return Program(tuple(code), (), (), ("p",), (Decision(0),), loop_budget=2048)
