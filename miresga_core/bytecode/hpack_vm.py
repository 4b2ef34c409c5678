"""The HPACK helpers of the Python VM (helper ids 16..19), the reference for mvm_hpack.c.

Theory of operation. HPACK values are not bytes of the input (Huffman-coded, or copied out
of the static or dynamic table), so the machine has a per-run *scratch area* of
``SCRATCH_LEN`` bytes, addressed by slice offsets from ``SCRATCH_BASE`` up. It is a bump
allocator: helpers only append, and every slice they hand out covers bytes already
written, so the clamping rule of the slice ops (a sub-slice stays inside its source) keeps
every slice inside the input or inside the written scratch: nothing for the verifier to
prove beyond what it proves today.

``hpack_decode`` mirrors the ``hpack`` package's decoder (the prototype's oracle) decision
for decision: the same integer limits (at most 5 continuation octets), the same Huffman
state machine (``huffman_fsm``: hpack's nibble table, from which the C table is generated),
the same static table, dynamic table sizing and eviction, and the same header list size
check. Field names and values are copied into the scratch area once; a dynamic table hit
points at the copy made when the entry was inserted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hpack.huffman_table import HUFFMAN_TABLE
from hpack.table import HeaderTable

from .opcodes import LIMITS

if TYPE_CHECKING:
    from .vm import PyVM, _Machine

__all__ = ["HELPER_IMPLS", "HUFFMAN_FSM", "STATIC_TABLE", "huffman_decode"]

BASE = LIMITS["SCRATCH_BASE"]
SCRATCH_LEN = LIMITS["SCRATCH_LEN"]
MAX_HFIELDS = LIMITS["MAX_HFIELDS"]
TABLE_SIZE = LIMITS["HPACK_TABLE_SIZE"]
VARINT_MAX = 5  # continuation octets after which an integer is refused (as hpack does)
STATIC_TABLE: tuple[tuple[bytes, bytes], ...] = tuple(HeaderTable.STATIC_TABLE)
# RFC 7541 Appendix B as a nibble-driven state machine: (state, flags, symbol) per
# (state * 16 + nibble); flags 1 = may end here, 2 = emit symbol, 4 = fail.
HUFFMAN_FSM: tuple[tuple[int, int, int], ...] = tuple(HUFFMAN_TABLE)
_COMPLETE, _EMIT, _FAIL = 1, 2, 4


class _Bad(Exception):
    """A decoding failure; ``code`` is the helper's r0."""

    def __init__(self, code: int) -> None:
        self.code = code


def huffman_decode(data: bytes) -> bytes:
    if not data:
        return b""
    state, flags, out = 0, 0, bytearray()
    for byte in data:
        for nibble in (byte >> 4, byte & 15):
            state, flags, sym = HUFFMAN_FSM[state * 16 + nibble]
            if flags & _FAIL:
                raise _Bad(-1)
            if flags & _EMIT:
                out.append(sym)
    if not flags & _COMPLETE:
        raise _Bad(-1)
    return bytes(out)


def _integer(block: bytes, pos: int, prefix: int) -> tuple[int, int]:
    """(value, next position) of the prefix-bit integer at block[pos]."""
    if pos >= len(block):
        raise _Bad(-1)
    top = (1 << prefix) - 1
    value = block[pos] & top
    used = 1
    if value == top:
        shift = 0
        while True:
            if pos + used >= len(block):
                raise _Bad(-1)
            octet = block[pos + used]
            used += 1
            value += (octet & 127) << shift
            if octet < 128:
                break
            shift += 7
            if used > VARINT_MAX:
                raise _Bad(-1)
    return value, pos + used


