"""The serialized program format: what is shipped to a front-end and loaded by a VM.

Layout (little endian), version ``FMT_VERSION``::

    header   "MVM1" u16 version u16 helper_abi u32 loop_budget
             u32 n_insns u32 n_consts u32 n_tables u32 n_pools u32 n_decisions   (32 bytes)
    code     n_insns * (u8 op, u8 a, u8 b, u8 c, i32 imm, u32 j)
    consts   n_consts * (u32 len, bytes)
    tables   n_tables * (u32 len, len * u32)
    pools    n_pools * (u8 len, utf-8 name)
    decisions n_decisions * (u16 pool, u8 offload, u8 len, utf-8 route name)

``decode`` checks the container (sizes, truncation, limits) with the same messages as the
C loader ``mvm_load.c``; ``verifier.verify`` then checks the instructions.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from ..errors import MiresgaError
from .opcodes import FMT_VERSION, HELPER_ABI, LIMITS, MAGIC, OFFLOAD_MODES

__all__ = ["Decision", "Insn", "Program", "ProgramError", "decode", "encode"]

_HDR = struct.Struct("<4sHHIIIIII")
_INSN = struct.Struct("<BBBBiI")


class ProgramError(MiresgaError):
    """A program was refused by a loader or verifier; the message says why."""


@dataclass(frozen=True, slots=True)
class Insn:
    op: int
    a: int = 0
    b: int = 0
    c: int = 0
    imm: int = 0
    j: int = 0


@dataclass(frozen=True, slots=True)
class Decision:
    """Where a ``route`` instruction sends a request: a pool and an offload mode."""

    pool: int
    offload: str = "splice"
    name: str = ""


@dataclass(frozen=True)
class Program:
    code: tuple[Insn, ...]
    consts: tuple[bytes, ...] = ()
    tables: tuple[tuple[int, ...], ...] = ()
    pools: tuple[str, ...] = ()
    decisions: tuple[Decision, ...] = ()
    loop_budget: int = 0
    version: int = FMT_VERSION
    helper_abi: int = HELPER_ABI
    comments: dict[int, str] = field(default_factory=dict, compare=False)

    def to_bytes(self) -> bytes:
        return encode(self)

    @property
    def size(self) -> int:
        return len(encode(self))


def encode(p: Program) -> bytes:
    out = [_HDR.pack(MAGIC, p.version, p.helper_abi, p.loop_budget, len(p.code),
                     len(p.consts), len(p.tables), len(p.pools), len(p.decisions))]
    out += [_INSN.pack(i.op, i.a, i.b, i.c, i.imm, i.j) for i in p.code]
    for k in p.consts:
        out.append(struct.pack("<I", len(k)) + k)
    for t in p.tables:
        out.append(struct.pack(f"<I{len(t)}I", len(t), *t))
    for name in p.pools:
        raw = name.encode()
        out.append(bytes([len(raw)]) + raw)
    for d in p.decisions:
        raw = d.name.encode()
        out.append(struct.pack("<HBB", d.pool, OFFLOAD_MODES.index(d.offload), len(raw)) + raw)
    return b"".join(out)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int, what: str) -> bytes:
        if len(self.data) - self.pos < n:
            raise ProgramError(f"truncated program ({what})")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk


def _limit(n: int, key: str, what: str) -> None:
    if n > LIMITS[key]:
        raise ProgramError(f"too many {what} ({n} > {LIMITS[key]})")


def decode(data: bytes) -> Program:
    """Parse a serialized program; raise ProgramError with the C loader's message."""
    r = _Reader(bytes(data))
    (magic, version, abi, budget, n_insns, n_consts, n_tables, n_pools,
     n_dec) = _HDR.unpack(r.take(_HDR.size, "header"))
    if magic != MAGIC:
        raise ProgramError("bad magic (not an MVM program)")
    if version != FMT_VERSION:
        raise ProgramError(f"unsupported format version {version} (this VM: {FMT_VERSION})")
    if abi > HELPER_ABI:
        raise ProgramError(f"unsupported helper ABI {abi} (this VM: {HELPER_ABI})")
    if budget > LIMITS["MAX_LOOP_BUDGET"]:
        raise ProgramError(f"loop budget {budget} exceeds {LIMITS['MAX_LOOP_BUDGET']}")
    if n_insns == 0:
        raise ProgramError("empty program")
    _limit(n_insns, "MAX_INSNS", "instructions")
    _limit(n_consts, "MAX_CONSTS", "constants")
    _limit(n_tables, "MAX_TABLES", "tables")
    _limit(n_pools, "MAX_POOLS", "pools")
    _limit(n_dec, "MAX_DECISIONS", "decisions")
    code = tuple(Insn(*_INSN.unpack(r.take(_INSN.size, "code"))) for _ in range(n_insns))
    consts = []
    for i in range(n_consts):
        (n,) = struct.unpack("<I", r.take(4, "consts"))
        if n > LIMITS["MAX_CONST_LEN"]:
            raise ProgramError(f"const {i} too long ({n} > {LIMITS['MAX_CONST_LEN']})")
        consts.append(r.take(n, "consts"))
    tables = []
    for i in range(n_tables):
        (n,) = struct.unpack("<I", r.take(4, "tables"))
        if n == 0 or n > LIMITS["MAX_TABLE_LEN"]:
            raise ProgramError(f"table {i} length {n} outside 1..{LIMITS['MAX_TABLE_LEN']}")
        tables.append(struct.unpack(f"<{n}I", r.take(4 * n, "tables")))
    pools = []
    for _ in range(n_pools):
        n = r.take(1, "pools")[0]
        pools.append(r.take(n, "pools").decode("utf-8", "replace"))
    decisions = []
    for i in range(n_dec):
        pool, mode, n = struct.unpack("<HBB", r.take(4, "decisions"))
        if pool >= n_pools:
            raise ProgramError(f"decision {i}: pool {pool} out of range ({n_pools} pools)")
        if mode >= len(OFFLOAD_MODES):
            raise ProgramError(f"decision {i}: bad offload mode {mode}")
        name = r.take(n, "decisions").decode("utf-8", "replace")
        decisions.append(Decision(pool, OFFLOAD_MODES[mode], name))
    if r.pos != len(r.data):
        raise ProgramError(f"{len(r.data) - r.pos} trailing bytes after program")
    return Program(code, tuple(consts), tuple(tables), tuple(pools), tuple(decisions), budget,
                   version, abi)
