"""Example third-party parser plugin: Redis RESP commands, routed by command and key.

Written only against the public API (``miresga_core`` and ``miresga_core.bytecode.builder``)
to show a plugin author the whole path: prototype ``parse_head`` (the reference), its
compiled form ``compile`` (bytecode), and tests with ``miresga_core.testing``.

A request head here is one command: an array ``*N\\r\\n`` of N bulk strings
``$len\\r\\n<bytes>\\r\\n``. Fields: ``command`` (first element, case-insensitive) and
``key`` (second element, absent for one-element commands). Refused with 400: anything
that is not such an array, N outside 1..64, lengths that are not plain decimals.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from miresga_core import FieldSpec, NeedMore, ParserPlugin, Reject, RequestHead, hookimpl
from miresga_core.api import FieldRef
from miresga_core.bytecode.builder import INPUT, ProgramBuilder

__all__ = ["RespParser"]

MAX_ITEMS = 64


def _decimal(data: bytes, start: int) -> tuple[int, int] | NeedMore | Reject:
    """A decimal ended by CRLF at data[start:]: (value, index after CRLF)."""
    end = data.find(b"\r\n", start)
    if end < 0:
        return NeedMore("length line")
    text = data[start:end]
    if not text or not text.isdigit() or len(text) > 18:
        return Reject(400, "bad length")
    return int(text), end + 2


class RespParser(ParserPlugin):
    name = "resp"

    def __init__(self, max_head: int = 16384) -> None:
        self.max_head = max_head

    @classmethod
    def fields(cls) -> Sequence[FieldSpec]:
        return (FieldSpec("command", "command name, e.g. GET", case_insensitive=True),
                FieldSpec("key", "first argument"))

    def parse_head(self, data: bytes) -> RequestHead | NeedMore | Reject:
        result = self._parse(data[: self.max_head])
        if isinstance(result, NeedMore) and len(data) >= self.max_head:
            return Reject(431, "command too large")
        return result

    def _parse(self, data: bytes) -> RequestHead | NeedMore | Reject:
        if not data:
            return NeedMore("empty")
        if data[:1] != b"*":
            return Reject(400, "not an array")
        got = _decimal(data, 1)
        if not isinstance(got, tuple):
            return got
        count, pos = got
        if not 1 <= count <= MAX_ITEMS:
            return Reject(400, "bad item count")
        items = []
        for _ in range(count):
            if len(data) <= pos:
                return NeedMore("item")
            if data[pos:pos + 1] != b"$":
                return Reject(400, "not a bulk string")
            got = _decimal(data, pos + 1)
            if not isinstance(got, tuple):
                return got
            length, pos = got
            if len(data) < pos + length + 2:
                return NeedMore("item body")
            if data[pos + length:pos + length + 2] != b"\r\n":
                return Reject(400, "bulk string not ended by CRLF")
            items.append(data[pos:pos + length].decode("latin-1"))
            pos += length + 2
        extra = {"command": items[0].lower()}
        if count > 1:
            extra["key"] = items[1]
        return RequestHead(method=items[0], target="", path="", query="", host="", headers=(),
                           head_length=pos, extra=extra)

    def compile(self, b: ProgramBuilder, fields: Sequence[str]) -> dict[str, FieldRef]:
        t, n, count, one = b.ireg(), b.ireg(), b.ireg(), b.ireg()
        rest, cmd, key, num = b.sreg(), b.sreg(), b.sreg(), b.sreg()
        more, bad, big = b.label("more"), b.label("bad"), b.label("big")
        b.movi(t, 0)
        b.srange(key, t, t)  # offset 0: key absent
        b.smov(rest, INPUT)
        b.movi(t, self.max_head)
        b.stake(rest, rest, t)

        def decimal(out: Any) -> None:  # rest = "<digits>\r\n..." -> out, rest after CRLF
            b.find(t, rest, b"\r\n")
            b.jlti(t, 0, more)
            b.stake(num, rest, t)
            b.slen(n, num)
            b.jgei(n, 19, bad)
            b.parseu(out, num, bad)
            b.addi(t, 2)
            b.sdrop(rest, rest, t)

        b.slen(t, rest)
        b.jeqi(t, 0, more)
        b.bytei(t, rest, 0)
        b.jnei(t, ord("*"), bad)
        b.sdropi(rest, rest, 1)
        decimal(count)
        b.jlti(count, 1, bad)
        b.jgei(count, MAX_ITEMS + 1, bad)
        b.movi(one, 0)  # items seen
        top = b.here("item")
        b.slen(t, rest)
        b.jeqi(t, 0, more)
        b.bytei(t, rest, 0)
        b.jnei(t, ord("$"), bad)
        b.sdropi(rest, rest, 1)
        decimal(n)
        b.slen(t, rest)
        b.sub(t, n)
        b.jlti(t, 2, more)
        b.stake(num, rest, n)  # the item
        b.sdrop(rest, rest, n)
        is_cmd, is_key, stored = b.label(), b.label(), b.label()
        b.jeqi(one, 0, is_cmd)
        b.jeqi(one, 1, is_key)
        b.jmp(stored)
        b.place(is_cmd)
        b.smov(cmd, num)
        b.jmp(stored)
        b.place(is_key)
        b.smov(key, num)
        b.place(stored)
        crlf = b.label()
        b.jspre(rest, b"\r\n", crlf)
        b.jmp(bad)
        b.place(crlf)
        b.sdropi(rest, rest, 2)
        b.addi(one, 1)
        done = b.label()
        b.jeq(one, count, done)
        b.loop_to(top, MAX_ITEMS)
        b.place(more)
        b.slen(t, INPUT)
        b.jgei(t, self.max_head, big)
        b.needmore()
        b.place(big)
        b.reject(431, b"command too large")
        b.place(bad)
        b.reject(400, b"malformed command")
        b.place(done)
        b.soff(t, rest)
        b.setf("head_len", t)
        b.movi(t, 1)  # keep-alive: RESP connections carry many commands
        b.setf("flags", t)
        present = b.ireg()
        b.soff(present, key)
        return {"command": FieldRef(cmd), "key": FieldRef(key, present)}

    def new_session(self, ctx: Any) -> Any:
        raise NotImplementedError("the RESP example has no proxy session")


@hookimpl
def miresga_add_parsers() -> list[type[Any]]:
    return [RespParser]