class _Decoder:
    def __init__(self, m: _Machine) -> None:
        self.m = m
        self.dyn: list[tuple[int, int, int, int]] = []  # newest first: scratch slices
        self.size = 0
        self.maxsize = TABLE_SIZE

    def put(self, data: bytes) -> tuple[int, int]:
        scr = self.m.scr
        if len(scr) + len(data) > SCRATCH_LEN:
            raise _Bad(-3)
        off = BASE + len(scr)
        scr += data
        return off, len(data)

    def entry(self, index: int) -> tuple[int, int, int, int] | tuple[bytes, bytes]:
        if 1 <= index <= len(STATIC_TABLE):
            return STATIC_TABLE[index - 1]
        if 0 <= index - len(STATIC_TABLE) - 1 < len(self.dyn):
            return self.dyn[index - len(STATIC_TABLE) - 1]
        raise _Bad(-1)

    def slices(self, e: tuple[int, int, int, int] | tuple[bytes, bytes],
               name_only: bool = False) -> tuple[int, ...]:
        """Scratch slices of a table entry: static entries are copied (only the name when
        the value comes from the literal), dynamic ones already live in the scratch."""
        if len(e) == 4:
            return e
        name = self.put(e[0])
        return name if name_only else (*name, *self.put(e[1]))

    def resize(self, newmax: int) -> None:
        self.maxsize = newmax
        self.evict()

    def evict(self) -> None:
        while self.size > self.maxsize:
            _, nlen, _, vlen = self.dyn.pop()
            self.size -= nlen + vlen + 32

    def add(self, f: tuple[int, int, int, int]) -> None:
        size = f[1] + f[3] + 32
        if size > self.maxsize:
            self.dyn.clear()
            self.size = 0
            return
        self.dyn.insert(0, f)
        self.size += size
        self.evict()

    def string(self, block: bytes, pos: int) -> tuple[int, int, int]:
        """A length-prefixed (maybe Huffman) string at pos -> (scratch off, len, next)."""
        length, start = _integer(block, pos, 7)
        if start + length > len(block):
            raise _Bad(-1)
        raw = block[start:start + length]
        if block[pos] & 0x80:
            raw = huffman_decode(raw)
        off, n = self.put(raw)
        return off, n, start + length

    def literal(self, block: bytes, pos: int, prefix: int) -> tuple[tuple[int, ...], int]:
        index, nxt = _integer(block, pos, prefix)
        if index:
            name = self.slices(self.entry(index), name_only=True)[:2]
        else:
            noff, nlen, nxt = self.string(block, pos + 1)
            name = (noff, nlen)
        voff, vlen, nxt = self.string(block, nxt)
        return (*name, voff, vlen), nxt

    def decode(self, block: bytes, limit: int) -> list[tuple[int, ...]]:
        fields: list[tuple[int, ...]] = []
        pos, inflated = 0, 0
        while pos < len(block):
            first = block[pos]
            if first & 0x80:
                index, pos = _integer(block, pos, 7)
                f = self.slices(self.entry(index))
            elif first & 0x40:
                f, pos = self.literal(block, pos, 6)
                self.add(f)  # type: ignore[arg-type]
            elif first & 0x20:
                if fields:
                    raise _Bad(-1)  # size updates only at the start of a block
                newmax, pos = _integer(block, pos, 5)
                if newmax > TABLE_SIZE:
                    raise _Bad(-1)
                self.resize(newmax)
                continue
            else:
                f, pos = self.literal(block, pos, 4)
            fields.append(f)
            inflated += f[1] + f[3] + 32
            if inflated > limit:
                raise _Bad(-2)
            if len(fields) > MAX_HFIELDS:
                raise _Bad(-3)
        return fields


def _hpack_decode(vm: PyVM, m: _Machine) -> None:
    m.hfields = []
    try:
        m.hfields = _Decoder(m).decode(m.sl(1), m.r[1])
        m.r[0] = len(m.hfields)
    except _Bad as bad:
        m.r[0] = bad.code


def _hpack_find(vm: PyVM, m: _Machine) -> None:
    m.soff[0], m.slen[0] = 0, 0
    k = m.r[1]
    if not 0 <= k < len(vm.p.consts):
        m.r[0] = -1
        return
    want = vm.p.consts[k]
    for noff, nlen, voff, vlen in m.hfields:
        if nlen == len(want) and m.at(noff, nlen) == want:
            m.r[0], m.soff[0], m.slen[0] = 1, voff, vlen
            return
    m.r[0] = 0


def _hpack_field(vm: PyVM, m: _Machine) -> None:
    k = m.r[1]
    if 0 <= k < len(m.hfields):
        noff, nlen, voff, vlen = m.hfields[k]
        m.r[0], m.soff[0], m.slen[0], m.soff[2], m.slen[2] = 1, noff, nlen, voff, vlen
    else:
        m.r[0], m.soff[0], m.slen[0], m.soff[2], m.slen[2] = 0, 0, 0, 0, 0


def _scr_cat(vm: PyVM, m: _Machine) -> None:
    head, tail = m.sl(0), m.sl(1)
    end = BASE + len(m.scr)
    at_end = m.slen[0] > 0 and m.soff[0] + m.slen[0] == end
    need = len(tail) + (0 if at_end else len(head))
    if len(m.scr) + need > SCRATCH_LEN:
        m.r[0] = 0
        return
    start = m.soff[0] if at_end else end
    m.scr += tail if at_end else head + tail
    m.r[0], m.soff[0], m.slen[0] = 1, start, len(head) + len(tail)


HELPER_IMPLS = {16: _hpack_decode, 17: _hpack_find, 18: _hpack_field, 19: _scr_cat}
