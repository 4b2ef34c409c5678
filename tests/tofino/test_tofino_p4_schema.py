"""native/p4 against the shared schema: every table, key, action and parameter of one
exists in the other with the same names, widths, match kinds and sizes."""

from __future__ import annotations

import re
import shutil
from functools import cache
from pathlib import Path

import p4parse
import pytest
from p4cp import control_plane
from p4parse import P4Error

from miresga_core.dataplane import gen_p4, names, schema
from miresga_core.dataplane.schema import Kind, Match

ROOT = Path(__file__).resolve().parents[2]
P4 = ROOT / "native" / "p4"
TOFINO_TABLES = [t for t in schema.SCHEMA if "tofino" in t.targets]
MATCH = {Match.EXACT: "exact", Match.LPM: "lpm", Match.INDEX: "exact"}


@cache
def cp(target: int = 1):
    return control_plane(p4parse.load(P4 / "miresga.p4", target))


@pytest.mark.parametrize("t", TOFINO_TABLES, ids=lambda t: t.name)
def test_schema_table_is_in_p4(t):
    p4 = cp()
    assert t.name in p4, f"schema table {t.name} missing from native/p4"
    got = p4[t.name]
    if t.kind is Kind.REGISTER:
        assert got.kind == "register"
        assert got.size == t.size
        assert [(f.name, f.bits) for f in got.data] == [(f"{t.name}.f1", t.value_fields[0].bits)]
        return
    if t.kind is Kind.COUNTER:
        assert got.kind == "counter"
        assert got.size == t.size == len(schema.COUNTERS)
        assert {f.bits for f in got.data} == {f.bits for f in t.value_fields} == {64}
        return
    assert got.kind == "match"
    assert got.size == t.size, f"{t.name}: P4 size {got.size}, schema {t.size}"
    if t.kind is Kind.SINGLETON:
        assert got.keys == ()
    else:
        assert [(k.name, k.bits, k.match) for k in got.keys] == \
            [(k.name, k.bits, MATCH[k.match]) for k in t.keys]
    assert t.action is not None
    assert t.action.name in got.actions
    assert [(p.name, p.bits) for p in got.actions[t.action.name]] == \
        [(p.name, p.bits) for p in t.action.params]


def test_every_p4_object_is_in_the_schema():
    p4 = cp()
    tofino = {t.name: t for t in TOFINO_TABLES}
    assert set(p4) == set(tofino), "P4 and schema disagree on the set of tables"
    for name, got in p4.items():
        entry_actions = set(got.actions) - got.default_only
        t = tofino[name]
        assert entry_actions == ({t.action.name} if t.action else set()), name
        # the only other action a table may list is NoAction as its fixed miss
        assert got.default_only <= {"NoAction"}, name


def test_action_names_are_unique_and_global():
    prog = p4parse.load(P4 / "miresga.p4")
    seen: dict[str, str] = {}
    for ctl in prog.controls.values():
        for act in ctl.actions.values():
            if act.cp_name is not None:
                assert act.cp_name not in seen, f"action {act.cp_name} twice"
                seen[act.cp_name] = ctl.name
    assert set(seen) == {t.action.name for t in TOFINO_TABLES if t.action}


def test_tofino_2_has_the_same_control_plane():
    one, two = cp(1), cp(2)
    assert {n: (t.kind, t.size, t.keys, t.actions) for n, t in one.items()} == \
        {n: (t.kind, t.size, t.keys, t.actions) for n, t in two.items()}
    assert "tna.p4" in p4parse.load(P4 / "miresga.p4", 1).system_includes
    assert "t2na.p4" in p4parse.load(P4 / "miresga.p4", 2).system_includes


def test_generated_counters_are_fresh():
    committed = (P4 / "generated" / "counters.p4").read_text()
    assert committed == gen_p4.render_counters(), \
        "native/p4/generated/counters.p4 is stale: python3 -m miresga_core.dataplane.gen_p4"


def test_counter_constants_follow_schema_order():
    prog = p4parse.load(P4 / "miresga.p4")
    for i, (name, _doc) in enumerate(schema.COUNTERS):
        assert prog.const_value(f"CTR_{name.upper()}") == i


