"""Structs and enums shared by Python and C, declared once in Python.

A :class:`CStruct` lays its fields out with C's natural alignment, writes the padding out
as explicit ``_padN`` members (so the C compiler has nothing to choose), packs and unpacks
bytes with :mod:`struct`, and renders itself as a C declaration with a ``_Static_assert``
on its size. :func:`render_header` wraps declarations in a GENERATED banner; the committed
copies are checked by tests (regenerate in memory, compare).

Field types: ``u8 u16 u32 u64`` are host-endian integers (user space and BPF run on the
same host); ``be16 be32`` are network-order fields as they sit in packets, exchanged with
Python as 2/4-byte ``bytes``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CEnum", "CStruct", "Field", "render_header"]

_TYPES = {  # name -> (C type, size, struct code)
    "u8": ("__u8", 1, "B"), "u16": ("__u16", 2, "H"), "u32": ("__u32", 4, "I"),
    "u64": ("__u64", 8, "Q"), "be16": ("__be16", 2, "2s"), "be32": ("__be32", 4, "4s"),
}


@dataclass(frozen=True)
class Field:
    """One member: ``name``, a type from the table above, an array ``count``, a comment."""

    name: str
    type: str
    doc: str = ""
    count: int = 1

    def __post_init__(self) -> None:
        if self.type not in _TYPES:
            raise ValueError(f"field {self.name}: unknown type {self.type!r}")
        if self.count < 1:
            raise ValueError(f"field {self.name}: count must be >= 1")


@dataclass(frozen=True)
class CStruct:
    """A C struct with a fixed layout; see the module docstring."""

    name: str
    fields: Sequence[Field]
    doc: str = ""
    _layout: list[tuple[str, Field | None, int]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        layout: list[tuple[str, Field | None, int]] = []  # (c name, field or pad, bytes)
        off, align, npad = 0, 1, 0
        for f in self.fields:
            size = _TYPES[f.type][1]
            falign = size  # C aligns __be32 like __u32 even though Python sees bytes
            align = max(align, falign)
            if off % falign:
                pad = falign - off % falign
                layout.append((f"_pad{npad}", None, pad))
                npad, off = npad + 1, off + pad
            layout.append((f.name, f, size * f.count))
            off += size * f.count
        if off % align:
            layout.append((f"_pad{npad}", None, align - off % align))
            off += align - off % align
        object.__setattr__(self, "_layout", layout)

    @property
    def size(self) -> int:
        return sum(n for _, _, n in self._layout)

    @property
    def format(self) -> str:
        """The :mod:`struct` format (native byte order, no implicit padding)."""
        parts = ["="]
        for _, f, n in self._layout:
            if f is None:
                parts.append(f"{n}x")
            else:
                parts.append(_TYPES[f.type][2] * f.count)
        return "".join(parts)

    def offset(self, name: str) -> int:
        off = 0
        for cname, _, n in self._layout:
            if cname == name:
                return off
            off += n
        raise KeyError(f"struct {self.name} has no field {name!r}")

    def pack(self, **values: Any) -> bytes:
        """Bytes of the struct; missing fields are zero, unknown names are an error."""
        known = {f.name: f for f in self.fields}
        unknown = set(values) - set(known)
        if unknown:
            raise KeyError(f"struct {self.name} has no field(s) {sorted(unknown)}")
        args: list[Any] = []
        for f in self.fields:
            zero: Any = bytes(_TYPES[f.type][1]) if f.type.startswith("be") else 0
            v = values.get(f.name, [zero] * f.count if f.count > 1 else zero)
            args.extend(v if f.count > 1 else [v])
        return struct.pack(self.format, *args)

    def unpack(self, data: bytes) -> dict[str, Any]:
        """Field values by name (arrays as lists)."""
        if len(data) < self.size:
            raise ValueError(f"struct {self.name}: {len(data)} bytes, want {self.size}")
        flat = list(struct.unpack(self.format, data[:self.size]))
        out: dict[str, Any] = {}
        for f in self.fields:
            out[f.name] = flat[:f.count] if f.count > 1 else flat[0]
            del flat[:f.count]
        return out

    def c_decl(self) -> str:
        lines = []
        if self.doc:
            lines.append(f"/* {self.doc} */")
        lines.append(f"struct {self.name} {{")
        for cname, f, n in self._layout:
            if f is None:
                lines.append(f"\t__u8 {cname}[{n}];")
                continue
            arr = f"[{f.count}]" if f.count > 1 else ""
            doc = f" /* {f.doc} */" if f.doc else ""
            lines.append(f"\t{_TYPES[f.type][0]} {cname}{arr};{doc}")
        lines.append("};")
        lines.append(f"_Static_assert(sizeof(struct {self.name}) == {self.size}, "
                     f"\"{self.name} layout\");")
        return "\n".join(lines)


@dataclass(frozen=True)
class CEnum:
    """A C enum whose members are numbered by position (0, 1, ...), plus a count member."""

    name: str
    prefix: str
    members: Sequence[tuple[str, str]]  # (NAME, one-line meaning)
    doc: str = ""

    def value(self, member: str) -> int:
        for i, (name, _) in enumerate(self.members):
            if name == member:
                return i
        raise KeyError(f"enum {self.name} has no member {member!r}")

    @property
    def names(self) -> list[str]:
        return [n for n, _ in self.members]

    def c_decl(self) -> str:
        lines = [f"/* {self.doc} */"] if self.doc else []
        lines.append(f"enum {self.name} {{")
        for i, (name, doc) in enumerate(self.members):
            lines.append(f"\t{self.prefix}{name} = {i}, /* {doc} */")
        lines.append(f"\t{self.prefix}COUNT = {len(self.members)},")
        lines.append("};")
        return "\n".join(lines)


def render_header(guard: str, source: str, blocks: Iterable[str],
                  includes: Iterable[str] = ("linux/types.h",)) -> str:
    """A complete header: GENERATED banner naming ``source``, include guard, blocks."""
    head = [
        "/* GENERATED FILE - DO NOT EDIT.",
        f" * Source of truth: {source}",
        " * Regenerate: python3 -m miresga_core.wire.gen_headers",
        " * tests/agent/test_generated_headers.py fails when this copy is stale. */",
        f"#ifndef {guard}",
        f"#define {guard}",
        "",
    ]
    head += [f"#include <{inc}>" for inc in includes]
    body = "\n\n".join(blocks)
    return "\n".join(head) + "\n\n" + body + f"\n\n#endif /* {guard} */\n"
