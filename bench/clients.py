"""The load generators: wrk (HTTP/1.1) and h2load (HTTP/2, prior knowledge), their
command lines and the parsing of their output (pure; tested in tests/unit/test_bench_report.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["ClientResult", "h2load_argv", "parse_h2load", "parse_wrk", "wrk_argv"]

THREADS, CONNS, STREAMS = 2, 16, 10


@dataclass
class ClientResult:
    rps: float
    lat_ms: dict[str, float]
    errors: int


class ClientError(RuntimeError):
    """The client's output has no result (it failed); the message has its output."""


def wrk_argv(url: str, seconds: float, mode: str, threads: int = THREADS,
             conns: int = CONNS) -> list[str]:
    argv = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds:g}s", "--timeout", "5s",
            "--latency", url]
    if mode == "close":
        argv[1:1] = ["-H", "Connection: close"]
    return argv


def h2load_argv(url: str, seconds: float, threads: int = THREADS, conns: int = CONNS,
                streams: int = STREAMS) -> list[str]:
    # -D: a timed run (the request count is unbounded). No warm-up: like wrk, and the load
    # balancer's CPU time is taken over the same span as the requests counted
    return ["h2load", f"-t{threads}", f"-c{conns}", f"-m{streams}", f"-D{seconds:g}", url]


def ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip())
    if not m:
        raise ValueError(f"not a duration: {text!r}")
    return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]


def parse_wrk(out: str) -> ClientResult:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not rps:
        raise ClientError(f"wrk gave no result:\n{out[-1500:]}")
    lat = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", out, re.M))
    errors = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors += int(non2xx.group(1)) if non2xx else 0
    return ClientResult(float(rps.group(1)),
                        {f"p{k}": ms(v) for k, v in sorted(lat.items())}, errors)


def parse_h2load(out: str) -> ClientResult:
    rps = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    reqs = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                     r"(\d+) failed, (\d+) errored, (\d+) timeout", out)
    if not rps or not reqs:
        raise ClientError(f"h2load gave no result:\n{out[-1500:]}")
    lat = re.search(r"time for request:\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)", out)
    lat_ms = ({"min": ms(lat.group(1)), "max": ms(lat.group(2)), "mean": ms(lat.group(3)),
               "sd": ms(lat.group(4))} if lat else {})
    status = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    errors = int(reqs.group(5))  # "failed" includes errored and timed-out requests
    if status:
        errors += int(status.group(3)) + int(status.group(4))  # like wrk: not 2xx or 3xx
    if int(reqs.group(4)) == 0:
        errors = max(errors, 1)  # nothing succeeded: never report that as clean
    return ClientResult(float(rps.group(1)), lat_ms, errors)
