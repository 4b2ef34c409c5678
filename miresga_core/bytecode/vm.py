"""The Python VM: the reference interpreter, oracle for the C VM (``native/dpdk/vm``).

Theory of operation: ``PyVM(program)`` verifies the program once and pre-decodes it into
a list of tuples. ``run(data, args)`` starts with s0 = the whole input, r0..r3 = ``args``,
everything else zero/empty, and executes until a halting instruction. Each opcode is one
small handler in ``_HANDLERS`` (indexed by opcode number, built from the names in
``opcodes.OPCODES``, so no opcode number is typed here). Handlers return the next pc, or
-1 after writing the outcome. Every operation is total: slices are clamped into the input,
integers wrap at 64 bits, failures are values (-1) or jumps, so no input can raise.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .hpack_vm import HELPER_IMPLS as HPACK_HELPERS
from .opcodes import FIELDS, HELPER_BY_NAME, HELPERS, LIMITS, OP_BY_NAME, OPCODES
from .program import Program
from .verifier import verify

__all__ = ["Outcome", "PyVM", "fnv1a", "format_outcome"]

_M64 = (1 << 64) - 1
_SCRATCH_BASE = LIMITS["SCRATCH_BASE"]
_INT64_MAX = (1 << 63) - 1


def _wrap(v: int) -> int:
    v &= _M64
    return v - (1 << 64) if v >> 63 else v


def fnv1a(data: bytes) -> int:
    h = 2166136261
    for byte in data:
        h = ((h ^ byte) * 16777619) & 0xFFFFFFFF
    return h


_LOWER = bytes(c + 32 if 65 <= c <= 90 else c for c in range(256))


class Outcome(NamedTuple):
    """What a run decided. ``kind`` is route | needmore | reject | error. A NamedTuple: the
    data plane builds one per request, and tuple construction is the cheapest there is."""

    kind: str
    decision: int = -1
    status: int = 0
    reason: bytes = b""
    head_len: int = 0
    framing: int = 0
    content_length: int = 0
    flags: int = 0
    backend: int = -1

    def __str__(self) -> str:
        return format_outcome(self)


def _esc(raw: bytes) -> str:
    return "".join(chr(b) if 0x20 <= b < 0x7F and b not in (0x22, 0x5C) else f"\\x{b:02x}"
                   for b in raw)


def format_outcome(o: Outcome) -> str:
    """The canonical one-line form, printed identically by ``mvm_run``."""
    if o.kind == "route":
        return (f"route decision={o.decision} backend={o.backend} head_len={o.head_len} "
                f"framing={o.framing} content_length={o.content_length} flags={o.flags}")
    if o.kind == "reject":
        return f'reject {o.status} "{_esc(o.reason)}"'
    if o.kind == "error":
        return f"error {o.reason.decode()}"
    return o.kind


class _Machine:
    __slots__ = ("budget", "buf", "hfields", "out", "r", "scr", "slen", "soff")

    def __init__(self, buf: bytes, args: Sequence[int], budget: int) -> None:
        self.buf = buf
        self.r = [0] * LIMITS["NREGS"]
        if len(args) > LIMITS["NARGS"]:
            raise ValueError(f"at most {LIMITS['NARGS']} args")
        for i, v in enumerate(args):
            if not -(1 << 63) <= v <= _INT64_MAX:
                raise ValueError(f"arg {i} does not fit in int64")
            self.r[i] = v
        self.soff = [0] * LIMITS["NSREGS"]
        self.slen = [0] * LIMITS["NSREGS"]
        self.slen[0] = len(buf)
        self.budget = budget
        self.out = [0, 0, 0, 0, -1]  # FIELDS order
        self.scr = bytearray()  # the scratch area: written part only (hpack_vm.py)
        self.hfields: list[tuple[int, ...]] = []

    def at(self, off: int, n: int) -> bytes:
        """n bytes at slice offset off: the input below SCRATCH_BASE, else the scratch."""
        if off >= _SCRATCH_BASE:
            off -= _SCRATCH_BASE
            return bytes(self.scr[off:off + n])
        return self.buf[off:off + n]

    def sl(self, i: int) -> bytes:
        return self.at(self.soff[i], self.slen[i])

    def sub(self, dst: int, src: int, start: int, stop: int) -> None:
        """sdst = ssrc[start:stop] with both clamped into ssrc."""
        n = self.slen[src]
        start = min(max(start, 0), n)
        stop = min(max(stop, start), n)
        self.soff[dst] = self.soff[src] + start
        self.slen[dst] = stop - start


_Handler = Callable[[Any, _Machine, tuple[int, ...], int], Any]
_HANDLERS: dict[str, _Handler] = {}


def _h(name: str) -> Callable[[_Handler], _Handler]:
    def deco(fn: _Handler) -> _Handler:
        _HANDLERS[name] = fn
        return fn
    return deco


# Handlers get (vm, machine, insn tuple (op, a, b, c, imm, j), pc); return next pc or an
# Outcome to halt.

@_h("nop")
def _nop(vm, m, i, pc): return pc + 1
@_h("route")
def _route(vm, m, i, pc): return vm.halt(m, "route", decision=i[4])
@_h("needmore")
def _needmore(vm, m, i, pc): return Outcome("needmore")
@_h("reject")
def _reject(vm, m, i, pc): return Outcome("reject", status=i[4], reason=vm.p.consts[i[5]])
@_h("jmp")
def _jmp(vm, m, i, pc): return i[5]


@_h("loop")
def _loop(vm, m, i, pc):
    if m.budget <= 0:
        return Outcome("error", reason=b"loop budget exhausted")
    m.budget -= 1
    return i[5]


@_h("jeq")
def _jeq(vm, m, i, pc): return i[5] if m.r[i[1]] == m.r[i[2]] else pc + 1
@_h("jne")
def _jne(vm, m, i, pc): return i[5] if m.r[i[1]] != m.r[i[2]] else pc + 1
@_h("jlt")
def _jlt(vm, m, i, pc): return i[5] if m.r[i[1]] < m.r[i[2]] else pc + 1
@_h("jge")
def _jge(vm, m, i, pc): return i[5] if m.r[i[1]] >= m.r[i[2]] else pc + 1
@_h("jeqi")
def _jeqi(vm, m, i, pc): return i[5] if m.r[i[1]] == i[4] else pc + 1
@_h("jnei")
def _jnei(vm, m, i, pc): return i[5] if m.r[i[1]] != i[4] else pc + 1
@_h("jlti")
def _jlti(vm, m, i, pc): return i[5] if m.r[i[1]] < i[4] else pc + 1
@_h("jgei")
def _jgei(vm, m, i, pc): return i[5] if m.r[i[1]] >= i[4] else pc + 1


@_h("movi")
def _movi(vm, m, i, pc):
    m.r[i[1]] = i[4]
    return pc + 1


@_h("mov")
def _mov(vm, m, i, pc):
    m.r[i[1]] = m.r[i[2]]
    return pc + 1


@_h("addi")
def _addi(vm, m, i, pc):
    m.r[i[1]] = _wrap(m.r[i[1]] + i[4])
    return pc + 1


@_h("add")
def _add(vm, m, i, pc):
    m.r[i[1]] = _wrap(m.r[i[1]] + m.r[i[2]])
    return pc + 1


@_h("sub")
def _sub(vm, m, i, pc):
    m.r[i[1]] = _wrap(m.r[i[1]] - m.r[i[2]])
    return pc + 1


@_h("ori")
def _ori(vm, m, i, pc):
    m.r[i[1]] = _wrap(m.r[i[1]] | i[4])
    return pc + 1


@_h("andi")
def _andi(vm, m, i, pc):
    m.r[i[1]] = m.r[i[1]] & i[4]
    return pc + 1


@_h("slen")
def _slen(vm, m, i, pc):
    m.r[i[1]] = m.slen[i[2]]
    return pc + 1


@_h("soff")
def _soff(vm, m, i, pc):
    m.r[i[1]] = m.soff[i[2]]
    return pc + 1


@_h("smov")
def _smov(vm, m, i, pc):
    m.soff[i[1]], m.slen[i[1]] = m.soff[i[2]], m.slen[i[2]]
    return pc + 1


@_h("stake")
def _stake(vm, m, i, pc):
    m.sub(i[1], i[2], 0, m.r[i[3]])
    return pc + 1


@_h("sdrop")
def _sdrop(vm, m, i, pc):
    m.sub(i[1], i[2], m.r[i[3]], _INT64_MAX)
    return pc + 1


@_h("stakei")
def _stakei(vm, m, i, pc):
    m.sub(i[1], i[2], 0, i[4])
    return pc + 1


@_h("sdropi")
def _sdropi(vm, m, i, pc):
    m.sub(i[1], i[2], i[4], _INT64_MAX)
    return pc + 1


@_h("srange")
def _srange(vm, m, i, pc):
    n = len(m.buf)
    lo = min(max(m.r[i[2]], 0), n)
    hi = min(max(m.r[i[3]], lo), n)
    m.soff[i[1]], m.slen[i[1]] = lo, hi - lo
    return pc + 1


@_h("find")
def _find(vm, m, i, pc):
    m.r[i[1]] = m.sl(i[2]).find(vm.p.consts[i[4]])
    return pc + 1


@_h("findb")
def _findb(vm, m, i, pc):
    m.r[i[1]] = m.sl(i[2]).find(bytes((i[4],)))
    return pc + 1


_SPAN_RE: dict[bytes, re.Pattern[bytes]] = {}


def _span(data: bytes, cls: bytes) -> int:
    """Length of the longest prefix of data whose bytes are in the 32-byte set cls (a
    regex character class built once per set: the scan runs in C)."""
    pattern = _SPAN_RE.get(cls)
    if pattern is None:
        members = b"".join(b"\\x%02x" % c for c in range(256) if cls[c >> 3] >> (c & 7) & 1)
        pattern = re.compile(b"[" + members + b"]*" if members else b"")
        _SPAN_RE[cls] = pattern
    m = pattern.match(data)
    return m.end() if m else 0


@_h("spanc")
def _spanc(vm, m, i, pc):
    m.r[i[1]] = _span(m.sl(i[2]), vm.p.consts[i[4]])
    return pc + 1


@_h("rspanc")
def _rspanc(vm, m, i, pc):
    m.r[i[1]] = _span(m.sl(i[2])[::-1], vm.p.consts[i[4]])
    return pc + 1


@_h("bytei")
def _bytei(vm, m, i, pc):
    m.r[i[1]] = m.at(m.soff[i[2]] + i[4], 1)[0] if i[4] < m.slen[i[2]] else -1
    return pc + 1


@_h("byte")
def _byte(vm, m, i, pc):
    k = m.r[i[3]]
    m.r[i[1]] = m.at(m.soff[i[2]] + k, 1)[0] if 0 <= k < m.slen[i[2]] else -1
    return pc + 1


@_h("jseq")
def _jseq(vm, m, i, pc): return i[5] if m.sl(i[1]) == vm.p.consts[i[4]] else pc + 1
@_h("jseqi")
def _jseqi(vm, m, i, pc):
    same = m.sl(i[1]).translate(_LOWER) == vm.p.consts[i[4]].translate(_LOWER)
    return i[5] if same else pc + 1
@_h("jspre")
def _jspre(vm, m, i, pc): return i[5] if m.sl(i[1]).startswith(vm.p.consts[i[4]]) else pc + 1
@_h("jsprei")
def _jsprei(vm, m, i, pc):
    k = vm.p.consts[i[4]].translate(_LOWER)
    return i[5] if m.sl(i[1])[:len(k)].translate(_LOWER) == k else pc + 1


@_h("jsseq")
def _jsseq(vm, m, i, pc): return i[5] if m.sl(i[1]) == m.sl(i[2]) else pc + 1


@_h("parseu")
def _parseu(vm, m, i, pc):
    data = m.sl(i[2])
    if not data or not all(48 <= c <= 57 for c in data):
        return i[5]
    value = int(data)
    if value > _INT64_MAX:
        return i[5]
    m.r[i[1]] = value
    return pc + 1


@_h("hash")
def _hash(vm, m, i, pc):
    m.r[i[1]] = fnv1a(m.sl(i[2]))
    return pc + 1


@_h("hashi")
def _hashi(vm, m, i, pc):
    m.r[i[1]] = fnv1a(m.sl(i[2]).translate(_LOWER))
    return pc + 1


@_h("tlook")
def _tlook(vm, m, i, pc):
    table = vm.p.tables[i[4]]
    m.r[i[1]] = table[(m.r[i[2]] & _M64) % len(table)]
    return pc + 1


@_h("tlen")
def _tlen(vm, m, i, pc):
    m.r[i[1]] = len(vm.p.tables[i[4]])
    return pc + 1


@_h("setf")
def _setf(vm, m, i, pc):
    m.out[i[1]] = m.r[i[2]]
    return pc + 1


@_h("call")
def _call(vm, m, i, pc):
    _HELPER_IMPLS[i[4]](vm, m)
    return pc + 1


@_h("sline")
def _sline(vm, m, i, pc):
    a, b = i[1], i[2]
    data = m.sl(b)
    lf = data.find(b"\n")
    if lf < 0:
        return i[5]
    off = m.soff[b]
    n = lf - 1 if lf > 0 and data[lf - 1] == 13 else lf
    m.soff[b], m.slen[b] = off + lf + 1, m.slen[b] - lf - 1
    m.soff[a], m.slen[a] = off, n
    return pc + 1


@_h("strim")
def _strim(vm, m, i, pc):
    a, cls = i[1], vm.p.consts[i[4]]
    data = m.sl(a)
    lo = _span(data, cls)
    hi = len(data) - (_span(data[lo:][::-1], cls) if lo < len(data) else 0)
    m.soff[a] += lo
    m.slen[a] = hi - lo
    return pc + 1


@_h("lookupi")
def _lookupi(vm, m, i, pc):
    names = vm.words[i[4]]
    key = m.sl(i[2]).translate(_LOWER)
    m.r[i[1]] = names.index(key) if key in names else -1
    return pc + 1


@_h("jnall")
def _jnall(vm, m, i, pc):
    data = m.sl(i[1])
    return i[5] if _span(data, vm.p.consts[i[4]]) != len(data) else pc + 1


def _hdr_find(vm: PyVM, m: _Machine) -> None:
    m.soff[0], m.slen[0] = 0, 0
    k = m.r[1]
    if not 0 <= k < len(vm.p.consts):
        m.r[0] = -1
        return
    want = vm.p.consts[k].translate(_LOWER)
    base, block = m.soff[1], m.sl(1)
    pos = 0
    while pos < len(block):
        nl = block.find(b"\n", pos)
        end = len(block) if nl < 0 else nl
        line_end = end - 1 if end > pos and block[end - 1] == 13 else end
        colon = block.find(b":", pos, line_end)
        if colon >= 0 and block[pos:colon].translate(_LOWER) == want:
            lo, hi = colon + 1, line_end
            while lo < hi and block[lo] in (32, 9):
                lo += 1
            while hi > lo and block[hi - 1] in (32, 9):
                hi -= 1
            m.r[0], m.soff[0], m.slen[0] = 1, base + lo, hi - lo
            return
        pos = end + 1
    m.r[0] = 0


_HELPER_IMPLS = {HELPER_BY_NAME["hdr_find"].id: _hdr_find, **HPACK_HELPERS}
assert set(_HELPER_IMPLS) == {h.id for h in HELPERS}, "every helper needs an implementation"
_TABLE: list[_Handler] = [_HANDLERS[op.name] for op in OPCODES]
assert set(_HANDLERS) == {op.name for op in OPCODES}, "every opcode needs a handler"
assert OP_BY_NAME  # the table is the only numbering


@dataclass
class PyVM:
    """Runs a verified program in Python."""

    p: Program
    code: list[tuple[int, ...]] = field(init=False)
    words: dict[int, list[bytes]] = field(init=False)
    kind: str = "python"

    def __post_init__(self) -> None:
        verify(self.p)
        self.code = [(i.op, i.a, i.b, i.c, i.imm, i.j) for i in self.p.code]
        # lookupi word lists, lower-cased once (a list keeps the first position of a name)
        self.words = {k: c.translate(_LOWER).split(b"\0") for k, c in enumerate(self.p.consts)}

    def halt(self, m: _Machine, kind: str, decision: int = -1) -> Outcome:
        head_len, framing, clen, flags, backend = m.out
        return Outcome(kind, decision=decision, head_len=head_len, framing=framing,
                       content_length=clen, flags=flags, backend=backend)

    def run(self, data: bytes, args: Sequence[int] = ()) -> Outcome:
        m = _Machine(bytes(data), args, self.p.loop_budget)
        code, table = self.code, _TABLE
        pc = 0
        while True:
            insn = code[pc]
            nxt = table[insn[0]](self, m, insn, pc)
            if type(nxt) is not int:
                return nxt
            pc = nxt


assert len(FIELDS) == 5  # _Machine.out and PyVM.halt follow FIELDS order
