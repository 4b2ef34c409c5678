"""gRPC through the kernel data plane: one grpcio channel, calls routed per service.

Two real grpcio servers serve different services; the load balancer (protocol ``grpc`` from
the separately installed miresga-plugin-grpc) routes each call by ``grpc_service``. The
services are written with generic handlers on raw bytes, so no code generation is needed.
"""

from __future__ import annotations

import subprocess
from concurrent import futures

import grpc
import pytest

pytestmark = pytest.mark.slow

LB = 21200
BIG = 4 * 1024 * 1024
OPTS = [("grpc.max_send_message_length", 16 << 20), ("grpc.max_receive_message_length", 16 << 20)]


def serve(port: int, service: str, name: str) -> grpc.Server:
    def unary(request: bytes, context: grpc.ServicerContext) -> bytes:
        if request.startswith(b"size:"):
            return name.encode() + b":" + b"z" * int(request[5:])
        return f"{name}:{service}:".encode() + request[:64] + f":{len(request)}".encode()

    def stream(request: bytes, context: grpc.ServicerContext):
        for i in range(int(request)):
            yield f"{name}:{i}:".encode() + b"s" * 10000

    handler = grpc.method_handlers_generic_handler(service, {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "Stream": grpc.unary_stream_rpc_method_handler(stream),
    })
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=OPTS)
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    return server


CONFIG = f"""
[dataplane.kernel]
workers = 2
[[listeners]]
name = "grpc"
listen = "127.0.0.1:{LB}"
protocol = "grpc"
[[listeners.routes]]
name = "alpha"
pool = "alpha"
match = {{ grpc_service = "test.Alpha" }}
[[listeners.routes]]
name = "beta"
pool = "beta"
match = {{ grpc_service = "test.Beta", grpc_method = ["Unary", "Stream"] }}
[pools.alpha]
backends = [{{ address = "127.0.0.1:21201", name = "alpha-1" }}]
[pools.beta]
backends = [{{ address = "127.0.0.1:21202", name = "beta-1" }}]
"""


@pytest.fixture
def grpc_setup(procs):
    servers = [serve(21201, "test.Alpha", "A"), serve(21202, "test.Beta", "B")]
    try:
        procs.lb(CONFIG, LB)
        yield procs
    finally:
        for server in servers:
            server.stop(0)


def established_to(port: int) -> int:
    out = subprocess.run(["ss", "-Htn", "state", "established", f"( dport = :{port} )"],
                         capture_output=True, text=True, timeout=10).stdout
    return len([line for line in out.splitlines() if line.strip()])


def test_one_channel_alternating_services(grpc_setup) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{LB}", options=OPTS) as channel:
        calls = {svc: channel.unary_unary(f"/test.{svc}/Unary") for svc in ("Alpha", "Beta")}
        streams = {svc: channel.unary_stream(f"/test.{svc}/Stream") for svc in ("Alpha", "Beta")}
        for i in range(40):
            svc = ("Alpha", "Beta")[i % 2]
            reply = calls[svc](f"call-{i}".encode(), timeout=10)
            assert reply == f"{svc[0]}:test.{svc}:call-{i}:{len(f'call-{i}')}".encode()
        assert established_to(LB) == 1  # every call went over the channel's one connection
        # large messages both ways, still alternating on the same channel
        for svc in ("Alpha", "Beta", "Alpha"):
            payload = bytes(range(256)) * (BIG // 256)
            reply = calls[svc](payload, timeout=30)
            assert reply == f"{svc[0]}:test.{svc}:".encode() + payload[:64] + f":{BIG}".encode()
            reply = calls[svc](f"size:{BIG}".encode(), timeout=30)
            assert reply == svc[0].encode() + b":" + b"z" * BIG
        # server streaming from both backends, interleaved
        a = streams["Alpha"](b"50", timeout=30)
        b = streams["Beta"](b"50", timeout=30)
        got_a, got_b = [], []
        for x, y in zip(a, b, strict=True):
            got_a.append(x)
            got_b.append(y)
        assert [m[:len(f"A:{i}:")] for i, m in enumerate(got_a)] == \
            [f"A:{i}:".encode() for i in range(50)]
        assert [m[:len(f"B:{i}:")] for i, m in enumerate(got_b)] == \
            [f"B:{i}:".encode() for i in range(50)]
        assert established_to(LB) == 1


def test_unrouted_service_and_wrong_content_type(grpc_setup) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{LB}") as channel:
        with pytest.raises(grpc.RpcError) as info:
            channel.unary_unary("/test.Gamma/Unary")(b"x", timeout=10)
        assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED  # HTTP 404 per the gRPC spec
        with pytest.raises(grpc.RpcError):
            channel.unary_unary("/test.Beta/Other")(b"x", timeout=10)  # method not routed
        assert channel.unary_unary("/test.Beta/Unary")(b"ok", timeout=10).startswith(b"B:")
    out = subprocess.run(["curl", "-s", "--http2-prior-knowledge", "-o", "/dev/null", "-w",
                          "%{http_code}", f"http://127.0.0.1:{LB}/test.Alpha/Unary"],
                         capture_output=True, text=True, timeout=20)
    assert out.stdout == "415"


def test_plugin_found_by_entry_point(procs) -> None:
    """The pip-installed miresga-plugin-grpc is found through the ``miresga`` group."""
    import sys

    out = subprocess.run([sys.executable, "-m", "miresga_core.cli", "plugins"],
                         capture_output=True, text=True, env=procs.env(), timeout=60)
    assert out.returncode == 0, out.stderr
    assert "grpc  (miresga-plugin-grpc 0.1.0)" in out.stdout, out.stdout
    assert "parsers: grpc, http1, http2" in out.stdout, out.stdout
