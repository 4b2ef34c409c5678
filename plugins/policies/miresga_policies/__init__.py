"""Built-in load-balancing policies."""

from __future__ import annotations

from typing import Any

from miresga_core import hookimpl

from .round_robin import RoundRobin

__all__ = ["RoundRobin"]


@hookimpl
def miresga_add_policies() -> list[type[Any]]:
    return [RoundRobin]
