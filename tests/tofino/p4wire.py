"""Packets as bytes through native/p4: the ingress parser, the ingress control and the
deparser, executed from the P4 sources (p4parse + p4run).

Theory of operation
-------------------
``WireMachine`` extends ``p4run.Machine`` with what parsers and deparsers call:
``pkt.extract`` (headers read big-endian, bit by bit; ``stack.next``), ``pkt.lookahead``,
``pkt.advance``, ``pkt.emit`` (every valid header of a struct, in declaration order),
``ParserCounter`` (set / decrement / is_zero) and ``Checksum`` (ones'-complement sums over
field lists packed as their widths say: ``subtract`` adds the complement, ``get`` returns
the running sum, ``update`` the complemented sum of its list).

The wire a TNA ingress parser sees starts with port metadata; ``process`` prefixes 8
zero bytes for it (the parser's ``pkt.advance(PORT_METADATA_SIZE)``), the intrinsic
metadata (``ig_intr_md``) is set directly. ``process`` follows recirculations: the
deparsed bytes (with ``sip_h`` in front) come back on the recirculation port.
"""

from __future__ import annotations

from typing import Any

from p4parse import Control, P4Error
from p4run import Machine, _Frame

__all__ = ["WireError", "WireMachine", "process"]

PORT_METADATA_BYTES = 8


class WireError(P4Error):
    """A parser error (packet too short, header stack overflow, no matching state)."""


