"""THE opcode table of the Miresga rule bytecode (MVM). Single source of truth.

Theory of operation
-------------------
``OPCODES`` is an ordered tuple of records; a record's position is its opcode number and no
number is typed anywhere else. ``gen_c.py`` writes ``native/dpdk/vm/mvm_opcodes.h`` from this
module (enum, names, and a designated-initialiser constraint table); the Python verifier
(``verifier.py``) and the C verifier (``mvm_validate.c``) both walk the same constraints,
like ubpf's ``ubpf_inst_filter_t`` and DPDK's ``ins_chk``.

Every instruction is 12 bytes, little endian::

    +------+------+------+------+-------------+-------------+
    |  op  |  a   |  b   |  c   |  imm (i32)  |   j (u32)   |
    +------+------+------+------+-------------+-------------+

Each of the five operand fields has a *kind* in the record: NONE (must be zero), a register,
a constant/table/decision/helper index, an integer range, or a jump target (FWD: strictly
after this instruction and inside the program; BACK: strictly before it). Plain jumps only
go forward; the one backward jump, ``loop``, spends one credit of the program's loop budget
and halts with an error when the budget is spent. So a run takes at most
``(loop_budget + 1) * len(code)`` instructions, each linear in the input at most: execution
is bounded without trusting the program.

Machine state: 16 integer registers r0..r15 (int64, wrapping), 16 slice registers s0..s15
((offset, length) views into the input buffer that always stay inside it: every slice op
clamps), and the result record (fields ``FIELDS``). On entry s0 is the whole input, r0..r3
hold the caller's arguments (``ARG_*``), everything else is zero / empty.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "ARGS",
    "FIELDS",
    "FLAGS",
    "FMT_VERSION",
    "FRAMINGS",
    "HELPERS",
    "HELPER_ABI",
    "LIMITS",
    "MAGIC",
    "OFFLOAD_MODES",
    "OPCODES",
    "OP_BY_NAME",
    "Helper",
    "Kind",
    "Op",
    "Operand",
]

MAGIC = b"MVM1"
FMT_VERSION = 1  # bump when the container layout or any semantics change
HELPER_ABI = 2  # bump when a helper is added or changed (2: the HPACK helpers, 16..18)

# Hard limits: both loaders refuse programs beyond these.
LIMITS = {
    "NREGS": 16,  # integer registers r0..r15
    "NSREGS": 16,  # slice registers s0..s15
    "MAX_INSNS": 65536,
    "MAX_CONSTS": 65536,
    "MAX_CONST_LEN": 65535,
    "MAX_TABLES": 256,
    "MAX_TABLE_LEN": 1 << 20,
    "MAX_DECISIONS": 65535,
    "MAX_POOLS": 65535,
    "MAX_NAME_LEN": 255,
    "MAX_LOOP_BUDGET": 1 << 20,
    "CLASS_LEN": 32,  # a byte class constant is a 256-bit set
    "NARGS": 4,
    # The per-run scratch area (HPACK output, concatenated header block fragments). Slice
    # offsets >= SCRATCH_BASE address it; inputs are capped below SCRATCH_BASE bytes.
    "SCRATCH_BASE": 1 << 32,
    "SCRATCH_LEN": 32768,  # two 16 KiB heads: the fragments plus the decoded fields
    "MAX_HFIELDS": 1024,  # decoded HPACK fields kept per run (each costs >= 32 list bytes)
    "HPACK_TABLE_SIZE": 4096,  # SETTINGS_HEADER_TABLE_SIZE we advertise (RFC initial)
}


class Kind(enum.IntEnum):
    """What an operand field holds, and so how the verifiers check it."""

    NONE = 0  # unused: must be 0
    IREG = 1  # integer register index < NREGS
    SREG = 2  # slice register index < NSREGS
    CONST = 3  # constant pool index
    CLASS = 4  # constant pool index of a CLASS_LEN-byte bit set
    TABLE = 5  # data table index (tables are never empty)
    FIELD = 6  # result field index < len(FIELDS)
    DECISION = 7  # decision map index
    HELPER = 8  # helper id known to this HELPER_ABI
    INT = 9  # integer within [lo, hi]
    FWD = 10  # jump target: pc < target < len(code)
    BACK = 11  # jump target: 0 <= target < pc


@dataclass(frozen=True, slots=True)
class Operand:
    kind: Kind = Kind.NONE
    lo: int = 0
    hi: int = 0


@dataclass(frozen=True, slots=True)
class Op:
    """One opcode: its name, the kind of each field, halting behaviour, and meaning."""

    name: str
    a: Operand
    b: Operand
    c: Operand
    imm: Operand
    j: Operand
    doc: str
    terminal: bool = False  # never falls through to pc + 1

    @property
    def fields(self) -> tuple[tuple[str, Operand], ...]:
        return (("a", self.a), ("b", self.b), ("c", self.c), ("imm", self.imm), ("j", self.j))


_ = Operand()
R = Operand(Kind.IREG)
S = Operand(Kind.SREG)
K = Operand(Kind.CONST)
CLS = Operand(Kind.CLASS)
T = Operand(Kind.TABLE)
F = Operand(Kind.FIELD)
D = Operand(Kind.DECISION)
H = Operand(Kind.HELPER)
FWD = Operand(Kind.FWD)
BACK = Operand(Kind.BACK)
I32 = Operand(Kind.INT, -(1 << 31), (1 << 31) - 1)
U31 = Operand(Kind.INT, 0, (1 << 31) - 1)
BYTE = Operand(Kind.INT, 0, 255)
STATUS = Operand(Kind.INT, 400, 599)


def _op(name: str, a: Operand = _, b: Operand = _, c: Operand = _, imm: Operand = _,
        j: Operand = _, doc: str = "", terminal: bool = False) -> Op:
    return Op(name, a, b, c, imm, j, doc, terminal)


# ORDER IS THE ENCODING: append new opcodes at the end and bump FMT_VERSION.
OPCODES: tuple[Op, ...] = (
    _op("nop", doc="do nothing"),
    # -- halting
    _op("route", imm=D, terminal=True, doc="halt: ROUTE with decision map entry imm"),
    _op("needmore", terminal=True, doc="halt: NEED_MORE (the head is not complete yet)"),
    _op("reject", imm=STATUS, j=K, terminal=True,
        doc="halt: REJECT with HTTP status imm; const j is the reason"),
    # -- control flow
    _op("jmp", j=FWD, doc="pc = j"),
    _op("loop", j=BACK, terminal=True,
        doc="spend one loop credit and pc = j; halt ERROR when the budget is spent"),
    _op("jeq", a=R, b=R, j=FWD, doc="if ra == rb: pc = j"),
    _op("jne", a=R, b=R, j=FWD, doc="if ra != rb: pc = j"),
    _op("jlt", a=R, b=R, j=FWD, doc="if ra < rb (signed): pc = j"),
    _op("jge", a=R, b=R, j=FWD, doc="if ra >= rb (signed): pc = j"),
    _op("jeqi", a=R, imm=I32, j=FWD, doc="if ra == imm: pc = j"),
    _op("jnei", a=R, imm=I32, j=FWD, doc="if ra != imm: pc = j"),
    _op("jlti", a=R, imm=I32, j=FWD, doc="if ra < imm (signed): pc = j"),
    _op("jgei", a=R, imm=I32, j=FWD, doc="if ra >= imm (signed): pc = j"),
    # -- integers (int64, wrapping)
    _op("movi", a=R, imm=I32, doc="ra = imm"),
    _op("mov", a=R, b=R, doc="ra = rb"),
    _op("addi", a=R, imm=I32, doc="ra = ra + imm"),
    _op("add", a=R, b=R, doc="ra = ra + rb"),
    _op("sub", a=R, b=R, doc="ra = ra - rb"),
    _op("ori", a=R, imm=U31, doc="ra = ra | imm"),
    _op("andi", a=R, imm=U31, doc="ra = ra & imm"),
    # -- slices (every result is clamped into the source, so slices never leave the input)
    _op("slen", a=R, b=S, doc="ra = len(sb)"),
    _op("soff", a=R, b=S, doc="ra = offset of sb in the input"),
    _op("smov", a=S, b=S, doc="sa = sb"),
    _op("stake", a=S, b=S, c=R, doc="sa = sb[:rc] (rc clamped to 0..len)"),
    _op("sdrop", a=S, b=S, c=R, doc="sa = sb[rc:] (rc clamped to 0..len)"),
    _op("stakei", a=S, b=S, imm=U31, doc="sa = sb[:imm] (clamped)"),
    _op("sdropi", a=S, b=S, imm=U31, doc="sa = sb[imm:] (clamped)"),
    _op("srange", a=S, b=R, c=R, doc="sa = input[rb:rc] (rb clamped to 0..len, rc to rb..len)"),
    # -- scanning and comparing
    _op("find", a=R, b=S, imm=K, doc="ra = index of const imm in sb, or -1"),
    _op("findb", a=R, b=S, imm=BYTE, doc="ra = index of byte imm in sb, or -1"),
    _op("spanc", a=R, b=S, imm=CLS, doc="ra = length of the longest prefix of sb in class imm"),
    _op("rspanc", a=R, b=S, imm=CLS, doc="ra = length of the longest suffix of sb in class imm"),
    _op("bytei", a=R, b=S, imm=U31, doc="ra = sb[imm], or -1 when imm >= len(sb)"),
    _op("byte", a=R, b=S, c=R, doc="ra = sb[rc], or -1 when rc is outside sb"),
    _op("jseq", a=S, imm=K, j=FWD, doc="if sa == const imm: pc = j"),
    _op("jseqi", a=S, imm=K, j=FWD, doc="if sa == const imm ignoring ASCII case: pc = j"),
    _op("jspre", a=S, imm=K, j=FWD, doc="if sa starts with const imm: pc = j"),
    _op("jsprei", a=S, imm=K, j=FWD, doc="if sa starts with const imm ignoring ASCII case: pc = j"),
    _op("jsseq", a=S, b=S, j=FWD, doc="if sa == sb (same bytes): pc = j"),
    _op("parseu", a=R, b=S, j=FWD,
        doc="ra = decimal value of sb; pc = j if sb is empty, has a non-digit or exceeds int64"),
    _op("hash", a=R, b=S, doc="ra = FNV-1a 32-bit hash of sb"),
    _op("hashi", a=R, b=S, doc="ra = FNV-1a 32-bit hash of sb with ASCII lower-cased"),
    # -- tables, results, helpers
    _op("tlook", a=R, b=R, imm=T, doc="ra = table imm [rb mod len] (rb as unsigned 64-bit)"),
    _op("tlen", a=R, imm=T, doc="ra = len(table imm)"),
    _op("setf", a=F, b=R, doc="result field a = rb"),
    _op("call", imm=H, doc="call native helper imm (args and results: see HELPERS)"),
    _op("sline", a=S, b=S, j=FWD,
        doc="if sb has no LF: pc = j; else sa = sb up to the LF without one CR before it, "
            "sb = after the LF"),
    _op("strim", a=S, imm=CLS, doc="sa = sa without leading and trailing bytes of class imm"),
    _op("lookupi", a=R, b=S, imm=K,
        doc="ra = position of sb in const imm (names separated by NUL) ignoring ASCII case, "
            "or -1"),
    _op("jnall", a=S, imm=CLS, j=FWD, doc="if some byte of sa is outside class imm: pc = j"),
)

OP_BY_NAME: dict[str, int] = {op.name: i for i, op in enumerate(OPCODES)}

# Result fields written by ``setf``; position = field number.
FIELDS: tuple[str, ...] = ("head_len", "framing", "content_length", "flags", "backend")
# Values of the ``framing`` field, in api.BodyFraming order.
FRAMINGS: tuple[str, ...] = ("none", "length", "chunked", "until-close")
# Bits of the ``flags`` field.
FLAGS: dict[str, int] = {"keep_alive": 1, "upgrade": 2, "expect_continue": 4, "http10": 8}
# Offload modes of a decision map entry, in api.OffloadMode values.
OFFLOAD_MODES: tuple[str, ...] = ("none", "splice", "pin")
# Entry arguments: r0..r3 as given by the caller.
ARGS: tuple[str, ...] = ("client_hash", "sequence", "arg2", "arg3")


@dataclass(frozen=True, slots=True)
class Helper:
    id: int
    name: str
    abi: int  # first HELPER_ABI that has it
    doc: str


# Native helpers (like eBPF helpers). Ids 16..31 are reserved for HPACK (HTTP/2).
HELPERS: tuple[Helper, ...] = (
    Helper(1, "hdr_find", 1,
           "find header named const r1 (lower case) in the header block s1 (lines ending in "
           "LF, optional CR before it; name up to ':'; matched ignoring ASCII case): "
           "r0 = 1 and s0 = the value without surrounding SP/HTAB, or r0 = 0 and s0 empty; "
           "r0 = -1 when r1 is not a constant"),
    Helper(16, "hpack_decode", 2,
           "decode the HPACK header block s1 (RFC 7541: static table, Huffman, dynamic table "
           "of HPACK_TABLE_SIZE starting empty, size updates at the start) into the scratch "
           "area, header list limited to r1 bytes (name + value + 32 per field): r0 = number "
           "of fields, -1 malformed block, -2 list larger than r1, -3 scratch or field limit "
           "exceeded; the fields replace any earlier decode"),
    Helper(17, "hpack_find", 2,
           "find the first decoded field named exactly const r1: r0 = 1 and s0 = its value, "
           "or r0 = 0 and s0 empty; r0 = -1 when r1 is not a constant"),
    Helper(18, "hpack_field", 2,
           "decoded field number r1: r0 = 1, s0 = its name, s2 = its value; or r0 = 0 and "
           "s0, s2 empty when r1 is not a field number"),
    Helper(19, "scr_cat", 2,
           "s0 = s0 followed by s1, built at the end of the scratch area (s0 is not copied "
           "when it already ends there): r0 = 1, or r0 = 0 and s0 unchanged when the "
           "scratch area is full"),
)
HELPER_BY_NAME: dict[str, Helper] = {h.name: h for h in HELPERS}
HELPER_BY_ID: dict[int, Helper] = {h.id: h for h in HELPERS}
