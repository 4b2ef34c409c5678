"""The multi-lcore front-end (one machine per lcore behind fe_steer.h) against the
reference, on the generated traces of the differential test:

* C shards = reference shards: the same traces recorded from 2 (and 3) reference
  machines behind the steering replay identically, event by event, on as many C
  machines (byte-identical packets, identical offload requests, counters, deadlines);
* per flow = the single reference machine: with one backend per pool (no decision
  depends on the route count, the only state flows share), 2 C shards give each
  connection exactly the packets, in order, that one reference machine gives it, and
  the same offload requests as a multiset (order across shards is not defined);
* the threaded replay tool (one thread per shard, as miresga-fe runs its lcores) gives
  the reference shards' digests, also under ASan + UBSan + LeakSanitizer.

Round-robin and the other count-driven policies rotate per shard: with N lcores a
front-end is N reference machines, not one (docs/dpdk.md)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest
import tracegen

from bench.fe_world import COOKIE_KEY, VIP
from miresga_core import cookie
from miresga_core.dpdk import build, tracebin
from miresga_core.dpdk.cfe import CFrontend
from miresga_core.dpdk.process import write_config
from miresga_core.dpdk.shards import Sharded, flow_of
from miresga_core.frontend import trace
from miresga_core.frontend.state import Transmit

ROOT = Path(__file__).resolve().parents[2]
SEEDS, STEPS = 20, 600


def c_sharded(registry, shards: int, config: str = tracegen.CONFIG, **kw) -> Sharded:
    return Sharded([CFrontend(tracegen.fe_config(), {VIP: tracegen.decider(registry, config)},
                              cookie.CookieSecrets(COOKIE_KEY), **kw)
                    for _ in range(shards)], [VIP])


def test_c_shards_replay_reference_shards(registry):
    packets = 0
    per_shard = Counter()
    for shards in (2, 3):
        for seed in range(SEEDS if shards == 2 else 5):
            want: dict[str, int] = {}
            events = tracegen.generate(registry, seed, STEPS, want, shards=shards)
            cs = c_sharded(registry, shards)
            for e in events:
                out = cs.expire(e["t"]) if e.get("expire") else \
                    cs.receive(bytes.fromhex(e["in"]), e["t"])
                assert trace._records(out) == e["out"], (shards, seed, e)
                if "in" in e:
                    per_shard[(shards, cs.last_shard)] += 1
            assert cs.counters == Counter(want), (shards, seed)
            assert all(m.oom == 0 and m.nconns == 0 for m in cs.machines)
            packets += sum("in" in e for e in events)
    assert packets >= 10_000
    # every shard carried a fair part of the packets
    for (shards, _), n in per_shard.items():
        assert n > packets / 10 / shards, per_shard


def test_deadlines_of_shards_match(registry):
    w = tracegen.World(registry, 7, shards=2)
    cs = c_sharded(registry, 2)
    for _ in range(300):
        n = len(w.rec.events)
        w.step()
        for e in w.rec.events[n:]:
            if e.get("expire"):
                cs.expire(e["t"])
            else:
                cs.receive(bytes.fromhex(e["in"]), e["t"])
        assert cs.next_deadline() == w.rec.fe.next_deadline()
        assert cs.oldest_ns() == w.rec.fe.oldest_ns()


def _per_flow(outputs: list[list]) -> tuple[dict, Counter]:
    flows: dict = defaultdict(list)
    offloads: Counter = Counter()
    for out in outputs:
        for a in out:
            flows[flow_of(a, [VIP])].append(a.packet if isinstance(a, Transmit) else a)
            if not isinstance(a, Transmit):
                offloads[a] += 1
    return flows, offloads


def test_per_flow_identical_to_one_reference_machine(registry):
    one = tracegen.CONFIG_ONE_BACKEND
    packets = flows_seen = 0
    for seed in range(10):
        want: dict[str, int] = {}
        events = tracegen.generate(registry, seed, STEPS, want, config=one)
        cs = c_sharded(registry, 2, one)
        got = [cs.expire(e["t"]) if e.get("expire") else
               cs.receive(bytes.fromhex(e["in"]), e["t"]) for e in events]
        ref = [[_action(r) for r in e["out"]] for e in events]
        got_flows, got_offloads = _per_flow(got)
        ref_flows, ref_offloads = _per_flow(ref)
        assert got_flows.keys() == ref_flows.keys()
        for flow, packets_of_flow in ref_flows.items():
            assert got_flows[flow] == packets_of_flow, (seed, flow)
        assert got_offloads == ref_offloads and ref_offloads
        assert cs.counters == Counter(want)
        # the outputs are not in the reference's global order: the test is not vacuous
        # only if both shards answered
        assert all(m.counters["tx"] for m in cs.machines)
        packets += sum("in" in e for e in events)
        flows_seen += len(ref_flows)
    assert packets >= 5_000 and flows_seen >= 100


def _action(record):
    from test_fe_differential import _action as action
    return action(record)


def _shard_digests(registry, events, shards: int, config: str = tracegen.CONFIG) -> list[str]:
    """Per-shard digests of the reference shards' outputs (what mfe_replay prints)."""
    ref = tracegen.machine(registry, shards, config)
    calls: list[list] = [[] for _ in range(shards)]
    for e in events:
        if e.get("expire"):
            for i, m in enumerate(ref.machines):
                calls[i].append(m.expire(e["t"]))
        else:
            raw = bytes.fromhex(e["in"])
            i = ref.shard_of(raw)
            calls[i].append(ref.machines[i].receive(raw, e["t"]))
    return [tracebin.digest(c) for c in calls]


