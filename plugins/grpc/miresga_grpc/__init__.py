"""miresga-plugin-grpc: the ``grpc`` protocol, HTTP/2 with gRPC's match fields.

A third-party plugin: it uses only the public plugin API (``miresga_core`` exports and the
``http2`` parser plugin it extends) and is found through the ``miresga`` entry point group.

* match fields ``grpc_service`` (``package.Service``) and ``grpc_method`` (``Method``), taken
  from ``:path`` = ``/package.Service/Method``;
* every request must carry a gRPC content type (``application/grpc``, optionally
  ``+proto``/``+json``/``;...``), else it is refused with 415 on its stream;
* everything else (per-call routing over one client connection, flow control, trailers) is
  the http2 plugin's terminating session;
* a ``grpc`` active health check kind (health.py): the standard grpc.health.v1 Check call.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from miresga_http2 import Http2Parser

from miresga_core import FieldSpec, NeedMore, Reject, RequestHead, hookimpl

from .health import GrpcHealthCheck

__all__ = ["GrpcHealthCheck", "GrpcParser", "grpc_fields", "is_grpc_content_type"]


def is_grpc_content_type(value: str | None) -> bool:
    """``application/grpc`` exactly, or followed by ``+subtype`` or ``;params``."""
    if value is None:
        return False
    value = value.strip().lower()
    return value == "application/grpc" or value.startswith(("application/grpc+",
                                                             "application/grpc;"))


def grpc_fields(path: str) -> tuple[str, str] | None:
    """(service, method) of a gRPC ``:path``, or None when it is not ``/Service/Method``."""
    parts = path.split("/")
    if len(parts) != 3 or parts[0] or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


class GrpcParser(Http2Parser):
    name = "grpc"
    alpn = ("h2",)

    @classmethod
    def fields(cls) -> Sequence[FieldSpec]:
        return (*Http2Parser.fields(),
                FieldSpec("grpc_service", "gRPC service with its package, e.g. helloworld.Greeter"),
                FieldSpec("grpc_method", "gRPC method name, e.g. SayHello"))

    def parse_head(self, data: bytes) -> RequestHead | NeedMore | Reject:
        head = super().parse_head(data)
        return head if not isinstance(head, RequestHead) else _grpc_head(head)

    def stream_head(self, headers: Any, end_stream: bool) -> RequestHead | Reject:
        head = super().stream_head(headers, end_stream)
        return head if isinstance(head, Reject) else _grpc_head(head)


def _grpc_head(head: RequestHead) -> RequestHead | Reject:
    if not is_grpc_content_type(head.header("content-type")):
        return Reject(415, f"not a gRPC request (content-type {head.header('content-type')!r})")
    names = grpc_fields(head.path)
    if names is None:
        return Reject(400, f"gRPC path {head.path!r} is not /Service/Method")
    extra = {**head.extra, "grpc_service": names[0], "grpc_method": names[1]}
    return dataclasses.replace(head, extra=extra)


@hookimpl
def miresga_add_parsers() -> list[type[Any]]:
    return [GrpcParser]


@hookimpl
def miresga_add_health_checks() -> list[type[Any]]:
    return [GrpcHealthCheck]
