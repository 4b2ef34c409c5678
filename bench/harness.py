"""`miresga bench`: Miresga side by side with HAProxy, NGINX and a direct connection.

One run: build the topology (bench/topology.py), start two nginx backends serving 1 KiB,
64 KiB and 1 MiB objects, then for each target (direct, HAProxy, NGINX, Miresga kernel
relay, Miresga kernel sockmap) and each object and connection mode (keep-alive, one
connection per request) run wrk for a fixed time. Reports requests/s, p50/p99 latency, load
balancer CPU seconds per request (utime + stime of the LB's processes, /proc) and each as a
ratio to HAProxy; writes bench/results/latest.md, latest.json and PNG plots.
"""

from __future__ import annotations

import json
import os
import platform
import re
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .topology import BE_IP, LB_IP, Topology, cpu_seconds, descendants, wait_port

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
OBJECTS = {"1k": 1024, "64k": 65536, "1m": 1 << 20}
BACKEND_PORTS = (8081, 8082)
WORKERS = 2
TARGETS = {"direct": 8081, "haproxy": 9001, "nginx": 9002, "miresga-relay": 9003,
           "miresga-sockmap": 9004, "miresga-native": 9005}


@dataclass
class Result:
    target: str
    obj: str
    mode: str  # keep-alive | close
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_us_per_req: float | None
    errors: int


def _nginx_backend_conf(root: Path, tmp: Path) -> str:
    servers = "\n".join(f"server {{ listen {BE_IP}:{p} reuseport backlog=4096; root {root}; "
                        f"keepalive_requests 1000000; access_log off; }}"
                        for p in BACKEND_PORTS)
    return (f"worker_processes 1; daemon off; pid {tmp}/be.pid; error_log {tmp}/be.err;\n"
            f"events {{ worker_connections 4096; }}\n"
            f"http {{ sendfile on; tcp_nopush on; {servers} }}\n")


def _nginx_lb_conf(tmp: Path) -> str:
    ups = " ".join(f"server {BE_IP}:{p};" for p in BACKEND_PORTS)
    return (f"worker_processes {WORKERS}; daemon off; pid {tmp}/lb.pid; "
            f"error_log {tmp}/lb.err;\nevents {{ worker_connections 4096; }}\n"
            f"http {{ access_log off; upstream be {{ {ups} keepalive 64; }}\n"
            f"server {{ listen {LB_IP}:{TARGETS['nginx']} reuseport backlog=4096; "
            f"keepalive_requests 1000000; location / {{ proxy_pass http://be; "
            f"proxy_http_version 1.1; proxy_set_header Connection \"\"; "
            f"proxy_buffering on; }} }} }}\n")


def _haproxy_conf() -> str:
    servers = "\n".join(f"  server b{i} {BE_IP}:{p}" for i, p in enumerate(BACKEND_PORTS))
    return (f"global\n  nbthread {WORKERS}\n  maxconn 4000\ndefaults\n  mode http\n"
            f"  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n"
            f"  option http-keep-alive\n  http-reuse always\n"
            f"frontend fe\n  bind {LB_IP}:{TARGETS['haproxy']}\n  default_backend be\n"
            f"backend be\n  balance roundrobin\n{servers}\n")


def _miresga_conf(splice: str, port: int) -> str:
    backends = ", ".join(f'{{ address = "{BE_IP}:{p}", name = "b{i}" }}'
                         for i, p in enumerate(BACKEND_PORTS))
    how = 'engine = "native"' if splice == "native" else f'splice = "{splice}"'
    return (f'[dataplane]\nkind = "kernel"\n[dataplane.kernel]\nworkers = {WORKERS}\n'
            f'{how}\n[[listeners]]\nname = "web"\n'
            f'listen = "{LB_IP}:{port}"\nprotocol = "http1"\ndefault_pool = "web"\n'
            f'forwarded_for = false\n'
            f'[pools.web]\npolicy = "round-robin"\nbackends = [{backends}]\n')


