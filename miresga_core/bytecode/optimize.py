"""Optimiser passes over a built Program. Each pass is separate and skippable
(``ProgramBuilder.build(passes=...)``, ``miresga compile --no-opt``), and none changes what
a program decides: the compiler golden tests keep both listings and the VM tests run both.

* ``thread_jumps``: a jump whose target is a ``jmp`` goes straight to the final target.
* ``drop_dead``: remove instructions no path reaches and ``jmp`` to the next instruction.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable

from .opcodes import OP_BY_NAME, OPCODES, Kind
from .program import Insn, Program

__all__ = ["PASSES", "run_passes"]

_JMP = OP_BY_NAME["jmp"]


def _jumps(insn: Insn) -> bool:
    return OPCODES[insn.op].j.kind in (Kind.FWD, Kind.BACK)


def thread_jumps(p: Program) -> Program:
    code = list(p.code)
    for pc, insn in enumerate(code):
        if not _jumps(insn):
            continue
        target, seen = insn.j, set()
        while code[target].op == _JMP and target not in seen:
            seen.add(target)
            target = code[target].j
        if target != insn.j:
            code[pc] = dataclasses.replace(insn, j=target)
    return dataclasses.replace(p, code=tuple(code))


def drop_dead(p: Program) -> Program:
    code = p.code
    reach, todo = set(), [0]
    while todo:
        pc = todo.pop()
        if pc in reach or pc >= len(code):
            continue
        reach.add(pc)
        insn = code[pc]
        if _jumps(insn):
            todo.append(insn.j)
        if not OPCODES[insn.op].terminal and insn.op != _JMP:
            todo.append(pc + 1)
    keep = [pc for pc in range(len(code)) if pc in reach
            and not (code[pc].op == _JMP and code[pc].j == pc + 1)]
    new_index, k = {}, 0
    for pc in range(len(code) + 1):
        while k < len(keep) and keep[k] < pc:
            k += 1
        new_index[pc] = k
    out = []
    for pc in keep:
        insn = code[pc]
        out.append(dataclasses.replace(insn, j=new_index[insn.j]) if _jumps(insn) else insn)
    comments = {new_index[pc]: text for pc, text in p.comments.items() if pc in keep}
    return dataclasses.replace(p, code=tuple(out), comments=comments)


PASSES: dict[str, Callable[[Program], Program]] = {
    "thread_jumps": thread_jumps,
    "drop_dead": drop_dead,
}


def run_passes(p: Program, names: Iterable[str] | None = None) -> Program:
    for name in PASSES if names is None else names:
        p = PASSES[name](p)
    return p
