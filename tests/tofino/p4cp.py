"""The control plane a P4 program exposes, derived from its source (what bf-p4c would put
in bf-rt.json, for the objects native/p4 uses).

Rules it enforces (native/p4/README.md, "Naming"):
* every table, every action a table lists, every Register and every Counter carries a
  global ``@name(".x")``; every key element carries ``@name("field")``;
* actions no table lists are internal: they carry no @name;
* a control that holds control-plane objects is instantiated exactly once;
* no two objects share a control-plane name.

bfrt conventions modelled: a register is a table keyed by ``$REGISTER_INDEX`` with one
data field ``<name>.f1``; a counter is keyed by ``$COUNTER_INDEX`` with data fields
``$COUNTER_SPEC_PKTS`` and ``$COUNTER_SPEC_BYTES`` (64 bits each).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from p4parse import Control, P4Error, Program
from p4run import Machine, _Frame

__all__ = ["CpField", "CpTable", "control_plane"]


@dataclass(frozen=True)
class CpField:
    name: str
    bits: int
    match: str = "exact"


@dataclass
class CpTable:
    name: str
    kind: str  # "match" | "register" | "counter"
    size: int
    keys: tuple[CpField, ...] = ()
    actions: dict[str, tuple[CpField, ...]] = field(default_factory=dict)
    default_only: frozenset[str] = frozenset()
    default_action: tuple[str, tuple[int, ...]] | None = None
    data: tuple[CpField, ...] = ()
    control: str = ""


def _ctor_values(prog: Program) -> dict[str, list[dict[str, int]]]:
    """control type -> ctor argument values of each of its instantiations."""
    m = Machine(prog)
    out: dict[str, list[dict[str, int]]] = {}
    for ctl in prog.controls.values():
        for inst in ctl.instances.values():
            sub = prog.controls.get(inst.type_name)
            if sub is None:
                continue
            frame = _Frame(None, {}, {}, {})
            vals = {p.name: m.eval(a, frame)[0]
                    for p, a in zip(sub.ctor_params, inst.args, strict=True)}
            out.setdefault(sub.name, []).append(vals)
    return out


def _width(m: Machine, ctl: Control, expr: Any) -> int:
    frame = _Frame(ctl, {p.name: (p.name, p.type) for p in ctl.params}, {}, {})
    if expr[0] == "slice":
        return m.eval(expr[2], frame)[0] - m.eval(expr[3], frame)[0] + 1
    return m.prog.width(m._path(expr, frame)[1])


def control_plane(prog: Program) -> dict[str, CpTable]:
    """Every control-plane object of ``prog`` by name; P4Error on a naming rule broken."""
    m = Machine(prog)
    ctors = _ctor_values(prog)
    out: dict[str, CpTable] = {}

    def add(t: CpTable, where: str) -> None:
        if t.name in out:
            raise P4Error(f"{where}: control-plane name {t.name!r} used twice")
        out[t.name] = t

    for ctl in prog.controls.values():
        in_tables = {a for tb in ctl.tables.values() for a, _ in tb.actions}
        has_cp = bool(ctl.tables) or any(i.type_name in ("Register", "Counter")
                                         for i in ctl.instances.values())
        uses = ctors.get(ctl.name, [])
        if has_cp and len(uses) > 1:
            raise P4Error(f"{ctl.where}: control {ctl.name} holds tables but is "
                          f"instantiated {len(uses)} times")
        ctor = uses[0] if uses else {}
        frame = _Frame(ctl, {}, {}, ctor)
        for act in ctl.actions.values():
            if act.name not in in_tables and act.cp_name is not None:
                raise P4Error(f"{act.where}: internal action {act.name} must not carry @name")
        for tb in ctl.tables.values():
            if tb.cp_name is None:
                raise P4Error(f"{tb.where}: table {tb.name} has no @name(\".x\")")
            keys = []
            for k in tb.keys:
                if k.cp_name is None:
                    raise P4Error(f"{tb.where}: a key of {tb.name} has no @name")
                keys.append(CpField(k.cp_name, _width(m, ctl, k.expr), k.match))
            actions: dict[str, tuple[CpField, ...]] = {}
            default_only = set()
            for aname, ann in tb.actions:
                if aname == "NoAction":
                    actions["NoAction"] = ()
                    default_only.add("NoAction")
                    continue
                act = ctl.actions.get(aname)
                if act is None:
                    raise P4Error(f"{tb.where}: table {tb.name} lists unknown action {aname}")
                if act.cp_name is None:
                    raise P4Error(f"{act.where}: action {aname} of table {tb.name} has no "
                                  f"@name(\".x\")")
                actions[act.cp_name] = tuple(CpField(p.name, prog.width(p.type))
                                             for p in act.params)
                if "defaultonly" in ann:
                    default_only.add(act.cp_name)
            d = tb.default_action
            dname = d[1][1] if d[0] == "call" else d[1]
            dargs = tuple(m.eval(a, frame)[0] for a in d[2]) if d[0] == "call" else ()
            dcp = "NoAction" if dname == "NoAction" else ctl.actions[dname].cp_name
            assert dcp is not None
            add(CpTable(tb.cp_name, "match", m.eval(tb.size, frame)[0], tuple(keys), actions,
                        frozenset(default_only), (dcp, dargs), control=ctl.name), tb.where)
        for inst in ctl.instances.values():
            if inst.type_name not in ("Register", "Counter"):
                continue
            if inst.cp_name is None:
                raise P4Error(f"{inst.where}: {inst.type_name} {inst.name} has no @name")
            size = m.eval(inst.args[0], frame)[0]
            if inst.type_name == "Register":
                data: tuple[CpField, ...] = (
                    CpField(f"{inst.cp_name}.f1", prog.width(inst.type_args[0])),)
                add(CpTable(inst.cp_name, "register", size, (CpField("$REGISTER_INDEX", 32),),
                            data=data, control=ctl.name), inst.where)
            else:
                data = (CpField("$COUNTER_SPEC_PKTS", 64), CpField("$COUNTER_SPEC_BYTES", 64))
                add(CpTable(inst.cp_name, "counter", size, (CpField("$COUNTER_INDEX", 32),),
                            data=data, control=ctl.name), inst.where)
    return out
