"""The C VM (``miresga_core._mvm``) behind the same interface as ``vm.PyVM``."""

from __future__ import annotations

from collections.abc import Sequence

from .program import Program, ProgramError, encode
from .vm import Outcome

__all__ = ["CVM", "available", "import_error"]

_KINDS = ("route", "needmore", "reject", "error")

try:
    from .. import _mvm  # type: ignore[attr-defined]
    _IMPORT_ERROR: str | None = None
except ImportError as exc:  # the extension was not built (source checkout, no compiler)
    _mvm = None
    _IMPORT_ERROR = str(exc)


def available() -> bool:
    return _mvm is not None


def import_error() -> str | None:
    return _IMPORT_ERROR


class CVM:
    """Loads (and so verifies, in C) a program; ``run`` returns ``vm.Outcome``."""

    kind = "c"

    def __init__(self, p: Program | bytes) -> None:
        if _mvm is None:
            raise RuntimeError(f"the C VM extension is not built: {_IMPORT_ERROR}")
        data = p if isinstance(p, (bytes, bytearray)) else encode(p)
        try:
            self._prog = _mvm.Program(bytes(data), _KINDS)
        except ValueError as exc:
            raise ProgramError(str(exc)) from None
        self._run = self._prog.run
        self.p = p

    def run(self, data: bytes, args: Sequence[int] = ()) -> Outcome:
        return Outcome._make(self._run(data, args) if args else self._run(data))

    def bench(self, data: bytes, n: int, args: Sequence[int] = ()) -> Outcome:
        return Outcome._make(self._prog.bench(data, n, tuple(args)))
