"""Golden vector files (``.mvt``) and the bridge to the ``mvm_run`` CLI.

A vector file is sectioned text, like ubpf's ``tests/*.data``::

    -- description
    one line saying what is checked
    -- asm                       (or -- raw: the program as hex)
    ...assembler text...
    -- args                      (optional, applies to the inputs after it: r0..r3)
    7 3
    -- input                     (escaped text; lines are joined with no separator,
    GET / HTTP/1.1\\r\\n\\r\\n         so write \\r\\n explicitly)
    -- result                    (the canonical outcome line of the input before it)
    route decision=0 ...
    -- error                     (instead of inputs: the verifier's refusal message)
    insn 0 (jmp): j: jump target 0 is not forward

Any number of input/result pairs may follow one program.
"""

from __future__ import annotations

import struct
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .asm import assemble, unescape
from .program import Program, decode

__all__ = ["Case", "Vector", "encode_inputs", "parse_vector", "run_mvm"]


@dataclass(frozen=True)
class Case:
    data: bytes
    args: tuple[int, ...]
    expect: str


@dataclass
class Vector:
    path: str
    description: str = ""
    asm: str | None = None
    raw: bytes | None = None
    error: str | None = None
    cases: list[Case] = field(default_factory=list)

    def program_bytes(self) -> bytes:
        if self.raw is not None:
            return self.raw
        assert self.asm is not None
        return assemble(self.asm).to_bytes()

    def program(self) -> Program:
        return decode(self.raw) if self.raw is not None else assemble(self.asm or "")


def parse_vector(path: str | Path) -> Vector:
    text = Path(path).read_text()
    vec = Vector(str(path))
    sections: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if line.startswith("-- "):
            sections.append((line[3:].strip(), []))
        elif sections:
            sections[-1][1].append(line)
        elif line.strip():
            raise ValueError(f"{path}: text before the first section")
    args: tuple[int, ...] = ()
    data: bytes | None = None
    for name, lines in sections:
        body = "\n".join(lines).strip("\n")
        if name == "description":
            vec.description = body.strip()
        elif name == "asm":
            vec.asm = body + "\n"
        elif name == "raw":
            vec.raw = bytes.fromhex("".join(body.split()))
        elif name == "args":
            args = tuple(int(x, 0) for x in body.split())
        elif name == "input":
            data = unescape("".join(lines))
        elif name == "result":
            if data is None:
                raise ValueError(f"{path}: result without input")
            vec.cases.append(Case(data, args, body.strip()))
            data = None
        elif name == "error":
            vec.error = body.strip()
        else:
            raise ValueError(f"{path}: unknown section {name!r}")
    if (vec.asm is None) == (vec.raw is None):
        raise ValueError(f"{path}: needs exactly one of -- asm / -- raw")
    return vec


def encode_inputs(cases: Iterable[tuple[bytes, Sequence[int]]]) -> bytes:
    """The mvm_run inputs file: u32 len, u8 nargs, nargs x i64, bytes."""
    out = []
    for data, args in cases:
        out.append(struct.pack(f"<IB{len(args)}q", len(data), len(args), *args) + data)
    return b"".join(out)


def run_mvm(binary: str | Path, program: bytes, cases: Sequence[tuple[bytes, Sequence[int]]],
            workdir: Path, timeout: float = 60) -> tuple[str, list[str]]:
    """Run ``mvm_run`` on a program and inputs: ("ok" | "refused: ...", result lines)."""
    prog = workdir / "prog.mvm"
    inputs = workdir / "inputs.bin"
    prog.write_bytes(program)
    inputs.write_bytes(encode_inputs(cases))
    proc = subprocess.run([str(binary), str(prog), str(inputs)], capture_output=True,
                          text=True, timeout=timeout, check=False)
    if proc.returncode not in (0, 1) or proc.stderr.strip():
        raise RuntimeError(f"mvm_run failed ({proc.returncode}): {proc.stderr.strip()}")
    lines = proc.stdout.splitlines()
    return lines[0], lines[1:]
