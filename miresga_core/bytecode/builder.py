"""ProgramBuilder: the public API parser and policy plugins use to emit bytecode.

It is an assembler in Python: one method per opcode, generated from ``opcodes.OPCODES``
(so ``b.find(r, s, b"\\r\\n")``, ``b.jseqi(s, b"host", label)``), operands in the field
order a, b, c, imm, j with NONE fields left out, plus what hand-written assembly lacks:

* typed registers (``IReg``/``SReg``) handed out by ``ireg()``/``sreg()`` so that code from
  the parser, the compiler and policies does not collide;
* labels (``label()``/``place()``) resolved at ``build()``, which refuses a backward plain
  jump or an unplaced label with a message naming the emitting line;
* interned constants: pass ``bytes`` (or ``str``, encoded latin-1) wherever a constant is
  expected, a ``ByteClass`` where a class is, ``b.table([...])`` for tables;
* ``loop_to(label, max_iterations)``: the one backward jump; each call site adds its bound
  to the program's loop budget.

Register conventions: s0 is the whole input on entry; r0..r3 hold the caller's arguments
(r0 client hash, r1 a per-listener sequence number) and are never handed out; helpers
write r0/s0 (save what you need first).
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .opcodes import FIELDS, HELPER_BY_NAME, LIMITS, OP_BY_NAME, OPCODES, Kind
from .program import Decision, Insn, Program, ProgramError
from .verifier import verify

__all__ = [
    "ARG_CLIENT_HASH",
    "ARG_SEQUENCE",
    "INPUT",
    "ByteClass",
    "IReg",
    "Label",
    "ProgramBuilder",
    "SReg",
    "Table",
    "whitespace_class",
]


@dataclass(frozen=True, slots=True)
class IReg:
    n: int

    def __str__(self) -> str:
        return f"r{self.n}"


@dataclass(frozen=True, slots=True)
class SReg:
    n: int

    def __str__(self) -> str:
        return f"s{self.n}"


@dataclass(frozen=True, slots=True)
class Table:
    n: int


@dataclass(frozen=True, slots=True)
class ByteClass:
    """A set of byte values, for ``spanc``/``rspanc``."""

    members: frozenset[int]

    @classmethod
    def of(cls, chars: bytes | str | Iterable[int]) -> ByteClass:
        if isinstance(chars, str):
            chars = chars.encode("latin-1")
        return cls(frozenset(chars))

    def __or__(self, other: ByteClass) -> ByteClass:
        return ByteClass(self.members | other.members)

    def __invert__(self) -> ByteClass:
        return ByteClass(frozenset(range(256)) - self.members)

    def bits(self) -> bytes:
        out = bytearray(LIMITS["CLASS_LEN"])
        for b in self.members:
            out[b >> 3] |= 1 << (b & 7)
        return bytes(out)


def whitespace_class() -> ByteClass:
    """What Python's ``str.strip()`` removes from latin-1 text."""
    return ByteClass(frozenset(c for c in range(256) if chr(c).isspace()))


INPUT = SReg(0)
ARG_CLIENT_HASH = IReg(0)
ARG_SEQUENCE = IReg(1)


class Label:
    __slots__ = ("name", "pc", "where")

    def __init__(self, name: str, where: str) -> None:
        self.name = name
        self.pc: int | None = None
        self.where = where

    def __repr__(self) -> str:
        return f"Label({self.name!r}, pc={self.pc})"


class BuildError(ProgramError):
    """The builder was used wrongly (unplaced label, backward jump, out of registers)."""


def _caller() -> str:
    for frame in reversed(traceback.extract_stack(sys._getframe(2), limit=6)):
        if not frame.filename.endswith("builder.py"):
            return f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno}"
    return "?"


