"""The public API that plugins program against.

A plugin imports from ``miresga_core`` (which re-exports this module) and nothing deeper.
Three kinds of plugin object are defined here:

* ``ParserPlugin`` -- a protocol (HTTP/1.1, HTTP/2, ...). It offers match fields, a pure
  prototype parser (``parse_head``: bytes -> RequestHead | NeedMore | Reject) that is the
  reference for the compiled bytecode, and a sans-I/O proxy session for the ``kernel`` data
  plane.
* ``Policy`` -- chooses a backend of a pool for a request.
* ``ProxySession`` actions -- what a sans-I/O session asks its I/O shell to do.

Everything here is I/O free: no sockets, clocks or loggers.
"""

from __future__ import annotations

import enum
import ipaddress
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

__all__ = [
    "Address",
    "Backend",
    "BodyFraming",
    "FieldRef",
    "FieldSpec",
    "NeedMore",
    "OffloadMode",
    "ParserPlugin",
    "Policy",
    "Reject",
    "RequestHead",
    "parse_address",
]


# --------------------------------------------------------------------------- addresses


@dataclass(frozen=True, slots=True)
class Address:
    """An IP address and port. ``str()`` gives ``host:port`` (``[v6]:port`` for IPv6)."""

    host: str
    port: int

    def __str__(self) -> str:
        if ":" in self.host:
            return f"[{self.host}]:{self.port}"
        return f"{self.host}:{self.port}"

    @property
    def family_v6(self) -> bool:
        return ":" in self.host


def parse_address(text: str, default_port: int | None = None) -> Address:
    """Parse ``host:port`` / ``[v6]:port`` with a literal IP address.

    Raises ValueError with a human readable reason. Host names are refused on purpose:
    a load balancer that resolves names at start-up silently pins whatever DNS said then.
    """
    text = text.strip()
    host: str
    port_text: str | None
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError(f"{text!r}: missing ']' after IPv6 address")
        host, rest = text[1:end], text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ValueError(f"{text!r}: expected ':port' after ']'")
        port_text = rest[1:] if rest else None
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host, port_text = text, None
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{text!r}: {host!r} is not an IP address") from None
    if port_text is None or port_text == "":
        if default_port is None:
            raise ValueError(f"{text!r}: missing port")
        port = default_port
    else:
        if not port_text.isdigit():
            raise ValueError(f"{text!r}: port {port_text!r} is not a number")
        port = int(port_text)
    if not 0 < port < 65536:
        raise ValueError(f"{text!r}: port {port} out of range 1..65535")
    return Address(host, port)


@dataclass(frozen=True, slots=True)
class Backend:
    """One server of a pool. ``index`` is its position in the pool (stable across health
    changes, used by compiled policy tables); ``name`` defaults to the address."""

    address: Address
    weight: int = 1
    name: str = ""
    index: int = 0

    @property
    def label(self) -> str:
        return self.name or str(self.address)


# --------------------------------------------------------------------------- requests


class BodyFraming(enum.Enum):
    """How the request body that follows the head is delimited."""

    NONE = "none"  # no body
    LENGTH = "length"  # Content-Length bytes
    CHUNKED = "chunked"  # chunked transfer coding
    UNTIL_CLOSE = "until-close"  # rest of the stream (tunnels after an Upgrade)


class OffloadMode(enum.Enum):
    """What the data plane may do with the connection once a decision is made.

    NONE: every byte passes the front-end. SPLICE: responses bypass the front-end,
    requests still visit it. PIN: the whole connection is spliced to one backend."""

    NONE = "none"
    SPLICE = "splice"
    PIN = "pin"


@dataclass(frozen=True, slots=True)
class RequestHead:
    """A parsed request head: what routes match on and what the proxy needs to frame.

    ``headers`` keeps the order of the wire with names lower-cased. ``head_length`` is
    the number of bytes of the head on the wire, terminating blank line included.
    ``extra`` holds protocol-specific match fields (e.g. gRPC service) by field name.
    """

    method: str
    target: str
    path: str
    query: str
    host: str
    headers: tuple[tuple[str, str], ...]
    version: str = "1.1"
    head_length: int = 0
    framing: BodyFraming = BodyFraming.NONE
    content_length: int = 0
    keep_alive: bool = True
    upgrade: str = ""
    expect_continue: bool = False
    extra: Mapping[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        """First value of header ``name`` (case-insensitive), or None."""
        name = name.lower()
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def field(self, name: str) -> str | None:
        """Value of match field ``name`` ("method", "host", "path", "query", "header:x")."""
        if name.startswith("header:"):
            return self.header(name[7:])
        value = _HEAD_FIELDS.get(name)
        if value is not None:
            return str(getattr(self, value))
        return self.extra.get(name)

    @property
    def idempotent(self) -> bool:
        """RFC 9110 9.2.2: safe to retry on another backend when nothing was answered."""
        return self.method in _IDEMPOTENT_METHODS and self.framing is BodyFraming.NONE


_HEAD_FIELDS = {"method": "method", "host": "host", "path": "path", "query": "query",
                "target": "target"}
_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})


