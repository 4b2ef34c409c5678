"""Built-in load-balancing policies."""

from __future__ import annotations

from typing import Any

from miresga_core import hookimpl

from .consistent_hash import ConsistentHash
from .header_match import HeaderMatch
from .round_robin import RoundRobin

__all__ = ["ConsistentHash", "HeaderMatch", "RoundRobin"]


@hookimpl
def miresga_add_policies() -> list[type[Any]]:
    return [RoundRobin, ConsistentHash, HeaderMatch]
