"""The disassembler: Program -> MVM text that ``asm.assemble`` reads back to the same bytes.

Names are positional (``k3``, ``t0``, ``d2``, labels ``L17`` = the target pc) so that the
text is canonical: assemble(disasm(p)) == p and disasm(assemble(disasm(p))) == disasm(p).
Constants referenced as byte classes are written as ``.class`` with ranges; the compiler's
comments (``Program.comments``, pc -> text) are appended after ``;``.
"""

from __future__ import annotations

from .opcodes import FIELDS, HELPER_BY_ID, LIMITS, OPCODES, Kind
from .program import Program

__all__ = ["disasm", "escape"]


def escape(raw: bytes, extra: bytes = b"") -> str:
    out = []
    for b in raw:
        if b == 13:
            out.append("\\r")
        elif b == 10:
            out.append("\\n")
        elif b == 9:
            out.append("\\t")
        elif b in (0x22, 0x5C) or b in extra or not 0x20 <= b < 0x7F:
            out.append(f"\\x{b:02x}")
        else:
            out.append(chr(b))
    return "".join(out)


def _class_spec(bits: bytes) -> str:
    members = [b for b in range(256) if bits[b >> 3] >> (b & 7) & 1]
    out, i = [], 0
    while i < len(members):
        j = i
        while j + 1 < len(members) and members[j + 1] == members[j] + 1:
            j += 1
        lo, hi = bytes([members[i]]), bytes([members[j]])
        if j - i >= 2:
            out.append(f"{escape(lo, b'-')}-{escape(hi, b'-')}")
        else:
            out.append(escape(bytes(members[i:j + 1]), b"-"))
        i = j + 1
    return "".join(out)


def _classes(p: Program) -> set[int]:
    out = set()
    for insn in p.code:
        if insn.op < len(OPCODES):
            for name, spec in OPCODES[insn.op].fields:
                if spec.kind == Kind.CLASS:
                    out.add(getattr(insn, name))
    return {k for k in out if k < len(p.consts) and len(p.consts[k]) == LIMITS["CLASS_LEN"]}


def _operand(kind: Kind, value: int) -> str:
    if kind == Kind.IREG:
        return f"r{value}"
    if kind == Kind.SREG:
        return f"s{value}"
    if kind in (Kind.CONST, Kind.CLASS):
        return f"k{value}"
    if kind == Kind.TABLE:
        return f"t{value}"
    if kind == Kind.DECISION:
        return f"d{value}"
    if kind == Kind.FIELD:
        return FIELDS[value] if value < len(FIELDS) else str(value)
    if kind == Kind.HELPER:
        helper = HELPER_BY_ID.get(value)
        return helper.name if helper else str(value)
    if kind in (Kind.FWD, Kind.BACK):
        return f"L{value}"
    return str(value)


def disasm(p: Program, comments: bool = True) -> str:
    """Canonical text of ``p``. Raises ValueError on an unknown opcode (verify first)."""
    lines = [f".budget {p.loop_budget}"]
    classes = _classes(p)
    for i, k in enumerate(p.consts):
        if i in classes:
            lines.append(f'.class k{i} "{_class_spec(k)}"')
        else:
            lines.append(f'.const k{i} "{escape(k)}"')
    for i, t in enumerate(p.tables):
        lines.append(f".table t{i} " + " ".join(map(str, t)))
    for i, name in enumerate(p.pools):
        lines.append(f'.pool p{i} "{escape(name.encode())}"')
    for i, d in enumerate(p.decisions):
        lines.append(f'.decision d{i} p{d.pool} {d.offload} "{escape(d.name.encode())}"')
    targets = set()
    for insn in p.code:
        op = OPCODES[insn.op] if insn.op < len(OPCODES) else None
        if op is None:
            raise ValueError(f"unknown opcode {insn.op}")
        if op.j.kind in (Kind.FWD, Kind.BACK):
            targets.add(insn.j)
    for pc, insn in enumerate(p.code):
        op = OPCODES[insn.op]
        ops = ", ".join(_operand(spec.kind, getattr(insn, name))
                        for name, spec in op.fields if spec.kind != Kind.NONE)
        label = f"L{pc}:" if pc in targets else ""
        text = f"{label:<7} {op.name} {ops}".rstrip()
        note = p.comments.get(pc) if comments else None
        lines.append(f"{text:<40} ; {note}" if note else text)
    return "\n".join(lines) + "\n"
