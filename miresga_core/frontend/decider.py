"""What the front-end asks of the rules: bytes of a request stream in, a decision out.

The packet-level front-end does not care how a decision is made, only what it says:
where the request goes, how the connection may be offloaded, and how many bytes the
request occupies on the wire (so the next request on a keep-alive connection can be
found). ``make_core_decider`` runs the listener's compiled rule program (C VM when built,
Python VM otherwise) through the core's ``decide`` module; ``RouterDecider`` is the
reference: the parser plugin's prototype and the core's ``Router``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from ..api import Address, BodyFraming, NeedMore, OffloadMode, ParserPlugin, Reject
from ..decide import PrototypeDecider, make_decider
from ..routing import Router

__all__ = ["CoreDecider", "Decider", "Decision", "RouterDecider", "make_core_decider"]


@dataclass(frozen=True, slots=True)
class Decision:
    """Send the request to ``backend``. ``length``: bytes of the request (head + body)
    from the start of the data given; None when the end cannot be known from the head
    (chunked body, upgrade): then the rest of the connection stays on this backend."""

    backend: Address
    mode: OffloadMode = OffloadMode.SPLICE
    length: int | None = None
    pool: str = ""


class Decider(Protocol):
    def decide(self, data: bytes, client: Address, now: float) -> Decision | NeedMore | Reject:
        """Decide on the request that starts at ``data[0]``."""


class CoreDecider:
    """Adapts the core's deciders (``miresga_core.decide``: the compiled rule program in
    the C VM, or the prototype parser + Router) to the packet front-end's ``Decision``."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.kind: str = getattr(inner, "kind", "?")

    def decide(self, data: bytes, client: Address, now: float) -> Decision | NeedMore | Reject:
        result = self.inner.decide(data, client, now)
        if isinstance(result, (NeedMore, Reject)):
            return result
        head, route = result.head, result.route
        if route.backend is None:
            why = "no route" if not route.pool else f"no backend up in pool {route.pool}"
            return Reject(503, why)
        length: int | None
        if head.framing is BodyFraming.NONE:
            length = head.head_length
        elif head.framing is BodyFraming.LENGTH:
            length = head.head_length + head.content_length
        else:
            length = None
        mode = route.offload
        if head.upgrade and mode is OffloadMode.SPLICE:
            mode = OffloadMode.PIN  # after an upgrade the stream is no longer requests
        return Decision(route.backend.address, mode, length, route.pool)


class RouterDecider(CoreDecider):
    """Parser plugin prototype + Router: the Python reference decision."""

    def __init__(self, parser: ParserPlugin, router: Router) -> None:
        super().__init__(PrototypeDecider(parser, router))


def make_core_decider(config: Any, listener: Any, registry: Any, router: Router,
                      prefer: str = "c") -> CoreDecider:
    """The listener's compiled program (C VM when built) behind the front-end's interface,
    or the prototype where the parser does not compile (the core logs which)."""
    return CoreDecider(make_decider(config, listener, registry, router, prefer=prefer))
