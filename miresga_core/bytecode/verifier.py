"""The verifier: every check the C loader (``mvm_validate.c``) makes, with the same messages.

Per-instruction checks are driven by the operand kinds of ``opcodes.OPCODES`` (a constraint
table, as in ubpf's ``ubpf_inst_filter_t``). Context checks that need the whole program sit
after the loop: the last instruction must not fall off the end. Together with FWD-only
jumps and the loop budget this bounds execution (see ``opcodes`` "Theory of operation").
Refusals name the instruction: ``insn 7 (jeqi): j: jump target 3 is not forward``.
"""

from __future__ import annotations

import struct

from .opcodes import FIELDS, HELPER_BY_ID, LIMITS, OPCODES, Kind, Operand
from .program import Insn, Program, ProgramError, decode, encode

__all__ = ["check_operand", "verify", "verify_bytes"]


def check_operand(p: Program, pc: int, spec: Operand, value: int) -> str | None:
    """Why ``value`` does not fit ``spec`` in ``p`` at ``pc``, or None."""
    kind = spec.kind
    if kind == Kind.NONE:
        return None if value == 0 else f"must be 0, got {value}"
    if kind == Kind.IREG:
        return None if value < LIMITS["NREGS"] else f"register r{value} does not exist"
    if kind == Kind.SREG:
        return None if value < LIMITS["NSREGS"] else f"register s{value} does not exist"
    if kind in (Kind.CONST, Kind.CLASS):
        if not 0 <= value < len(p.consts):
            return f"const {value} out of range ({len(p.consts)} consts)"
        if kind == Kind.CLASS and len(p.consts[value]) != LIMITS["CLASS_LEN"]:
            return f"const {value} is not a {LIMITS['CLASS_LEN']}-byte class"
        return None
    if kind == Kind.TABLE:
        ok = 0 <= value < len(p.tables)
        return None if ok else f"table {value} out of range ({len(p.tables)} tables)"
    if kind == Kind.FIELD:
        return None if value < len(FIELDS) else f"result field {value} does not exist"
    if kind == Kind.DECISION:
        ok = 0 <= value < len(p.decisions)
        return None if ok else f"decision {value} out of range ({len(p.decisions)} decisions)"
    if kind == Kind.HELPER:
        helper = HELPER_BY_ID.get(value)
        if helper is None or helper.abi > p.helper_abi:
            return f"unknown helper {value} for helper ABI {p.helper_abi}"
        return None
    if kind == Kind.INT:
        ok = spec.lo <= value <= spec.hi
        return None if ok else f"{value} outside {spec.lo}..{spec.hi}"
    if kind == Kind.FWD:
        if value <= pc:
            return f"jump target {value} is not forward"
        return None if value < len(p.code) else f"jump target {value} past the end"
    if kind == Kind.BACK:
        return None if value < pc else f"jump target {value} is not backward"
    raise AssertionError(kind)  # the table holds only the kinds above


def _check_insn(p: Program, pc: int, insn: Insn) -> None:
    if insn.op >= len(OPCODES):
        raise ProgramError(f"insn {pc}: unknown opcode {insn.op}")
    op = OPCODES[insn.op]
    for name, spec in op.fields:
        problem = check_operand(p, pc, spec, getattr(insn, name))
        if problem:
            raise ProgramError(f"insn {pc} ({op.name}): {name}: {problem}")


def verify(p: Program) -> Program:
    """Refuse a program a VM must not run; return it unchanged when it is sound.

    The container checks run on the encoded form, so an in-memory program is refused for
    exactly the reasons the serialized one would be."""
    try:
        data = encode(p)
    except (struct.error, ValueError, UnicodeError) as exc:
        raise ProgramError(f"not encodable: {exc}") from None
    decode(data)
    for pc, insn in enumerate(p.code):
        _check_insn(p, pc, insn)
    last = OPCODES[p.code[-1].op]
    if not last.terminal:
        raise ProgramError(f"insn {len(p.code) - 1} ({last.name}): falls off the end")
    return p


def verify_bytes(data: bytes) -> Program:
    """decode + verify: what the C loader does."""
    return verify(decode(data))
