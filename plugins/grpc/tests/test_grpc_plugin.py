"""miresga-plugin-grpc: fields from :path, content-type check, config validation."""

from __future__ import annotations

import hpack
import pytest
from hyperframe.frame import HeadersFrame, SettingsFrame
from miresga_grpc import GrpcParser, grpc_fields, is_grpc_content_type
from miresga_http2.prototype import PREFACE

from miresga_core import ConfigError, Reject, RequestHead
from miresga_core.config import parse_config
from miresga_core.plugins import get_plugin_manager, registry_from
from miresga_core.routing import match_route

GRPC = [(":method", "POST"), (":scheme", "http"), (":path", "/helloworld.Greeter/SayHello"),
        (":authority", "lb"), ("content-type", "application/grpc"), ("te", "trailers")]


def wire(headers) -> bytes:
    block = hpack.Encoder().encode(headers)
    return PREFACE + SettingsFrame(0).serialize() + \
        HeadersFrame(1, data=block, flags=["END_HEADERS"]).serialize()


@pytest.mark.parametrize(("value", "ok"), [
    ("application/grpc", True), ("application/grpc+proto", True),
    ("Application/GRPC;charset=utf-8", True), ("application/grpc-web", False),
    ("application/json", False), (None, False), ("", False),
])
def test_content_type(value, ok) -> None:
    assert is_grpc_content_type(value) is ok


@pytest.mark.parametrize(("path", "fields"), [
    ("/helloworld.Greeter/SayHello", ("helloworld.Greeter", "SayHello")),
    ("/Svc/M", ("Svc", "M")), ("/a/b/c", None), ("//M", None), ("/Svc/", None), ("x/y", None),
])
def test_path_fields(path, fields) -> None:
    assert grpc_fields(path) == fields


def test_parse_head_and_stream_head() -> None:
    parser = GrpcParser()
    head = parser.parse_head(wire(GRPC))
    assert isinstance(head, RequestHead)
    assert head.field("grpc_service") == "helloworld.Greeter"
    assert head.field("grpc_method") == "SayHello"
    head = parser.stream_head([(k.encode(), v.encode()) for k, v in GRPC], False)
    assert isinstance(head, RequestHead) and head.field("grpc_method") == "SayHello"


def test_refusals() -> None:
    parser = GrpcParser()
    plain = [h if h[0] != "content-type" else ("content-type", "text/plain") for h in GRPC]
    result = parser.parse_head(wire(plain))
    assert isinstance(result, Reject) and result.status == 415
    bad_path = [h if h[0] != ":path" else (":path", "/nope") for h in GRPC]
    result = parser.stream_head(bad_path, True)
    assert isinstance(result, Reject) and result.status == 400


CONFIG = """
[[listeners]]
name = "g"
listen = "127.0.0.1:21998"
protocol = "grpc"
[[listeners.routes]]
pool = "greeter"
match = { grpc_service = "helloworld.Greeter", grpc_method = ["SayHello", "SayBye"] }
[pools.greeter]
backends = [{ address = "127.0.0.1:21997" }]
"""


def registry():
    import miresga_grpc
    import miresga_http1
    import miresga_http2
    import miresga_policies

    pm = get_plugin_manager(load_entry_points=False,
                            extra=[miresga_http1, miresga_http2, miresga_policies, miresga_grpc])
    return registry_from(pm)


def test_config_routes_on_grpc_fields() -> None:
    reg = registry()
    config = parse_config(CONFIG, reg)
    route = config.listeners[0].routes[0]
    head = GrpcParser().parse_head(wire(GRPC))
    assert match_route(config.listeners[0].routes, head) is route
    with pytest.raises(ConfigError, match="unknown match field 'grpc_svc'"):
        parse_config(CONFIG.replace("grpc_service", "grpc_svc"), reg)


def test_health_messages() -> None:
    from miresga_grpc.health import decode_status, encode_request

    assert encode_request("") == b"\x00\x00\x00\x00\x00"
    assert encode_request("a.B") == b"\x00\x00\x00\x00\x05\x0a\x03a.B"
    assert decode_status(b"\x00\x00\x00\x00\x02\x08\x01") == 1
    assert decode_status(b"\x00\x00\x00\x00\x02\x08\x02") == 2
    assert decode_status(b"\x00\x00\x00\x00\x00") == 0  # proto3 default: UNKNOWN
    assert decode_status(b"\x01\x00\x00\x00\x02\x08\x01") is None  # compressed
    assert decode_status(b"") is None
    with pytest.raises(ValueError):
        encode_request("x" * 200)


def test_health_kind_registered() -> None:
    assert registry().health_checks["grpc"].kind == "grpc"
