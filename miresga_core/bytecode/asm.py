"""The assembler: MVM text -> Program. ``disasm.py`` writes the same text back.

Syntax (one statement per line, ``;`` starts a comment)::

    .budget 64                      ; loop budget
    .const crlf "\\r\\n"              ; constants: strings with \\r \\n \\t \\\\ \\" \\xNN escapes
    .class tchar "a-z0-9!#"         ; 32-byte byte class: chars and X-Y ranges (\\x2d = '-')
    .table rr 0 1 0 2               ; u32 data table
    .pool web "web"                 ; pools (decision map targets): name, pool name
    .decision home web splice "route-name"
    start:  find r1, s0, crlf       ; operands in field order a, b, c, imm, j
            jlti r1, 0, more        ; jump targets are labels (or @N for an absolute pc)
    more:   needmore

Operands by kind: ``rN``, ``sN``, const/class/table/decision/pool by name (or ``kN`` /
``tN`` / ``dN`` positional names), result fields and helpers by name, integers in decimal
or 0x hex. The assembler checks syntax only; meaning is the verifier's job, so error
vectors can express any bad program that fits the encoding.
"""

from __future__ import annotations

import re

from .opcodes import FIELDS, HELPER_BY_NAME, LIMITS, OFFLOAD_MODES, OP_BY_NAME, OPCODES, Kind
from .program import Decision, Insn, Program, ProgramError

__all__ = ["AsmError", "assemble", "parse_class", "unescape"]


class AsmError(ProgramError):
    """A syntax error in assembler text, with its line number."""


_ESC = {"r": 13, "n": 10, "t": 9, "\\": 92, '"': 34, "0": 0}


def _unescape_items(text: str) -> list[tuple[int, bool]]:
    """Bytes of an escaped string, each with a flag 'was escaped'."""
    out: list[tuple[int, bool]] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch != "\\":
            out.extend((b, False) for b in ch.encode())
            i += 1
            continue
        nxt = text[i + 1:i + 2]
        if nxt == "x" and re.fullmatch(r"[0-9a-fA-F]{2}", text[i + 2:i + 4]):
            out.append((int(text[i + 2:i + 4], 16), True))
            i += 4
        elif nxt in _ESC:
            out.append((_ESC[nxt], True))
            i += 2
        else:
            raise ValueError(f"bad escape {text[i:i + 4]!r}")
    return out


def unescape(text: str) -> bytes:
    """Decode the escapes of a quoted-string body."""
    return bytes(b for b, _ in _unescape_items(text))


def parse_class(spec: str) -> bytes:
    """A class spec ("a-z0-9_") -> 32-byte bit set."""
    items = _unescape_items(spec)
    bits = bytearray(LIMITS["CLASS_LEN"])
    i = 0
    while i < len(items):
        lo = items[i][0]
        hi = lo
        if i + 2 < len(items) and items[i + 1] == (0x2D, False):
            hi = items[i + 2][0]
            if hi < lo:
                raise ValueError(f"empty range {chr(lo)!r}-{chr(hi)!r}")
            i += 2
        for b in range(lo, hi + 1):
            bits[b >> 3] |= 1 << (b & 7)
        i += 1
    return bytes(bits)


def _string(tok: str) -> str:
    if len(tok) < 2 or tok[0] != '"' or tok[-1] != '"':
        raise ValueError(f"expected a quoted string, got {tok!r}")
    return tok[1:-1]


def _int(tok: str) -> int:
    try:
        return int(tok, 0)
    except ValueError:
        raise ValueError(f"expected an integer, got {tok!r}") from None