@pytest.mark.parametrize("tool", ["mfe_replay", "mfe_replay_asan"])
def test_threaded_replay_tool_matches_reference_shards(registry, tmp_path, tool):
    """mfe_replay with 2 shards runs them on two threads (the lcores' structure without
    DPDK); the asan tool adds AddressSanitizer, UBSan and LeakSanitizer."""
    build.library(asan=tool.endswith("asan"))
    conf = write_config(tmp_path / "cfg", tracegen.fe_config(),
                        {VIP: tracegen.decider(registry)}, cookie.CookieSecrets(COOKIE_KEY))
    events = [e for seed in range(3) for e in tracegen.generate(registry, 200 + seed, 600)]
    events.sort(key=lambda e: e["t"])
    n = tracebin.write(tmp_path / "t.bin", events)
    r = subprocess.run([str(build.BUILD / tool), str(conf), str(tmp_path / "t.bin"), "2", "2"],
                       capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=1",
                                UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"))
    assert r.returncode == 0, r.stderr[-4000:]
    parts = r.stdout.split()
    got = dict(zip(parts[::2], parts[1::2], strict=True))
    assert [got["digest0"], got["digest1"]] == _shard_digests(registry, events, 2)
    assert int(got["packets"]) == n and int(got["packets0"]) and int(got["packets1"])


def test_sharded_traces_run_clean_under_asan():
    """The C shards on the 2-shard reference traces inside the Python process, with the
    ASan + UBSan library (halt on the first error)."""
    build.library(asan=True)
    libasan = subprocess.run(["cc", "-print-file-name=libasan.so"], capture_output=True,
                             text=True).stdout.strip()
    if not os.path.isabs(libasan):
        pytest.skip("the compiler has no libasan")
    paths = [str(ROOT), str(ROOT / "plugins/http1"), str(ROOT / "plugins/policies"),
             str(ROOT / "tests/dpdk"), str(ROOT / "tests/frontend")]
    env = dict(os.environ, LD_PRELOAD=libasan, PYTHONPATH=":".join(paths),
               ASAN_OPTIONS="detect_leaks=0:abort_on_error=1",
               UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1")
    r = subprocess.run([sys.executable, str(ROOT / "tests/dpdk/replay_main.py"), "--asan",
                        "--seeds", "8", "--steps", str(STEPS), "--shards", "2"], env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    assert "identical" in r.stdout
