"""Requests/s of the ``xdp`` data plane, Python front-end vs C/DPDK front-end (1 or more
lcores), in the lab of tests/frontend (XDP switch on veths, agents, nginx backends), wrk
from the client namespace at 1 KiB, 64 KiB and 1 MiB (not a test; needs root; runs
~1 min):

    PYTHONPATH=.:plugins/http1:plugins/policies:tests/frontend:tests/dpdk \\
        python3 tests/dpdk/bench_xdp.py [seconds] [--fe python dpdk dpdk2]
        [--sizes 1k 64k 1m] [--threads 1] [--conns 8] [--rounds 1]

``dpdkN``: the C/DPDK front-end with ``frontend_workers = N``. ``--rounds`` repeats the
whole set, alternating the front-ends, so a noisy neighbour hits all of them alike.
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
from pathlib import Path

import e2e_dpdk_plugin  # noqa: F401  (our namespace prefix for the lab)
import xdplab


def _config(frontend: str, base):  # type: ignore[no-untyped-def]
    workers = int(frontend[4:] or 1) if frontend.startswith("dpdk") else 1

    def text(*a, **kw):  # type: ignore[no-untyped-def]
        t = base(*a, **kw)
        t = re.sub(r"frontend_workers = \d+\n", f"frontend_workers = {workers}\n", t)
        return t if frontend.startswith("dpdk") else \
            t.replace('frontend = "dpdk"\n', "").replace(f"frontend_workers = {workers}\n", "")
    return text


def run(frontend: str, a: argparse.Namespace) -> dict[str, str]:
    base = xdplab.config_text
    xdplab.config_text = _config(frontend, base)
    tmp = Path(tempfile.mkdtemp(prefix=f"mrd-bench-{frontend}-"))
    lab = xdplab.XdpLab(tmp)
    out = {}
    try:
        (lab.www / "64k").write_bytes(os.urandom(64 << 10))
        for path in a.sizes:
            r = lab.client(["wrk", f"-t{a.threads}", f"-c{a.conns}", f"-d{a.seconds}s",
                            "--timeout", "5s", f"http://{xdplab.VIP}/{path}"],
                           timeout=a.seconds + 30)
            text_out = r.stdout.decode()
            rps = re.search(r"Requests/sec:\s+([\d.]+)", text_out)
            bad = "Socket errors" in text_out or "Non-2xx" in text_out
            out[path] = (rps.group(1) if rps else "?") + (" (errors)" if bad else "")
        lcores = lab.fe_stats(0).get("lcores")
        if lcores:
            out["steer_out"] = str(sum(x["steer_out"] for x in lcores))
            out["rx"] = str(sum(x["rx"] for x in lcores))
    finally:
        lab.close()
        xdplab.config_text = base
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("seconds", type=int, nargs="?", default=5)
    ap.add_argument("--fe", nargs="+", default=["python", "dpdk"])
    ap.add_argument("--sizes", nargs="+", default=["1k", "64k", "1m"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--conns", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=1)
    a = ap.parse_args()
    for _ in range(a.rounds):
        for fe in a.fe:
            print(fe, run(fe, a), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