class ProgramBuilder:
    """Collects instructions, constants, tables and decisions; ``build()`` makes a Program."""

    def __init__(self) -> None:
        self._code: list[tuple[int, dict[str, Any], str]] = []
        self._consts: dict[bytes, int] = {}
        self._tables: dict[tuple[int, ...], int] = {}
        self.pools: list[str] = []
        self.decisions: list[Decision] = []
        self.budget = 0
        self._free_i = list(range(4, LIMITS["NREGS"]))
        self._free_s = list(range(1, LIMITS["NSREGS"]))
        self._comments: dict[int, str] = {}
        self._nlabels = 0

    # -- resources
    def ireg(self) -> IReg:
        if not self._free_i:
            raise BuildError(f"{_caller()}: out of integer registers")
        return IReg(self._free_i.pop(0))

    def sreg(self) -> SReg:
        if not self._free_s:
            raise BuildError(f"{_caller()}: out of slice registers")
        return SReg(self._free_s.pop(0))

    def free(self, *regs: IReg | SReg) -> None:
        for reg in regs:
            pool = self._free_i if isinstance(reg, IReg) else self._free_s
            if reg.n not in pool:
                pool.append(reg.n)
                pool.sort()

    def const(self, data: bytes | str) -> int:
        raw = data.encode("latin-1") if isinstance(data, str) else bytes(data)
        return self._consts.setdefault(raw, len(self._consts))

    def table(self, values: Iterable[int]) -> Table:
        key = tuple(int(v) for v in values)
        if not key:
            raise BuildError(f"{_caller()}: a table needs at least one entry")
        return Table(self._tables.setdefault(key, len(self._tables)))

    def pool(self, name: str) -> int:
        if name not in self.pools:
            self.pools.append(name)
        return self.pools.index(name)

    def decision(self, pool: str, offload: str = "splice", name: str = "") -> int:
        self.decisions.append(Decision(self.pool(pool), offload, name))
        return len(self.decisions) - 1

    # -- labels and comments
    def label(self, name: str = "") -> Label:
        self._nlabels += 1
        return Label(name or f"L{self._nlabels}", _caller())

    def place(self, label: Label) -> Label:
        if label.pc is not None:
            raise BuildError(f"{_caller()}: label {label.name} placed twice")
        label.pc = len(self._code)
        return label

    def here(self, name: str = "") -> Label:
        return self.place(self.label(name))

    def comment(self, text: str) -> None:
        """Attach ``text`` to the next instruction (shown by the disassembler)."""
        pc = len(self._code)
        self._comments[pc] = f"{self._comments[pc]}; {text}" if pc in self._comments else text

    def loop_to(self, label: Label, max_iterations: int) -> None:
        """Jump back to ``label``; this site may run ``max_iterations`` times per run."""
        self.budget += max_iterations
        self.emit("loop", label)

    # -- instructions
    def emit(self, name: str, *operands: Any) -> None:
        if name not in OP_BY_NAME:
            raise BuildError(f"{_caller()}: unknown instruction {name!r}")
        op = OPCODES[OP_BY_NAME[name]]
        specs = [(f, s) for f, s in op.fields if s.kind != Kind.NONE]
        if len(operands) != len(specs):
            raise BuildError(f"{_caller()}: {name} takes {len(specs)} operands, "
                             f"got {len(operands)}")
        fields = {f: self._operand(name, s.kind, v) for (f, s), v in zip(specs, operands,
                                                                       strict=True)}
        self._code.append((OP_BY_NAME[name], fields, _caller()))

    def _operand(self, op: str, kind: Kind, value: Any) -> Any:
        want: Callable[[Any], bool] | None = {
            Kind.IREG: lambda v: isinstance(v, IReg),
            Kind.SREG: lambda v: isinstance(v, SReg),
            Kind.TABLE: lambda v: isinstance(v, Table),
            Kind.FWD: lambda v: isinstance(v, Label),
            Kind.BACK: lambda v: isinstance(v, Label),
        }.get(kind)
        if want is not None:
            if not want(value):
                raise BuildError(f"{_caller()}: {op}: expected {kind.name.lower()}, "
                                 f"got {value!r}")
            return value if isinstance(value, Label) else value.n
        if kind == Kind.CONST:
            return value if isinstance(value, int) else self.const(value)
        if kind == Kind.CLASS:
            cls = value if isinstance(value, ByteClass) else ByteClass.of(value)
            return self.const(cls.bits())
        if kind == Kind.FIELD:
            return FIELDS.index(value)
        if kind == Kind.HELPER:
            return HELPER_BY_NAME[value].id
        return int(value)

    def __getattr__(self, name: str) -> Callable[..., None]:
        if name in OP_BY_NAME:
            return lambda *operands: self.emit(name, *operands)
        raise AttributeError(name)

    # -- output
    def build(self, optimize: bool = True, passes: Iterable[str] | None = None) -> Program:
        """Resolve labels, run optimiser passes (``optimize.PASSES``), verify."""
        code = []
        for pc, (op, fields, where) in enumerate(self._code):
            resolved = {}
            for f, v in fields.items():
                if isinstance(v, Label):
                    if v.pc is None:
                        raise BuildError(f"{where}: label {v.name} (made at {v.where}) "
                                         "never placed")
                    kind = OPCODES[op].j.kind
                    if kind == Kind.FWD and v.pc <= pc:
                        raise BuildError(f"{where}: jump to {v.name} goes backward; use "
                                         "loop_to() for loops")
                    v = v.pc
                resolved[f] = v
            code.append(Insn(op, **resolved))
        consts = tuple(sorted(self._consts, key=self._consts.__getitem__))
        tables = tuple(sorted(self._tables, key=self._tables.__getitem__))
        p = Program(tuple(code), consts, tables, tuple(self.pools), tuple(self.decisions),
                    min(self.budget, LIMITS["MAX_LOOP_BUDGET"]),
                    comments=dict(self._comments))
        if optimize:
            from .optimize import run_passes
            p = run_passes(p, passes)
        return verify(p)
