"""bench/cpu.py: the pure parsing and arithmetic of the benchmark's CPU accounting, plus
one snapshot of this very machine (real /proc)."""

from __future__ import annotations

import os

import pytest

from bench import cpu

PROC_STAT = """cpu  5973 10 2369 119531 451 20 87 5 7 0
cpu0 1392 0 747 62003 21 0 21 3 0 0
cpu1 4580 10 1621 57527 429 20 65 2 7 0
intr 196870 0 0
softirq 160006 0 15991 4
"""


def test_stat_cpu_ticks_busy_excludes_idle_and_iowait() -> None:
    busy, soft, total = cpu.stat_cpu_ticks(PROC_STAT.splitlines()[0])
    assert total == 5973 + 10 + 2369 + 119531 + 451 + 20 + 87 + 5  # guest is inside user
    assert busy == total - 119531 - 451
    assert soft == 20 + 87


def test_stat_cpu_ticks_old_kernels_with_fewer_fields() -> None:
    assert cpu.stat_cpu_ticks("cpu 10 0 5 100") == (15, 0, 115)


def test_stat_cpu_ticks_rejects_other_lines() -> None:
    with pytest.raises(ValueError, match="not a cpu line"):
        cpu.stat_cpu_ticks("intr 1 2 3")


def test_machine_times_uses_the_aggregate_line() -> None:
    busy, soft = cpu.machine_times(PROC_STAT, tick=100.0)
    assert busy == pytest.approx((5973 + 10 + 2369 + 20 + 87 + 5) / 100)
    assert soft == pytest.approx(1.07)
    with pytest.raises(ValueError, match="no aggregate"):
        cpu.machine_times("cpu0 1 2 3 4\n", 100.0)


def test_process_ticks_and_helper_threads() -> None:
    # comm may hold spaces and parentheses: fields are counted after the last ")"
    worker = "42 (kworker/1:2-events) I 2 0 0 0 -1 69238880 0 0 0 0 17 23 0 0 20 0 1 0"
    python = "77 (python (x) y) S 1 77 77 0 -1 4194560 0 0 0 0 300 40 0 0 20 0 5 0"
    assert cpu.process_ticks(worker) == 40
    assert cpu.process_ticks(python) == 340
    assert cpu.helper_thread(worker)
    assert cpu.helper_thread("9 (ksoftirqd/0) S 2 0 0 0 -1 0 0 0 0 0 1 2 0 0 20 0 1 0")
    assert not cpu.helper_thread(python)
    # a user process called "kworker/..." is not a kernel thread (its parent is not 2)
    assert not cpu.helper_thread("5 (kworker/x) S 1 0 0 0 -1 0 0 0 0 0 1 2 0 0 20 0 1 0")


def test_usage_and_per_request() -> None:
    before = cpu.Snapshot(lb=1.0, helpers=2.0, softirq=0.5, machine=10.0)
    after = cpu.Snapshot(lb=1.5, helpers=2.25, softirq=0.4, machine=12.0)
    used = cpu.usage(before, after)
    assert used == cpu.CpuUsage(lb=0.5, helpers=0.25, softirq=0.0, machine=2.0)  # clamped
    per = used.per_request(1000)
    assert per["lb"] == pytest.approx(500.0)
    assert per["lb_with_helpers"] == pytest.approx(750.0)
    assert per["machine"] == pytest.approx(2000.0)
    assert set(cpu.CpuUsage(0, 0, 0, 0).per_request(0).values()) == {None}


def test_snapshot_of_this_machine() -> None:
    """Real /proc: our own CPU time is counted, the machine's busy time covers it."""
    pid = os.getpid()
    first = cpu.snapshot([pid])
    deadline = sum(os.times()[:2]) + 0.05
    while sum(os.times()[:2]) < deadline:  # burn a little CPU (bounded)
        pass
    second = cpu.snapshot([pid])
    used = cpu.usage(first, second)
    assert used.lb > 0
    assert used.machine >= used.lb * 0.5  # tick granularity of the two sources differs
    assert second.helpers >= 0 and second.softirq >= 0
