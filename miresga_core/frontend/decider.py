"""What the front-end asks of the rules: bytes of a request stream in, a decision out.

The packet-level front-end does not care how a decision is made, only what it says:
where the request goes, how the connection may be offloaded, and how many bytes the
request occupies on the wire (so the next request on a keep-alive connection can be
found). ``RouterDecider`` is the reference: the listener's parser plugin (prototype
parse) and the core's ``Router`` (routes + pool policies). The compiled rule program
(``miresga_core.bytecode``) is meant to sit behind the same interface.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ..api import Address, BodyFraming, NeedMore, OffloadMode, ParserPlugin, Reject
from ..routing import Router

__all__ = ["Decider", "Decision", "RouterDecider"]


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


class RouterDecider:
    """Parser plugin prototype + Router: the Python reference decision."""

    def __init__(self, parser: ParserPlugin, router: Router) -> None:
        self.parser = parser
        self.router = router

    def decide(self, data: bytes, client: Address, now: float) -> Decision | NeedMore | Reject:
        head = self.parser.parse_head(data)
        if isinstance(head, (NeedMore, Reject)):
            return head
        result = self.router.route(head, client, now=now)
        if result.backend is None:
            why = "no route" if not result.pool else f"no backend up in pool {result.pool}"
            return Reject(503, why)
        length: int | None
        if head.framing is BodyFraming.NONE:
            length = head.head_length
        elif head.framing is BodyFraming.LENGTH:
            length = head.head_length + head.content_length
        else:
            length = None
        mode = result.offload
        if head.upgrade and mode is OffloadMode.SPLICE:
            mode = OffloadMode.PIN  # after an upgrade the stream is no longer requests
        return Decision(result.backend.address, mode, length, result.pool)