@dataclass(frozen=True, slots=True)
class NeedMore:
    """The parser needs more bytes before it can decide."""

    reason: str = ""


@dataclass(frozen=True, slots=True)
class Reject:
    """The request is refused with an HTTP status (400, 431, ...) and a reason for the log."""

    status: int
    reason: str


ParseResult = RequestHead | NeedMore | Reject


# --------------------------------------------------------------------------- parsers


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """A match field a parser offers to routes.

    ``case_insensitive`` fields are compared ignoring ASCII case (host, header values are
    not); ``pattern`` True means the field takes a sub-name (``header:<name>``)."""

    name: str
    description: str
    case_insensitive: bool = False
    pattern: bool = False


class ParserPlugin(ABC):
    """A protocol a listener speaks. Subclasses are returned by ``miresga_add_parsers``.

    The prototype ``parse_head`` is pure and total: any input gives a RequestHead, a
    NeedMore or a Reject, never an exception. It is the oracle the compiled bytecode is
    checked against.
    """

    #: the name used in ``listeners.protocol``
    name: ClassVar[str]
    #: ALPN identifiers this parser serves
    alpn: ClassVar[tuple[str, ...]] = ()
    #: longest request head accepted before answering 431
    default_max_head: ClassVar[int] = 16384

    def __init__(self, max_head: int = 16384) -> None:
        self.max_head = max_head

    @classmethod
    @abstractmethod
    def fields(cls) -> Sequence[FieldSpec]:
        """The match fields routes of this protocol may use."""

    @abstractmethod
    def parse_head(self, data: bytes) -> ParseResult:
        """Parse the start of a client stream (prototype form)."""

    @abstractmethod
    def new_session(self, ctx: Any) -> Any:
        """A sans-I/O proxy session for the ``kernel`` data plane (see session.py)."""

    def compile(self, b: Any, fields: Sequence[str]) -> Mapping[str, FieldRef]:
        """Emit the compiled form of ``parse_head`` into ``b`` (a bytecode ProgramBuilder).

        The code must halt with ``needmore``/``reject`` where the prototype returns NeedMore
        / Reject, set the result fields (head_len, framing, content_length, flags) with
        ``setf``, and fall through when the head is complete, leaving each requested match
        field (names as in routes: "path", "header:x-user") in a slice register.
        See docs/plugin-authors.md. Parsers without a compiled form raise
        NotImplementedError: their listeners are routed by the prototype only."""
        raise NotImplementedError(f"parser {self.name!r} has no compiled form")

    def head_from_outcome(self, data: bytes, outcome: Any) -> RequestHead:
        """The RequestHead of ``data`` after the compiled program routed it.

        ``outcome`` carries head_len, framing, content_length and the plugin's own flags.
        The program already validated the head; this only slices it. Parsers without a
        compiled form leave this unimplemented and run as their prototype."""
        raise NotImplementedError

    def route_scope(self, match_fields: Iterable[str]) -> Literal["connection", "request"]:
        """Whether routes on these fields can be decided once per connection.

        HTTP/1.1 data planes can re-route per request on one connection whatever the fields;
        multiplexed protocols answer "request" when a field varies per stream."""
        return "request"


@dataclass(frozen=True, slots=True)
class FieldRef:
    """Where compiled parser code left a match field: ``value`` is a slice register (an
    ``SReg``); ``present`` (an ``IReg`` or None for always-present fields) is non-zero when
    the field exists."""

    value: Any
    present: Any = None


# --------------------------------------------------------------------------- policies


class Policy(ABC):
    """Chooses one backend of a pool. Subclasses are returned by ``miresga_add_policies``.

    ``options`` is a frozen dataclass type describing the policy's options: the config
    loader validates ``pools.<name>.options`` against it (unknown keys and wrong types are
    refused with their line). A policy instance is rebuilt when the set of healthy backends
    changes, so ``__init__`` may precompute tables.
    """

    name: ClassVar[str]
    options: ClassVar[type | None] = None

    def __init__(self, backends: Sequence[Backend], options: Any = None) -> None:
        self.backends = tuple(backends)
        self.opts = options

    @abstractmethod
    def pick(self, request: RequestHead, client: Address | None,
             exclude: frozenset[int] = frozenset()) -> Backend | None:
        """Choose a backend for ``request``; skip backends whose index is in ``exclude``.

        Returns None when no backend is left."""

    def compile(self, b: Any) -> Any:
        """Emit the table form of this policy into ``b`` (a bytecode ProgramBuilder).

        Return the integer register (``IReg``) holding the chosen backend's index in the
        pool, or None when the policy has no compiled form (the data plane then calls
        ``pick``). r0 holds a hash of the client address and r1 a per-listener sequence
        number; tables come from ``b.table([...])``. The data plane treats the result as
        the first choice and falls back to ``pick`` when that backend is down."""
        return None


# --------------------------------------------------------------------------- helpers


def header_map(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Headers as a dict, the first value of each name winning."""
    out: dict[str, str] = {}
    for key, value in headers:
        out.setdefault(key, value)
    return out
