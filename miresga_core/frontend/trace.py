"""Record and replay front-end runs: the reference traces the C front-end is held to.

A trace is a list of events, JSON lines: ``{"t": now_ns, "in": "<hex packet>"}`` or
``{"t": now_ns, "expire": true}``, each with ``"out"``: the actions it caused (see
``state.action_record``). Replaying a trace through a machine built with the same
configuration, decider and secrets must give the same outputs, byte for byte.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from .machine import Frontend
from .state import Action, action_record

__all__ = ["Recorder", "dumps", "loads", "replay"]


class Recorder:
    """Wraps a Frontend; every call is recorded with its outputs."""

    def __init__(self, fe: Frontend) -> None:
        self.fe = fe
        self.events: list[dict[str, Any]] = []

    def receive(self, raw: bytes, now_ns: int) -> list[Action]:
        out = self.fe.receive(raw, now_ns)
        self.events.append({"t": now_ns, "in": raw.hex(), "out": _records(out)})
        return out

    def expire(self, now_ns: int) -> list[Action]:
        out = self.fe.expire(now_ns)
        self.events.append({"t": now_ns, "expire": True, "out": _records(out)})
        return out


def _records(actions: Iterable[Action]) -> list[dict[str, str]]:
    return [action_record(a) for a in actions]


def dumps(events: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(e, sort_keys=True) + "\n" for e in events)


def loads(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def replay(fe: Frontend, events: list[dict[str, Any]]) -> list[tuple[int, Any, Any]]:
    """Run ``events`` through ``fe``; the mismatches as (event index, want, got)."""
    bad = []
    for i, e in enumerate(events):
        out = fe.expire(e["t"]) if e.get("expire") else fe.receive(bytes.fromhex(e["in"]),
                                                                      e["t"])
        got = _records(out)
        if got != e["out"]:
            bad.append((i, e["out"], got))
    return bad
