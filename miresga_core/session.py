"""The contract between a sans-I/O proxy session and the I/O shell that drives it.

A parser plugin's session (one per client connection) is a state machine. The shell calls
its ``on_*`` methods with what happened (bytes from the client, a backend connected, a timer
fired...) and carries out the actions they return, in order. The session never touches a
socket, a clock or a logger: time comes in as ``now`` arguments, logging goes out as
``Log`` actions. That is what lets the same session be tested with bytes alone.

Theory of operation for the shell (miresga_core/kernel/shell.py):
* ``Connect(backend, ...)`` -> get a connection to ``backend`` (a pooled idle one when
  ``reuse``), then call ``on_backend_connected()`` or ``on_backend_failed(reason)``.
* ``SendBackend`` / ``SendClient`` write bytes; ``Release(reuse)`` gives the backend
  connection back to the pool (or closes it); ``CloseClient`` closes after flushing.
* ``Timer(name, seconds)`` arms (re-arms) a named timer, seconds <= 0 cancels it; when it
  fires the shell calls ``on_timer(name)``.
* ``Pause`` / ``Resume`` stop and restart reading from the client (buffer limits).
* ``Tunnel()`` : from now on bytes are relayed raw in both directions (Upgrade, pin); the
  shell may splice them in the kernel.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .api import Address, Backend, NeedMore, Reject, RequestHead

if TYPE_CHECKING:
    from .config import ListenerConfig
    from .routing import Router

__all__ = [
    "Action",
    "CloseClient",
    "Connect",
    "HalfClose",
    "Log",
    "Pause",
    "Release",
    "Resume",
    "SendBackend",
    "SendClient",
    "SessionContext",
    "Stats",
    "Timer",
    "Tunnel",
]


class Action:
    __slots__ = ()


@dataclass(slots=True)
class SendClient(Action):
    data: bytes


@dataclass(slots=True)
class SendBackend(Action):
    data: bytes


@dataclass(slots=True)
class Connect(Action):
    backend: Backend
    pool: str
    reuse: bool = True


@dataclass(slots=True)
class Release(Action):
    reuse: bool


@dataclass(slots=True)
class CloseClient(Action):
    pass


@dataclass(slots=True)
class HalfClose(Action):
    """Forward an end-of-stream: ``to_backend`` True shuts the backend's write side."""

    to_backend: bool


@dataclass(slots=True)
class Timer(Action):
    name: str
    seconds: float


@dataclass(slots=True)
class Pause(Action):
    pass


@dataclass(slots=True)
class Resume(Action):
    pass


@dataclass(slots=True)
class Tunnel(Action):
    pass


@dataclass(slots=True)
class Log(Action):
    level: str  # "info" | "warning" | "error"
    message: str


# --------------------------------------------------------------------------- context


@dataclass
class Stats:
    """Counters a worker aggregates; plain data, no I/O."""

    requests: dict[str, int] = field(default_factory=dict)  # "pool/backend" -> count
    statuses: dict[int, int] = field(default_factory=dict)  # local error responses
    retries: int = 0
    backend_failures: int = 0

    def count(self, key: str) -> None:
        self.requests[key] = self.requests.get(key, 0) + 1

    def status(self, code: int) -> None:
        self.statuses[code] = self.statuses.get(code, 0) + 1


@dataclass
class SessionContext:
    """What a session needs from the data plane, all of it pure. ``parse`` is the
    listener's decision function over the buffered client bytes (the parser's prototype,
    or the compiled rule program)."""

    listener: ListenerConfig
    router: Router
    client: Address | None
    parse: Callable[[bytes], RequestHead | NeedMore | Reject]
    stats: Stats = field(default_factory=Stats)
    retries: int = 2
    #: the listener's decider (miresga_core/decide.py): prototype or compiled program.
    #: None: the session parses with ``parse`` and routes with ``router`` itself.
    decide: Callable[[bytes, Address | None, float], Any] | None = None


