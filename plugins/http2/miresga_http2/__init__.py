"""The ``http2`` parser plugin: HTTP/2 over cleartext TCP with prior knowledge (h2c).

prototype.py parses the preface and the first request's header block (the oracle of the
compiled form); session.py holds the kernel data plane's sessions: a pinned tunnel when the
listener's routes can only differ per connection, else HTTP/2 terminated on both sides with
every stream routed on its own (see docs/http2.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal

from miresga_core import FieldSpec, NeedMore, ParserPlugin, Reject, RequestHead, hookimpl
from miresga_core.routing import route_scope
from miresga_core.session import SessionContext

from . import prototype
from .pinned import PinnedSession
from .session import Http2Session

__all__ = ["Http2Parser"]


class Http2Parser(ParserPlugin):
    name = "http2"
    alpn = ("h2",)

    def __init__(self, max_head: int = ParserPlugin.default_max_head) -> None:
        self.max_head = max_head
        self._scopes: dict[str, str] = {}

    @classmethod
    def fields(cls) -> Sequence[FieldSpec]:
        return (
            FieldSpec("method", ":method, e.g. GET (case-sensitive)"),
            FieldSpec("host", ":authority (or Host) without port, lower-cased",
                      case_insensitive=True),
            FieldSpec("path", ":path without the query"),
            FieldSpec("query", "query string of :path without the '?'"),
            FieldSpec("target", ":path as sent"),
            FieldSpec("scheme", ":scheme (http or https)", case_insensitive=True),
            FieldSpec("header", "a request header by name: match.headers = { name = value }",
                      pattern=True),
        )

    def parse_head(self, data: bytes) -> RequestHead | NeedMore | Reject:
        return prototype.parse_head(data, self.max_head)

    def compile(self, b: Any, fields: Sequence[str]) -> Any:
        from .compiled import compile_http2
        return compile_http2(b, fields, self.max_head)

    def stream_head(self, headers: Any, end_stream: bool) -> RequestHead | Reject:
        """One stream's decoded header list -> RequestHead (the terminating session)."""
        return prototype.headers_to_head(headers, end_stream)

    def route_scope(self, match_fields: Iterable[str]) -> Literal["connection", "request"]:
        # every field this protocol offers can differ between streams of one connection
        return "request" if set(match_fields) else "connection"

    def new_session(self, ctx: SessionContext) -> PinnedSession | Http2Session:
        scope = self._scopes.get(ctx.listener.name)
        if scope is None:
            pools = {name: (state.policy_cls, state.config.options)
                     for name, state in ctx.router.pools.items()}
            scope = self._scopes[ctx.listener.name] = route_scope(ctx.listener, self, pools)
        if scope == "connection":
            return PinnedSession(ctx)
        return Http2Session(ctx, self.stream_head)


@hookimpl
def miresga_add_parsers() -> list[type[Any]]:
    return [Http2Parser]
