"""Generate traces with the reference and replay them on the C machine; exit 1 on any
difference. Run as a separate process by the ASan test (libasan must be preloaded)."""

from __future__ import annotations

import argparse
import sys

import tracegen

from bench.fe_world import COOKIE_KEY, VIP
from miresga_core import cookie
from miresga_core.dpdk.cfe import CFrontend
from miresga_core.dpdk.shards import Sharded
from miresga_core.frontend import trace
from miresga_core.plugins import get_plugin_manager, registry_from


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--asan", action="store_true")
    ap.add_argument("--shards", type=int, default=1, help="lcores: C machines behind the "
                    "steering, against as many reference machines")
    a = ap.parse_args()
    reg = registry_from(get_plugin_manager())
    packets = 0
    for seed in range(a.seeds):
        events = tracegen.generate(reg, seed, a.steps, shards=a.shards)
        machines = [CFrontend(tracegen.fe_config(), {VIP: tracegen.decider(reg)},
                              cookie.CookieSecrets(COOKIE_KEY), asan=a.asan)
                    for _ in range(a.shards)]
        bad = trace.replay(machines[0] if a.shards == 1 else Sharded(machines, [VIP]),
                           events)
        for cf in machines:
            cf.close()
        packets += sum("in" in e for e in events)
        if bad:
            print(f"seed {seed}: {len(bad)} mismatches, first at event {bad[0][0]}")
            return 1
    print(f"packets {packets} identical")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, ".")
    raise SystemExit(main())
