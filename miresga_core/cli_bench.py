"""`miresga bench [--quick]`: the side-by-side benchmark (bench/harness.py, docs/bench.md)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_parser"]

_REPO = Path(__file__).resolve().parents[1]


def add_parser(sub: Any) -> None:
    p = sub.add_parser("bench", help="benchmark Miresga against HAProxy, NGINX and a direct "
                                     "connection (needs root: network namespaces)")
    p.add_argument("--quick", action="store_true", help="short cells (CI-size run)")
    p.add_argument("--out", default=str(_REPO / "bench" / "results"),
                   help="where latest.md, latest.json and the PNG plots go")
    p.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        print("miresga bench: needs root (it builds network namespaces)", file=sys.stderr)
        return 2
    if not (_REPO / "bench" / "harness.py").exists():
        print("miresga bench: bench/ not found (run from a source checkout)", file=sys.stderr)
        return 2
    sys.path.insert(0, str(_REPO))
    from bench.harness import run

    run(quick=args.quick, out_dir=Path(args.out))
    return 0