def _wrk(topo: Topology, port: int, obj: str, mode: str, seconds: float, conns: int
         ) -> tuple[float, float, float, int]:
    argv = ["wrk", "-t2", f"-c{conns}", f"-d{seconds}s", "--latency",
            f"http://{LB_IP if port != TARGETS['direct'] else BE_IP}:{port}/{obj}"]
    if mode == "close":
        argv[1:1] = ["-H", "Connection: close"]
    out = topo.run("cli", argv, timeout=seconds + 30)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    lat = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", out, re.M))
    errors = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors += int(non2xx.group(1)) if non2xx else 0
    return rps, _ms(lat.get("50", "0ms")), _ms(lat.get("99", "0ms")), errors


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    if not m:
        return 0.0
    return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]


def _start_lb(topo: Topology, name: str, tmp: Path) -> list[object]:
    """Start load balancer ``name`` in the lb namespace; returns its Popen (or [])."""
    if name == "direct":
        return []
    if name == "haproxy":
        (tmp / "haproxy.cfg").write_text(_haproxy_conf())
        argv = ["haproxy", "-db", "-f", str(tmp / "haproxy.cfg")]
    elif name == "nginx":
        (tmp / "lb.conf").write_text(_nginx_lb_conf(tmp))
        argv = ["nginx", "-c", str(tmp / "lb.conf")]
    else:
        splice = name.split("-", 1)[1]
        conf = tmp / f"{name}.toml"
        conf.write_text(_miresga_conf(splice, TARGETS[name]))
        argv = [sys.executable, "-m", "miresga_core.cli", "serve", "-c", str(conf)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO), str(REPO / "plugins" / "http1"), str(REPO / "plugins" / "policies")]))
    proc = topo.spawn("lb", argv, tmp / f"{name}.log", env=env)
    try:
        wait_port(topo, "cli", LB_IP, TARGETS[name], timeout=20)
    except RuntimeError:
        topo.stop(proc)
        raise RuntimeError(f"{name} did not start:\n" +
                           (tmp / f"{name}.log").read_text()[-2000:]) from None
    return [proc]


def run(quick: bool = False, out_dir: Path = RESULTS) -> list[Result]:
    seconds = 2 if quick else 5
    conns = 16
    modes = ["keep-alive", "close"]
    topo = Topology("mrb")
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="mrb-bench-") as tmpname:
        tmp = Path(tmpname)
        tmp.chmod(0o755)  # nginx workers run unprivileged
        root = tmp / "www"
        root.mkdir(mode=0o755)
        for obj, size in OBJECTS.items():
            (root / obj).write_bytes(os.urandom(size))
        try:
            topo.up()
            (tmp / "be.conf").write_text(_nginx_backend_conf(root, tmp))
            topo.spawn("be", ["nginx", "-c", str(tmp / "be.conf")], tmp / "be.log")
            wait_port(topo, "cli", BE_IP, BACKEND_PORTS[0])
            total = len(TARGETS) * len(OBJECTS) * len(modes)
            done = 0
            for target in TARGETS:
                procs = _start_lb(topo, target, tmp)
                try:
                    for obj in OBJECTS:
                        for mode in modes:
                            done += 1
                            print(f"[{done:2d}/{total}] {target:16s} {obj:>3s} {mode:10s} ...",
                                  end="", flush=True)
                            results.append(_measure(topo, target, obj, mode, seconds, conns,
                                                    procs))
                            r = results[-1]
                            print(f" {r.rps:9.0f} req/s  p99 {r.p99_ms:7.2f} ms"
                                  + (f"  {r.cpu_us_per_req:6.1f} us cpu/req"
                                     if r.cpu_us_per_req is not None else ""), flush=True)
                finally:
                    for proc in procs:
                        topo.stop(proc)  # type: ignore[arg-type]
        finally:
            topo.close()
    _write(results, out_dir, quick, seconds, conns)
    return results


