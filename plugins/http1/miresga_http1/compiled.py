"""The compiled form of the HTTP/1.1 prototype (prototype.py), written against the public
bytecode builder only. Equivalence with the prototype is tested on a corpus and on
generated requests (tests/test_compiled.py): same NeedMore / Reject status / decision,
head length, framing, content length and flags.

Theory of operation, in program order:

1. Head end: the first ``\\n\\r?\\n`` (as h11's receive buffer). None: 431 when the input
   exceeds max_head, else needmore. A head longer than max_head: 431.
2. The request line must be ``token SP 1*vchar SP HTTP/d.d`` (h11 ``_abnf``), else 400.
3. One pass over the header lines (lines end at LF, one CR before it is dropped). Syntax
   errors reject 400 at once, because h11 validates every line before any header meaning;
   obsolete line folding is a syntax error here (RFC 9112 5.2 lets a server refuse it;
   the prototype refuses it too). Errors of meaning are remembered, first one wins, as
   h11's ``normalize_and_validate`` raises on the first: conflicting or non-numeric
   Content-Length (400), a second Transfer-Encoding or one other than chunked (501).
4. After the blank line: the remembered error; Host count (h11: exactly one for 1.1, at
   most one otherwise); CONNECT is refused with 405, versions other than 1.0/1.1 with
   505 (prototype rules).
5. Framing, keep-alive, Upgrade and Expect flags, then the match fields.

Register budget: r0/r1 are the caller's (policies use them); slice registers for the
fields routes ask for are allocated after the fixed ones, at most 4 header fields.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from miresga_core.api import FieldRef
from miresga_core.bytecode.builder import INPUT, ByteClass, ProgramBuilder, whitespace_class

__all__ = ["compile_http1"]

TCHAR = ByteClass.of(b"!#$%&'*+-.^_`|~0123456789"
                     b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
VCHAR = ByteClass.of(range(0x21, 0x7F))
DIGIT = ByteClass.of(b"0123456789")
OWS = ByteClass.of(b" \t")
# h11 field_vchar = [^\x00\s] plus SP/HTAB between: every byte but NUL, LF, CR, VT, FF
VALUE = ~ByteClass.of(b"\x00\n\r\x0b\x0c")
STRIP = whitespace_class()  # what the prototype's str.strip() removes

FLAG_KEEP_ALIVE, FLAG_UPGRADE, FLAG_EXPECT = 1, 2, 4
# bits of the connection-token register
CONN_CLOSE, CONN_KEEP_ALIVE, CONN_UPGRADE, SAW_TE, IS11, IS10 = 1, 2, 4, 8, 16, 32
MAX_HEADER_FIELDS = 4


class _Http1:
    def __init__(self, b: ProgramBuilder, max_head: int) -> None:
        self.b = b
        self.max_head = max_head
        self.t1, self.t2, self.t3 = b.ireg(), b.ireg(), b.ireg()
        self.hosts, self.sem, self.bits = b.ireg(), b.ireg(), b.ireg()
        self.rest, self.line, self.name, self.value, self.tmp = (b.sreg() for _ in range(5))
        self.method, self.target, self.host, self.cl = (b.sreg() for _ in range(4))
        self.upgrade, self.expect = b.sreg(), b.sreg()
        self.bad = b.label("bad-request")

    # -- small pieces
    def strip(self, s: object, cls: ByteClass) -> None:
        """s = s without leading and trailing bytes of cls."""
        self.b.strim(s, cls)

    def next_line(self) -> None:
        """line = rest up to LF (one CR before it dropped); rest = after the LF. The head
        ends with a blank line, so an LF is always there."""
        self.b.sline(self.line, self.rest, self.bad)

    def first(self, s: object, then_store: object) -> None:
        """if slice s was never set (offset 0): s = then_store."""
        b, skip = self.b, self.b.label()
        b.soff(self.t1, s)
        b.jnei(self.t1, 0, skip)
        b.smov(s, then_store)
        b.place(skip)

    def semantic_error(self, status: int) -> None:
        b, skip = self.b, self.b.label()
        b.jnei(self.sem, 0, skip)
        b.movi(self.sem, status)
        b.place(skip)

    # -- 1. head end
    def head_end(self) -> None:
        b, t1, t2, t3 = self.b, self.t1, self.t2, self.t3
        b.comment("1. head end: first \\n\\r?\\n")
        b.find(t1, INPUT, b"\n\n")
        b.find(t2, INPUT, b"\n\r\n")
        use_a, use_b, a_none, have = b.label(), b.label(), b.label(), b.label()
        incomplete = b.label()
        b.jlti(t1, 0, a_none)
        b.jlti(t2, 0, use_a)
        b.jlt(t1, t2, use_a)
        b.jmp(use_b)
        b.place(a_none)
        b.jlti(t2, 0, incomplete)
        b.place(use_b)
        b.mov(t3, t2)
        b.addi(t3, 3)
        b.jmp(have)
        b.place(use_a)
        b.mov(t3, t1)
        b.addi(t3, 2)
        b.place(have)
        b.movi(t1, self.max_head)
        too_big = b.label()
        b.jlt(t1, t3, too_big)
        b.setf("head_len", t3)
        b.stake(self.rest, INPUT, t3)
        done = b.label()
        b.jmp(done)
        b.place(incomplete)
        b.slen(t2, INPUT)
        b.movi(t1, self.max_head)
        b.jlt(t1, t2, too_big)
        b.needmore()
        b.place(too_big)
        b.reject(431, b"request head too large")
        b.place(done)

    # -- 2. request line
    def request_line(self) -> None:
        b, t1, t2 = self.b, self.t1, self.t2
        b.comment("2. request line: token SP 1*vchar SP HTTP/d.d")
        self.next_line()
        b.spanc(t1, self.line, TCHAR)
        b.jeqi(t1, 0, self.bad)
        b.stake(self.method, self.line, t1)
        b.byte(t2, self.line, t1)
        b.jnei(t2, 32, self.bad)
        b.addi(t1, 1)
        b.sdrop(self.tmp, self.line, t1)
        b.spanc(t1, self.tmp, VCHAR)
        b.jeqi(t1, 0, self.bad)
        b.stake(self.target, self.tmp, t1)
        b.byte(t2, self.tmp, t1)
        b.jnei(t2, 32, self.bad)
        b.addi(t1, 1)
        b.sdrop(self.tmp, self.tmp, t1)
        # the common versions first; any other HTTP/d.d is checked out of line
        b.movi(self.bits, IS11)
        is10, other, after = b.label(), b.label(), b.label()
        b.jseq(self.tmp, b"HTTP/1.1", after)
        b.jseq(self.tmp, b"HTTP/1.0", is10)
        b.jmp(other)
        b.place(is10)
        b.movi(self.bits, IS10)
        b.jmp(after)
        b.place(other)
        b.movi(self.bits, 0)
        b.slen(t1, self.tmp)
        b.jnei(t1, 8, self.bad)
        prefix_ok = b.label()
        b.jspre(self.tmp, b"HTTP/", prefix_ok)
        b.jmp(self.bad)
        b.place(prefix_ok)
        b.sdropi(self.tmp, self.tmp, 5)
        b.jnall(self.tmp, DIGIT | ByteClass.of(b"."), self.bad)
        b.bytei(t1, self.tmp, 1)
        b.jnei(t1, ord("."), self.bad)
        b.bytei(t1, self.tmp, 0)
        b.jeqi(t1, ord("."), self.bad)
        b.bytei(t1, self.tmp, 2)
        b.jeqi(t1, ord("."), self.bad)
        b.place(after)

    # -- 3. header lines
    def headers(self, wanted: Mapping[str, object]) -> None:
        b, t1, t2 = self.b, self.t1, self.t2
        b.comment("3. header lines")
        b.movi(self.hosts, 0)
        b.movi(self.sem, 0)
        top = b.here("header-line")
        self.next_line()
        end, empty_or_bad = b.label("end-of-head"), b.label("empty-or-bad")
        # a name is 1*tchar: this also refuses obs-fold (a line starting with SP/HTAB)
        b.spanc(t1, self.line, TCHAR)
        b.jeqi(t1, 0, empty_or_bad)
        b.byte(t2, self.line, t1)
        b.jnei(t2, ord(":"), self.bad)
        b.stake(self.name, self.line, t1)
        b.addi(t1, 1)
        b.sdrop(self.value, self.line, t1)
        b.jnall(self.value, VALUE, self.bad)
        self.strip(self.value, OWS)
        nxt = b.label("next-line")
        # name dispatch: one lookupi over all names; the handlers sit out of line. A
        # wanted name that is not a token never matches a valid line: left out.
        Handler = Callable[[object], None] | None
        blocks: list[tuple[str, object, Handler]] = [
            (name, reg, None) for name, reg in wanted.items()]
        blocks += [(name, None, handler) for name, handler in (
            ("host", self.on_host), ("content-length", self.on_content_length),
            ("transfer-encoding", self.on_transfer_encoding),
            ("connection", self.on_connection), ("upgrade", self.on_upgrade),
            ("expect", self.on_expect))]
        names: list[str] = []
        for name, _, _ in blocks:
            if name not in names and all(c in TCHAR.members for c in name.encode("latin-1")):
                names.append(name)
        labels = {name: b.label(name) for name in names}  # names is never empty
        b.lookupi(t1, self.name, "\0".join(names).encode("latin-1"))
        b.jlti(t1, 0, nxt)
        for i, name in enumerate(names[:-1]):
            b.jeqi(t1, i, labels[name])
        b.jmp(labels[names[-1]])
        for name, reg, handler in blocks:
            if (reg is None and name in wanted) or name not in labels:
                continue  # runs from the wanted header's block, or can never match
            b.place(labels[name])
            if reg is not None:
                self.first(reg, self.value)
                # a wanted header may also be one the parser itself looks at
                for other, _, h in blocks:
                    if other == name and h is not None:
                        h(nxt)
            elif handler is not None:
                handler(nxt)
            b.jmp(nxt)
        b.place(nxt)
        b.loop_to(top, self.max_head // 2 + 2)
        b.place(empty_or_bad)
        b.slen(t1, self.line)
        b.jnei(t1, 0, self.bad)
        b.place(end)

    def on_host(self, nxt: object) -> None:
        self.b.addi(self.hosts, 1)
        self.first(self.host, self.value)

    def on_upgrade(self, nxt: object) -> None:
        self.first(self.upgrade, self.value)

    def on_expect(self, nxt: object) -> None:
        self.first(self.expect, self.value)

    def on_transfer_encoding(self, nxt: object) -> None:
        b = self.b
        b.jnei(self.sem, 0, nxt)
        b.mov(self.t1, self.bits)
        b.andi(self.t1, SAW_TE)
        bad, ok = b.label(), b.label()
        b.jnei(self.t1, 0, bad)
        b.jseqi(self.value, b"chunked", ok)
        b.place(bad)
        b.movi(self.sem, 501)
        b.jmp(nxt)
        b.place(ok)
        b.ori(self.bits, SAW_TE)

    def _elements(self, body: Callable[[], None]) -> None:
        """For each comma-separated element of value: tmp = element; body(); bounded loop."""
        b, t1, t2 = self.b, self.t1, self.t2
        top = b.here()
        b.findb(t1, self.value, ord(","))
        whole = b.label()
        b.jgei(t1, 0, whole)
        b.slen(t1, self.value)
        b.place(whole)
        b.stake(self.tmp, self.value, t1)
        b.mov(self.t3, t1)
        body()
        b.slen(t2, self.value)
        done = b.label()
        b.jge(self.t3, t2, done)
        b.addi(self.t3, 1)
        b.sdrop(self.value, self.value, self.t3)
        b.loop_to(top, self.max_head // 2 + 2)
        b.place(done)

    def on_content_length(self, nxt: object) -> None:
        b = self.b
        b.jnei(self.sem, 0, nxt)
        # name is free now: it holds the first element of this header's list
        b.movi(self.t1, 0)
        b.srange(self.name, self.t1, self.t1)
        bad = b.label()

        def element() -> None:
            self.strip(self.tmp, OWS)
            first, same = b.label(), b.label()
            b.soff(self.t1, self.name)
            b.jeqi(self.t1, 0, first)
            b.jsseq(self.tmp, self.name, same)
            b.jmp(bad)
            b.place(first)
            b.smov(self.name, self.tmp)
            # an empty first element still counts as set: remember it by its offset
            b.place(same)

        self._elements(element)
        b.spanc(self.t1, self.name, DIGIT)
        b.slen(self.t2, self.name)
        b.jne(self.t1, self.t2, bad)
        b.jeqi(self.t1, 0, bad)
        b.jgei(self.t1, 21, bad)
        seen, store = b.label(), b.label()
        b.soff(self.t1, self.cl)
        b.jeqi(self.t1, 0, store)
        b.jsseq(self.name, self.cl, seen)
        b.jmp(bad)
        b.place(store)
        b.smov(self.cl, self.name)
        b.jmp(seen)
        b.place(bad)
        b.movi(self.sem, 400)
        b.place(seen)

    def on_connection(self, nxt: object) -> None:
        b = self.b

        def element() -> None:
            self.strip(self.tmp, STRIP)
            for token, bit in ((b"close", CONN_CLOSE), (b"keep-alive", CONN_KEEP_ALIVE),
                               (b"upgrade", CONN_UPGRADE)):
                hit, miss = b.label(), b.label()
                b.jseqi(self.tmp, token, hit)
                b.jmp(miss)
                b.place(hit)
                b.ori(self.bits, bit)
                b.place(miss)

        self._elements(element)

    # -- 4. whole-request checks
    def checks(self) -> None:
        b, t1 = self.b, self.t1
        b.comment("4. first error of meaning, Host count, CONNECT")
        no_sem, not501 = b.label(), b.label()
        b.jeqi(self.sem, 0, no_sem)
        b.jnei(self.sem, 501, not501)
        b.reject(501, b"unsupported Transfer-Encoding")
        b.place(not501)
        b.reject(400, b"bad Content-Length")
        b.place(no_sem)
        b.jgei(self.hosts, 2, self.bad)
        b.mov(t1, self.bits)
        b.andi(t1, IS11)
        hosts_ok = b.label()
        b.jeqi(t1, 0, hosts_ok)
        b.jeqi(self.hosts, 0, self.bad)
        b.place(hosts_ok)
        connect, fine = b.label(), b.label()
        b.jseq(self.method, b"CONNECT", connect)
        b.jmp(fine)
        b.place(connect)
        b.reject(405, b"CONNECT is not proxied")
        b.place(fine)
        b.mov(t1, self.bits)
        b.andi(t1, IS11 | IS10)
        http1x = b.label()
        b.jnei(t1, 0, http1x)
        b.reject(505, b"not HTTP/1.x")
        b.place(http1x)

    # -- 5. framing and flags
    def framing(self) -> None:
        b, t1, t2 = self.b, self.t1, self.t2
        b.comment("5. framing, keep-alive, upgrade, expect")
        b.mov(t1, self.bits)
        b.andi(t1, SAW_TE)
        not_te, done = b.label(), b.label()
        b.jeqi(t1, 0, not_te)
        b.movi(t2, 2)
        b.setf("framing", t2)
        b.jmp(done)
        b.place(not_te)
        b.soff(t1, self.cl)
        b.jeqi(t1, 0, done)
        b.parseu(t2, self.cl, self.bad)
        b.setf("content_length", t2)
        b.jeqi(t2, 0, done)
        b.movi(t2, 1)
        b.setf("framing", t2)
        b.place(done)
        self.flags()

    def flags(self) -> None:
        b, t1, t2 = self.b, self.t1, self.t2
        b.movi(t2, 0)
        b.mov(t1, self.bits)
        b.andi(t1, IS11)
        v10, ka_done = b.label(), b.label()
        b.jeqi(t1, 0, v10)
        b.mov(t1, self.bits)
        b.andi(t1, CONN_CLOSE)
        b.jnei(t1, 0, ka_done)
        b.ori(t2, FLAG_KEEP_ALIVE)
        b.jmp(ka_done)
        b.place(v10)
        b.mov(t1, self.bits)
        b.andi(t1, CONN_KEEP_ALIVE)
        b.jeqi(t1, 0, ka_done)
        b.ori(t2, FLAG_KEEP_ALIVE)
        b.place(ka_done)
        no_up = b.label()
        b.mov(t1, self.bits)
        b.andi(t1, CONN_UPGRADE)
        b.jeqi(t1, 0, no_up)
        b.slen(t1, self.upgrade)
        b.jeqi(t1, 0, no_up)
        b.ori(t2, FLAG_UPGRADE)
        b.place(no_up)
        yes_exp, no_exp = b.label(), b.label()
        b.soff(t1, self.expect)
        b.jeqi(t1, 0, no_exp)
        b.jseqi(self.expect, b"100-continue", yes_exp)
        b.jmp(no_exp)
        b.place(yes_exp)
        b.ori(t2, FLAG_EXPECT)
        b.place(no_exp)
        b.setf("flags", t2)

    # -- 6. match fields
    def host_field(self) -> None:
        """host = authority of an absolute-form target, else the Host header; stripped,
        '[v6]' kept with brackets, else cut at ':' (prototype _host)."""
        b, t1 = self.b, self.t1
        b.comment("6. match fields: host")
        b.find(t1, self.target, b"://")
        from_header = b.label()
        b.jlti(t1, 0, from_header)
        b.addi(t1, 3)
        b.sdrop(self.host, self.target, t1)
        for sep in (b"/", b"?"):
            b.findb(t1, self.host, sep[0])
            keep = b.label()
            b.jlti(t1, 0, keep)
            b.stake(self.host, self.host, t1)
            b.place(keep)
        b.place(from_header)
        self.strip(self.host, STRIP)
        b.bytei(t1, self.host, 0)
        not_v6, done = b.label(), b.label()
        b.jnei(t1, ord("["), not_v6)
        b.findb(t1, self.host, ord("]"))
        b.addi(t1, 1)  # -1 (no ']') gives 0: empty host, as host[:0]
        b.stake(self.host, self.host, t1)
        b.jmp(done)
        b.place(not_v6)
        b.findb(t1, self.host, ord(":"))
        b.jlti(t1, 0, done)
        b.stake(self.host, self.host, t1)
        b.place(done)

    def path_query(self, path: object, query: object) -> None:
        b, t1, t2 = self.b, self.t1, self.t2
        b.comment("6. match fields: path, query")
        b.smov(path, self.target)
        b.find(t1, self.target, b"://")
        origin, has_slash = b.label(), b.label()
        b.jlti(t1, 0, origin)
        b.addi(t1, 3)
        b.sdrop(path, self.target, t1)
        b.findb(t1, path, ord("/"))
        b.jgei(t1, 0, has_slash)
        # no path in an absolute-form target means "/": the one of "HTTP/" on the
        # request line (slices only point into the input)
        b.soff(t1, self.target)
        b.slen(t2, self.target)
        b.add(t1, t2)
        b.addi(t1, 5)
        b.mov(t2, t1)
        b.addi(t2, 1)
        b.srange(path, t1, t2)
        b.jmp(origin)
        b.place(has_slash)
        b.sdrop(path, path, t1)
        b.place(origin)
        b.movi(t2, 0)
        b.srange(query, t2, t2)
        b.findb(t1, path, ord("?"))
        done = b.label()
        b.jlti(t1, 0, done)
        b.mov(t2, t1)
        b.addi(t2, 1)
        b.sdrop(query, path, t2)
        b.stake(path, path, t1)
        b.place(done)


def compile_http1(b: ProgramBuilder, fields: Sequence[str], max_head: int) -> dict[str, FieldRef]:
    """Emit the HTTP/1.1 head parser; return where each requested field is."""
    headers = sorted({f for f in fields if f.startswith("header:")})
    if len(headers) > MAX_HEADER_FIELDS:
        raise NotImplementedError(f"routes use {len(headers)} header fields; the compiled "
                                  f"http1 parser extracts at most {MAX_HEADER_FIELDS}")
    h = _Http1(b, max_head)
    wanted = {f[7:]: b.sreg() for f in headers}
    b.movi(h.t1, 0)
    for reg in (h.method, h.target, h.host, h.cl, h.upgrade, h.expect, *wanted.values()):
        b.srange(reg, h.t1, h.t1)  # offset 0 = "not seen" (real fields start later)
    h.head_end()
    h.request_line()
    h.headers(wanted)
    h.checks()
    h.framing()
    h.host_field()
    refs: dict[str, FieldRef] = {"method": FieldRef(h.method), "target": FieldRef(h.target),
                                 "host": FieldRef(h.host)}
    if "path" in fields or "query" in fields:
        path, query = h.line, h.name  # free after the header loop
        h.path_query(path, query)
        refs["path"], refs["query"] = FieldRef(path), FieldRef(query)
    for name, reg in wanted.items():
        present = b.ireg()
        b.soff(present, reg)
        refs[f"header:{name}"] = FieldRef(reg, present)
    after = b.label()
    b.jmp(after)
    b.place(h.bad)
    b.reject(400, b"malformed request")
    b.place(after)
    return refs
