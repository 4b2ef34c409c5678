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
  shell may splice them in the kernel (both directions, no end).
* ``SpliceResponse(nbytes)`` : a hint that the next ``nbytes`` backend bytes are body bytes
  of the current response that go to the client unchanged. The shell may have the kernel
  forward them (sockmap); it then reports them with ``on_spliced(nbytes, now)`` (those
  bytes never come through ``on_backend_data``). Any of them may still come through
  ``on_backend_data`` (relay), so the session must accept both, in any mix, in stream order.
* ``SpliceNextResponse(min_body)`` : (before the request goes out) the shell may have the
  kernel forward the whole next response, head included, when its head is simple
  (Content-Length body of >= ``min_body`` bytes). It then calls
  ``on_response_head_spliced(head, now)`` with a copy of the head (already sent to the
  client) and ``on_spliced(n, now)`` for the body bytes; otherwise the response comes
  through ``on_backend_data`` as usual.

Multiplexed sessions (HTTP/2 terminated on both sides) talk to several backends at once.
A session class that sets ``multiplexed = True`` names a backend *leg* in ``Connect``,
``SendBackend``, ``Release`` and ``HalfClose`` (``leg``, any int the session chooses), and
the shell passes ``leg=<id>`` to ``on_backend_connected/failed/data/eof``. Sessions that do
not set it use leg 0 implicitly and are called exactly as before (one leg at a time).
A multiplexed session may pool a connection with its protocol state: ``Release(reuse=True,
state=...)`` keeps ``state`` with the idle connection, and a later ``Connect(kind=...)`` of
the same kind that gets it calls ``on_backend_connected(now, leg=..., state=...)``.
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
    "SpliceNextResponse",
    "SpliceResponse",
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
    leg: int = 0


@dataclass(slots=True)
class Connect(Action):
    backend: Backend
    pool: str
    reuse: bool = True
    leg: int = 0
    kind: str = "http1"  # idle connections are only reused by sessions asking the same kind


@dataclass(slots=True)
class Release(Action):
    reuse: bool
    leg: int = 0
    state: Any = None  # protocol state kept with a pooled connection (HTTP/2: its h2 object)



@dataclass(slots=True)
class CloseClient(Action):
    pass


@dataclass(slots=True)
class HalfClose(Action):
    """Forward an end-of-stream: ``to_backend`` True shuts the backend's write side."""

    to_backend: bool
    leg: int = 0


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
class SpliceResponse(Action):
    nbytes: int


@dataclass(slots=True)
class SpliceNextResponse(Action):
    min_body: int


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
    relayed_bytes: int = 0  # backend -> client bytes read by this process
    spliced_bytes: int = 0  # backend -> client bytes the kernel forwarded (sockmap)

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


