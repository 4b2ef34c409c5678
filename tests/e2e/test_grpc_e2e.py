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


def test_grpc_health_check_kind(procs) -> None:
    """The plugin's ``grpc`` health kind: NOT_SERVING takes a backend out, SERVING back."""
    import time

    from miresga_core.api import Address
    from miresga_core.cli_status import fetch_status

    serving = {"h1": True, "h2": True}

    def make(port: int, name: str) -> grpc.Server:
        def check(request: bytes, context: grpc.ServicerContext) -> bytes:
            return b"\x08\x01" if serving[name] else b"\x08\x02"  # SERVING / NOT_SERVING

        def unary(request: bytes, context: grpc.ServicerContext) -> bytes:
            return name.encode()

        server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        server.add_generic_rpc_handlers((
            grpc.method_handlers_generic_handler("grpc.health.v1.Health", {
                "Check": grpc.unary_unary_rpc_method_handler(check)}),
            grpc.method_handlers_generic_handler("test.Alpha", {
                "Unary": grpc.unary_unary_rpc_method_handler(unary)})))
        server.add_insecure_port(f"127.0.0.1:{port}")
        server.start()
        return server

    servers = [make(21211, "h1"), make(21212, "h2")]
    try:
        procs.lb(f"""
[dataplane.kernel]
workers = 1
[admin]
listen = "127.0.0.1:21290"
[[listeners]]
name = "grpc"
listen = "127.0.0.1:{LB + 10}"
protocol = "grpc"
[[listeners.routes]]
pool = "alpha"
match = {{ grpc_service = "test.Alpha" }}
[pools.alpha]
backends = [{{ address = "127.0.0.1:21211", name = "h1" }},
            {{ address = "127.0.0.1:21212", name = "h2" }}]
health = {{ kind = "grpc", interval = 0.2, timeout = 0.5, rise = 2, fall = 2 }}
""", LB + 10)
        procs.wait(21290)

        def up(name: str) -> bool:
            doc = fetch_status(Address("127.0.0.1", 21290))
            return next(b["up"] for b in doc["pools"]["alpha"] if b["backend"] == name)

        def wait_for(name: str, state: bool) -> None:
            deadline = time.monotonic() + 10
            while up(name) != state:
                assert time.monotonic() < deadline, f"{name} never became {state}"
                time.sleep(0.05)

        with grpc.insecure_channel(f"127.0.0.1:{LB + 10}") as channel:
            call = channel.unary_unary("/test.Alpha/Unary")
            assert {call(b"", timeout=10) for _ in range(10)} == {b"h1", b"h2"}
            serving["h1"] = False
            wait_for("h1", False)
            assert {call(b"", timeout=10) for _ in range(20)} == {b"h2"}
            serving["h1"] = True
            wait_for("h1", True)
            assert {call(b"", timeout=10) for _ in range(10)} == {b"h1", b"h2"}
    finally:
        for server in servers:
            server.stop(0)