def _ones(words: list[tuple[int, int]]) -> int:
    """Ones'-complement sum of fields packed by width into 16-bit words."""
    bits, total = 0, 0
    for value, width in words:
        bits = (bits << width) | value
        total += width
    if total % 16:
        bits <<= 16 - total % 16
        total += 16 - total % 16
    s = 0
    for i in range(total // 16):
        s += (bits >> (total - 16 * (i + 1))) & 0xFFFF
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


class WireMachine(Machine):
    data: bytes = b""
    pos: int = 0  # bit position in data
    emitted: bytearray

    # ---- entry points

    def parse(self, parser: str, data: bytes) -> int:
        """Run ``parser`` on ``data``; returns the byte offset where the payload starts."""
        decl = self.prog.parsers[parser]
        self.data, self.pos = data, 0
        self.pcounters: dict[str, int] = {}
        self.sums: dict[str, int] = {}
        self.next_index: dict[str, int] = {}
        ctl = Control(decl.name, decl.params, [], instances=decl.instances)
        frame = _Frame(ctl, {p.name: (p.name, p.type) for p in decl.params}, {}, {})
        state = "start"
        for _ in range(256):  # the walk is bounded: a loop is an error, not a hang
            if state == "accept":
                if self.pos % 8:
                    raise WireError("parser stopped inside a byte")
                return self.pos // 8
            if state == "reject":
                raise WireError("parser rejected the packet")
            stmts, trans = decl.states[state]
            self._block(stmts, frame)
            state = self._transition(trans, frame)
        raise WireError("parser did not finish in 256 states")

    def deparse(self, control: str) -> bytes:
        self.emitted = bytearray()
        self.sums = {}
        self.run(control)
        return bytes(self.emitted)

    # ---- parser pieces

    def _transition(self, trans: Any, frame: _Frame) -> str:
        if trans[0] == "goto":
            return trans[1]
        values = [self.eval(e, frame)[0] for e in trans[1]]
        for keyset, state in trans[2]:
            if keyset == ["_"]:
                return state
            if len(keyset) != len(values):
                raise WireError(f"select with {len(values)} values, keyset {keyset}")
            if all(k == "_" or self.eval(k, frame)[0] == v
                   for k, v in zip(keyset, values, strict=True)):
                return state
        raise WireError(f"no select case matches {values}")

    def _bits(self, n: int, *, consume: bool) -> int:
        end = self.pos + n
        if end > len(self.data) * 8:
            raise WireError("packet too short")
        whole = int.from_bytes(self.data, "big")
        value = (whole >> (len(self.data) * 8 - end)) & ((1 << n) - 1)
        if consume:
            self.pos = end
        return value

    def _fields(self, path: str, typ: Any) -> list[tuple[str, int]]:
        """(field path, width) of every field of a header, in order."""
        fields = self.prog.fields_of(typ)
        assert fields is not None
        return [(f"{path}.{f.name}", self.prog.width(f.type)) for f in fields]

    def _extract(self, arg: Any, frame: _Frame) -> None:
        if arg[0] == "member" and arg[2] == "next":
            base, typ = self._path(arg[1], frame)
            i = self.next_index.get(base, 0)
            if i >= typ[2]:
                raise WireError(f"header stack {base} overflow")
            self.next_index[base] = i + 1
            path, typ = f"{base}[{i}]", typ[1]
        else:
            path, typ = self._path(arg, frame)
        if not self.prog.is_header(typ):
            return  # intrinsic metadata: supplied by the test, not on this wire
        for fpath, width in self._fields(path, typ):
            self.values[fpath] = self._bits(width, consume=True)
        self.valid.add(path)

    def _emit(self, path: str, typ: Any) -> None:
        if typ[0] == "stack":
            for i in range(typ[2]):
                self._emit(f"{path}[{i}]", typ[1])
            return
        if self.prog.is_header(typ):
            if path in self.valid:
                fields = [(self.values.get(p, 0), w) for p, w in self._fields(path, typ)]
                bits = 0
                for v, w in fields:
                    bits = (bits << w) | v
                self.emitted += bits.to_bytes(sum(w for _, w in fields) // 8, "big")
            return
        for f in self.prog.fields_of(typ) or []:
            self._emit(f"{path}.{f.name}", f.type)

    def _list(self, arg: Any, frame: _Frame) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []
        for item in arg[1]:
            if item[0] in ("member", "name", "index") and item[0] != "int":
                try:
                    path, typ = self._path(item, frame)
                except P4Error:
                    path, typ = "", None
                if typ is not None and self.prog.is_header(typ):
                    out += [(self.values.get(p, 0), w) for p, w in self._fields(path, typ)]
                    continue
            v, w = self.eval(item, frame)
            if w is None:
                raise WireError(f"checksum field {item} has no width")
            out.append((v, w))
        return out

    # ---- calls

    def _call(self, e: Any, frame: _Frame) -> tuple[int, int | None]:
        callee, args = e[1], e[2]
        if callee[0] == "member" and callee[1] == ("name", "pkt"):
            method = callee[2]
            if method == "extract":
                self._extract(args[0], frame)
            elif method == "advance":
                self._bits(self.eval(args[0], frame)[0], consume=True)
            elif method == "lookahead":
                w = self.prog.width(e[3])
                return self._bits(w, consume=False), w
            elif method == "emit":
                self._emit(*self._path(args[0], frame))
            else:
                raise P4Error(f"pkt.{method} not supported")
            return 0, None
        return super()._call(e, frame)

    def _instance(self, frame: _Frame, inst: Any, method: str,
                  args: list[Any]) -> tuple[int, int | None]:
        name = inst.name
        if inst.type_name == "ParserCounter":
            if method == "set":
                self.pcounters[name] = self.eval(args[0], frame)[0]
            elif method == "decrement":
                self.pcounters[name] = self.pcounters.get(name, 0) - self.eval(args[0], frame)[0]
            elif method == "is_zero":
                return int(self.pcounters.get(name, 0) == 0), 1
            else:
                raise P4Error(f"ParserCounter.{method} not supported")
            return 0, None
        if inst.type_name == "Checksum":
            if method == "subtract":
                s = self.sums.get(name, 0) + (~_ones(self._list(args[0], frame)) & 0xFFFF)
                self.sums[name] = _ones([(s >> 16, 16), (s & 0xFFFF, 16)])
                return 0, None
            if method == "get":
                return self.sums.get(name, 0), 16
            if method == "update":
                return ~_ones(self._list(args[0], frame)) & 0xFFFF, 16
            raise P4Error(f"Checksum.{method} not supported")
        return super()._instance(frame, inst, method, args)


def process(fake: Any, frame: bytes, *, port: int, tstamp: int = 0,
            max_passes: int = 12) -> tuple[bytes | None, int, int, WireMachine]:
    """Send ``frame`` into the switch on ``port``: (bytes out or None if dropped, egress
    port, passes, the last pass's machine)."""
    recirc = int(fake.prog.defines["RECIRC_PORT"])
    data = bytes(PORT_METADATA_BYTES) + frame
    for passes in range(1, max_passes + 1):
        m = fake.machine(cls=WireMachine)
        m.set("ig_intr_md.ingress_port", port)
        m.set("ig_prsr_md.global_tstamp", tstamp)
        start = m.parse("SwitchIngressParser", data)
        fake.run_ingress(m, length=len(data) - PORT_METADATA_BYTES)
        if m.get("ig_dprsr_md.drop_ctl"):
            return None, 0, passes, m
        out = m.deparse("SwitchIngressDeparser") + data[start:]
        egress = m.get("ig_tm_md.ucast_egress_port")
        if egress != recirc:
            return out, egress, passes, m
        data, port = bytes(PORT_METADATA_BYTES) + out, recirc
    raise WireError(f"still recirculating after {max_passes} passes")
