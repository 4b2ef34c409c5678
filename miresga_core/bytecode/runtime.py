"""A listener's compiled rule program, ready for a data plane.

``CompiledListener(config, listener, registry)`` compiles the listener, loads the program
into the C VM (Python VM fallback, logged; ``kind`` says which) and answers ``decide(data)``
with a ``Verdict``: wait, refuse (status), or route (route name, pool, offload mode, the
policy's backend index or -1, head length, framing, flags).

It is the test kit's and tools' view of a listener (the kernel data plane itself decides
through ``miresga_core.decide.ProgramDecider``, which lets the live pool state pick).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..config import Config, ListenerConfig
from . import load
from .compiler import compile_listener
from .opcodes import FLAGS, FRAMINGS

__all__ = ["CompiledListener", "Verdict"]


@dataclass(frozen=True, slots=True)
class Verdict:
    kind: str  # route | needmore | reject | error
    status: int = 0
    reason: str = ""
    route: str = ""
    pool: str = ""
    offload: str = ""
    backend: int = -1
    head_len: int = 0
    framing: str = "none"
    content_length: int = 0
    keep_alive: bool = False
    upgrade: bool = False
    expect_continue: bool = False


class CompiledListener:
    def __init__(self, config: Config, listener: ListenerConfig | str, registry: Any,
                 prefer: str = "c") -> None:
        self.listener = config.listener(listener) if isinstance(listener, str) else listener
        self.program = compile_listener(config, self.listener, registry)
        self.runner = load(self.program, prefer=prefer)
        self.kind: str = self.runner.kind
        self.sequence = 0

    def decide(self, data: bytes, client_hash: int = 0) -> Verdict:
        self.sequence += 1
        out = self.runner.run(data, (client_hash, self.sequence))
        if out.kind != "route":
            return Verdict(out.kind, status=out.status,
                           reason=out.reason.decode("latin-1"))
        d = self.program.decisions[out.decision]
        framing = FRAMINGS[out.framing] if 0 <= out.framing < len(FRAMINGS) else "none"
        return Verdict("route", route=d.name, pool=self.program.pools[d.pool],
                       offload=d.offload, backend=out.backend, head_len=out.head_len,
                       framing=framing, content_length=out.content_length,
                       keep_alive=bool(out.flags & FLAGS["keep_alive"]),
                       upgrade=bool(out.flags & FLAGS["upgrade"]),
                       expect_continue=bool(out.flags & FLAGS["expect_continue"]))
