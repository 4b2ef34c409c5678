"""Golden vectors: every .mvt runs through the Python VM and the C VM (mvm_run) with
identical results, and every program survives an assemble/disassemble round trip."""

from __future__ import annotations

from pathlib import Path

import pytest

from miresga_core.bytecode import ProgramError, PyVM, decode, format_outcome, verify
from miresga_core.bytecode.asm import assemble
from miresga_core.bytecode.disasm import disasm
from miresga_core.bytecode.vectors import parse_vector, run_mvm
from miresga_core.bytecode.verifier import verify_bytes

VECTORS = Path(__file__).resolve().parents[2] / "vectors"

RUN = sorted((VECTORS / "vm").glob("*.mvt"))
ERRORS = sorted((VECTORS / "vm" / "errors").glob("err-*.mvt"))


def test_corpus_is_there() -> None:
    assert len(RUN) >= 8 and len(ERRORS) >= 20


@pytest.mark.parametrize("path", RUN, ids=lambda p: p.stem)
def test_python_vm(path: Path) -> None:
    vec = parse_vector(path)
    assert vec.cases, "a run vector needs inputs"
    vm = PyVM(vec.program())
    for case in vec.cases:
        assert format_outcome(vm.run(case.data, case.args)) == case.expect, case.data


@pytest.mark.parametrize("path", RUN, ids=lambda p: p.stem)
def test_c_vm(path: Path, mvm_run_any: Path, tmp_path: Path) -> None:
    vec = parse_vector(path)
    status, lines = run_mvm(mvm_run_any, vec.program_bytes(),
                            [(c.data, c.args) for c in vec.cases], tmp_path)
    assert status == "ok"
    assert lines == [c.expect for c in vec.cases]


@pytest.mark.parametrize("path", RUN, ids=lambda p: p.stem)
def test_roundtrip(path: Path) -> None:
    prog = parse_vector(path).program()
    text = disasm(prog)
    again = assemble(text)
    assert again == prog
    assert disasm(again) == text
    assert decode(prog.to_bytes()) == prog


@pytest.mark.parametrize("path", ERRORS, ids=lambda p: p.stem)
def test_refused_identically(path: Path, mvm_run: Path, tmp_path: Path) -> None:
    vec = parse_vector(path)
    assert vec.error
    with pytest.raises(ProgramError) as exc:
        verify_bytes(vec.program_bytes())
    assert str(exc.value) == vec.error
    if vec.asm is not None:  # the in-memory path refuses for the same reason
        with pytest.raises(ProgramError, match="^" + _re(vec.error) + "$"):
            verify(assemble(vec.asm))
    status, _ = run_mvm(mvm_run, vec.program_bytes(), [], tmp_path)
    assert status == f"refused: {vec.error}"


def _re(text: str) -> str:
    import re
    return re.escape(text)