def _measure(topo: Topology, target: str, obj: str, mode: str, seconds: float, conns: int,
             procs: list[object]) -> Result:
    pids = [p for proc in procs for p in descendants(proc.pid)]  # type: ignore[attr-defined]
    before = cpu_seconds(pids)
    rps, p50, p99, errors = _wrk(topo, TARGETS[target], obj, mode, seconds, conns)
    used = cpu_seconds(pids) - before
    reqs = rps * seconds
    cpu = used / reqs * 1e6 if procs and reqs else None
    return Result(target, obj, mode, rps, p50, p99, cpu, errors)


def _ratio(value: float | None, base: float | None) -> str:
    if value is None or not base:
        return "-"
    return f"{value / base:.2f}x"


def _write(results: list[Result], out_dir: Path, quick: bool, seconds: float, conns: int
           ) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    base = {(r.obj, r.mode): r for r in results if r.target == "haproxy"}
    lines = [
        "# Miresga benchmark (latest run)", "",
        f"Machine: {platform.node()}, {os.cpu_count()} CPUs, Linux {platform.release()}; "
        f"load average {os.getloadavg()[0]:.2f} when the report was written; clients, load "
        "balancer and backends share these CPUs, so compare ratios, not absolute numbers.",
        f"Run: `miresga bench{' --quick' if quick else ''}` on "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; wrk -t2 -c{conns}, "
        f"{seconds} s per cell; every load balancer has {WORKERS} workers/threads; "
        "nginx backends (2) in their own namespace, clients in another.",
        "HTTP/2 (h2load) and the `xdp` data plane are not part of this benchmark yet.",
        "LB CPU = utime + stime of the load balancer's processes (/proc); kernel work done "
        "for them in softirq context is counted only when it ran in their context, and the "
        "kworkers that send sockmap-redirected bytes are not counted at all.", "",
        "| target | object | connections | req/s | vs HAProxy | p50 ms | p99 ms | "
        "LB CPU us/req | vs HAProxy | errors |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        b = base.get((r.obj, r.mode))
        cpu = f"{r.cpu_us_per_req:.1f}" if r.cpu_us_per_req is not None else "-"
        lines.append(
            f"| {r.target} | {r.obj} | {r.mode} | {r.rps:.0f} | "
            f"{_ratio(r.rps, b.rps if b else None)} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | {cpu} | "
            f"{_ratio(r.cpu_us_per_req, b.cpu_us_per_req if b else None)} | {r.errors} |")
    lines += ["", "![requests/s](rps.png)", "![LB CPU per request](cpu.png)", ""]
    (out_dir / "latest.md").write_text("\n".join(lines) + "\n")
    (out_dir / "latest.json").write_text(json.dumps([asdict(r) for r in results], indent=1))
    _plots(results, out_dir)
    print(f"wrote {out_dir / 'latest.md'}")


def _plots(results: list[Result], out_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for metric, fname, label in (("rps", "rps.png", "requests/s"),
                                 ("cpu_us_per_req", "cpu.png", "LB CPU us per request")):
        fig, axes = plt.subplots(1, 2, figsize=(12, 4))
        for ax, mode in zip(axes, ("keep-alive", "close"), strict=True):
            targets = [t for t in TARGETS if metric == "rps" or t != "direct"]
            width = 0.8 / len(targets)
            for i, target in enumerate(targets):
                vals = [next((getattr(r, metric) or 0 for r in results
                              if r.target == target and r.obj == obj and r.mode == mode), 0)
                        for obj in OBJECTS]
                ax.bar([x + i * width for x in range(len(OBJECTS))], vals, width, label=target)
            ax.set_xticks([x + 0.4 - width / 2 for x in range(len(OBJECTS))], list(OBJECTS))
            ax.set_title(f"{label}, {mode}")
            ax.set_yscale("log")
        axes[0].legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out_dir / fname, dpi=90)
        plt.close(fig)
