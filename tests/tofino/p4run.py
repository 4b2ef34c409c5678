"""Run controls of a parsed P4 program (p4parse) on header and metadata values.

Theory of operation
-------------------
A ``Machine`` holds every field as an integer keyed by its path ("hdr.ipv4.src_addr"),
the set of valid headers, and the register arrays. ``run(control)`` executes the apply
block with P4's sequential semantics: statements in order, actions called with their
parameters bound, ``t.apply()`` asking a test-supplied function for the entry that
matches the evaluated key (a miss runs the table's default action), sub-controls applied
with their arguments bound to paths, RegisterAction bodies executed on the register array,
Hash ``get`` answered by a test-supplied function, Counter ``count`` recorded.

Widths come from the declared types: every assignment is truncated to its destination,
``+``/``-`` wrap at the operand width, ``++`` needs both widths known, slices take
``[hi:lo]``. It models what the tests need from native/p4 (the ingress control); parsers
and deparsers are not executed (tests set the parsed headers directly).
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from p4parse import Control, P4Error, Param, Program

__all__ = ["TNA_STRUCTS", "Machine", "const_eval"]

#: widths of the TNA intrinsic metadata fields native/p4 uses (from the TNA documentation)
TNA_STRUCTS: dict[str, list[tuple[str, int]]] = {
    "ingress_intrinsic_metadata_t": [("ingress_port", 9), ("ingress_mac_tstamp", 48)],
    "ingress_intrinsic_metadata_from_parser_t": [("global_tstamp", 48), ("global_ver", 32),
                                                 ("parser_err", 16)],
    "ingress_intrinsic_metadata_for_tm_t": [("ucast_egress_port", 9), ("bypass_egress", 1)],
    "ingress_intrinsic_metadata_for_deparser_t": [("drop_ctl", 3), ("digest_type", 3)],
}

_COMPARE: dict[str, Callable[[int, int], bool]] = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt, ">": operator.gt,
    "<=": operator.le, ">=": operator.ge}
_ARITH: dict[str, Callable[[int, int], int]] = {
    "+": operator.add, "-": operator.sub, "^": operator.xor, "&": operator.and_,
    "|": operator.or_, "<<": operator.lshift, ">>": operator.rshift, "*": operator.mul}

TableFn = Callable[[dict[str, int]], "tuple[str, dict[str, int]] | None"]


def _install_tna(prog: Program) -> None:
    for name, fields in TNA_STRUCTS.items():
        prog.structs.setdefault(name, [Param(f, ("bit", w)) for f, w in fields])


def const_eval(prog: Program, expr: Any) -> int:
    """Value of a constant expression (literals, consts, arithmetic)."""
    m = Machine(prog)
    return m.eval(expr, _Frame(None, {}, {}, {}))[0]


@dataclass
class _Frame:
    control: Control | None
    bindings: dict[str, tuple[str, Any]]  # param name -> (path, type)
    locals: dict[str, list[Any]]  # name -> [value, width]
    ctor: dict[str, int]


@dataclass
class Machine:
    prog: Program
    tables: dict[str, TableFn] = field(default_factory=dict)
    hashes: Callable[[Any, list[tuple[int, int]], Machine], int] | None = None
    values: dict[str, int] = field(default_factory=dict)
    valid: set[str] = field(default_factory=set)
    registers: dict[str, dict[int, int]] = field(default_factory=dict)
    counted: list[tuple[str, int]] = field(default_factory=list)
    trace: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        _install_tna(self.prog)

    # ---- public

    def run(self, control: str, ctor: dict[str, int] | None = None) -> None:
        ctl = self.prog.controls[control]
        bindings = {p.name: (p.name, p.type) for p in ctl.params}
        self._apply_control(ctl, bindings, ctor or {})

    def get(self, path: str) -> int:
        return self.values.get(path, 0)

    def set(self, path: str, value: int) -> None:
        self.values[path] = value

    # ---- controls, actions, tables

    def _apply_control(self, ctl: Control, bindings: dict[str, tuple[str, Any]],
                       ctor: dict[str, int]) -> None:
        frame = _Frame(ctl, bindings, {}, ctor)
        for name, typ in ctl.locals.items():
            frame.locals[name] = [0, self.prog.width(typ)]
        self._block(ctl.apply, frame)

    def _action(self, frame: _Frame, name: str, args: list[Any]) -> None:
        ctl = frame.control
        if ctl is None or name not in ctl.actions:
            raise P4Error(f"no action {name!r} in control {ctl.name if ctl else '?'}")
        act = ctl.actions[name]
        if len(args) != len(act.params):
            raise P4Error(f"{act.where}: {name} takes {len(act.params)} arguments")
        inner = _Frame(ctl, frame.bindings, {}, frame.ctor)
        for p, v in zip(act.params, args, strict=True):
            w = self.prog.width(p.type)
            inner.locals[p.name] = [v & ((1 << w) - 1), w]
        self.trace.append(act.cp_name or name)
        self._block(act.body, inner)

    def _table(self, frame: _Frame, name: str) -> bool:
        assert frame.control is not None
        tb = frame.control.tables[name]
        keys = {(k.cp_name or repr(k.expr)): self.eval(k.expr, frame)[0] for k in tb.keys}
        fn = self.tables.get(tb.cp_name or name)
        hit = fn(keys) if fn else None
        self.trace.append(f"{tb.cp_name or name}:{'hit' if hit else 'miss'}")
        if hit is not None:
            action, params = hit
            if action not in [a for a, _ in tb.actions]:
                raise P4Error(f"{tb.where}: table {name} has no action {action!r}")
            act = frame.control.actions[action]
            self._action(frame, action, [params[p.name] for p in act.params])
            return True
        d = tb.default_action
        if d[0] == "call" and d[1] == ("name", "NoAction"):
            return False
        if d[0] == "call":
            self._action(frame, d[1][1], [self.eval(a, frame)[0] for a in d[2]])
        elif d[0] == "name" and d[1] != "NoAction":
            self._action(frame, d[1], [])
        return False

    # ---- statements

    def _block(self, stmts: list[Any], frame: _Frame) -> None:
        for s in stmts:
            self._stmt(s, frame)

    def _stmt(self, s: Any, frame: _Frame) -> None:
        kind = s[0]
        if kind == "block":
            self._block(s[1], frame)
        elif kind == "if":
            if self.eval(s[1], frame)[0]:
                self._stmt(s[2], frame)
            elif s[3] is not None:
                self._stmt(s[3], frame)
        elif kind == "assign":
            self._assign(s[1], self.eval(s[2], frame), frame)
        elif kind == "call":
            self._call(s[1], frame)
        elif kind == "var":
            w = self.prog.width(s[2])
            v = self.eval(s[3], frame)[0] if s[3] is not None else 0
            frame.locals[s[1]] = [v & ((1 << w) - 1), w]
        else:
            raise P4Error(f"statement {kind} not supported")

    def _assign(self, lhs: Any, rhs: tuple[int, int | None], frame: _Frame) -> None:
        if lhs[0] == "name" and lhs[1] in frame.locals:
            slot = frame.locals[lhs[1]]
            slot[0] = rhs[0] & ((1 << slot[1]) - 1)
            return
        path, typ = self._path(lhs, frame)
        w = self.prog.width(typ)
        if rhs[1] is not None and rhs[1] > w:
            raise P4Error(f"{path}: assigning {rhs[1]} bits to a {w}-bit field")
        self.values[path] = rhs[0] & ((1 << w) - 1)

    # ---- paths

    def _path(self, e: Any, frame: _Frame) -> tuple[str, Any]:
        if e[0] == "name":
            if e[1] in frame.bindings:
                return frame.bindings[e[1]]
            raise P4Error(f"unknown name {e[1]!r}")
        if e[0] == "member":
            base, typ = self._path(e[1], frame)
            fields = self.prog.fields_of(typ)
            if fields is None:
                raise P4Error(f"{base} has no fields")
            for f in fields:
                if f.name == e[2]:
                    return f"{base}.{e[2]}", f.type
            raise P4Error(f"{base} has no field {e[2]!r}")
        if e[0] == "index":
            base, typ = self._path(e[1], frame)
            if typ[0] != "stack":
                raise P4Error(f"{base} is not a header stack")
            i = self.eval(e[2], frame)[0]
            if not 0 <= i < typ[2]:
                raise P4Error(f"{base}[{i}] out of range")
            return f"{base}[{i}]", typ[1]
        raise P4Error(f"not a field path: {e!r}")

    # ---- calls

    def _call(self, e: Any, frame: _Frame) -> tuple[int, int | None]:
        callee, args = e[1], e[2]
        if callee[0] == "name":
            self._action(frame, callee[1], [self.eval(a, frame)[0] for a in args])
            return 0, None
        if callee[0] != "member":
            raise P4Error(f"cannot call {callee!r}")
        target, method = callee[1], callee[2]
        ctl = frame.control
        if target[0] == "name" and ctl is not None:
            if target[1] in ctl.tables and method == "apply":
                self._table(frame, target[1])
                return 0, None
            if target[1] in ctl.instances:
                return self._instance(frame, ctl.instances[target[1]], method, args)
        path, typ = self._path(target, frame)
        if method in ("setValid", "setInvalid", "isValid"):
            if not self.prog.is_header(typ):
                raise P4Error(f"{path} is not a header")
            if method == "isValid":
                return int(path in self.valid), 1
            (self.valid.add if method == "setValid" else self.valid.discard)(path)
            return 0, None
        raise P4Error(f"method {method} of {path} not supported")

    def _instance(self, frame: _Frame, inst: Any, method: str,
                  args: list[Any]) -> tuple[int, int | None]:
        if inst.type_name in self.prog.controls and method == "apply":
            sub = self.prog.controls[inst.type_name]
            binds = {p.name: self._path(a, frame) for p, a in zip(sub.params, args, strict=True)}
            ctor = {p.name: self.eval(a, frame)[0]
                    for p, a in zip(sub.ctor_params, inst.args, strict=True)}
            self._apply_control(sub, binds, ctor)
            return 0, None
        vals = [self.eval(a, frame) for a in args]
        if inst.type_name == "Hash" and method == "get":
            if self.hashes is None:
                raise P4Error(f"{inst.where}: hash {inst.name} used but no hash function given")
            w = self.prog.width(inst.type_args[0])
            fields = [(v, fw) for v, fw in vals[0][0]]
            return self.hashes(inst, fields, self) & ((1 << w) - 1), w
        if inst.type_name == "Counter" and method == "count":
            self.counted.append((inst.cp_name or inst.name, vals[0][0]))
            return 0, None
        if inst.type_name == "RegisterAction" and method == "execute":
            return self._register_action(frame, inst, vals[0][0])
        raise P4Error(f"{inst.where}: {inst.type_name}.{method} not supported")

    def _register_action(self, frame: _Frame, inst: Any, index: int) -> tuple[int, int | None]:
        assert frame.control is not None
        reg = frame.control.instances[inst.args[0][1]]
        size = self.eval(reg.args[0], frame)[0]
        if not 0 <= index < size:
            raise P4Error(f"{reg.name}[{index}] out of range {size}")
        cells = self.registers.setdefault(reg.cp_name or reg.name, {})
        value_p, out_p = inst.init_params
        inner = _Frame(frame.control, frame.bindings, {}, frame.ctor)
        inner.locals[value_p.name] = [cells.get(index, 0), self.prog.width(value_p.type)]
        inner.locals[out_p.name] = [0, self.prog.width(out_p.type)]
        self._block(inst.initializer, inner)
        cells[index] = inner.locals[value_p.name][0]
        return inner.locals[out_p.name][0], inner.locals[out_p.name][1]

    # ---- expressions: (value, width or None)

    def eval(self, e: Any, frame: _Frame) -> tuple[Any, int | None]:
        kind = e[0]
        if kind == "int":
            return e[1], e[2]
        if kind == "bool":
            return int(e[1]), 1
        if kind == "list":
            return [self.eval(x, frame) for x in e[1]], None
        if kind == "name":
            name = e[1]
            if name in frame.locals:
                return frame.locals[name][0], frame.locals[name][1]
            if name in frame.ctor:
                return frame.ctor[name], 32
            if name in self.prog.consts:
                typ, cexpr = self.prog.consts[name]
                w = self.prog.width(typ)
                return self.eval(cexpr, frame)[0] & ((1 << w) - 1), w
            path, typ = self._path(e, frame)
            return self.values.get(path, 0), self.prog.width(typ)
        if kind == "member" and e[1][0] == "call" and e[2] in ("hit", "miss"):
            callee = e[1][1]
            ctl = frame.control
            if (callee[0] != "member" or callee[2] != "apply" or ctl is None
                    or callee[1][0] != "name" or callee[1][1] not in ctl.tables):
                raise P4Error(f".{e[2]} of something that is not a table apply")
            hit = self._table(frame, callee[1][1])
            return int(hit == (e[2] == "hit")), 1
        if kind in ("member", "index"):
            path, typ = self._path(e, frame)
            return self.values.get(path, 0), self.prog.width(typ)
        if kind == "slice":
            v, _ = self.eval(e[1], frame)
            hi, lo = self.eval(e[2], frame)[0], self.eval(e[3], frame)[0]
            return (v >> lo) & ((1 << (hi - lo + 1)) - 1), hi - lo + 1
        if kind == "call":
            return self._call(e, frame)
        if kind == "cast":
            w = self.prog.width(e[1])
            return self.eval(e[2], frame)[0] & ((1 << w) - 1), w
        if kind == "un":
            v, w = self.eval(e[2], frame)
            if e[1] == "!":
                return int(not v), 1
            mask = (1 << (w or 64)) - 1
            return ((~v) if e[1] == "~" else -v) & mask, w
        if kind == "bin":
            return self._binary(e[1], self.eval(e[2], frame), self.eval(e[3], frame))
        raise P4Error(f"expression {kind} not supported")

    @staticmethod
    def _binary(op: str, a: tuple[int, int | None], b: tuple[int, int | None]
                ) -> tuple[int, int | None]:
        (x, wa), (y, wb) = a, b
        if op == "++":
            if wa is None or wb is None:
                raise P4Error("'++' needs operands of known width")
            return (x << wb) | y, wa + wb
        if op in ("&&", "||"):
            return int(bool(x) and bool(y) if op == "&&" else bool(x) or bool(y)), 1
        if op in _COMPARE:
            return int(_COMPARE[op](x, y)), 1
        if op not in _ARITH:
            raise P4Error(f"operator {op} not supported")
        w = wa if wa is not None else wb
        if op == "<<" and w is not None and y >= w:
            return 0, w  # every bit shifted out (and no huge intermediate)
        value = _ARITH[op](x, y)
        return (value & ((1 << w) - 1) if w is not None else value), w
