"""Differential test of the two VMs: random *valid* programs, built from the operand kinds
of the opcode table (so every opcode and operand kind is exercised, including the odd
corners: negative and huge integers, clamped slices, empty constants), run on random
inputs and arguments by the Python VM and by the C VM under ASan+UBSan; the outcome lines
must be identical."""

from __future__ import annotations

import random
from pathlib import Path

from miresga_core.bytecode.opcodes import FIELDS, HELPERS, OPCODES, Kind
from miresga_core.bytecode.program import Decision, Insn, Program
from miresga_core.bytecode.vectors import run_mvm
from miresga_core.bytecode.verifier import verify
from miresga_core.bytecode.vm import PyVM, format_outcome

CONSTS = [b"", b"a", b"\r\n", b"GET", b"get", b"/api/", b"host\x00x-a\x00\x00GET",
          bytes(range(0, 256, 8)), bytes([0xFF] * 32), b"Content-Length"]
INTS = [0, 1, 2, 3, -1, 5, 7, 255, 1000, -(1 << 31), (1 << 31) - 1]


def _operand(rng: random.Random, kind: Kind, lo: int, hi: int, pc: int, n: int) -> int:
    if kind in (Kind.IREG, Kind.SREG):
        return rng.randrange(16)
    if kind == Kind.CONST:
        return rng.randrange(len(CONSTS))
    if kind == Kind.CLASS:
        return rng.choice([7, 8])  # the 32-byte constants
    if kind == Kind.TABLE:
        return rng.randrange(2)
    if kind == Kind.FIELD:
        return rng.randrange(len(FIELDS))
    if kind == Kind.DECISION:
        return rng.randrange(2)
    if kind == Kind.HELPER:
        return rng.choice(HELPERS).id
    if kind == Kind.INT:
        return min(max(rng.choice(INTS + [rng.randint(lo, hi)]), lo), hi)
    if kind == Kind.FWD:
        return rng.randrange(pc + 1, n)
    if kind == Kind.BACK:
        return rng.randrange(0, pc)
    return 0


def random_program(rng: random.Random, n: int = 40) -> Program:
    code = []
    for pc in range(n - 1):
        while True:
            op = rng.randrange(len(OPCODES))
            if OPCODES[op].name == "loop" and pc == 0:
                continue
            break
        spec = OPCODES[op]
        vals = {name: _operand(rng, s.kind, s.lo, s.hi, pc, n)
                for name, s in spec.fields if s.kind != Kind.NONE}
        code.append(Insn(op, **vals))
    code.append(Insn(OPCODES.index(next(o for o in OPCODES if o.name == "needmore"))))
    consts = tuple(CONSTS) + (b"reason",)
    # reject's reason (j) must be a constant: point it at one
    return verify(Program(tuple(code), consts, ((0, 1, 2), (7,)), ("p",),
                          (Decision(0), Decision(0, "pin")), loop_budget=rng.randrange(8)))


def _inputs(rng: random.Random) -> list[tuple[bytes, tuple[int, ...]]]:
    seeds = [b"", b"GET /api/x HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n",
             b"host: x\r\nX-A:  v \r\n\n", b"12345", bytes(range(256))]
    out = []
    for _ in range(6):
        data = rng.choice(seeds)
        if data and rng.random() < 0.5:
            data = data[: rng.randrange(len(data))]
        args = tuple(rng.choice(INTS + [rng.randint(-(1 << 63), (1 << 63) - 1)])
                     for _ in range(rng.randrange(5)))
        out.append((data, args))
    return out


def test_python_and_c_vm_agree_on_random_programs(mvm_run_asan: Path, tmp_path: Path) -> None:
    rng = random.Random(2026)
    checked = 0
    kinds: set[str] = set()
    for _ in range(150):
        program = random_program(rng)
        cases = _inputs(rng)
        status, lines = run_mvm(mvm_run_asan, program.to_bytes(), cases, tmp_path)
        assert status == "ok"
        py = PyVM(program)
        want = [format_outcome(py.run(d, a)) for d, a in cases]
        assert lines == want, (program, cases)
        checked += len(cases)
        kinds |= {line.split()[0] for line in lines}
    assert checked == 900
    assert kinds == {"route", "needmore", "reject", "error"}