def test_cookie_constants_follow_cookie_py():
    from miresga_core import cookie

    prog = p4parse.load(P4 / "miresga.p4")
    assert [prog.const_value(f"MSS_CLASS_{i}") for i in (1, 2, 3)] == list(cookie.MSS_CLASSES[1:])
    assert prog.const_value("WSCALE_NONE") == cookie.WSCALE_NONE
    assert prog.const_value("WSCALE_MAX") == cookie.WSCALE_MAX
    assert prog.const_value("OFFLOAD_MODE_PIN") == int(schema.OffloadModeId.PIN)
    # slot_add takes slot_delta[47:36]: the shift is cookie.SLOT_SHIFT
    text = (P4 / "cookie.p4").read_text()
    assert f"slot_delta[47:{cookie.SLOT_SHIFT}]" in text


def test_program_name_is_the_file_stem():
    from miresga_core.dataplane.tofino import PROGRAM

    # bf-p4c names the program after the source file; the driver binds that name
    assert (P4 / f"{PROGRAM}.p4").is_file()


# ---------------------------------------------------------------- the rules bite


def _mutated(tmp_path: Path, file: str, old: str, new: str) -> Path:
    dst = tmp_path / "p4"
    shutil.copytree(P4, dst)
    text = (dst / file).read_text()
    assert old in text, f"{old!r} not in {file}"
    (dst / file).write_text(text.replace(old, new, 1))
    return dst / "miresga.p4"


@pytest.mark.parametrize(("file", "old", "new", "error"), [
    ("vip.p4", '@name(".vip")\n', "", "has no @name"),
    ("vip.p4", 'exact @name("vip_port")', "exact", "a key of vip has no @name"),
    ("steering.p4", '@name(".set_frontend")\n', "", "has no @name"),
    ("offload.p4", '@name(".offloaded")', '@name("offloaded")', "must be global"),
    ("cookie.p4", "    action sip_out()", '    @name(".sip_out") action sip_out()',
     "internal action sip_out must not carry @name"),
    ("rewrite.p4", '@name(".backend")\n    table backend',
     '@name(".frontend")\n    table backend', "used twice"),
    ("routing.p4", "meta.route_dst : lpm", "meta.route_dst : fuzzy", "unknown match kind"),
    ("miresga.p4", '#include "vip.p4"', '#include "nope.p4"', "cannot find include"),
])
def test_naming_rules_are_enforced(tmp_path, file, old, new, error):
    top = _mutated(tmp_path, file, old, new)
    with pytest.raises(P4Error, match=re.escape(error)):
        control_plane(p4parse.load(top))


def test_a_width_change_in_p4_is_seen(tmp_path):
    top = _mutated(tmp_path, "types.p4", "typedef bit<10> lb_bucket_t;",
                   "typedef bit<11> lb_bucket_t;")
    got = control_plane(p4parse.load(top))
    assert got[names.LB_INDEX_0].keys[0].bits == 11
    assert schema.table(names.LB_INDEX_0).keys[0].bits == 10


def test_a_size_change_in_p4_is_seen(tmp_path):
    top = _mutated(tmp_path, "miresga.p4", "#define VIP_TABLE_SIZE       256",
                   "#define VIP_TABLE_SIZE       512")
    assert control_plane(p4parse.load(top))[names.VIP].size == 512


def test_parser_errors_name_file_and_line(tmp_path):
    top = _mutated(tmp_path, "routing.p4", "size = routes;", "size = routes")
    with pytest.raises(P4Error, match=r"routing\.p4:\d+"):
        p4parse.load(top)


# ---------------------------------------------------------------- stage discipline


def _reads(e, out):
    if e is None:
        return out
    if e[0] in ("member", "index", "name"):
        out.add(repr(e))
    for x in e[1:]:
        if isinstance(x, tuple):
            _reads(x, out)
        elif isinstance(x, list):
            for y in x:
                if isinstance(y, tuple):
                    _reads(y, out)
    return out


def _flat(stmts):
    for s in stmts:
        if s[0] == "block":
            yield from _flat(s[1])
        else:
            yield s


@pytest.mark.parametrize(("control", "actions"), [
    ("SipRound", ["sip_a", "sip_b", "sip_c", "sip_d"]),
    ("Cookie", ["absorb_pre", "absorb_post", "final_pre", "sip_out", "sip_init"]),
])
def test_hash_actions_fit_one_stage(control, actions):
    """Each field written once and never read after being written in the same action:
    then P4's sequential semantics equal a stage's parallel ALUs."""
    prog = p4parse.load(P4 / "miresga.p4")
    ctl = prog.controls[control]
    for name in actions:
        written: set[str] = set()
        for s in _flat(ctl.actions[name].body):
            if s[0] != "assign":
                continue
            reads = _reads(s[2], set())
            assert not reads & written, f"{name}: reads {reads & written} after writing it"
            target = repr(s[1])
            assert target not in written, f"{name}: writes {target} twice"
            written.add(target)
