"""Tokens and the preprocessor for the P4 reader (p4parse).

``preprocess`` expands ``#include "..."`` (relative to the including file; ``<...>``
system includes are only recorded), object-like ``#define``, and ``#if/#ifdef/#ifndef/
#elif/#else/#endif`` with integer expressions. Tokens remember file and line, so every
error names a place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["P4Error", "Tok", "int_literal", "preprocess", "tokenize"]


class P4Error(Exception):
    """A P4 source the reader cannot accept, with file:line."""


# --------------------------------------------------------------------------- tokens


@dataclass(frozen=True)
class Tok:
    kind: str  # "id", "int", "str", "op"
    text: str
    file: str
    line: int
    col: int

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


_TOKEN = re.compile(
    r"""(?P<ws>[ \t\r]+)
      |(?P<nl>\n)
      |(?P<lc>//[^\n]*)
      |(?P<bc>/\*.*?\*/)
      |(?P<str>"[^"\n]*")
      |(?P<int>\d+[ws]0[xX][0-9a-fA-F_]+|\d+[ws]0[bB][01_]+|\d+[ws]\d+
               |0[xX][0-9a-fA-F_]+|0[bB][01_]+|\d+)
      |(?P<id>[A-Za-z_][A-Za-z0-9_]*)
      |(?P<op>&&&|\+\+|<<|&&|\|\||==|!=|<=|>=|[-+*/%&|^~!<>=.,;:?(){}\[\]@\#])
    """,
    re.S | re.X,
)


def tokenize(text: str, file: str) -> list[Tok]:
    out: list[Tok] = []
    pos, line, line_start = 0, 1, 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise P4Error(f"{file}:{line}: unexpected character {text[pos]!r}")
        kind = m.lastgroup
        value = m.group()
        if kind in ("int", "id", "op", "str"):
            out.append(Tok(kind, value, file, line, pos - line_start))
        newlines = value.count("\n")
        if newlines:
            line += newlines
            line_start = pos + value.rfind("\n") + 1
        pos = m.end()
    return out


def int_literal(text: str) -> tuple[int, int | None]:
    """(value, width or None) of a P4 integer literal such as 32w0x1f, 8w1, 0x0402."""
    width: int | None = None
    m = re.match(r"(\d+)[ws](.*)$", text)
    if m and not text.lower().startswith("0x"):
        width, text = int(m.group(1)), m.group(2)
    text = text.replace("_", "")
    value = int(text, 0)
    if width is not None:
        value &= (1 << width) - 1
    return value, width


# --------------------------------------------------------------------------- preprocessor


def _split_lines(text: str) -> list[str]:
    # join continuation lines, keep line count by padding
    return text.replace("\\\n", " ").split("\n")


def _strip_comments(text: str) -> str:
    """Comments become blanks; newlines are kept so lines still count right."""
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group().count("\n") + " ", text,
                  flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def preprocess(path: Path, defines: dict[str, str], system: list[str],
               stack: tuple[Path, ...] = ()) -> list[Tok]:
    """Tokens of ``path`` with includes, macros and conditionals expanded."""
    path = path.resolve()
    if path in stack:
        raise P4Error(f"{path}: recursive #include")
    if not path.is_file():
        where = f"{stack[-1].name}: " if stack else ""
        raise P4Error(f"{where}cannot find include file {path}")
    rel = path.name if not stack else str(path.relative_to(stack[0].parent))
    lines = _split_lines(_strip_comments(path.read_text()))
    out: list[Tok] = []
    active: list[tuple[bool, bool]] = []  # (this branch on, some branch taken)
    for number, raw in enumerate(lines, 1):
        on = all(a for a, _ in active)
        if raw.strip().startswith("#"):
            _directive(raw.strip(), rel, number, path, defines, system, active, on, out,
                       stack + (path,))
            continue
        if not on:
            continue
        for tok in tokenize(raw, rel):
            out.extend(_expand(Tok(tok.kind, tok.text, rel, number, tok.col), defines, ()))
    if active:
        raise P4Error(f"{rel}: unterminated #if")
    return out


def _expand(tok: Tok, defines: dict[str, str], seen: tuple[str, ...]) -> list[Tok]:
    if tok.kind != "id" or tok.text not in defines or tok.text in seen:
        return [tok]
    out: list[Tok] = []
    for t in tokenize(defines[tok.text], tok.file):
        out.extend(_expand(Tok(t.kind, t.text, tok.file, tok.line, tok.col), defines,
                           seen + (tok.text,)))
    return out


def _directive(line: str, rel: str, number: int, path: Path, defines: dict[str, str],
               system: list[str], active: list[tuple[bool, bool]], on: bool,
               out: list[Tok], stack: tuple[Path, ...]) -> None:
    where = f"{rel}:{number}"
    line = re.sub(r"//.*$|/\*.*?\*/", "", line).strip()
    m = re.match(r"#\s*(\w+)\s*(.*)$", line)
    if not m:
        raise P4Error(f"{where}: bad preprocessor line {line!r}")
    word, rest = m.group(1), m.group(2).strip()
    if word in ("ifdef", "ifndef"):
        cond = (rest in defines) == (word == "ifdef")
        active.append((cond, cond))
    elif word == "if":
        cond = bool(_pp_eval(rest, defines, where))
        active.append((cond, cond))
    elif word == "elif":
        if not active:
            raise P4Error(f"{where}: #elif without #if")
        _, taken = active.pop()
        cond = not taken and bool(_pp_eval(rest, defines, where))
        active.append((cond, taken or cond))
    elif word == "else":
        if not active:
            raise P4Error(f"{where}: #else without #if")
        _, taken = active.pop()
        active.append((not taken, True))
    elif word == "endif":
        if not active:
            raise P4Error(f"{where}: #endif without #if")
        active.pop()
    elif not on:
        return
    elif word == "define":
        dm = re.match(r"(\w+)\s*(.*)$", rest)
        if not dm or "(" in dm.group(1):
            raise P4Error(f"{where}: only object-like macros are supported")
        defines[dm.group(1)] = dm.group(2)
    elif word == "undef":
        defines.pop(rest, None)
    elif word == "include":
        if rest.startswith("<"):
            system.append(rest.strip("<>"))
        else:
            out.extend(preprocess(path.parent / rest.strip('"'), defines, system, stack))
    elif word == "error":
        raise P4Error(f"{where}: #error {rest}")
    else:
        raise P4Error(f"{where}: unsupported directive #{word}")


def _pp_eval(expr: str, defines: dict[str, str], where: str) -> int:
    expr = re.sub(r"defined\s*\(\s*(\w+)\s*\)|defined\s+(\w+)",
                  lambda m: "1" if (m.group(1) or m.group(2)) in defines else "0", expr)
    for _ in range(10):
        new = re.sub(r"\b([A-Za-z_]\w*)\b",
                     lambda m: defines.get(m.group(1), "0") or "1", expr)
        if new == expr:
            break
        expr = new
    py = expr.replace("&&", " and ").replace("||", " or ").replace("!", " not ")
    py = py.replace(" not =", "!=")
    if not re.fullmatch(r"[\d\sxXa-fA-F()<>=!+\-*andotr]*", py):
        raise P4Error(f"{where}: cannot evaluate #if {expr!r}")
    try:
        return int(eval(py, {"__builtins__": {}}))  # digits and operators only
    except Exception as exc:
        raise P4Error(f"{where}: cannot evaluate #if {expr!r}: {exc}") from None
