"""Deciders: buffered client bytes -> (request head, route) | NeedMore | Reject.

Two forms with one contract. ``PrototypeDecider`` runs the parser plugin's Python prototype
and the Python router: the reference. ``ProgramDecider`` runs the listener's compiled rule
program (one VM run parses the head and matches the routes), then lets the pool's Python
policy pick the backend among the backends that are up right now, so health changes and
retry exclusions apply at once without recompiling. The two agree by construction of the
compiler (tests/test_decide.py checks it on a corpus).

Nothing here does I/O; a VM runtime error (a program bug, never input-dependent if the
verifier did its job) falls back to the prototype and is counted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .api import Address, NeedMore, OffloadMode, ParserPlugin, Reject, RequestHead
from .routing import Router, RouteResult

__all__ = ["Decided", "ProgramDecider", "PrototypeDecider", "make_decider"]

log = logging.getLogger("miresga.decide")

Decision = Any  # Decided | NeedMore | Reject


@dataclass(frozen=True, slots=True)
class Decided:
    head: RequestHead
    route: RouteResult


class PrototypeDecider:
    kind = "prototype"

    def __init__(self, parser: ParserPlugin, router: Router) -> None:
        self.parser = parser
        self.parse = parser.parse_head
        self.router = router

    def decide(self, data: bytes, client: Address | None, now: float) -> Decision:
        result = self.parse(data)
        if isinstance(result, RequestHead):
            return Decided(result, self.router.route(result, client, frozenset(), now))
        return result


_NEED_MORE = NeedMore("head incomplete")


class ProgramDecider:
    """Runs a compiled listener program in the C VM (or the Python VM fallback)."""

    def __init__(self, program: Any, runner: Any, router: Router,
                 fallback: PrototypeDecider) -> None:
        self.run = runner.run
        self.head_from_outcome = fallback.parser.head_from_outcome
        self.kind = f"program ({runner.kind} VM)"
        self.router = router
        self.fallback = fallback
        self.vm_errors = 0
        self.decisions = [(program.pools[d.pool], OffloadMode(d.offload))
                          for d in program.decisions]

    def decide(self, data: bytes, client: Address | None, now: float) -> Decision:
        out = self.run(data)
        kind = out.kind
        if kind == "route":
            head = self.head_from_outcome(data, out)
            pool, offload = self.decisions[out.decision]
            backend = self.router.pools[pool].pick(head, client, frozenset(), now)
            return Decided(head, RouteResult(None, pool, backend, offload))
        if kind == "needmore":
            return _NEED_MORE
        if kind == "reject":
            return Reject(out.status, out.reason.decode("latin-1"))
        self.vm_errors += 1
        return self.fallback.decide(data, client, now)


def make_decider(config: Any, listener: Any, registry: Any, router: Router,
                 prefer: str = "c") -> PrototypeDecider | ProgramDecider:
    """The fastest decider this listener can use: its compiled program when the parser
    plugin compiles (C VM when built), else the prototype. Says which in the log."""
    parser = registry.parsers[listener.protocol](max_head=listener.max_head)
    prototype = PrototypeDecider(parser, router)
    if prefer == "prototype":
        return prototype
    from .bytecode import load
    from .bytecode.compiler import CompileError, compile_listener

    if type(parser).head_from_outcome is ParserPlugin.head_from_outcome:
        log.warning("listener %s: parser %s has no compiled form: using its prototype",
                    listener.name, listener.protocol)
        return prototype
    try:
        program = compile_listener(config, listener, registry)
    except (CompileError, NotImplementedError) as exc:
        log.warning("listener %s: not compiled (%s): using the %s prototype", listener.name,
                    exc, listener.protocol)
        return prototype
    decider = ProgramDecider(program, load(program, prefer=prefer), router, prototype)
    log.info("listener %s: rules run as a compiled program (%s)", listener.name, decider.kind)
    return decider


Decide = Callable[[bytes, Address | None, float], Decision]
