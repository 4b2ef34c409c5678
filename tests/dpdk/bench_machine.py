"""Packets per second per core of the front-end machine, Python reference vs C, on the
same recorded trace (not a test; run by hand):

    PYTHONPATH=.:plugins/http1:plugins/policies:tests/dpdk:tests/frontend \\
        python3 tests/dpdk/bench_machine.py [steady|mixed] [conns] [shards...]

steady: benchtrace (every connection: request, SYN-ACK, responses, keep-alive requests
alternating pools, FINs); mixed: the generated differential traces (many drops). Both
sides run the machine only (no I/O); the C side is mfe_replay (best of 5 runs), whose
output digest is checked against the reference's outputs.

shards (e.g. ``1 2``): the C machine again as that many shards, one thread each
(mfe_replay SHARDS: the structure of miresga-fe's lcores without the I/O), per-shard
digests checked against the reference machines behind the same steering; prints the
packets/s of all shards together and per core.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import benchtrace
import tracegen
from fe_world import COOKIE_KEY, VIP

from miresga_core import cookie
from miresga_core.dpdk import build, tracebin
from miresga_core.dpdk.process import write_config
from miresga_core.frontend import Frontend
from miresga_core.plugins import get_plugin_manager, registry_from


def main() -> int:
    kind = sys.argv[1] if len(sys.argv) > 1 else "steady"
    reg = registry_from(get_plugin_manager())
    # with shards: one backend per pool, so the trace (which reacts to the reference's
    # choices) is the same workload for any sharding (round-robin rotates per shard)
    config = tracegen.CONFIG_ONE_BACKEND if len(sys.argv) > 3 else tracegen.CONFIG
    if kind == "steady":
        events = benchtrace.generate(reg, int(sys.argv[2]) if len(sys.argv) > 2 else 500,
                                     config=config)
    else:
        events = tracegen.generate(reg, 0, 3000, config=config)
    tmp = Path(tempfile.mkdtemp(prefix="mrd-bench-"))
    n = tracebin.write(tmp / "t.bin", events)
    conf = write_config(tmp / "cfg", tracegen.fe_config(), {VIP: tracegen.decider(reg, config)},
                        cookie.CookieSecrets(COOKIE_KEY))
    fe = Frontend(tracegen.fe_config(), tracegen.decider(reg, config),
                  cookie.CookieSecrets(COOKIE_KEY))
    ins = [(e["t"], None if e.get("expire") else bytes.fromhex(e["in"])) for e in events]
    outs = []
    t0 = time.perf_counter()
    for t, raw in ins:
        outs.append(fe.expire(t) if raw is None else fe.receive(raw, t))
    py = n / (time.perf_counter() - t0)
    build.library()
    got = tracebin.replay_tool(build.BUILD / "mfe_replay", conf, tmp / "t.bin", repeat=5)
    same = got["digest"] == tracebin.digest(outs)
    print(f"{kind}: {n} packets; Python {py:,.0f} pkt/s; C {float(got['pps']):,.0f} pkt/s "
          f"({float(got['pps']) / py:.0f}x); outputs identical: {same}")
    for shards in [int(a) for a in sys.argv[3:]]:
        res = tracebin.replay_tool(build.BUILD / "mfe_replay", conf, tmp / "t.bin", repeat=5,
                                   shards=shards)
        ok = shards == 1 or [res[f"digest{i}"] for i in range(shards)] == \
            _shard_digests(reg, events, shards, config)
        split = " / ".join(res.get(f"packets{i}", res["packets"]) for i in range(shards))
        pps, core = float(res["pps"]), float(res["pps_core"])
        print(f"  C, {shards} shard(s) on {shards} thread(s): {pps:,.0f} pkt/s together "
              f"(wall clock), {core:,.0f} pkt/s per core (CPU time); packets per shard "
              f"{split}; outputs identical: {ok}")
        same = same and ok
    return 0 if same else 1


def _shard_digests(reg, events, shards: int, config: str) -> list[str]:
    from test_fe_sharded import _shard_digests as digests
    return digests(reg, events, shards, config)


if __name__ == "__main__":
    raise SystemExit(main())
