"""A reader for the P4_16 subset native/p4 is written in: enough to extract the control
plane (tables, keys with match kinds and widths, actions with parameter widths, @name
annotations, registers, counters, hashes) and the statements of actions and apply blocks.

Theory of operation
-------------------
1. ``preprocess`` expands ``#include "..."`` (relative to the including file; ``<...>``
   system includes are only recorded), object-like ``#define``, and ``#if/#ifdef/#ifndef/
   #elif/#else/#endif`` with integer expressions. It yields tokens that remember their
   file and line, so every error names a place.
2. ``Parser`` reads top-level declarations: typedef, const, header, struct, parser (body
   skipped), control, and package instantiations. Inside a control it reads actions,
   tables, extern/control instantiations (with an optional ``= { ... }`` initializer, as
   RegisterAction has), local variables and the apply block.
3. Statements and expressions become small tuples (see ``Expr``/``Stmt`` below) that
   ``p4run`` executes and ``Program`` resolves to widths.

It is not a P4 compiler: it checks what the control plane and our tests depend on, and
refuses anything else with an error naming file and line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from p4lex import P4Error, Tok, int_literal, preprocess

__all__ = ["Action", "Control", "Instance", "P4Error", "Program", "Table", "load"]


# --------------------------------------------------------------------------- declarations


@dataclass
class Param:
    name: str
    type: Any  # ("bit", n) | ("name", typename)
    direction: str = ""


@dataclass
class Action:
    name: str
    cp_name: str | None  # @name(".x") without the dot
    params: list[Param]
    body: list[Any]
    annotations: dict[str, str]
    where: str


@dataclass
class Key:
    expr: Any
    match: str
    cp_name: str | None


@dataclass
class Table:
    name: str
    cp_name: str | None
    keys: list[Key]
    actions: list[tuple[str, dict[str, str]]]  # (action name, annotations)
    default_action: Any
    size: Any
    annotations: dict[str, str]
    where: str


@dataclass
class Instance:
    type_name: str
    type_args: list[Any]
    args: list[Any]
    name: str
    cp_name: str | None
    initializer: list[Any]  # RegisterAction: the apply function's statements
    init_params: list[Param]
    where: str


@dataclass
class Control:
    name: str
    params: list[Param]
    ctor_params: list[Param]
    actions: dict[str, Action] = field(default_factory=dict)
    tables: dict[str, Table] = field(default_factory=dict)
    instances: dict[str, Instance] = field(default_factory=dict)
    locals: dict[str, Any] = field(default_factory=dict)
    apply: list[Any] = field(default_factory=list)
    where: str = ""


@dataclass
class ParserDecl:
    """A parser: states hold (statements, transition); a transition is ("goto", state) or
    ("select", [exprs], [(keyset, state)]) with keyset a list of expressions / "_"."""

    name: str
    params: list[Param]
    instances: dict[str, Instance] = field(default_factory=dict)
    states: dict[str, tuple[list[Any], Any]] = field(default_factory=dict)
    where: str = ""


@dataclass
class Program:
    typedefs: dict[str, Any] = field(default_factory=dict)
    consts: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # name -> (type, expr)
    headers: dict[str, list[Param]] = field(default_factory=dict)
    structs: dict[str, list[Param]] = field(default_factory=dict)
    controls: dict[str, Control] = field(default_factory=dict)
    parsers: dict[str, ParserDecl] = field(default_factory=dict)
    top: list[Instance] = field(default_factory=list)
    system_includes: list[str] = field(default_factory=list)
    defines: dict[str, str] = field(default_factory=dict)

    def width(self, typ: Any) -> int:
        """Bit width of a type (bit<N>, a typedef of one, or a header/struct)."""
        if typ[0] == "bit":
            return int(typ[1])
        if typ[0] == "bool":
            return 1
        name = typ[1]
        if name in self.typedefs:
            return self.width(self.typedefs[name])
        if name in self.headers or name in self.structs:
            fields = self.headers.get(name) or self.structs[name]
            return sum(self.width(f.type) for f in fields)
        raise P4Error(f"type {name!r} has no known width")

    def fields_of(self, typ: Any) -> list[Param] | None:
        if typ[0] != "name":
            return None
        name = self.typedefs.get(typ[1], typ)[1] if typ[1] in self.typedefs else typ[1]
        return self.headers.get(name) or self.structs.get(name)

    def is_header(self, typ: Any) -> bool:
        return typ[0] == "name" and typ[1] in self.headers

    def const_value(self, name: str) -> int:
        from p4run import const_eval  # local import: p4run builds on this module

        return const_eval(self, self.consts[name][1])


# --------------------------------------------------------------------------- the parser

_BINARY = [  # loosest first (P4_16 precedence)
    ("||",), ("&&",), ("==", "!="), ("<", ">", "<=", ">="), ("|",), ("^",), ("&",),
    ("<<", ">>"), ("++", "+", "-"), ("*", "/", "%"),
]
_MATCH_KINDS = {"exact", "lpm", "ternary", "range", "selector"}


class Parser:
    def __init__(self, toks: list[Tok], prog: Program) -> None:
        self.toks = toks
        self.i = 0
        self.prog = prog

    # ---- token helpers

    def peek(self, k: int = 0) -> Tok | None:
        j = self.i + k
        return self.toks[j] if j < len(self.toks) else None

    def at(self, *texts: str) -> bool:
        t = self.peek()
        return t is not None and t.text in texts

    def next(self) -> Tok:
        t = self.peek()
        if t is None:
            last = self.toks[-1] if self.toks else None
            raise P4Error(f"{last.where if last else '?'}: unexpected end of input")
        self.i += 1
        return t

    def expect(self, text: str) -> Tok:
        t = self.next()
        if t.text != text:
            raise P4Error(f"{t.where}: expected {text!r}, found {t.text!r}")
        return t

    def ident(self) -> str:
        t = self.next()
        if t.kind != "id":
            raise P4Error(f"{t.where}: expected a name, found {t.text!r}")
        return t.text

    def skip_balanced(self, open_: str, close: str) -> None:
        self.expect(open_)
        depth = 1
        while depth:
            t = self.next()
            depth += (t.text == open_) - (t.text == close)

    # ---- annotations and types

    def annotations(self) -> dict[str, str]:
        out: dict[str, str] = {}
        while self.at("@"):
            self.next()
            name = self.ident()
            value = ""
            if self.at("("):
                start = self.i
                self.skip_balanced("(", ")")
                value = "".join(t.text for t in self.toks[start + 1:self.i - 1])
            out[name] = value.strip('"')
        return out

    def type_ref(self) -> Any:
        t = self.next()
        if t.text in ("bit", "int"):
            self.expect("<")
            w = self.next()
            self.expect(">")
            return ("bit", int_literal(w.text)[0])
        if t.text == "bool":
            return ("bool",)
        if t.kind != "id":
            raise P4Error(f"{t.where}: expected a type, found {t.text!r}")
        typ: Any = ("name", t.text)
        if self.at("<"):  # generic arguments: keep them
            self.next()
            args = [self.type_ref()]
            while self.at(","):
                self.next()
                args.append(self.type_ref())
            self.expect(">")
            typ = ("name", t.text, tuple(args))
        if self.at("["):
            self.next()
            n = int_literal(self.next().text)[0]
            self.expect("]")
            typ = ("stack", typ, n)
        return typ

    def params(self) -> list[Param]:
        self.expect("(")
        out: list[Param] = []
        while not self.at(")"):
            self.annotations()
            direction = self.next().text if self.at("in", "out", "inout") else ""
            typ = self.type_ref()
            out.append(Param(self.ident(), typ, direction))
            if self.at(","):
                self.next()
        self.expect(")")
        return out

    def fields(self) -> list[Param]:
        self.expect("{")
        out: list[Param] = []
        while not self.at("}"):
            self.annotations()
            typ = self.type_ref()
            out.append(Param(self.ident(), typ))
            self.expect(";")
        self.expect("}")
        return out

    # ---- top level

    def program(self) -> Program:
        while self.peek() is not None:
            ann = self.annotations()
            t = self.peek()
            assert t is not None
            word = t.text
            if word == "typedef":
                self.next()
                typ = self.type_ref()
                self.prog.typedefs[self.ident()] = typ
                self.expect(";")
            elif word == "const":
                self.next()
                typ = self.type_ref()
                name = self.ident()
                self.expect("=")
                self.prog.consts[name] = (typ, self.expr())
                self.expect(";")
            elif word in ("header", "struct"):
                self.next()
                name = self.ident()
                target = self.prog.headers if word == "header" else self.prog.structs
                target[name] = self.fields()
            elif word == "parser":
                p = self.parser_decl()
                self.prog.parsers[p.name] = p
            elif word == "control":
                self.control(ann)
            elif t.kind == "id":
                self.prog.top.append(self.instance(ann))
            else:
                raise P4Error(f"{t.where}: unexpected {word!r} at top level")
        return self.prog

    def control(self, _ann: dict[str, str]) -> None:
        where = self.next().where
        name = self.ident()
        params = self.params()
        ctor = self.params() if self.at("(") else []
        ctl = Control(name, params, ctor, where=where)
        self.expect("{")
        while not self.at("}"):
            ann = self.annotations()
            t = self.peek()
            assert t is not None
            if t.text == "action":
                a = self.action(ann)
                ctl.actions[a.name] = a
            elif t.text == "table":
                tb = self.table(ann)
                ctl.tables[tb.name] = tb
            elif t.text == "apply":
                self.next()
                ctl.apply = self.block()
            elif t.text in ("bit", "bool", "int") or (
                    t.kind == "id" and self.peek(1) is not None
                    and self.peek(1).kind == "id"):  # type: ignore[union-attr]
                typ = self.type_ref()
                ctl.locals[self.ident()] = typ
                self.expect(";")
            else:
                inst = self.instance(ann)
                ctl.instances[inst.name] = inst
        self.expect("}")
        if name in self.prog.controls:
            raise P4Error(f"{where}: control {name} defined twice")
        self.prog.controls[name] = ctl

    def parser_decl(self) -> ParserDecl:
        where = self.expect("parser").where
        p = ParserDecl(self.ident(), self.params(), where=where)
        self.expect("{")
        while not self.at("}"):
            ann = self.annotations()
            if not self.at("state"):
                inst = self.instance(ann)
                p.instances[inst.name] = inst
                continue
            self.next()
            name = self.ident()
            self.expect("{")
            stmts: list[Any] = []
            while not self.at("transition"):
                stmts.append(self.statement())
            self.expect("transition")
            if self.at("select"):
                self.next()
                exprs = self.call_args()
                self.expect("{")
                cases = []
                while not self.at("}"):
                    cases.append((self.keyset(), self.next_state()))
                self.expect("}")
                trans: Any = ("select", exprs, cases)
            else:
                trans = ("goto", self.ident())
                self.expect(";")
            self.expect("}")
            p.states[name] = (stmts, trans)
        self.expect("}")
        return p

    def keyset(self) -> list[Any]:
        def one() -> Any:
            if self.at("_", "default"):
                self.next()
                return "_"
            return self.expr()
        if self.at("("):
            self.next()
            items = [one()]
            while self.at(","):
                self.next()
                items.append(one())
            self.expect(")")
        else:
            items = [one()]
        self.expect(":")
        return items

    def next_state(self) -> str:
        name = self.ident()
        self.expect(";")
        return name

    def action(self, ann: dict[str, str]) -> Action:
        where = self.expect("action").where
        name = self.ident()
        params = self.params()
        body = self.block()
        return Action(name, _cp_name(ann, where), params, body, ann, where)

    def table(self, ann: dict[str, str]) -> Table:
        where = self.expect("table").where
        name = self.ident()
        tb = Table(name, _cp_name(ann, where), [], [], None, None, ann, where)
        self.expect("{")
        while not self.at("}"):
            prop_ann = self.annotations()
            if self.at("const"):
                self.next()
            prop = self.ident()
            self.expect("=")
            if prop == "key":
                self.expect("{")
                while not self.at("}"):
                    e = self.expr()
                    self.expect(":")
                    kind = self.ident()
                    if kind not in _MATCH_KINDS:
                        raise P4Error(f"{where}: unknown match kind {kind!r}")
                    kann = self.annotations()
                    self.expect(";")
                    tb.keys.append(Key(e, kind, kann.get("name")))
                self.expect("}")
            elif prop == "actions":
                self.expect("{")
                while not self.at("}"):
                    aann = self.annotations()
                    tb.actions.append((self.ident(), aann))
                    if self.at("("):
                        self.skip_balanced("(", ")")
                    self.expect(";")
                self.expect("}")
            elif prop in ("default_action", "size"):
                setattr(tb, prop, self.expr())
                self.expect(";")
            else:
                raise P4Error(f"{where}: table property {prop!r} is not supported")
            del prop_ann
        self.expect("}")
        return tb

    def instance(self, ann: dict[str, str]) -> Instance:
        where = self.peek().where  # type: ignore[union-attr]
        typ = self.type_ref()
        args = self.call_args()
        name = self.ident()
        init: list[Any] = []
        init_params: list[Param] = []
        if self.at("="):
            self.next()
            self.expect("{")
            self.expect("void")
            self.expect("apply")
            init_params = self.params()
            init = self.block()
            self.expect("}")
        self.expect(";")
        return Instance(typ[1], list(typ[2]) if len(typ) > 2 else [], args, name,
                        _cp_name(ann, where), init, init_params, where)

    def call_args(self) -> list[Any]:
        self.expect("(")
        args: list[Any] = []
        while not self.at(")"):
            args.append(self.expr())
            if self.at(","):
                self.next()
        self.expect(")")
        return args

    # ---- statements: ("block", [..]) ("assign", lhs, rhs) ("call", expr) ("if", c, a, b)
    #                  ("var", name, type, init)

    def block(self) -> list[Any]:
        self.expect("{")
        out: list[Any] = []
        while not self.at("}"):
            out.append(self.statement())
        self.expect("}")
        return out

    def statement(self) -> Any:
        self.annotations()  # e.g. @in_hash { ... }: the block runs as written
        t = self.peek()
        assert t is not None
        if t.text == "{":
            return ("block", self.block())
        if t.text == "if":
            self.next()
            self.expect("(")
            cond = self.expr()
            self.expect(")")
            then = self.statement()
            other = None
            if self.at("else"):
                self.next()
                other = self.statement()
            return ("if", cond, then, other)
        if t.text in ("bit", "bool") or (t.kind == "id" and self.peek(1) is not None
                                         and self.peek(1).kind == "id"):  # type: ignore
            typ = self.type_ref()
            name = self.ident()
            init = None
            if self.at("="):
                self.next()
                init = self.expr()
            self.expect(";")
            return ("var", name, typ, init, t.where)
        lhs = self.expr()
        if self.at("="):
            self.next()
            rhs = self.expr()
            self.expect(";")
            return ("assign", lhs, rhs, t.where)
        self.expect(";")
        if lhs[0] != "call":
            raise P4Error(f"{t.where}: expression statement is not a call")
        return ("call", lhs, t.where)

    # ---- expressions: ("int", v, w) ("name", n) ("member", e, n) ("index", e, i)
    #                   ("slice", e, hi, lo) ("call", f, args) ("bin", op, a, b)
    #                   ("un", op, e) ("cast", type, e) ("list", [..]) ("bool", v)

    def expr(self, level: int = 0) -> Any:
        if level == len(_BINARY):
            return self.unary()
        left = self.expr(level + 1)
        while True:
            op = self._binop(_BINARY[level])
            if op is None:
                return left
            left = ("bin", op, left, self.expr(level + 1))

    def _binop(self, ops: tuple[str, ...]) -> str | None:
        t = self.peek()
        if t is None or t.kind != "op":
            return None
        if ">>" in ops and t.text == ">":
            n = self.peek(1)
            if n is not None and n.text == ">" and n.line == t.line and n.col == t.col + 1:
                self.i += 2
                return ">>"
        if t.text in ops and t.text != ">>":
            if t.text == ">":
                n = self.peek(1)
                if n is not None and n.text == ">" and n.col == t.col + 1:
                    return None  # a shift, handled at its own level
            self.i += 1
            return t.text
        return None

    def unary(self) -> Any:
        t = self.peek()
        assert t is not None
        if t.text in ("!", "~", "-"):
            self.next()
            return ("un", t.text, self.unary())
        if t.text == "(" and self.peek(1) is not None and self.peek(1).text in ("bit", "bool"):  # type: ignore
            self.next()
            typ = self.type_ref()
            self.expect(")")
            return ("cast", typ, self.unary())
        return self.postfix(self.primary())

    def primary(self) -> Any:
        t = self.next()
        if t.kind == "int":
            v, w = int_literal(t.text)
            return ("int", v, w)
        if t.text in ("true", "false"):
            return ("bool", t.text == "true")
        if t.text == "(":
            e = self.expr()
            self.expect(")")
            return e
        if t.text == "{":
            items: list[Any] = []
            while not self.at("}"):
                items.append(self.expr())
                if self.at(","):
                    self.next()
            self.expect("}")
            return ("list", items)
        if t.kind == "id":
            return ("name", t.text)
        raise P4Error(f"{t.where}: unexpected {t.text!r} in expression")

    def postfix(self, e: Any) -> Any:
        while True:
            if self.at("."):
                self.next()
                e = ("member", e, self.ident())
            elif self.at("["):
                self.next()
                first = self.expr()
                if self.at(":"):
                    self.next()
                    lo = self.expr()
                    self.expect("]")
                    e = ("slice", e, first, lo)
                else:
                    self.expect("]")
                    e = ("index", e, first)
            elif self.at("<") and e[0] == "member" and e[2] == "lookahead":
                self.next()
                typ = self.type_ref()
                self.expect(">")
                e = ("call", e, self.call_args(), typ)
            elif self.at("("):
                e = ("call", e, self.call_args())
            else:
                return e


def _cp_name(ann: dict[str, str], where: str) -> str | None:
    name = ann.get("name")
    if name is None:
        return None
    if not name.startswith("."):
        raise P4Error(f"{where}: @name({name!r}) must be global (start with '.')")
    return name[1:]


def load(top: Path, target: int = 1, defines: dict[str, str] | None = None) -> Program:
    """Read ``top`` (e.g. native/p4/miresga.p4) as bf-p4c would for ``target`` (1 or 2)."""
    defs = {"__TARGET_TOFINO__": str(target), "PORT_METADATA_SIZE": "64"}
    defs.update(defines or {})
    system: list[str] = []
    toks = preprocess(Path(top), defs, system)
    prog = Program(system_includes=system, defines=defs)
    return Parser(toks, prog).program()
