"""bench/vm: decisions per second of the C VM, the Python VM and the h11 prototype on a
typical ~400-byte HTTP/1.1 request against 10 routes (the last one matches, so every
route is tried). Run: PYTHONPATH=.:plugins/http1:plugins/policies python3 bench/vm/bench_vm.py
[--seconds S]. Rates are per CPU-second of one core. Needs the C extension
(make -C native/dpdk/vm ext). Not a timed test."""

from __future__ import annotations

import argparse
import time

from miresga_http1 import Http1Parser

from miresga_core.bytecode import native
from miresga_core.bytecode.vm import PyVM
from miresga_core.testing import compile_parser, expected, make_routes

REQUEST = (
    b"GET /shop/cart/items?session=8f14e45fceea167a5a36dedd4bea2543&page=2 HTTP/1.1\r\n"
    b"Host: www.example.com\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0\r\n"
    b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    b"Accept-Language: en-US,en;q=0.5\r\n"
    b"Accept-Encoding: gzip, deflate, br\r\n"
    b"Cookie: sid=8f14e45fceea167a; theme=dark\r\n"
    b"Connection: keep-alive\r\n"
    b"X-Tenant: blue\r\n"
    b"\r\n"
)
ROUTES = [(f"r{i}", [("path", "prefix", [f"/svc{i}/"], False)]) for i in range(7)] + [
    ("tenant", [("header:x-tenant", "exact", ["red"], False)]),
    ("static", [("host", "exact", ["static.example.com"], True)]),
    ("shop", [("host", "exact", ["www.example.com"], True), ("path", "prefix", ["/shop/"], False)]),
]


# CPU time of this (single-threaded) process: the machine may be shared, and wall time
# would count other processes' turns against us.
clock = time.process_time


def rate(fn, seconds: float) -> float:
    n, start = 0, clock()
    while clock() - start < seconds:
        for _ in range(100):
            fn()
        n += 100
    return n / (clock() - start)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=1.0)
    args = ap.parse_args()
    parser = Http1Parser()
    program = compile_parser(parser, ROUTES)
    routes = make_routes(ROUTES)
    py = PyVM(program)
    want = expected(parser, routes, REQUEST)
    assert want.startswith("route decision=9"), want
    rows = []
    if native.available():
        c = native.CVM(program)
        assert str(c.run(REQUEST)) == str(py.run(REQUEST))
        n = 500_000
        start = clock()
        c.bench(REQUEST, n)
        rows.append(("C VM (loop in C)", n / (clock() - start)))
        rows.append(("C VM (one call from Python)", rate(lambda: c.run(REQUEST), args.seconds)))
    rows.append(("Python VM", rate(lambda: py.run(REQUEST), args.seconds / 2)))
    rows.append(("h11 prototype + routes", rate(lambda: expected(parser, routes, REQUEST),
                                                args.seconds / 2)))
    base = rows[-1][1]
    print(f"request {len(REQUEST)} bytes, {len(ROUTES)} routes, program "
          f"{len(program.code)} insns / {program.size} bytes")
    print(f"{'runner':<30} {'decisions/CPU-s':>16} {'x prototype':>12}")
    for name, r in rows:
        print(f"{name:<30} {r:>16,.0f} {r / base:>12.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
