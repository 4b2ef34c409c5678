"""The decision rule both front-ends share when they run a compiled rule program.

The C front-end cannot call the Python Router; it runs the listener's compiled program in
the C VM. ``ProgramDecider`` is that same rule in Python (the program in the Python VM),
so the reference machine (``frontend.machine.Frontend``) with a ProgramDecider and the C
machine (native/dpdk/fe/fe_machine.c, ``decide``) must agree byte for byte:

* entry arguments: r0 = FNV-1a (32 bit) of the client's IPv4 address and port (6 bytes,
  network order), r1 = the number of ``route`` outcomes of this listener so far;
* ``route``: decision -> (pool, offload mode); the ``backend`` field indexes the pool's
  backends in config order (out of range, e.g. no policy code: reject);
  framing none -> length = head_len; length -> head_len + content_length; otherwise
  unknown (the rest of the connection stays on the backend); the upgrade flag turns
  ``splice`` into ``pin``;
* ``needmore`` -> NeedMore; ``reject`` and ``error`` -> Reject.

Health is not consulted: the compiled policy decides alone (docs/dpdk.md, limits).
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Sequence
from typing import Any

from ..api import Address, NeedMore, OffloadMode, Reject
from ..bytecode.compiler import compile_listener
from ..bytecode.opcodes import FLAGS, FRAMINGS
from ..bytecode.program import Program
from ..bytecode.vm import PyVM, fnv1a
from ..config import Config
from ..frontend.decider import Decision

__all__ = ["ProgramDecider", "client_hash"]

_FR_NONE, _FR_LENGTH = FRAMINGS.index("none"), FRAMINGS.index("length")


def client_hash(client: Address) -> int:
    return fnv1a(ipaddress.IPv4Address(client.host).packed + struct.pack("!H", client.port))


class ProgramDecider:
    """A listener's compiled program + its pools' backends (program pool order)."""

    def __init__(self, program: Program, pools: Sequence[Sequence[Address]]) -> None:
        if len(pools) != len(program.pools):
            raise ValueError(f"the program names {len(program.pools)} pools, "
                             f"{len(pools)} given")
        self.program = program
        self.pools = [list(p) for p in pools]
        self.vm = PyVM(program)
        self.routes = 0

    @classmethod
    def from_config(cls, config: Config, listener: str, registry: Any) -> ProgramDecider:
        program = compile_listener(config, listener, registry)
        pools = [[b.address for b in config.pools[name].backends] for name in program.pools]
        return cls(program, pools)

    def decide(self, data: bytes, client: Address, now: float) -> Decision | NeedMore | Reject:
        o = self.vm.run(data, (client_hash(client), self.routes))
        if o.kind == "needmore":
            return NeedMore()
        if o.kind != "route":
            return Reject(o.status or 500, o.reason.decode("latin-1") or o.kind)
        self.routes += 1
        d = self.program.decisions[o.decision]
        backends = self.pools[d.pool]
        if not 0 <= o.backend < len(backends):
            return Reject(503, f"backend index {o.backend} not in pool")
        mode = OffloadMode(d.offload)
        if o.flags & FLAGS["upgrade"] and mode is OffloadMode.SPLICE:
            mode = OffloadMode.PIN
        length: int | None
        if o.framing == _FR_NONE:
            length = o.head_len
        elif o.framing == _FR_LENGTH:
            length = o.head_len + o.content_length
        else:
            length = None
        return Decision(backends[o.backend], mode, length,
                        self.program.pools[d.pool])
