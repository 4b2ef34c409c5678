"""Compiler golden listings (libpcap TESTrun style): each block of
tests/vectors/compiler/*.toml compiles ``config`` (listener ``listener``) and must give the
``opt`` and ``unopt`` disassembly exactly; every config in ``aliases`` must compile to the
identical program. Keys: name, description, listener, config, aliases, opt, unopt.
Regenerate after an intended change: MIRESGA_UPDATE_GOLDEN=1 pytest <this file>."""

from __future__ import annotations

import os
import sys
import tomllib
from pathlib import Path

import pytest

from miresga_core.bytecode.compiler import compile_listener
from miresga_core.bytecode.disasm import disasm
from miresga_core.config import parse_config
from miresga_core.plugins import get_plugin_manager, registry_from

GOLDEN = Path(__file__).resolve().parents[2] / "vectors" / "compiler"
sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "examples" / "resp"))


@pytest.fixture(scope="module")
def registry():
    from miresga_resp import RespParser
    reg = registry_from(get_plugin_manager())
    reg.parsers.setdefault("resp", RespParser)
    return reg


def _listing(registry, config: str, listener: str, optimize: bool) -> str:
    cfg = parse_config(config, registry)
    return disasm(compile_listener(cfg, listener, registry, optimize=optimize))


def _write(path: Path, blocks: list[dict]) -> None:
    out = ["# Compiler golden listings; see tests/unit/bytecode/test_compiler_golden.py.\n"]
    for blk in blocks:
        out.append("[[block]]\n")
        for key in ("name", "description", "listener"):
            out.append(f'{key} = "{blk[key]}"\n')
        out.append(f"config = '''\n{blk['config'].strip()}\n'''\n")
        aliases = ",\n".join(f"'''\n{a.strip()}\n'''" for a in blk.get("aliases", []))
        out.append(f"aliases = [{aliases}]\n")
        for key in ("opt", "unopt"):
            out.append(f"{key} = '''\n{blk[key]}'''\n")
        out.append("\n")
    path.write_text("".join(out))


FILES = sorted(GOLDEN.glob("*.toml"))


def test_there_are_goldens() -> None:
    assert FILES


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_golden(path: Path, registry) -> None:
    blocks = tomllib.loads(path.read_text())["block"]
    update = os.environ.get("MIRESGA_UPDATE_GOLDEN") == "1"
    for blk in blocks:
        for key, optimize in (("opt", True), ("unopt", False)):
            got = _listing(registry, blk["config"], blk["listener"], optimize)
            if update:
                blk[key] = got
            else:
                assert got == blk.get(key), f"{blk['name']}: {key} listing changed"
        for alias in blk.get("aliases", []):
            assert _listing(registry, alias, blk["listener"], True) == blk["opt"], \
                f"{blk['name']}: an alias compiles differently"
    if update:
        _write(path, blocks)
