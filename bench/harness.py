"""`miresga bench`: Miresga side by side with HAProxy, NGINX and a direct connection.

One run = ``repeat`` passes; each pass runs every selected target in every cell of every
selected section (bench/sections.py), so the passes interleave targets and a disturbance of
the machine hits one pass, not one target. Per cell: wrk (HTTP/1.1) or h2load (HTTP/2) for
a fixed time from the client namespace, the load balancer's CPU time (utime + stime of its
processes) before/after. Then the front-end packets/s section (bench/fe_pps.py). The
figures (bench/report.py) go to latest.md / latest.json and PNG plots; docs/bench.md.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from miresga_core.errors import MiresgaError

from . import clients, cpu, peers, report
from .report import Report, Sample, Skip
from .sections import OBJECTS, KernelSection, Skipped, Started, XdpSection
from .topology import Hosts, descendants

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
SECTIONS = ("kernel", "xdp", "fe-pps")
PROTOCOLS = ("http1", "http2")
MODES = ("keep-alive", "close")
# what the ETA assumes besides the measuring time itself (seconds; fitted to runs on this
# 2-CPU machine: 56 cells of 2 s with every target took 168 s)
COST = {"cell": 0.3, "start": 0.5, "start-miresga": 1.5, "start-xdp": 3.0,
        "setup-kernel": 2.0, "setup-xdp": 4.0, "fe-pps": 4.0}

__all__ = ["Options", "describe", "main_targets", "plan", "run"]


@dataclass
class Options:
    quick: bool = False
    seconds: float | None = None       # per cell; default 5 (2 with quick)
    repeat: int | None = None          # passes; default 2 (1 with quick)
    only: list[str] | None = None      # targets
    objects: list[str] | None = None
    protocols: list[str] | None = None
    modes: list[str] | None = None
    sections: list[str] | None = None
    out_dir: Path | None = None
    prefix: str = "mrb"                # namespaces: <prefix>-cli/lb/be, <prefix>x-sw/...
    argv: list[str] = field(default_factory=list)  # the command line, for the report

    @property
    def cell_seconds(self) -> float:
        return self.seconds if self.seconds is not None else (2 if self.quick else 5)

    @property
    def passes(self) -> int:
        return self.repeat if self.repeat is not None else (1 if self.quick else 2)

    @property
    def partial(self) -> bool:
        return self.quick or any(x is not None for x in (
            self.only, self.objects, self.protocols, self.modes, self.sections, self.seconds,
            self.repeat))


@dataclass
class Step:
    """One target of one section and protocol, with the cells it runs."""
    section: str
    protocol: str
    target: str
    cells: list[tuple[str, str]]   # (object, mode)


def main_targets() -> list[str]:
    """Every target name, in report order."""
    names: list[str] = []
    for t in ["direct", "haproxy", "nginx", *peers.MIRESGA_KERNEL, *peers.MIRESGA_H2,
              *XdpSection.FRONTENDS]:
        if t not in names:
            names.append(t)
    return names


def _pick(name: str, given: list[str] | None, known: Sequence[str]) -> list[str]:
    if given is None:
        return list(known)
    bad = [g for g in given if g not in known]
    if bad:
        raise ValueError(f"unknown {name} {', '.join(bad)} (known: {', '.join(known)})")
    return [k for k in known if k in given]


def plan(opts: Options, sections: dict[str, Any]) -> list[Step]:
    """The steps of one pass (ValueError names an unknown selection)."""
    wanted = _pick("section", opts.sections, SECTIONS)
    protocols = _pick("protocol", opts.protocols, PROTOCOLS)
    objects = _pick("object", opts.objects, list(OBJECTS))
    modes = _pick("mode", opts.modes, MODES)
    only = _pick("target", opts.only, main_targets())
    steps = []
    for name in wanted:
        sec = sections.get(name)
        if sec is None:
            continue
        for protocol in sec.protocols:
            if protocol not in protocols:
                continue
            cells = [(o, m) for o in objects for m in sec.modes(protocol) if m in modes]
            steps += [Step(name, protocol, t, cells) for t in sec.targets(protocol)
                      if t in only and cells]
    return steps


def _cost(steps: list[Step], seconds: float) -> float:
    total = 0.0
    for s in steps:
        start = ("start-xdp" if s.target.startswith("xdp-") else
                 "start-miresga" if s.target.startswith("miresga") else
                 "start" if s.target != "direct" else None)
        total += (COST[start] if start else 0) + len(s.cells) * (seconds + COST["cell"])
    return total


def _fmt(seconds: float) -> str:
    return f"{int(seconds) // 60}m{int(seconds) % 60:02d}s"


def _tool_versions() -> str:
    out = []
    for argv in (["wrk", "--version"], ["h2load", "--version"], ["haproxy", "-v"],
                 ["nginx", "-v"]):
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            first = (r.stdout or r.stderr).strip().splitlines()
            out.append(first[0] if first else argv[0])
        except (OSError, subprocess.TimeoutExpired):
            out.append(f"{argv[0]}: not installed")
    return "; ".join(out)


# ---------------------------------------------------------------------- measuring

def _measure(hosts: Hosts, started: Started, protocol: str, obj: str, mode: str,
             seconds: float) -> clients.ClientResult:
    """Run the client (split over ``started.urls``, all at once) and sum what they did."""
    n = len(started.urls)
    threads, conns = max(1, clients.THREADS // n), max(1, clients.CONNS // n)
    procs = []
    for url in started.urls:
        argv = (clients.h2load_argv(f"{url}/{obj}", seconds, threads, conns)
                if protocol == "http2" else
                clients.wrk_argv(f"{url}/{obj}", seconds, mode, threads, conns))
        procs.append(subprocess.Popen(hosts.cmd("cli", argv), stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    outs = []
    for p in procs:
        try:
            outs.append(p.communicate(timeout=seconds + 60)[0])
        except subprocess.TimeoutExpired:
            p.kill()
            outs.append(p.communicate()[0])
    parse = clients.parse_h2load if protocol == "http2" else clients.parse_wrk
    results = [parse(o) for o in outs]
    lat = {k: sum(r.lat_ms.get(k, 0.0) for r in results) / n for k in results[0].lat_ms}
    return clients.ClientResult(sum(r.rps for r in results), lat,
                                sum(r.errors for r in results))


def _sample(sec: Any, started: Started, step: Step, obj: str, mode: str, rep: int,
            seconds: float) -> Sample:
    pids = [p for proc in started.procs for p in descendants(proc.pid)]
    before = cpu.snapshot(pids)
    res = _measure(sec.hosts, started, step.protocol, obj, mode, seconds)
    per = cpu.usage(before, cpu.snapshot(pids)).per_request(res.rps * seconds)
    lb = started.procs != []  # direct: no load balancer process to charge
    return Sample(step.section, step.protocol, step.target, obj, mode, rep, res.rps,
                  res.lat_ms, per["lb"] if lb else None, res.errors,
                  per["lb_with_helpers"] if lb else None, per["machine"])


class Progress:
    """Cells done and the estimated cost left; the ETA scales the estimate left by how
    long the estimate done so far really took."""

    def __init__(self, total_cells: int, expected: float) -> None:
        self.total, self.expected, self.left = total_cells, expected, expected
        self.done, self.t0 = 0, time.monotonic()

    def spend(self, cost: float) -> None:
        self.left = max(0.0, self.left - cost)

    def eta(self) -> str:
        spent = self.expected - self.left
        elapsed = time.monotonic() - self.t0
        return _fmt(self.left * (elapsed / spent if spent > 0 else 1.0))

    def line(self, text: str) -> None:
        self.done += 1
        print(f"[{self.done:3d}/{self.total}] {text}", end="", flush=True)


TOOLS = {"wrk": "wrk", "h2load": "nghttp2-client", "haproxy": "haproxy", "nginx": "nginx"}


def _check_tools(step: Step) -> None:
    """Skipped (with the package to install) when a program this step runs is missing."""
    need = ["h2load" if step.protocol == "http2" else "wrk"]
    need += [step.target] if step.target in ("haproxy", "nginx") else []
    missing = [t for t in need if shutil.which(t) is None]
    if missing:
        raise Skipped(f"not installed: {', '.join(missing)} (apt package "
                      f"{', '.join(TOOLS[t] for t in missing)}; scripts/bootstrap.sh)")


def _run_step(sec: Any, step: Step, rep: int, opts: Options, rep_out: Report,
              progress: Progress) -> None:
    seconds = opts.cell_seconds
    try:
        _check_tools(step)
        started = sec.start(step.target, step.protocol)
        progress.spend(_cost([Step(step.section, step.protocol, step.target, [])], seconds))
    except (Skipped, RuntimeError, OSError, MiresgaError) as e:
        reason = str(e).strip()
        kind = "skipped" if isinstance(e, Skipped) else "failed to start"
        print(f"  {step.section} {step.protocol} {step.target}: {kind}: "
              f"{reason.splitlines()[0] if reason else type(e).__name__}", flush=True)
        where = f"{step.section} {step.protocol} {step.target}"
        if not any(s.where == where for s in rep_out.skips):
            rep_out.skips.append(Skip(where, f"{kind}: {reason[-600:]}"))
        progress.done += len(step.cells)
        progress.spend(_cost([step], seconds))
        return
    try:
        for obj, mode in step.cells:
            progress.line(f"pass {rep} {step.section:6s} {step.protocol} {step.target:17s} "
                          f"{obj:>3s} {mode:10s} ...")
            try:
                s = _sample(sec, started, step, obj, mode, rep, seconds)
            except clients.ClientError as e:
                print(f" client failed: {str(e).splitlines()[0]}", flush=True)
                rep_out.skips.append(Skip(f"{step.section} {step.protocol} {step.target} "
                                          f"{obj} {mode} pass {rep}", str(e)[-600:]))
                continue
            finally:
                sec.tick(started)
                progress.spend(seconds + COST["cell"])
            rep_out.samples.append(s)
            lat = " ".join(f"{k} {v:.2f}" for k, v in s.lat_ms.items() if k in
                           ("p99", "mean"))
            cpu = f"  {s.cpu_us_per_req:7.1f} us cpu/req" if s.cpu_us_per_req else ""
            err = f"  {s.errors} errors" if s.errors else ""
            print(f" {s.rps:9.0f} req/s  {lat} ms{cpu}{err}  ETA {progress.eta()}",
                  flush=True)
    finally:
        sec.stop(started)


def expected(opts: Options) -> tuple[list[Step], bool, float]:
    """The steps of one pass, whether the packets/s section runs, the expected seconds."""
    sections = {"kernel": KernelSection(Path("/nonexistent")),
                "xdp": XdpSection(Path("/nonexistent"))}
    steps = plan(opts, sections)
    want_pps = "fe-pps" in _pick("section", opts.sections, SECTIONS) and opts.only is None
    per_pass = _cost(steps, opts.cell_seconds) + (COST["fe-pps"] if want_pps else 0)
    return steps, want_pps, per_pass * opts.passes + sum(
        COST[f"setup-{u}"] for u in {s.section for s in steps})


def describe(opts: Options) -> str:
    """What a run with ``opts`` does and about how long it takes (ValueError: bad selection)."""
    steps, want_pps, secs = expected(opts)
    cells = sum(len(s.cells) for s in steps)
    return (f"{cells} cells per pass ({len(steps)} target runs)"
            f"{' + front-end packets/s' if want_pps else ''}, {opts.passes} pass(es), "
            f"{opts.cell_seconds:g} s per cell; expected duration about {_fmt(secs)}")


def run(opts: Options) -> Report:
    seconds = opts.cell_seconds
    out = Report()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="mrb-bench-") as tmpname:
        tmp = Path(tmpname)
        tmp.chmod(0o755)  # nginx workers run unprivileged
        sections: dict[str, Any] = {"kernel": KernelSection(tmp, opts.prefix),
                                    "xdp": XdpSection(tmp, f"{opts.prefix}x-")}
        steps = plan(opts, sections)
        _, want_pps, secs = expected(opts)
        print(f"miresga bench: {describe(opts)}", flush=True)
        progress = Progress(sum(len(s.cells) for s in steps) * opts.passes, secs)
        up: list[Any] = []
        broken: list[Any] = []
        try:
            for rep in range(1, opts.passes + 1):
                for step in steps:
                    sec = sections[step.section]
                    if sec not in up and sec not in broken:
                        _setup(sec, up, broken, out)
                        progress.spend(COST[f"setup-{sec.name}"])
                    if sec in broken:
                        progress.done += len(step.cells)
                        progress.spend(_cost([step], seconds))
                        continue
                    _run_step(sec, step, rep, opts, out, progress)
                if want_pps:
                    _run_pps(rep, out)
                    progress.spend(COST["fe-pps"])
        finally:
            for sec in reversed(up):
                sec.teardown()
    elapsed = time.monotonic() - progress.t0
    out_dir = opts.out_dir or (RESULTS / "partial" if opts.partial else RESULTS)
    write(out, out_dir, opts, elapsed, load_before)
    return out


def _setup(sec: Any, up: list[Any], broken: list[Any], out: Report) -> None:
    """Set ``sec`` up; on failure its targets are skipped with the reason (and what it had
    built is taken down)."""
    print(f"setting up the {sec.name} topology ...", flush=True)
    up.append(sec)
    try:
        sec.setup()
    except Exception as e:
        print(f"  {sec.name} topology failed: {str(e).splitlines()[0] if str(e) else e!r}",
              flush=True)
        out.skips.append(Skip(f"{sec.name} section", f"set-up failed: {str(e)[-600:]}"))
        broken.append(sec)


def _run_pps(rep: int, out: Report) -> None:
    from . import fe_pps

    print(f"pass {rep} fe-pps: front-end machine packets/s, Python vs C ...", end="",
          flush=True)
    try:
        s = fe_pps.measure(rep)
    except Exception as e:
        print(f" failed: {e}", flush=True)
        out.skips.append(Skip(f"fe-pps pass {rep}", f"failed: {e}"))
        return
    out.pps.append(s)
    c = f"{s.c_pps:,.0f}" if s.c_pps is not None else "-"
    print(f" {s.packets} packets; Python {s.python_pps:,.0f} pkt/s; C {c} pkt/s; "
          f"identical: {s.identical}{'; ' + s.note if s.note else ''}", flush=True)


# ---------------------------------------------------------------------- output

def _header(opts: Options, elapsed: float, load_before: float) -> list[str]:
    cmd = "miresga bench" + (" " + shlex.join(opts.argv) if opts.argv else "")
    return [
        "# Miresga benchmark (latest run)", "",
        f"- Machine: {platform.node()}, {os.cpu_count()} CPUs, Linux {platform.release()}, "
        f"load average {load_before:.2f} before the run and {os.getloadavg()[0]:.2f} at its "
        "end; clients, load balancers and "
        "backends share these CPUs, so compare ratios within this run, not absolute numbers.",
        f"- Tools: {_tool_versions()}.",
        f"- Run: `{cmd}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{opts.passes} pass(es) interleaving the targets, {opts.cell_seconds:g} s per cell, "
        f"{_fmt(elapsed)} in all. Figures are medians over the passes, min-max the spread.",
        f"- Clients: wrk -t{clients.THREADS} -c{clients.CONNS} (HTTP/1.1); h2load "
        f"-t{clients.THREADS} -c{clients.CONNS} -m{clients.STREAMS} (HTTP/2 prior knowledge; "
        "latency = its 'time for request' mean and max). Every load balancer has "
        f"{peers.WORKERS} workers/threads.",
        "- CPU per request (bench/cpu.py): LB = utime + stime of the load balancer's "
        "processes (/proc); LB+kernel helpers adds the kworker/ksoftirqd threads over the "
        "cell (where sockmap-redirected bytes are sent; machine-wide); machine = all busy "
        "CPU of the machine (clients and backends included, the same for every target). "
        "Softirq work done in other processes' context (XDP, forwarding) is only in "
        "machine.",
        "- Sections and caveats: docs/bench.md.", ""]


def write(out: Report, out_dir: Path, opts: Options, elapsed: float,
          load_before: float) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = _plots(out, out_dir)
    kernel = list(peers.MIRESGA_KERNEL)
    text = report.markdown(out, _header(opts, elapsed, load_before), main_targets(), kernel,
                           plots)
    (out_dir / "latest.md").write_text(text)
    sums = report.summarize(out.samples)
    (out_dir / "latest.json").write_text(json.dumps({
        "command": ["miresga", "bench", *opts.argv], "passes": opts.passes,
        "seconds_per_cell": opts.cell_seconds, "tie": report.TIE,
        "samples": [asdict(s) for s in out.samples],
        "summaries": [asdict(s) for s in sums],
        "rankings": [{**asdict(r), "agree": r.agree}
                     for r in report.cell_rankings(out.samples)],
        "checks": [{**asdict(c), "met": c.met} for c in report.target_checks(sums, kernel)],
        "fe_pps": [asdict(p) for p in out.pps],
        "skipped": [asdict(s) for s in out.skips]}, indent=1))
    print(f"wrote {out_dir / 'latest.md'}")


PLOTS = {("kernel", "http1", "rps"): "rps.png", ("kernel", "http1", "cpu"): "cpu.png",
         ("kernel", "http2", "rps"): "rps-h2.png", ("xdp", "http1", "rps"): "rps-xdp.png"}


def _plots(out: Report, out_dir: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sums = report.summarize(out.samples)
    written = []
    for (section, protocol, metric), fname in PLOTS.items():
        rows = [s for s in sums if s.cell.section == section and s.cell.protocol == protocol
                and (metric == "rps" or s.cpu_us_per_req is not None)]
        if not rows:
            continue
        modes = [m for m in MODES if any(s.cell.mode == m for s in rows)]
        targets = [t for t in main_targets() if any(s.target == t for s in rows)]
        objs = [o for o in OBJECTS if any(s.cell.obj == o for s in rows)]
        fig, axes = plt.subplots(1, len(modes), figsize=(6 * len(modes), 4), squeeze=False)
        width = 0.8 / len(targets)
        for ax, mode in zip(axes[0], modes, strict=True):
            for i, target in enumerate(targets):
                got = {s.cell.obj: s for s in rows if s.target == target and s.cell.mode == mode}
                xs = [x + i * width for x, o in enumerate(objs) if o in got]
                if metric == "rps":
                    vals = [got[o].rps for o in objs if o in got]
                    err = [[got[o].rps - got[o].rps_min for o in objs if o in got],
                           [got[o].rps_max - got[o].rps for o in objs if o in got]]
                    ax.bar(xs, vals, width, yerr=err, capsize=2, label=target)
                else:
                    ax.bar(xs, [got[o].cpu_us_per_req or 0 for o in objs if o in got], width,
                           label=target)
            ax.set_xticks([x + 0.4 - width / 2 for x in range(len(objs))], objs)
            ax.set_title(f"{section} {protocol}: "
                         f"{'requests/s' if metric == 'rps' else 'LB CPU us/request'}, {mode}")
            ax.set_yscale("log")
        axes[0][0].legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out_dir / fname, dpi=90)
        plt.close(fig)
        written.append(fname)
    return written

