"""The compiled form of the HTTP/2 prototype (prototype.py), on the public bytecode builder
and the HPACK helpers (docs/bytecode.md). Equivalence with the prototype is tested in
plugins/http2/tests/test_http2_compiled.py: same NeedMore / Reject status / decision, head
length, framing and content length, on the Python VM and the C VM.

Theory of operation, in program order (each step where prototype.parse_head has it):

1. Preface: a prefix of it -> needmore, anything else -> 400.
2. Frame walk (bounded loop, one frame per iteration): 431 past max_head, needmore on a
   short header or payload, 400 on frames above 16384 bytes; SETTINGS first; connection
   frames (SETTINGS, PING, WINDOW_UPDATE, PRIORITY) checked and skipped; then HEADERS
   (padding and priority fields removed) and CONTINUATION of the same stream until
   END_HEADERS. Fragments are joined in the scratch area with ``scr_cat``. Big-endian
   integers are built with byte loads and doublings (the VM has no shift).
3. ``hpack_decode`` with the header list limited to max_head: 400 malformed, 431 too big.
4. One pass over the decoded fields with ``hpack_field`` applying RFC 9113 8.3 in the
   prototype's order (first error wins): pseudo-headers first, known, not repeated; names
   lower-case (Python's ``str.lower`` on latin-1) and not empty; no NUL/CR/LF in values;
   no connection-specific fields, ``te`` only ``trailers``. The first ``host``,
   ``content-length`` and each wanted header are kept.
5. :method present (CONNECT -> 405), :scheme and a non-empty :path; framing from
   END_STREAM / content-length; the match fields.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from miresga_core.api import FieldRef
from miresga_core.bytecode.builder import (
    INPUT,
    ByteClass,
    IReg,
    Label,
    ProgramBuilder,
    SReg,
    whitespace_class,
)

from .prototype import MAX_FRAME, PREFACE

R0, R1 = IReg(0), IReg(1)

__all__ = ["compile_http2"]

HEADERS, PRIORITY, SETTINGS, PING, WINDOW_UPDATE, CONTINUATION = 1, 2, 4, 6, 8, 9
END_STREAM, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x4, 0x8, 0x20
PSEUDO = (":method", ":scheme", ":path", ":authority")
CONNECTION = ("connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade")
# bytes whose str.lower() differs (latin-1): A-Z and U+00C0..U+00DE but U+00D7
NOT_LOWER = ByteClass.of(c for c in range(256) if chr(c).lower() != chr(c))
NO_CTL = ~ByteClass.of(b"\x00\r\n")
NOT_AT = ~ByteClass.of(b"@")
STRIP = whitespace_class()
MAX_FRAMES = 2048  # frames before the head ends: each costs >= 9 of max_head bytes
MAX_FIELDS = 1024  # the helper's MAX_HFIELDS


class _Http2:
    def __init__(self, b: ProgramBuilder, max_head: int) -> None:
        self.b = b
        self.max_head = max_head
        # r0/r1 are the caller's (policies read them) and the helpers' arguments: saved
        self.arg0, self.arg1 = b.ireg(), b.ireg()
        self.t1, self.t2, self.t3 = b.ireg(), b.ireg(), b.ireg()
        self.pos, self.stream, self.end_stream = (b.ireg() for _ in range(3))
        self.length, self.ftype, self.flags, self.sid = (b.ireg() for _ in range(4))
        # s1 and s2 are helper arguments/results: taken so nothing else lands there
        self.h1, self.h2 = b.sreg(), b.sreg()
        assert (self.h1.n, self.h2.n) == (1, 2)
        self.payload, self.block, self.tmp = b.sreg(), b.sreg(), b.sreg()
        self.method, self.scheme, self.path, self.authority = (b.sreg() for _ in range(4))
        self.host, self.cl = b.sreg(), b.sreg()
        self.bad = b.label("bad-request")
        self.too_big = b.label("too-big")

    def big_endian(self, dst: object, src: object, at: int, n: int, mask: int = 255) -> None:
        """dst = the n-byte big-endian integer at src[at:] (first byte & mask); src holds
        at least at + n bytes."""
        b = self.b
        b.movi(dst, 0)
        for k in range(n):
            for _ in range(8):
                b.add(dst, dst)
            b.bytei(self.t3, src, at + k)
            if k == 0 and mask != 255:
                b.andi(self.t3, mask)
            b.add(dst, self.t3)

    # -- 1. preface
    def preface(self) -> None:
        b, t1 = self.b, self.t1
        b.comment("1. client preface")
        full, need, bad = b.label(), b.label(), b.label()
        b.slen(t1, INPUT)
        b.jgei(t1, len(PREFACE), full)
        for n in range(len(PREFACE)):
            b.jseq(INPUT, PREFACE[:n], need)
        b.jmp(bad)
        b.place(need)
        b.needmore()
        b.place(bad)
        b.reject(400, b"not an HTTP/2 connection preface")
        b.place(full)
        ok = b.label("preface-ok")
        b.jspre(INPUT, PREFACE, ok)
        b.reject(400, b"not an HTTP/2 connection preface")
        b.place(ok)

    # -- 2. frames
    def frames(self) -> None:
        b, t1, t2 = self.b, self.t1, self.t2
        b.comment("2. frames up to END_HEADERS")
        b.movi(self.pos, len(PREFACE))
        b.movi(self.stream, 0)
        b.movi(self.end_stream, 0)
        b.movi(t1, 0)
        b.srange(self.block, t1, t1)  # empty: scr_cat copies the first fragment
        top = b.here("frame")
        need = b.label("needmore")
        b.movi(t1, self.max_head)
        b.jlt(t1, self.pos, self.too_big)
        b.slen(t2, INPUT)
        b.mov(t1, self.pos)
        b.addi(t1, 9)
        b.jlt(t2, t1, need)
        b.sdrop(self.tmp, INPUT, self.pos)
        self.big_endian(self.length, self.tmp, 0, 3)
        b.bytei(self.ftype, self.tmp, 3)
        b.bytei(self.flags, self.tmp, 4)
        self.big_endian(self.sid, self.tmp, 5, 4, 0x7F)
        b.movi(t1, MAX_FRAME)
        b.jlt(t1, self.length, self.bad)
        b.mov(t1, self.pos)  # t1 = end of this frame
        b.addi(t1, 9)
        b.add(t1, self.length)
        b.movi(t2, self.max_head + len(PREFACE))
        b.jlt(t2, t1, self.too_big)
        b.slen(t2, INPUT)
        b.jlt(t2, t1, need)
        b.mov(t2, self.pos)
        b.addi(t2, 9)
        b.srange(self.payload, t2, t1)
        # the first frame (it starts right after the preface) must be SETTINGS on
        # stream 0 without ACK
        not_first = b.label()
        b.jnei(self.pos, len(PREFACE), not_first)
        b.jnei(self.ftype, SETTINGS, self.bad)
        b.jnei(self.sid, 0, self.bad)
        b.mov(t2, self.flags)
        b.andi(t2, 1)
        b.jnei(t2, 0, self.bad)
        b.place(not_first)
        b.mov(self.pos, t1)
        cont, end_check = b.label("continuation"), b.label("end-headers?")
        b.jnei(self.stream, 0, cont)
        self.connection_frame(top)
        self.headers_frame()
        b.jmp(end_check)
        b.place(cont)
        b.jnei(self.ftype, CONTINUATION, self.bad)
        b.jne(self.sid, self.stream, self.bad)
        self.append(self.payload)
        b.place(end_check)
        b.mov(t1, self.flags)
        b.andi(t1, END_HEADERS)
        done = b.label("end-of-block")
        b.jnei(t1, 0, done)
        b.loop_to(top, MAX_FRAMES)
        b.place(need)
        b.needmore()
        b.place(done)

    def connection_frame(self, top: Label) -> None:
        """SETTINGS/PING/WINDOW_UPDATE/PRIORITY before the HEADERS: check, next frame."""
        b, t1 = self.b, self.t1
        priority, settings, ping, wu, ok, other = (b.label() for _ in range(6))
        b.jeqi(self.ftype, PRIORITY, priority)
        b.jeqi(self.ftype, SETTINGS, settings)
        b.jeqi(self.ftype, PING, ping)
        b.jeqi(self.ftype, WINDOW_UPDATE, wu)
        b.jmp(other)
        b.place(priority)
        b.jeqi(self.sid, 0, self.bad)
        b.jnei(self.length, 5, self.bad)
        b.jmp(ok)
        b.place(settings)
        b.jnei(self.sid, 0, self.bad)
        b.tlook(t1, self.length, b.table([0, 1, 1, 1, 1, 1]))  # length % 6 != 0
        b.jnei(t1, 0, self.bad)
        b.jmp(ok)
        b.place(ping)
        b.jnei(self.sid, 0, self.bad)
        b.jnei(self.length, 8, self.bad)
        b.jmp(ok)
        b.place(wu)
        b.jnei(self.sid, 0, self.bad)
        b.jnei(self.length, 4, self.bad)
        b.place(ok)
        b.loop_to(top, MAX_FRAMES)
        b.place(other)

    def headers_frame(self) -> None:
        b, t1, t2, t3 = self.b, self.t1, self.t2, self.t3
        b.jnei(self.ftype, HEADERS, self.bad)
        b.jeqi(self.sid, 0, self.bad)
        b.mov(t1, self.sid)
        b.andi(t1, 1)
        b.jeqi(t1, 0, self.bad)
        # t1 = start, t2 = pad
        b.movi(t1, 0)
        b.movi(t2, 0)
        b.mov(t3, self.flags)
        b.andi(t3, PADDED)
        no_pad = b.label()
        b.jeqi(t3, 0, no_pad)
        b.bytei(t2, self.payload, 0)
        b.jlti(t2, 0, self.bad)  # empty payload
        b.movi(t1, 1)
        b.place(no_pad)
        b.mov(t3, self.flags)
        b.andi(t3, PRIORITY_FLAG)
        no_prio = b.label()
        b.jeqi(t3, 0, no_prio)
        b.addi(t1, 5)
        b.place(no_prio)
        b.mov(t3, t1)
        b.add(t3, t2)
        b.slen(self.length, self.payload)  # length is free now
        b.jlt(self.length, t3, self.bad)
        b.sub(self.length, t2)
        b.stake(self.tmp, self.payload, self.length)
        b.sdrop(self.tmp, self.tmp, t1)
        b.mov(self.stream, self.sid)
        b.mov(self.end_stream, self.flags)
        b.andi(self.end_stream, END_STREAM)
        self.append(self.tmp)

    def append(self, fragment: object) -> None:
        b = self.b
        b.smov(INPUT, self.block)
        b.smov(self.h1, fragment)
        b.call("scr_cat")
        b.jeqi(R0, 0, self.too_big)  # the scratch area holds 32 KiB of block + fields
        b.smov(self.block, INPUT)
        self.restore_input()

    def restore_input(self) -> None:
        """s0 = the whole input again (helpers use s0)."""
        b = self.b
        b.movi(self.t3, 0)
        b.movi(self.t2, 0x7FFFFFFF)
        b.srange(INPUT, self.t3, self.t2)

    # -- 3. HPACK
    def decode(self) -> None:
        b = self.b
        b.comment("3. HPACK decode")
        b.smov(self.h1, self.block)
        b.movi(R1, self.max_head)
        b.call("hpack_decode")
        b.jeqi(R0, -1, self.bad)
        b.jlti(R0, 0, self.too_big)
        b.mov(self.ftype, R0)  # the field count

    # -- 4. RFC 9113 8.3 over the fields
    def fields(self, wanted: Mapping[str, SReg]) -> None:
        b, t1, t2 = self.b, self.t1, self.t2
        i, n, regular = self.length, self.ftype, self.flags
        b.comment("4. field checks (RFC 9113 8.3), first error wins")
        b.movi(i, 0)
        b.movi(regular, 0)
        for reg in (self.method, self.scheme, self.path, self.authority, self.host, self.cl,
                    *wanted.values()):
            b.movi(t1, 0)
            b.srange(reg, t1, t1)  # offset 0: not seen (decoded values are scratch slices)
        top = b.here("field")
        end = b.label("fields-done")
        b.jge(i, n, end)
        b.mov(R1, i)
        b.call("hpack_field")  # s0 name, s2 value
        b.addi(i, 1)
        nxt = b.label("next-field")
        is_regular = b.label()
        b.bytei(t1, INPUT, 0)
        b.jnei(t1, ord(":"), is_regular)
        b.jnei(regular, 0, self.bad)  # pseudo-header after a regular one
        hits = [b.label() for _ in PSEUDO]
        for name, hit in zip(PSEUDO, hits, strict=True):
            b.jseq(INPUT, name.encode(), hit)
        b.jmp(self.bad)  # unknown pseudo-header
        for reg, hit in zip((self.method, self.scheme, self.path, self.authority), hits,
                            strict=True):
            b.place(hit)
            b.soff(t2, reg)
            b.jnei(t2, 0, self.bad)  # duplicate
            b.smov(reg, self.h2)
            b.jmp(nxt)
        b.place(is_regular)
        b.movi(regular, 1)
        b.slen(t1, INPUT)
        b.jeqi(t1, 0, self.bad)
        b.jnall(INPUT, ~NOT_LOWER, self.bad)  # a byte str.lower() would change
        b.jnall(self.h2, NO_CTL, self.bad)
        b.lookupi(t1, INPUT, "\0".join(CONNECTION))
        b.jgei(t1, 0, self.bad)
        is_te, not_te = b.label(), b.label()
        b.jseq(INPUT, b"te", is_te)
        b.jmp(not_te)
        b.place(is_te)
        b.smov(self.tmp, self.h2)
        b.strim(self.tmp, STRIP)
        b.jseqi(self.tmp, b"trailers", nxt)
        b.jmp(self.bad)
        b.place(not_te)
        # host: the last one (dict(regular)); content-length and wanted: the first
        keep: list[tuple[str, SReg, bool]] = [("host", self.host, False),
                                              ("content-length", self.cl, True)]
        keep += [(name, reg, True) for name, reg in wanted.items()]
        for name, reg, first_only in keep:
            hit, skip = b.label(), b.label()
            b.jseq(INPUT, name.encode("latin-1"), hit)
            b.jmp(skip)
            b.place(hit)
            if first_only:
                b.soff(t2, reg)
                b.jnei(t2, 0, skip)
            b.smov(reg, self.h2)
            b.place(skip)
        b.place(nxt)
        b.loop_to(top, MAX_FIELDS + 1)
        b.place(end)
        self.restore_input()

    # -- 5. request rules, framing, fields
    def checks(self) -> None:
        b, t1 = self.b, self.t1
        b.comment("5. :method, :scheme, :path")
        b.soff(t1, self.method)
        b.jeqi(t1, 0, self.bad)
        connect, ok = b.label(), b.label()
        b.jseq(self.method, b"CONNECT", connect)
        b.soff(t1, self.scheme)
        b.jeqi(t1, 0, self.bad)
        b.slen(t1, self.path)
        b.jeqi(t1, 0, self.bad)
        b.jmp(ok)
        b.place(connect)
        b.reject(405, b"CONNECT is not proxied")
        b.place(ok)

    def framing(self) -> None:
        b, t1 = self.b, self.t1
        b.setf("head_len", self.pos)
        b.movi(t1, 1)
        b.setf("flags", t1)  # keep_alive (RequestHead's default)
        none, until_close, done = b.label(), b.label(), b.label()
        b.jnei(self.end_stream, 0, none)
        b.soff(t1, self.cl)
        b.jeqi(t1, 0, until_close)
        b.parseu(t1, self.cl, until_close)
        b.setf("content_length", t1)
        b.movi(t1, 1)
        b.setf("framing", t1)
        b.jmp(done)
        b.place(until_close)
        b.movi(t1, 3)
        b.setf("framing", t1)
        b.place(none)  # framing none, content_length 0: the entry values
        b.place(done)

    def host_field(self) -> None:
        """host = _host(:authority or the last host header): strip, after the last '@',
        '[...]' kept whole, else up to the first ':'."""
        b, t1, t2, a = self.b, self.t1, self.t2, self.host
        b.comment("host from :authority or Host")
        use_host = b.label()
        b.slen(t1, self.authority)
        b.jeqi(t1, 0, use_host)
        b.smov(a, self.authority)
        b.place(use_host)
        b.strim(a, STRIP)
        b.rspanc(t1, a, NOT_AT)
        b.slen(t2, a)
        b.sub(t2, t1)
        b.sdrop(a, a, t2)
        bracket, done = b.label(), b.label()
        b.bytei(t1, a, 0)
        b.jeqi(t1, ord("["), bracket)
        b.findb(t1, a, ord(":"))
        b.jlti(t1, 0, done)
        b.stake(a, a, t1)
        b.jmp(done)
        b.place(bracket)
        b.findb(t1, a, ord("]"))
        b.addi(t1, 1)  # -1 (no ']') -> empty, as host[:find + 1]
        b.stake(a, a, t1)
        b.place(done)

    def path_query(self, path: object, query: object) -> None:
        b, t1 = self.b, self.t1
        b.smov(path, self.path)
        b.movi(t1, 0)
        b.srange(query, t1, t1)
        b.findb(t1, path, ord("?"))
        done = b.label()
        b.jlti(t1, 0, done)
        b.addi(t1, 1)
        b.sdrop(query, path, t1)
        b.addi(t1, -1)
        b.stake(path, path, t1)
        b.place(done)


def compile_http2(b: ProgramBuilder, fields: Sequence[str], max_head: int) -> dict[str, FieldRef]:
    """Emit the HTTP/2 head parser; return where each requested field is."""
    h = _Http2(b, max_head)
    headers = sorted({f for f in fields if f.startswith("header:")})
    spare = 15 - 11  # s12..s15 after the parser's own slice registers
    if len(headers) > spare:
        raise NotImplementedError(f"routes use {len(headers)} header fields; the compiled "
                                  f"http2 parser extracts at most {spare}")
    wanted = {f[7:].lower(): b.sreg() for f in headers}
    b.mov(h.arg0, R0)
    b.mov(h.arg1, R1)
    h.preface()
    h.frames()
    h.decode()
    h.fields(wanted)
    h.checks()
    h.framing()
    h.host_field()
    refs: dict[str, FieldRef] = {"method": FieldRef(h.method), "target": FieldRef(h.path),
                                 "host": FieldRef(h.host), "scheme": FieldRef(h.scheme)}
    if "path" in fields or "query" in fields:
        path, query = h.payload, h.tmp  # free after the frame walk
        h.path_query(path, query)
        refs["path"], refs["query"] = FieldRef(path), FieldRef(query)
    # presence registers: integer registers free after the parser (at most 4 headers)
    spare_i = [h.stream, h.ftype, h.flags, h.sid]
    for (name, reg), present in zip(wanted.items(), spare_i, strict=False):
        b.soff(present, reg)
        refs[f"header:{name}"] = FieldRef(reg, present)
    b.mov(R0, h.arg0)
    b.mov(R1, h.arg1)
    # what route matching and policies may allocate again
    b.free(h.arg0, h.arg1, h.t1, h.t2, h.t3, h.pos, h.end_stream, h.length,
           *spare_i[len(wanted):], h.block, h.authority, h.cl)
    after = b.label()
    b.jmp(after)
    b.place(h.bad)
    b.reject(400, b"malformed HTTP/2 request head")
    b.place(h.too_big)
    b.reject(431, b"request head too large")
    b.place(after)
    return refs
