"""The plugin author test kit: a pytest plugin (entry point ``pytest11``: miresga).

Fixtures and helpers to check that a parser plugin's prototype and its compiled form
agree, on a corpus and on generated inputs:

* ``compile_parser(parser, routes=...)`` -> Program: the parser's ``compile`` plus routes
  (``[(name, [(field, op, values, case_insensitive)])]``), no config file needed.
* ``expected(parser, routes, data)`` -> the canonical outcome line the prototype implies.
* ``Equivalence(parser, routes)``: ``check(data)`` runs prototype, Python VM and C VM and
  raises ``AssertionError`` with all three answers when they differ.
* fixtures: ``mvm_equivalence`` (a factory for Equivalence), ``c_vm_required`` (fails
  instead of skipping when the extension is missing, for CI).

Compared: outcome kind; reject status (reasons are free text); for routes the decision,
head length, framing, content length and flags. Backends are the policies' business.
* ``miresga_kernel_lb``: a factory ``(config_text, backend_names)`` -> context manager
  yielding ``(LoadBalancer, Backends)``: ``miresga serve`` in a subprocess around real demo
  backends on loopback (``{addr:<name>}`` and ``{port}`` in the text are filled in). The
  plugin must be installed (entry point) for the server process to find it.
* ``backend_of(lb, raw_request)``: send raw bytes to a running balancer, return the
  ``x-backend`` name of the demo backend that answered (or the status line).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from .api import BodyFraming, NeedMore, ParserPlugin, Reject, RequestHead
from .bytecode import native
from .bytecode.builder import ProgramBuilder
from .bytecode.compiler import _condition
from .bytecode.program import Program
from .bytecode.vm import PyVM
from .config import FieldMatch, RouteConfig

__all__ = ["Equivalence", "backend_of", "compile_parser", "expected", "make_routes"]

RouteSpec = tuple[str, Sequence[tuple[str, str, Sequence[str], bool]]]
_FRAMING = {BodyFraming.NONE: 0, BodyFraming.LENGTH: 1, BodyFraming.CHUNKED: 2,
            BodyFraming.UNTIL_CLOSE: 3}


def make_routes(routes: Iterable[RouteSpec]) -> tuple[RouteConfig, ...]:
    return tuple(RouteConfig(pool=f"pool-{i}", name=name,
                             match=tuple(FieldMatch(f, op, tuple(v), ci)  # type: ignore[arg-type]
                                         for f, op, v, ci in conds))
                 for i, (name, conds) in enumerate(routes))


def compile_parser(parser: ParserPlugin, routes: Iterable[RouteSpec] = (),
                   optimize: bool = True) -> Program:
    """The parser's compiled form followed by ``routes``; decision i = route i, the last
    decision is the default (a "default" pool)."""
    rc = make_routes(routes)
    b = ProgramBuilder()
    refs = parser.compile(b, sorted({c.field for r in rc for c in r.match}))
    for route in rc:
        nxt = b.label()
        for cond in route.match:
            _condition(b, cond, refs[cond.field], nxt, route)
        b.route(b.decision(route.pool, "splice", route.name))
        b.place(nxt)
    b.route(b.decision("default", "splice", "default"))
    return b.build(optimize=optimize)


def expected(parser: ParserPlugin, routes: Sequence[RouteConfig], data: bytes) -> str:
    """The outcome line the prototype implies (reject reasons left out)."""
    head = parser.parse_head(data)
    if isinstance(head, NeedMore):
        return "needmore"
    if isinstance(head, Reject):
        return f"reject {head.status}"
    assert isinstance(head, RequestHead)
    decision = len(routes)
    for i, route in enumerate(routes):
        if all(c.matches(head.field(c.field)) for c in route.match):
            decision = i
            break
    flags = (1 if head.keep_alive else 0) | (2 if head.upgrade else 0) | \
        (4 if head.expect_continue else 0)
    return (f"route decision={decision} head_len={head.head_length} "
            f"framing={_FRAMING[head.framing]} content_length={head.content_length} "
            f"flags={flags}")


def _line(o: Any) -> str:
    if o.kind == "reject":
        return f"reject {o.status}"
    if o.kind == "route":
        return (f"route decision={o.decision} head_len={o.head_len} framing={o.framing} "
                f"content_length={o.content_length} flags={o.flags}")
    return o.kind if o.kind != "error" else f"error {o.reason.decode()}"


@dataclass
class Equivalence:
    """Prototype == Python VM == C VM for one parser and route set."""

    parser: ParserPlugin
    routes: Sequence[RouteSpec] = ()
    require_c: bool = False

    def __post_init__(self) -> None:
        self.route_configs = make_routes(self.routes)
        self.program = compile_parser(self.parser, self.routes)
        self.py = PyVM(self.program)
        if native.available():
            self.c: Any = native.CVM(self.program)
        elif self.require_c:
            raise AssertionError(f"C VM extension missing: {native.import_error()}")
        else:
            self.c = None

    def answers(self, data: bytes) -> tuple[str, str, str | None]:
        want = expected(self.parser, self.route_configs, data)
        py = _line(self.py.run(data))
        c = _line(self.c.run(data)) if self.c is not None else None
        return want, py, c

    def check(self, data: bytes) -> str:
        want, py, c = self.answers(data)
        if py != want or (c is not None and c != py):
            raise AssertionError(f"input {data!r}\n  prototype: {want}\n  python vm: {py}\n"
                                 f"  c vm:      {c}")
        return want

    def check_all(self, corpus: Iterable[bytes]) -> list[str]:
        return [self.check(d) for d in corpus]


@pytest.fixture
def mvm_equivalence() -> Callable[..., Equivalence]:
    """Factory: ``mvm_equivalence(parser, routes=[...])`` -> Equivalence."""
    return Equivalence


def backend_of(lb: Any, data: bytes, timeout: float = 5.0) -> str:
    """Send one raw request to a running balancer; the answering demo backend's name, or
    ``status <code>`` when the balancer answered itself."""
    import socket

    with socket.create_connection((lb.host, lb.port), timeout=timeout) as sock:
        sock.sendall(data)
        reply = b""
        while b"\r\n\r\n" not in reply:
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
    head = reply.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    for line in head[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "x-backend":
            return value.strip()
    return "status " + (head[0].split(" ")[1] if " " in head[0] else "?")


@pytest.fixture
def miresga_kernel_lb() -> Callable[..., Any]:
    """Factory: ``with miresga_kernel_lb(config_text, ["b1", "b2"]) as (lb, backends):``."""
    from .harness import serving
    return serving


@pytest.fixture
def c_vm_required() -> None:
    """Fail (not skip) when the C VM extension is not built."""
    if not native.available():
        pytest.fail(f"C VM extension missing: {native.import_error()}")
