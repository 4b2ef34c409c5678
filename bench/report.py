"""The benchmark's figures from raw samples: medians, spread, rankings per pass, the issue
targets, and the markdown report. Pure functions (no I/O but ``write_json``); the unit test
is tests/unit/test_bench_report.py.

A *cell* is (section, protocol, object, connection mode); every target runs in every cell
once per pass. A *sample* is one measurement of one target in one cell in one pass.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

__all__ = ["TIE", "CellKey", "Check", "PpsSample", "Sample", "Summary", "best_peer",
           "cell_rankings", "flips", "markdown", "rank_groups", "ranking_text", "summarize",
           "target_checks"]

# Two targets whose requests/s differ by less than this fraction (of the larger) are a
# near-tie: shown as "=" in a ranking, and never counted as a flip between passes.
TIE = 0.05
PEERS = ("haproxy", "nginx")


@dataclass(frozen=True)
class CellKey:
    section: str    # "kernel" (namespaces + veth) | "xdp" (the xdp lab)
    protocol: str   # "http1" (wrk) | "http2" (h2load)
    obj: str        # "1k" | "64k" | "1m"
    mode: str       # "keep-alive" | "close"

    def label(self) -> str:
        return f"{self.section}/{self.protocol}/{self.obj}/{self.mode}"


@dataclass
class Sample:
    section: str
    protocol: str
    target: str
    obj: str
    mode: str
    rep: int                    # pass number, 1-based
    rps: float
    lat_ms: dict[str, float]    # wrk: p50, p99; h2load: mean, sd, max (request time)
    cpu_us_per_req: float | None  # None: no load balancer process (direct)
    errors: int
    # LB processes + kernel helper threads (kworker, ksoftirqd) over the cell (bench/cpu.py)
    helpers_us_per_req: float | None = None
    machine_us_per_req: float | None = None  # all busy CPU of the machine, every target

    @property
    def cell(self) -> CellKey:
        return CellKey(self.section, self.protocol, self.obj, self.mode)


@dataclass
class Summary:
    """The median over the passes of one target in one cell, with the spread."""
    cell: CellKey
    target: str
    n: int
    rps: float
    rps_min: float
    rps_max: float
    lat_ms: dict[str, float]
    cpu_us_per_req: float | None
    errors: int
    helpers_us_per_req: float | None = None
    machine_us_per_req: float | None = None


@dataclass
class PpsSample:
    rep: int
    packets: int
    python_pps: float
    c_pps: float | None         # None: the C library could not be built (reason in note)
    identical: bool | None      # C outputs == Python outputs (digest)
    note: str = ""


@dataclass
class Check:
    issue: str
    what: str
    cell: str
    ratio: float | None
    goal: float
    note: str = ""

    @property
    def met(self) -> bool | None:
        return None if self.ratio is None else self.ratio >= self.goal


@dataclass
class Skip:
    where: str
    reason: str


@dataclass
class Report:
    samples: list[Sample] = field(default_factory=list)
    pps: list[PpsSample] = field(default_factory=list)
    skips: list[Skip] = field(default_factory=list)


def summarize(samples: Iterable[Sample]) -> list[Summary]:
    groups: dict[tuple[CellKey, str], list[Sample]] = defaultdict(list)
    for s in samples:
        groups[(s.cell, s.target)].append(s)
    out = []
    for (cell, target), group in groups.items():
        rps = [s.rps for s in group]
        lat_keys = sorted({k for s in group for k in s.lat_ms})
        lat = {k: statistics.median(s.lat_ms[k] for s in group if k in s.lat_ms)
               for k in lat_keys}
        out.append(Summary(cell, target, len(group), statistics.median(rps), min(rps),
                           max(rps), lat, _median(s.cpu_us_per_req for s in group),
                           sum(s.errors for s in group),
                           _median(s.helpers_us_per_req for s in group),
                           _median(s.machine_us_per_req for s in group)))
    return out


def _median(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def _index(summaries: Iterable[Summary]) -> dict[CellKey, dict[str, Summary]]:
    out: dict[CellKey, dict[str, Summary]] = defaultdict(dict)
    for s in summaries:
        out[s.cell][s.target] = s
    return out


def best_peer(row: dict[str, Summary]) -> Summary | None:
    """The faster (median requests/s) of HAProxy and NGINX in one cell."""
    peers = [row[p] for p in PEERS if p in row]
    return max(peers, key=lambda s: s.rps) if peers else None


def ratio(value: float | None, base: float | None) -> float | None:
    if value is None or not base:
        return None
    return value / base


def rank_groups(rps: dict[str, float], tie: float = TIE) -> list[list[str]]:
    """Targets fastest first, adjacent near-ties joined in one group (a group starts anew
    when a target is more than ``tie`` below the group's first)."""
    groups: list[list[str]] = []
    top = 0.0
    for target, value in sorted(rps.items(), key=lambda kv: (-kv[1], kv[0])):
        if groups and value >= top * (1 - tie):
            groups[-1].append(target)
        else:
            groups.append([target])
            top = value
    return groups


def ranking_text(groups: list[list[str]]) -> str:
    return " > ".join(" = ".join(g) for g in groups)


def _order(a: float, b: float, tie: float) -> int:
    """1: a clearly faster, -1: b clearly faster, 0: near-tie."""
    hi = max(a, b)
    if hi == 0 or abs(a - b) < tie * hi:
        return 0
    return 1 if a > b else -1


def flips(passes: Sequence[dict[str, float]], tie: float = TIE) -> list[tuple[str, str]]:
    """Pairs of targets clearly ordered one way in one pass and the other way in another
    (a near-tie in either pass is not a flip)."""
    targets = sorted(set.intersection(*(set(p) for p in passes))) if passes else []
    out = []
    for i, a in enumerate(targets):
        for b in targets[i + 1:]:
            orders = {_order(p[a], p[b], tie) for p in passes} - {0}
            if len(orders) > 1:
                out.append((a, b))
    return out


@dataclass
class CellRanking:
    cell: CellKey
    per_pass: list[str]
    flipped: list[tuple[str, str]]

    @property
    def agree(self) -> bool:
        return not self.flipped


def cell_rankings(samples: Iterable[Sample], tie: float = TIE) -> list[CellRanking]:
    by_cell: dict[CellKey, dict[int, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    for s in samples:
        by_cell[s.cell][s.rep][s.target] = s.rps
    out = []
    for cell, reps in by_cell.items():
        passes = [reps[r] for r in sorted(reps)]
        out.append(CellRanking(cell, [ranking_text(rank_groups(p, tie)) for p in passes],
                               flips(passes, tie)))
    return out


# ---------------------------------------------------------------------- issue targets

def target_checks(summaries: Iterable[Summary], kernel_targets: Sequence[str],
                  xdp_targets: Sequence[str] = ("xdp-c", "xdp-python")) -> list[Check]:
    """Issue #8: each Miresga kernel variant vs the best peer (>= 1.0x at 64 KiB and 1 MiB,
    >= 0.9x at 1 KiB), and sockmap vs relay CPU at 1 MiB; issue #10: the xdp data plane with
    the C front-end (and the Python one, same goals) vs the best peer at 1 KiB (>= 1.0x) and
    vs direct at 64 KiB / 1 MiB (>= 0.9x), peers and direct measured in the xdp lab."""
    idx = _index(summaries)
    out = []
    for cell, row in sorted(idx.items(), key=lambda kv: _cell_order(kv[0])):
        peer = best_peer(row)
        if cell.section == "kernel" and cell.protocol == "http1":
            for t in kernel_targets:
                if t in row:
                    goal = 0.9 if cell.obj == "1k" else 1.0
                    out.append(Check("#8", f"{t} vs best peer"
                                     + (f" ({peer.target})" if peer else ""),
                                     f"{cell.obj} {cell.mode}",
                                     ratio(row[t].rps, peer.rps if peer else None), goal))
            relay, sockmap = row.get("miresga-relay"), row.get("miresga-sockmap")
            if cell.obj == "1m" and relay and sockmap:
                r = ratio(sockmap.cpu_us_per_req, relay.cpu_us_per_req)
                out.append(Check("#8", "sockmap LB CPU/req / relay's (lower: cheaper)",
                                 f"{cell.obj} {cell.mode}", r, 0.0,
                                 "a ratio, not a goal"))
                r = ratio(sockmap.helpers_us_per_req, relay.helpers_us_per_req)
                out.append(Check("#8", "the same with kernel helper threads counted",
                                 f"{cell.obj} {cell.mode}", r, 0.0,
                                 "a ratio, not a goal"))
        for xdp in xdp_targets if cell.section == "xdp" else ():
            if xdp not in row:
                continue
            if cell.obj == "1k":
                out.append(Check("#10", f"{xdp} vs best peer"
                                 + (f" ({peer.target})" if peer else ""),
                                 f"{cell.obj} {cell.mode}",
                                 ratio(row[xdp].rps, peer.rps if peer else None), 1.0))
            else:
                direct = row.get("direct")
                out.append(Check("#10", f"{xdp} vs direct", f"{cell.obj} {cell.mode}",
                                 ratio(row[xdp].rps, direct.rps if direct else None), 0.9))
    return out


# ---------------------------------------------------------------------- markdown

_OBJ_ORDER = {"1k": 0, "64k": 1, "1m": 2}
_SECTION_ORDER = {"kernel": 0, "xdp": 1}
_MODE_ORDER = {"keep-alive": 0, "close": 1}


def _cell_order(c: CellKey) -> tuple[int, str, int, int]:
    return (_SECTION_ORDER.get(c.section, 9), c.protocol, _OBJ_ORDER.get(c.obj, 9),
            _MODE_ORDER.get(c.mode, 9))


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _f(value: float | None, fmt: str = ".1f") -> str:
    return "-" if value is None else format(value, fmt)


SECTION_TITLES = {
    ("kernel", "http1"): "HTTP/1.1 (wrk), kernel topology",
    ("kernel", "http2"): "HTTP/2 cleartext (h2load), kernel topology",
    ("xdp", "http1"): "HTTP/1.1 (wrk), xdp lab topology",
}


def section_table(summaries: Sequence[Summary], section: str, protocol: str,
                  target_order: Sequence[str]) -> list[str]:
    idx = _index(s for s in summaries if s.cell.section == section
                 and s.cell.protocol == protocol)
    if not idx:
        return []
    lat_keys = ["p50", "p99"] if protocol == "http1" else ["mean", "max"]
    head = ("| target | object | conns | req/s (median) | min-max | vs HAProxy | vs best peer | "
            + " | ".join(f"{k} ms" for k in lat_keys)
            + " | LB CPU us/req | CPU vs HAProxy | LB+kernel helpers us/req | machine us/req"
            " | errors |")
    lines = [f"### {SECTION_TITLES.get((section, protocol), f'{section} {protocol}')}", "",
             head, "|---|---|---|" + "---:|" * (9 + len(lat_keys))]
    order = {t: i for i, t in enumerate(target_order)}
    for cell in sorted(idx, key=_cell_order):
        row = idx[cell]
        base, peer = row.get("haproxy"), best_peer(row)
        for target in sorted(row, key=lambda t: order.get(t, 99)):
            s = row[target]
            lat = " | ".join(_f(s.lat_ms.get(k), ".2f") for k in lat_keys)
            lines.append(
                f"| {target} | {cell.obj} | {cell.mode} | {s.rps:.0f} | "
                f"{s.rps_min:.0f}-{s.rps_max:.0f} | "
                f"{_x(ratio(s.rps, base.rps if base else None))} | "
                f"{_x(ratio(s.rps, peer.rps if peer else None))} | {lat} | "
                f"{_f(s.cpu_us_per_req)} | "
                f"{_x(ratio(s.cpu_us_per_req, base.cpu_us_per_req if base else None))} | "
                f"{_f(s.helpers_us_per_req)} | {_f(s.machine_us_per_req)} | {s.errors} |")
    return lines + [""]


def pps_table(pps: Sequence[PpsSample]) -> list[str]:
    if not pps:
        return []
    py = statistics.median(p.python_pps for p in pps)
    cs = [p.c_pps for p in pps if p.c_pps is not None]
    c = statistics.median(cs) if cs else None
    same = [p.identical for p in pps if p.identical is not None]
    notes = sorted({p.note for p in pps if p.note})
    return ["### Front-end machine, packets/s on one core (same trace, no I/O)", "",
            "| packets | runs | Python pkt/s (median) | C pkt/s (median) | C / Python | "
            "outputs identical |", "|---:|---:|---:|---:|---:|---|",
            f"| {pps[0].packets} | {len(pps)} | {py:,.0f} | {_f(c, ',.0f')} | "
            f"{_x(ratio(c, py))} | {'yes' if same and all(same) else ('-' if not same else 'NO')}"
            " |", *[f"\n{n}" for n in notes], ""]


def ranking_lines(rankings: Sequence[CellRanking]) -> list[str]:
    multi = [r for r in rankings if len(r.per_pass) > 1]
    if not rankings:
        return []
    if not multi:
        return ["### Ranking stability", "",
                "One pass per cell (`--repeat 1`): no ranking comparison.", ""]
    same = sum(r.agree for r in multi)
    n = max(len(r.per_pass) for r in multi)
    lines = ["### Ranking stability", "",
             f"Rankings identical in {same} of {len(multi)} cells (targets within "
             f"{TIE:.0%} of each other are a tie, `=`, and a tie is never a flip).", "",
             "| cell | " + " | ".join(f"pass {i + 1}" for i in range(n)) + " | same |",
             "|---|" + "---|" * (n + 1)]
    for r in sorted(multi, key=lambda r: _cell_order(r.cell)):
        verdict = "yes" if r.agree else "no: " + ", ".join(f"{a}/{b}" for a, b in r.flipped)
        cols = r.per_pass + ["-"] * (n - len(r.per_pass))
        lines.append(f"| {r.cell.label()} | " + " | ".join(cols) + f" | {verdict} |")
    return lines + [""]


def check_lines(checks: Sequence[Check]) -> list[str]:
    if not checks:
        return []
    lines = ["### Target check", "",
             "| issue | what | cell | ratio | goal | met |", "|---|---|---|---:|---:|---|"]
    for c in checks:
        if c.note:
            met, goal = c.note, "-"
        else:
            met = "-" if c.met is None else ("yes" if c.met else
                                             f"no ({(1 - (c.ratio or 0) / c.goal):.0%} short)")
            goal = f">= {c.goal:.1f}x"
        lines.append(f"| {c.issue} | {c.what} | {c.cell} | {_x(c.ratio)} | {goal} | {met} |")
    return lines + [""]


def markdown(report: Report, header: Sequence[str], target_order: Sequence[str],
             kernel_targets: Sequence[str], plots: Sequence[str]) -> str:
    sums = summarize(report.samples)
    lines = list(header)
    for section, protocol in SECTION_TITLES:
        lines += section_table(sums, section, protocol, target_order)
    lines += pps_table(report.pps)
    lines += check_lines(target_checks(sums, kernel_targets))
    lines += ranking_lines(cell_rankings(report.samples))
    if report.skips:
        lines += ["### Skipped", ""] + [f"- {s.where}: {s.reason}" for s in report.skips] + [""]
    lines += [f"![{p}]({p})" for p in plots]
    return "\n".join(lines) + "\n"
