"""ProgramBuilder, optimiser passes, the compiler, load() and `miresga compile`."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pytest
from miresga_http1 import Http1Parser

from miresga_core.bytecode import PyVM, load, native
from miresga_core.bytecode.builder import INPUT, BuildError, ByteClass, ProgramBuilder
from miresga_core.bytecode.compiler import CompileError, compile_listener
from miresga_core.bytecode.optimize import PASSES, run_passes
from miresga_core.config import parse_config
from miresga_core.plugins import get_plugin_manager, registry_from
from miresga_core.testing import compile_parser

CONFIG = """
[pools.web]
backends = [{ address = "127.0.0.1:8001" }, { address = "127.0.0.1:8002", weight = 3 }]
[pools.api]
backends = [{ address = "127.0.0.1:9001" }]
[[listeners]]
name = "web"
listen = "127.0.0.1:8080"
default_pool = "web"
[[listeners.routes]]
pool = "api"
name = "api"
offload = "pin"
match = { path = { prefix = "/api/" }, method = ["GET", "HEAD"] }
[[listeners.routes]]
pool = "api"
name = "tenant"
match = { headers = { x-tenant = "blue" }, host = { prefix = "t." } }
"""


@pytest.fixture(scope="module")
def registry():
    return registry_from(get_plugin_manager())


def test_builder_refuses_backward_plain_jump() -> None:
    b = ProgramBuilder()
    top = b.here()
    b.nop()
    b.jmp(top)
    with pytest.raises(BuildError, match="goes backward; use loop_to"):
        b.build()


def test_builder_refuses_unplaced_label_and_names_the_line() -> None:
    b = ProgramBuilder()
    b.jmp(b.label("nowhere"))
    b.needmore()
    with pytest.raises(BuildError, match=r"test_builder_compiler.py:\d+.*nowhere"):
        b.build()


def test_builder_runs_out_of_registers_clearly() -> None:
    b = ProgramBuilder()
    with pytest.raises(BuildError, match="out of integer registers"):
        for _ in range(20):
            b.ireg()


def test_builder_operand_types_are_checked() -> None:
    b = ProgramBuilder()
    with pytest.raises(BuildError, match="expected sreg"):
        b.slen(b.ireg(), b.ireg())


def test_builder_interns_constants_and_classes() -> None:
    b = ProgramBuilder()
    r = b.ireg()
    b.find(r, INPUT, b"ab")
    b.find(r, INPUT, "ab")
    b.spanc(r, INPUT, ByteClass.of(b"ab"))
    b.spanc(r, INPUT, ByteClass.of(b"ba"))
    b.needmore()
    p = b.build()
    assert len(p.consts) == 2


def test_loop_budget_adds_up() -> None:
    b = ProgramBuilder()
    top = b.here()
    b.nop()
    b.loop_to(top, 10)
    top2 = b.here()
    b.nop()
    b.loop_to(top2, 5)
    assert b.build().loop_budget == 15


@pytest.mark.parametrize("passes", [[], ["thread_jumps"], ["drop_dead"], list(PASSES)])
def test_passes_keep_decisions(passes: list[str]) -> None:
    routes = [("a", [("path", "prefix", ["/a"], False)]),
              ("h", [("host", "exact", ["x.example"], True)])]
    full = compile_parser(Http1Parser(), routes, optimize=False)
    slim = run_passes(full, passes)
    assert len(slim.code) <= len(full.code)
    reqs = [b"GET /a HTTP/1.1\r\nHost: q\r\n\r\n", b"GET / HTTP/1.1\r\nHost: X.example\r\n\r\n",
            b"GET / HTTP/1.1\r\n\r\n", b"GET / HTTP/1.1\r\nHost: z\r\nContent-Length: 3\r\n\r\n",
            b"GET / HTTP/1.1\r\n"]
    assert [str(PyVM(slim).run(r)) for r in reqs] == [str(PyVM(full).run(r)) for r in reqs]


def test_optimiser_shrinks_http1() -> None:
    routes = [("a", [("path", "prefix", ["/a"], False)])]
    assert len(compile_parser(Http1Parser(), routes).code) < \
        len(compile_parser(Http1Parser(), routes, optimize=False).code)


def test_compile_listener_matches_the_router(registry) -> None:
    from miresga_core.routing import match_route
    cfg = parse_config(CONFIG, registry)
    program = compile_listener(cfg, "web", registry)
    vm = PyVM(program)
    names = [d.name for d in program.decisions]
    assert names == ["api", "tenant", "default"]
    assert [d.offload for d in program.decisions] == ["pin", "splice", "splice"]
    parser = Http1Parser()
    reqs = [b"GET /api/x HTTP/1.1\r\nHost: a\r\n\r\n", b"POST /api/x HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: t.example\r\nX-Tenant: blue\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: T.example\r\nX-Tenant: Blue\r\n\r\n"]
    for data in reqs:
        route = match_route(cfg.listener("web").routes, parser.parse_head(data))
        out = vm.run(data, (0, 0))
        assert names[out.decision] == (route.name if route else "default"), data


def test_round_robin_table_follows_weights(registry) -> None:
    cfg = parse_config(CONFIG, registry)
    vm = PyVM(compile_listener(cfg, "web", registry))
    picks = [vm.run(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", (0, seq)).backend for seq in range(8)]
    assert sorted(picks) == [0, 0, 1, 1, 1, 1, 1, 1]


def test_non_ascii_case_insensitive_value_is_refused(registry) -> None:
    cfg = parse_config(CONFIG.replace('prefix = "t."', 'prefix = "tö."'), registry)
    with pytest.raises(CompileError, match="must be ASCII"):
        compile_listener(cfg, "web", registry)


def test_load_prefers_c_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    p = compile_parser(Http1Parser())
    with caplog.at_level(logging.INFO, logger="miresga.bytecode"):
        runner = load(p)
    assert runner.kind == ("c" if native.available() else "python")
    assert load(p, prefer="python").kind == "python"
    assert "rule VM:" in caplog.text


def test_load_falls_back_when_the_extension_is_missing(monkeypatch, caplog) -> None:
    monkeypatch.setattr(native, "_mvm", None)
    monkeypatch.setattr(native, "_IMPORT_ERROR", "No module named 'miresga_core._mvm'")
    with caplog.at_level(logging.WARNING, logger="miresga.bytecode"):
        runner = load(compile_parser(Http1Parser()))
    assert runner.kind == "python"
    assert "falling back to the Python VM" in caplog.text


def test_cli_compile_prints_listing_and_size(tmp_path: Path, capsys) -> None:
    from miresga_core import cli_compile
    cfg = tmp_path / "m.toml"
    cfg.write_text(CONFIG)
    parser = argparse.ArgumentParser()
    cli_compile.add_parser(parser.add_subparsers())
    args = parser.parse_args(["compile", "-c", str(cfg), "--listener", "web",
                              "-o", str(tmp_path / "web.mvm")])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "; listener web" in out and "route d2" in out
    size = (tmp_path / "web.mvm").stat().st_size
    assert f"program size {size} bytes" in out


def test_both_vms_refuse_bad_args_the_same_way() -> None:
    p = compile_parser(Http1Parser())
    runners = [PyVM(p)] + ([native.CVM(p)] if native.available() else [])
    for runner in runners:
        with pytest.raises(ValueError, match="at most 4 args"):
            runner.run(b"", (1, 2, 3, 4, 5))
        with pytest.raises((ValueError, OverflowError)):
            runner.run(b"", (1 << 63,))


def test_cli_compile_unknown_listener_is_a_clear_error(tmp_path: Path) -> None:
    import subprocess
    import sys
    cfg = tmp_path / "m.toml"
    cfg.write_text(CONFIG)
    proc = subprocess.run([sys.executable, "-m", "miresga_core.cli", "compile", "-c", str(cfg),
                           "--listener", "nope"], capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == 2
    assert "no listener named 'nope'" in proc.stderr and "Traceback" not in proc.stderr