class _Asm:
    def __init__(self) -> None:
        self.budget = 0
        self.consts: list[bytes] = []
        self.names: dict[str, dict[str, int]] = {"k": {}, "t": {}, "p": {}, "d": {}}
        self.tables: list[tuple[int, ...]] = []
        self.pools: list[str] = []
        self.decisions: list[Decision] = []
        self.labels: dict[str, int] = {}
        self.pending: list[tuple[int, int, str, list[str]]] = []  # (line, pc, op, operands)

    def name(self, space: str, name: str, index: int) -> None:
        if name in self.names[space]:
            raise ValueError(f"{name!r} defined twice")
        self.names[space][name] = index

    def directive(self, words: list[str]) -> None:
        d, args = words[0], words[1:]
        if d == ".budget" and len(args) == 1:
            self.budget = _int(args[0])
        elif d in (".const", ".class") and len(args) == 2:
            body = _string(args[1])
            self.name("k", args[0], len(self.consts))
            self.consts.append(unescape(body) if d == ".const" else parse_class(body))
        elif d == ".table" and len(args) >= 2:
            self.name("t", args[0], len(self.tables))
            self.tables.append(tuple(_int(a) for a in args[1:]))
        elif d == ".pool" and len(args) == 2:
            self.name("p", args[0], len(self.pools))
            self.pools.append(unescape(_string(args[1])).decode())
        elif d == ".decision" and len(args) in (3, 4):
            pool = self.lookup("p", args[1])
            if args[2] not in OFFLOAD_MODES:
                raise ValueError(f"offload mode must be one of {', '.join(OFFLOAD_MODES)}")
            self.name("d", args[0], len(self.decisions))
            label = _string(args[3]) if len(args) == 4 else ""
            self.decisions.append(Decision(pool, args[2], unescape(label).decode()))
        else:
            raise ValueError(f"bad directive {' '.join(words)!r}")

    def lookup(self, space: str, tok: str) -> int:
        if tok in self.names[space]:
            return self.names[space][tok]
        m = re.fullmatch(space + r"(\d+)", tok)
        if m:
            return int(m.group(1))
        raise ValueError(f"unknown name {tok!r}")

    def operand(self, kind: Kind, tok: str, pc: int) -> int:
        if kind in (Kind.IREG, Kind.SREG):
            m = re.fullmatch(("r" if kind == Kind.IREG else "s") + r"(\d+)", tok)
            if not m:
                raise ValueError(f"expected a {'r' if kind == Kind.IREG else 's'} register, "
                                 f"got {tok!r}")
            return int(m.group(1))
        if kind in (Kind.CONST, Kind.CLASS):
            return self.lookup("k", tok)
        if kind == Kind.TABLE:
            return self.lookup("t", tok)
        if kind == Kind.DECISION:
            return self.lookup("d", tok)
        if kind == Kind.FIELD:
            return FIELDS.index(tok) if tok in FIELDS else _int(tok)
        if kind == Kind.HELPER:
            return HELPER_BY_NAME[tok].id if tok in HELPER_BY_NAME else _int(tok)
        if kind in (Kind.FWD, Kind.BACK):
            if tok.startswith("@"):
                return _int(tok[1:])
            if tok not in self.labels:
                raise ValueError(f"unknown label {tok!r}")
            return self.labels[tok]
        return _int(tok)

    def insn(self, pc: int, mnemonic: str, toks: list[str]) -> Insn:
        if mnemonic not in OP_BY_NAME:
            raise ValueError(f"unknown instruction {mnemonic!r}")
        code = OP_BY_NAME[mnemonic]
        specs = [(n, s) for n, s in OPCODES[code].fields if s.kind != Kind.NONE]
        if len(toks) != len(specs):
            want = ", ".join(f"{n}:{s.kind.name.lower()}" for n, s in specs) or "nothing"
            raise ValueError(f"{mnemonic} takes {want}, got {len(toks)} operands")
        vals = {n: self.operand(s.kind, t, pc) for (n, s), t in zip(specs, toks, strict=True)}
        return Insn(code, **vals)


_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[^\s"]+')


def _split(line: str) -> str:
    """Drop a trailing comment that is not inside a string."""
    quoted = escaped = False
    for i, ch in enumerate(line):
        if escaped:
            escaped = False
        elif ch == "\\" and quoted:
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == ";" and not quoted:
            return line[:i]
    return line


def assemble(text: str) -> Program:
    """Assemble MVM text; raise AsmError naming the line on a syntax error."""
    a = _Asm()
    lineno = 0
    try:
        for lineno, raw in enumerate(text.splitlines(), 1):
            line = _split(raw).strip()
            while (m := re.match(r"([A-Za-z_.$][\w.$]*):(\s|$)", line)):
                if m.group(1) in a.labels:
                    raise ValueError(f"label {m.group(1)!r} defined twice")
                a.labels[m.group(1)] = len(a.pending)
                line = line[m.end():].strip()
            if not line:
                continue
            if line.startswith("."):
                a.directive(_TOKEN.findall(line))
                continue
            mnemonic, _, rest = line.partition(" ")
            toks = [t.strip() for t in rest.split(",")] if rest.strip() else []
            a.pending.append((lineno, len(a.pending), mnemonic, toks))
        code = []
        for lineno, pc, mnemonic, toks in a.pending:  # noqa: B007 (lineno names errors)
            code.append(a.insn(pc, mnemonic, toks))
    except (ValueError, KeyError) as exc:
        raise AsmError(f"line {lineno}: {exc}") from None
    return Program(tuple(code), tuple(a.consts), tuple(a.tables), tuple(a.pools),
                   tuple(a.decisions), a.budget)
