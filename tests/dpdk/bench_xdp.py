"""Requests/s of the ``xdp`` data plane, Python front-end vs C/DPDK front-end, in the lab
of tests/frontend (XDP switch on veths, agents, nginx backends), wrk from the client
namespace at 1 KiB, 64 KiB and 1 MiB (not a test; needs root; runs ~1 min):

    PYTHONPATH=.:plugins/http1:plugins/policies:tests/frontend:tests/dpdk \\
        python3 tests/dpdk/bench_xdp.py [seconds]
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from pathlib import Path

import e2e_dpdk_plugin  # noqa: F401  (our namespace prefix for the lab)
import xdplab


def run(frontend: str, seconds: int) -> dict[str, str]:
    base = xdplab.config_text

    def text(*a, **kw):  # type: ignore[no-untyped-def]
        t = base(*a, **kw)
        return t if frontend == "dpdk" else t.replace('frontend = "dpdk"\n', "")

    xdplab.config_text = text
    tmp = Path(tempfile.mkdtemp(prefix=f"mrd-bench-{frontend}-"))
    lab = xdplab.XdpLab(tmp)
    out = {}
    try:
        (lab.www / "64k").write_bytes(os.urandom(64 << 10))
        for path in ("1k", "64k", "1m"):
            r = lab.client(["wrk", "-t1", "-c8", f"-d{seconds}s", "--timeout", "5s",
                            f"http://{xdplab.VIP}/{path}"], timeout=seconds + 30)
            text_out = r.stdout.decode()
            rps = re.search(r"Requests/sec:\s+([\d.]+)", text_out)
            bad = "Socket errors" in text_out or "Non-2xx" in text_out
            out[path] = (rps.group(1) if rps else "?") + (" (errors)" if bad else "")
    finally:
        lab.close()
        xdplab.config_text = base
    return out


def main() -> int:
    seconds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    for fe in ("python", "dpdk"):
        print(fe, run(fe, seconds), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
