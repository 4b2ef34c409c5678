"""Small, bounded reproduction of the benchmark's relay-vs-sockmap cells (docs/splice.md).

The same veth topology as ``miresga bench`` (bench/topology.py) under its own namespace
prefix, one nginx backend pair, and two Miresga ``kernel`` load balancers started side by
side (relay and sockmap); then, ``--rounds`` times, one wrk cell per (object, target),
alternating targets so both see the same machine load. Per cell it prints req/s, p50/p99,
CPU per request (the LB's processes, kernel helper threads, softirq, whole machine: see
bench/cpu.py), TCP segments per request in the load balancer's namespace, and the splice
verdict program's runs and run time (``kernel.bpf_stats_enabled`` is switched on for the
run and restored, and said so).

  python -m bench.splice_probe [--seconds 3] [--rounds 3] [--objects 64k,1m] [--conns 16]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pyroute2.netlink.exceptions import NetlinkError

from . import cpu
from .topology import BE_IP, LB_IP, Topology, descendants, wait_port

REPO = Path(__file__).resolve().parents[1]


def _size(name: str) -> int:
    """"64k" -> 65536, "1m" -> 1048576, "100" -> 100."""
    m = re.fullmatch(r"(\d+)([km]?)", name)
    if not m:
        raise SystemExit(f"bad object size {name!r} (e.g. 1k, 64k, 1m)")
    return int(m.group(1)) << {"": 0, "k": 10, "m": 20}[m.group(2)]
PORTS = {"relay": 9103, "sockmap": 9104, "sockmap-b": 9105}
BACKEND_PORTS = (8081, 8082)


def _backend_conf(root: Path, tmp: Path) -> str:
    servers = "\n".join(f"server {{ listen {BE_IP}:{p} reuseport backlog=4096; root {root}; "
                        f"keepalive_requests 1000000; access_log off; }}"
                        for p in BACKEND_PORTS)
    return (f"worker_processes 1; daemon off; pid {tmp}/be.pid; error_log {tmp}/be.err;\n"
            f"events {{ worker_connections 4096; }}\n"
            f"http {{ sendfile on; tcp_nopush on; {servers} }}\n")


def _miresga_conf(splice: str, port: int, workers: int, extra: str = "") -> str:
    backends = ", ".join(f'{{ address = "{BE_IP}:{p}", name = "b{i}" }}'
                         for i, p in enumerate(BACKEND_PORTS))
    return (f'[dataplane]\nkind = "kernel"\n[dataplane.kernel]\nworkers = {workers}\n'
            f'splice = "{splice}"\n{extra}[[listeners]]\nname = "web"\n'
            f'listen = "{LB_IP}:{port}"\nprotocol = "http1"\ndefault_pool = "web"\n'
            f'forwarded_for = false\n'
            f'[pools.web]\npolicy = "round-robin"\nbackends = [{backends}]\n')


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)] if m else 0.0


def _tcp_counters(topo: Topology, role: str) -> dict[str, int]:
    text = topo.run(role, ["cat", "/proc/net/snmp"])
    rows = [line.split()[1:] for line in text.splitlines() if line.startswith("Tcp:")]
    return dict(zip(rows[0], (int(v) for v in rows[1]), strict=True))


def _link_packets(topo: Topology) -> tuple[int, int]:
    """(packets the LB sent to the client link, packets it received from the backends);
    a GSO packet counts once, so this shows how the kernel batched the bytes."""
    out = topo.run("lb", ["cat", "/sys/class/net/c0b/statistics/tx_packets",
                          "/sys/class/net/b0a/statistics/rx_packets"])
    tx, rx = (int(v) for v in out.split())
    return tx, rx


def _verdict_stats() -> tuple[int, int]:
    """(runs, run ns) of all loaded splice verdict programs (this bpftool has no pids:
    other users of the program on the machine would be counted too)."""
    out = subprocess.run(["bpftool", "-j", "prog", "show", "name", "splice_verdict"],
                         capture_output=True, text=True, check=False).stdout
    try:
        progs = json.loads(out or "[]")
    except ValueError:
        return 0, 0
    progs = progs if isinstance(progs, list) else [progs]
    return (sum(p.get("run_cnt", 0) for p in progs),
            sum(p.get("run_time_ns", 0) for p in progs))


def _cell(topo: Topology, target: str, obj: str, seconds: float, conns: int,
          pids: list[int], close: bool) -> dict[str, float]:
    argv = ["wrk", "-t2", f"-c{conns}", f"-d{seconds:g}s", "--latency",
            f"http://{LB_IP}:{PORTS[target]}/{obj}"]
    if close:
        argv[1:1] = ["-H", "Connection: close"]  # one connection per request
    tcp0 = _tcp_counters(topo, "lb")
    link0 = _link_packets(topo)
    bpf0 = _verdict_stats()
    snap0 = cpu.snapshot(pids)
    out = topo.run("cli", argv, timeout=seconds + 30)
    used = cpu.usage(snap0, cpu.snapshot(pids))
    bpf1 = _verdict_stats()
    link1 = _link_packets(topo)
    tcp1 = _tcp_counters(topo, "lb")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    lat = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", out, re.M))
    errors = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    reqs = max(rps * seconds, 1.0)
    row: dict[str, float] = {"rps": rps, "p50": _ms(lat.get("50", "")),
                             "p99": _ms(lat.get("99", "")), "errors": errors}
    row.update({k: v or 0.0 for k, v in used.per_request(reqs).items()})
    row["pkts_cli"] = (link1[0] - link0[0]) / reqs
    row["pkts_be"] = (link1[1] - link0[1]) / reqs
    row["in_segs"] = (tcp1["InSegs"] - tcp0["InSegs"]) / reqs
    row["verdicts"] = (bpf1[0] - bpf0[0]) / reqs
    row["verdict_us"] = (bpf1[1] - bpf0[1]) / reqs / 1e3
    return row


def _start(topo: Topology, target: str, tmp: Path, workers: int, debug: bool,
           env_b: list[str], kernel_b: list[str], repo_b: Path | None) -> list[int]:
    conf = tmp / f"{target}.toml"
    extra = "".join(f"{kv}\n" for kv in kernel_b) if target == "sockmap-b" else ""
    conf.write_text(_miresga_conf(target.split("-")[0], PORTS[target], workers, extra))
    repo = repo_b if target == "sockmap-b" and repo_b else REPO  # e.g. an older checkout
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(repo), str(repo / "plugins" / "http1"), str(repo / "plugins" / "policies")]))
    if debug:
        env["MIRESGA_SPLICE_DEBUG"] = "1"
    if target == "sockmap-b":  # the same data plane with an experiment switched on
        for kv in env_b:
            key, _, value = kv.partition("=")
            env[key] = value
    proc = topo.spawn("lb", [sys.executable, "-P", "-m", "miresga_core.cli", "serve", "-c",
                             str(conf)], tmp / f"{target}.log", env=env)
    try:
        wait_port(topo, "cli", LB_IP, PORTS[target], timeout=20)
    except RuntimeError:
        raise RuntimeError(f"{target} did not start:\n"
                           + (tmp / f"{target}.log").read_text()[-2000:]) from None
    time.sleep(0.5)  # workers forked
    return descendants(proc.pid)


def _up(topo: Topology, attempts: int = 3) -> None:
    """topo.up(), retried: on this shared machine another user's `ip netns add` can
    remount /run/netns while ours are being wired (seen as a vanished namespace)."""
    for attempt in range(attempts):
        try:
            topo.up()
            return
        except (OSError, IndexError, NetlinkError) as exc:
            print(f"topology setup failed ({exc!r}), retrying", flush=True)
            topo.close()
            if attempt == attempts - 1:
                raise
            time.sleep(1)


def _bpf_stats(on: bool) -> str:
    path = Path("/proc/sys/kernel/bpf_stats_enabled")
    old = path.read_text().strip()
    path.write_text("1\n" if on else "0\n")
    return old


FIELDS = ("rps", "p50", "p99", "lb", "helpers", "lb_with_helpers", "softirq", "machine",
          "pkts_cli", "pkts_be", "in_segs", "verdicts", "verdict_us")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--objects", default="64k,1m")
    ap.add_argument("--conns", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--targets", default="relay,sockmap")
    ap.add_argument("--prefix", default="mrsp")
    ap.add_argument("--env-b", action="append", default=[], metavar="KEY=VALUE",
                    help="environment of the target sockmap-b (an experiment)")
    ap.add_argument("--kernel-b", action="append", default=[], metavar="OPTION=VALUE",
                    help="[dataplane.kernel] option of sockmap-b, e.g. splice_min_body=262144")
    ap.add_argument("--close", action="store_true", help="one connection per request")
    ap.add_argument("--repo-b", type=Path, help="run sockmap-b from this checkout "
                    "(before/after comparisons in one run)")
    ap.add_argument("--debug", action="store_true", help="MIRESGA_SPLICE_DEBUG=1 (logs)")
    ap.add_argument("--hold", type=float, default=0,
                    help="after starting, wait this many seconds (poke it by hand) first")
    args = ap.parse_args(argv)
    objects = args.objects.split(",")
    targets = args.targets.split(",")
    topo = Topology(args.prefix)
    me = os.getpid()
    # clean up on kill too; only in this process: pyroute2's forked helpers inherit the
    # handler, and one of them unwinding into our `finally` would remove the namespaces
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1) if os.getpid() == me else os._exit(0))
    old_stats = _bpf_stats(True)
    print(f"kernel.bpf_stats_enabled: {old_stats} -> 1 for this run", flush=True)
    rows: dict[tuple[str, str], list[dict[str, float]]] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="mrsp-") as tmpname:
            tmp = Path(tmpname)
            tmp.chmod(0o755)
            root = tmp / "www"
            root.mkdir(mode=0o755)
            for obj in {*objects, "1k"}:  # wait_port fetches /1k
                (root / obj).write_bytes(os.urandom(_size(obj)))
            _up(topo)
            (tmp / "be.conf").write_text(_backend_conf(root, tmp))
            topo.spawn("be", ["nginx", "-c", str(tmp / "be.conf")], tmp / "be.log")
            wait_port(topo, "cli", BE_IP, BACKEND_PORTS[0])
            pids = {t: _start(topo, t, tmp, args.workers, args.debug, args.env_b,
                           args.kernel_b, args.repo_b) for t in targets}
            if args.hold:
                print(f"holding {args.hold:g} s: {pids}", flush=True)
                time.sleep(min(args.hold, 900))
            print("cell                 " + " ".join(f"{f:>9s}" for f in FIELDS))
            for rnd in range(args.rounds):
                for obj in objects:
                    order = targets if rnd % 2 == 0 else targets[::-1]
                    for target in order:
                        row = _cell(topo, target, obj, args.seconds, args.conns, pids[target],
                                    args.close)
                        rows.setdefault((target, obj), []).append(row)
                        print(f"{rnd} {target:8s} {obj:>4s}      " +
                              " ".join(f"{row[f]:9.1f}" for f in FIELDS), flush=True)
    finally:
        topo.close()
        _bpf_stats(old_stats == "1")
    _summary(rows, objects, targets)
    return 0


def _summary(rows: dict[tuple[str, str], list[dict[str, float]]], objects: list[str],
             targets: list[str]) -> None:
    print("\nmedian (min..max) over rounds; CPU in us per request")
    for obj in objects:
        for target in targets:
            cells = rows.get((target, obj), [])
            if not cells:
                continue
            parts = []
            for f in ("rps", "p50", "p99", "lb", "lb_with_helpers", "machine"):
                vals = [c[f] for c in cells]
                parts.append(f"{f} {statistics.median(vals):.1f} "
                             f"({min(vals):.1f}..{max(vals):.1f})")
            print(f"{target:8s} {obj:>4s}: " + ", ".join(parts))
        if "relay" in targets and "sockmap" in targets:
            rel, sm = rows.get(("relay", obj)), rows.get(("sockmap", obj))
            if rel and sm:
                ratios = [f"{f} {statistics.median(c[f] for c in sm) / max(statistics.median(c[f] for c in rel), 1e-9):.2f}x"  # noqa: E501
                          for f in ("rps", "lb", "lb_with_helpers", "machine")]
                print(f"  sockmap/relay {obj}: " + ", ".join(ratios))


if __name__ == "__main__":
    raise SystemExit(main())
