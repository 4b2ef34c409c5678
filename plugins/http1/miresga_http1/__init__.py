"""The ``http1`` parser plugin: HTTP/1.1 (and 1.0) requests, routed one by one.

Its prototype parser is h11-based (prototype.py); the kernel data plane's proxy session is
session.py; framing.py does byte-level message framing for the relay.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from miresga_core import FieldSpec, NeedMore, ParserPlugin, Reject, RequestHead, hookimpl

from . import prototype
from .session import Http1Session, SessionContext

__all__ = ["Http1Parser"]


class Http1Parser(ParserPlugin):
    name = "http1"
    alpn = ("http/1.1", "http/1.0")

    @classmethod
    def fields(cls) -> Sequence[FieldSpec]:
        return (
            FieldSpec("method", "request method, e.g. GET (case-sensitive)"),
            FieldSpec("host", "Host header (or absolute-form authority) without port, "
                      "lower-cased", case_insensitive=True),
            FieldSpec("path", "path of the request target, without the query"),
            FieldSpec("query", "query string without the '?'"),
            FieldSpec("target", "the request target as sent"),
            FieldSpec("header", "a request header by name: match.headers = { name = value }",
                      pattern=True),
        )

    def parse_head(self, data: bytes) -> RequestHead | NeedMore | Reject:
        return prototype.parse_head(data, self.max_head)

    def head_from_outcome(self, data: bytes, outcome: Any) -> RequestHead:
        return prototype.head_from_outcome(data, outcome)

    def compile(self, b: Any, fields: Sequence[str]) -> Any:
        from .compiled import compile_http1
        return compile_http1(b, fields, self.max_head)

    def new_session(self, ctx: SessionContext) -> Http1Session:
        return Http1Session(ctx)


@hookimpl
def miresga_add_parsers() -> list[type[Any]]:
    return [Http1Parser]
