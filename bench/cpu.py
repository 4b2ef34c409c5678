"""CPU accounting for benchmark cells: the load balancer's own processes, the kernel
helper threads that work on its behalf, and the whole machine.

Why three numbers: a proxy that hands work to the kernel (the sockmap splice: redirected
bytes are sent by a kworker running sk_psock_backlog; the verdict runs in softirq) looks
cheap if only its processes' utime + stime are counted. So every cell reports

* ``lb``       -- utime + stime of the load balancer's processes (/proc/<pid>/stat);
* ``helpers``  -- utime + stime of kernel worker threads (``kworker/*``, ``ksoftirqd/*``)
  over the cell: machine-wide, so on a shared machine it includes other work, but it is
  where the sockmap path's sending happens;
* ``softirq``  -- softirq + irq time of all CPUs (/proc/stat), i.e. packet processing
  that ran in interrupt context, whoever it was for (clients and backends too);
* ``machine``  -- all busy CPU time (/proc/stat: everything but idle and iowait). It counts
  the clients and backends as well, which costs every target alike, so it is the fair
  "what did the machine spend per request" figure for comparing load balancers.

Use (the harness): ``before = snapshot(pids)``; run the load; ``used = usage(before,
snapshot(pids))``; then ``used.per_request(requests)`` gives microseconds per request for
each figure. The parsing functions are pure and unit-tested (tests/unit/test_bench_cpu.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CpuUsage", "Snapshot", "helper_thread", "machine_times", "snapshot",
           "stat_cpu_ticks", "usage"]

_HELPER_PREFIXES = ("kworker/", "ksoftirqd/")


@dataclass(frozen=True)
class Snapshot:
    """Cumulative CPU seconds at one moment."""

    lb: float
    helpers: float
    softirq: float
    machine: float


@dataclass(frozen=True)
class CpuUsage:
    """CPU seconds spent between two snapshots."""

    lb: float
    helpers: float
    softirq: float
    machine: float

    @property
    def lb_with_helpers(self) -> float:
        return self.lb + self.helpers

    def per_request(self, requests: float) -> dict[str, float | None]:
        """Microseconds per request for each figure (None without requests)."""
        names = ("lb", "helpers", "softirq", "machine", "lb_with_helpers")
        if requests <= 0:
            return dict.fromkeys(names)
        return {name: getattr(self, name) / requests * 1e6 for name in names}


def stat_cpu_ticks(line: str) -> tuple[int, int, int]:
    """(busy, softirq+irq, total) ticks of one ``cpu`` line of /proc/stat.

    Fields: user nice system idle iowait irq softirq steal guest guest_nice; guest time is
    already inside user/nice, so it is not added again; idle and iowait are not busy.
    """
    parts = line.split()
    if not parts or not parts[0].startswith("cpu"):
        raise ValueError(f"not a cpu line of /proc/stat: {line!r}")
    values = [int(v) for v in parts[1:9]] + [0] * (8 - len(parts[1:9]))
    user, nice, system, idle, iowait, irq, softirq, steal = values
    total = user + nice + system + idle + iowait + irq + softirq + steal
    return total - idle - iowait, irq + softirq, total


def machine_times(proc_stat: str, tick: float) -> tuple[float, float]:
    """(busy seconds, softirq+irq seconds) of all CPUs from the text of /proc/stat."""
    for line in proc_stat.splitlines():
        if line.startswith("cpu "):
            busy, soft, _ = stat_cpu_ticks(line)
            return busy / tick, soft / tick
    raise ValueError("/proc/stat has no aggregate cpu line")


def _split_stat(stat: str) -> tuple[str, list[str]]:
    """(comm, fields after comm) of a /proc/<pid>/stat text; comm may hold spaces."""
    open_, close = stat.index("("), stat.rindex(")")
    return stat[open_ + 1:close], stat[close + 1:].split()


def process_ticks(stat: str) -> int:
    """utime + stime ticks of one /proc/<pid>/stat text (fields 14 and 15)."""
    _, fields = _split_stat(stat)
    return int(fields[11]) + int(fields[12])


def helper_thread(stat: str) -> bool:
    """Is this /proc/<pid>/stat a kernel worker thread (kworker, ksoftirqd)?"""
    comm, fields = _split_stat(stat)
    ppid = int(fields[1])
    return ppid == 2 and comm.startswith(_HELPER_PREFIXES)  # children of kthreadd


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text()
    except OSError:
        return None  # the process ended in between


def snapshot(lb_pids: list[int]) -> Snapshot:
    tick = float(os.sysconf("SC_CLK_TCK"))
    lb = sum(process_ticks(s) for p in lb_pids if (s := _read(f"/proc/{p}/stat")))
    helpers = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (s := _read(f"/proc/{entry}/stat")) and helper_thread(s):
            helpers += process_ticks(s)
    busy, soft = machine_times(Path("/proc/stat").read_text(), tick)
    return Snapshot(lb / tick, helpers / tick, soft, busy)


def usage(before: Snapshot, after: Snapshot) -> CpuUsage:
    """What was spent between two snapshots. Helper threads that ended in between lose
    their time (rare: kworkers live long); negative deltas are clamped to zero."""
    return CpuUsage(*(max(getattr(after, f) - getattr(before, f), 0.0)
                      for f in ("lb", "helpers", "softirq", "machine")))
