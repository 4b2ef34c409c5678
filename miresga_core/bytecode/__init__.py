"""The rule bytecode (MVM): one opcode table, program format, verifier, VMs, compiler.

``load(program)`` returns a runner with ``run(data, args) -> Outcome`` and ``kind``
("c" or "python"): the C VM when the extension is built, else the Python VM, with a logged
warning saying why. See docs/bytecode.md.
"""

from __future__ import annotations

import logging

from . import native
from .program import Decision, Insn, Program, ProgramError, decode, encode
from .verifier import verify
from .vm import Outcome, PyVM, format_outcome

__all__ = ["Decision", "Insn", "Outcome", "Program", "ProgramError", "PyVM", "decode",
           "encode", "format_outcome", "load", "verify"]

log = logging.getLogger("miresga.bytecode")


def load(program: Program | bytes, prefer: str = "c"):  # -> CVM | PyVM
    """Verify and load ``program`` into the fastest VM available.

    :param prefer: "c" (default: C VM, Python fallback logged) or "python".
    :raises ProgramError: the program was refused (same reason from either verifier).
    """
    p = decode(program) if isinstance(program, (bytes, bytearray)) else program
    if prefer == "c":
        if native.available():
            runner = native.CVM(p)
            log.info("rule VM: C (miresga_core._mvm)")
            return runner
        log.warning("rule VM: C extension missing (%s); falling back to the Python VM",
                    native.import_error())
    return PyVM(p)
