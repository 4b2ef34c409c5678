"""Smooth weighted round-robin (the nginx algorithm).

Each pick adds every backend's weight to its running score, takes the highest score and
subtracts the total weight from it. Over any window of ``sum(weights)`` picks each backend
is chosen exactly ``weight`` times, and picks of one backend are spread out rather than
bunched (weights 5,1,1 give a a b a c a a, not a a a a a b c).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from miresga_core import Address, Backend, Policy, RequestHead
from miresga_core.bytecode.builder import ARG_SEQUENCE

__all__ = ["RoundRobin", "smooth_weighted_schedule"]


class RoundRobin(Policy):
    name = "round-robin"

    def __init__(self, backends: Sequence[Backend], options: Any = None) -> None:
        super().__init__(backends, options)
        self.current = [0] * len(self.backends)
        self.total = sum(b.weight for b in self.backends)

    def pick(self, request: RequestHead | None, client: Address | None,
             exclude: frozenset[int] = frozenset()) -> Backend | None:
        best = -1
        total = 0
        current = self.current
        for i, backend in enumerate(self.backends):
            if backend.index in exclude:
                continue
            current[i] += backend.weight
            total += backend.weight
            if best < 0 or current[i] > current[best]:
                best = i
        if best < 0 or total == 0:
            return None
        current[best] -= total
        return self.backends[best]

    def compile(self, b: Any) -> Any:
        """Table form: one cycle of the smooth weighted schedule indexed by the sequence."""
        weights = [bk.weight for bk in self.backends]
        if not any(weights):
            return None
        schedule = [self.backends[i].index for i in smooth_weighted_schedule(weights)]
        reg = b.ireg()
        b.tlook(reg, ARG_SEQUENCE, b.table(schedule))
        return reg


def smooth_weighted_schedule(weights: Sequence[int]) -> list[int]:
    """One full cycle of picks (backend indexes) for ``weights``: the table form."""
    policy = RoundRobin([Backend(Address("0.0.0.0", 1), w, index=i)
                         for i, w in enumerate(weights)])
    picks = (policy.pick(None, None) for _ in range(sum(weights)))
    return [b.index for b in picks if b is not None]
