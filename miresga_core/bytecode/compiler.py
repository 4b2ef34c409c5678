"""The rule compiler: a listener's routes + its pools' policies + the parser plugin's field
extraction -> one program.

Shape of the output (first match wins, like ``routing.match_route``)::

    <parser code: needmore / reject, or fall through with fields in slice registers>
    route 0:  for each condition: test the field against each value, else jump to route 1
              <policy code of the route's pool>  setf backend   route d0
    route 1:  ...
    default:  <policy code>  route d_default      (or: reject 404 when there is no default)

Comparisons are byte-exact on the latin-1 encoding of values (the prototype decodes request
bytes as latin-1); case-insensitive fields compare with ASCII case folding, so their
route values must be ASCII (refused otherwise: the prototype's ``str.lower`` would fold
more). Optimiser passes are in ``optimize.py`` and can be skipped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..api import FieldRef, ParserPlugin
from ..config import Config, FieldMatch, ListenerConfig, RouteConfig
from ..errors import MiresgaError
from .builder import ProgramBuilder
from .program import Program

__all__ = ["CompileError", "compile_listener", "make_parser"]


class CompileError(MiresgaError):
    """A listener cannot be compiled; the message says which route or field and why."""


def make_parser(parser_cls: type[ParserPlugin], listener: ListenerConfig) -> ParserPlugin:
    try:
        return parser_cls(max_head=listener.max_head)  # type: ignore[call-arg,unused-ignore]
    except TypeError:
        return parser_cls()


def compile_listener(config: Config, listener: ListenerConfig | str, registry: Any,
                     optimize: bool = True, passes: Iterable[str] | None = None) -> Program:
    """Compile one listener of ``config`` with the plugins of ``registry``."""
    if isinstance(listener, str):
        listener = config.listener(listener)
    parser = make_parser(registry.parsers[listener.protocol], listener)
    fields = sorted({c.field for r in listener.routes for c in r.match}
                    | _policy_fields(config, registry, listener))
    b = ProgramBuilder()
    try:
        refs = parser.compile(b, fields)
    except NotImplementedError as exc:
        raise CompileError(f"listener {listener.name!r}: {exc}") from None
    missing = [f for f in fields if f not in refs]
    if missing:
        raise CompileError(f"listener {listener.name!r}: parser {parser.name!r} did not "
                           f"extract field(s) {', '.join(missing)}")
    for route in listener.routes:
        nxt = b.label(f"after-{route.name}")
        b.comment(f"route {route.name} -> pool {route.pool}")
        # conditions are ANDed and side-effect free: a canonical order makes spellings that
        # differ only in key order compile to the same program
        for cond in sorted(route.match, key=lambda c: (c.field, c.op, c.values)):
            _condition(b, cond, refs[cond.field], nxt, route)
        _policy(b, config, registry, route.pool, refs)
        b.route(b.decision(route.pool, route.offload.value, route.name))
        b.place(nxt)
    if listener.default_pool:
        b.comment(f"default -> pool {listener.default_pool}")
        _policy(b, config, registry, listener.default_pool, refs)
        b.route(b.decision(listener.default_pool, "splice", "default"))
    else:
        b.comment("no route matched and no default pool")
        b.reject(404, b"no route")
    return b.build(optimize=optimize, passes=passes)


def _encode(value: str, cond: FieldMatch, route: RouteConfig) -> bytes | None:
    if cond.case_insensitive and not value.isascii():
        raise CompileError(f"route {route.name!r}: {cond.field} is matched ignoring case, so "
                           f"its values must be ASCII (got {value!r})")
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return None  # no request decodes to this: the value never matches


def _condition(b: ProgramBuilder, cond: FieldMatch, ref: FieldRef, fail: Any,
               route: RouteConfig) -> None:
    if ref.present is not None:
        b.jeqi(ref.present, 0, fail)
    ok = b.label()
    op = {("exact", False): "jseq", ("exact", True): "jseqi",
          ("prefix", False): "jspre", ("prefix", True): "jsprei"}[(cond.op, cond.case_insensitive)]
    for value in cond.values:
        raw = _encode(value, cond, route)
        if raw is not None:
            b.emit(op, ref.value, raw, ok)
    b.jmp(fail)
    b.place(ok)


def _policy_fields(config: Config, registry: Any, listener: ListenerConfig) -> set[str]:
    """Request fields the listener's pools' policies hash or match on
    (``Policy.request_fields(options)``, optional): the parser extracts them too."""
    pools = {r.pool for r in listener.routes} | ({listener.default_pool} - {""})
    out: set[str] = set()
    for name in pools:
        pool = config.pools[name]
        wanted = getattr(registry.policies[pool.policy], "request_fields", None)
        if wanted is not None:
            out |= set(wanted(pool.options))
    return out


def _policy(b: ProgramBuilder, config: Config, registry: Any, pool_name: str,
            refs: Mapping[str, FieldRef]) -> None:
    pool = config.pools[pool_name]
    policy = registry.policies[pool.policy](pool.backend_objects(), pool.options)
    # policies that hash or match request fields take the parser's field registers
    wanted = getattr(policy, "request_fields", None)
    reg = policy.compile(b, refs) if wanted is not None else policy.compile(b)
    if reg is not None:
        b.setf("backend", reg)
        b.free(reg)


def field_refs_summary(refs: Mapping[str, FieldRef]) -> str:
    return ", ".join(f"{k}={v.value}" for k, v in sorted(refs.items()))
