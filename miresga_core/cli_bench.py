"""`miresga bench`: the side-by-side benchmark (bench/harness.py, docs/bench.md)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_parser"]

_REPO = Path(__file__).resolve().parents[1]


def _list(text: str) -> list[str]:
    items = [x.strip() for x in text.split(",") if x.strip()]
    if not items:
        raise argparse.ArgumentTypeError("an empty list")
    return items


def _positive(kind: type) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be above 0: {text!r}")
        return value
    return parse


def add_parser(sub: Any) -> None:
    p = sub.add_parser("bench", help="benchmark Miresga against HAProxy, NGINX and a direct "
                                     "connection (needs root: network namespaces)")
    p.add_argument("--quick", action="store_true",
                   help="2 s cells and one pass (CI-size run)")
    p.add_argument("--repeat", type=_positive(int), metavar="N",
                   help="passes over every cell, targets interleaved (default 2, 1 with "
                        "--quick); the report gives medians, spread and ranking agreement")
    p.add_argument("--seconds", type=_positive(float), metavar="S",
                   help="seconds per cell (default 5, 2 with --quick)")
    p.add_argument("--sections", type=_list, metavar="S[,..]",
                   help="kernel, xdp, fe-pps (default: all)")
    p.add_argument("--only", type=_list, metavar="TARGET[,..]",
                   help="only these targets (direct, haproxy, nginx, miresga-relay, "
                        "miresga-sockmap, miresga-h2, miresga-h2-pinned, xdp-python, xdp-c)")
    p.add_argument("--objects", type=_list, metavar="OBJ[,..]", help="1k, 64k, 1m")
    p.add_argument("--protocols", type=_list, metavar="P[,..]", help="http1, http2")
    p.add_argument("--modes", type=_list, metavar="M[,..]", help="keep-alive, close")
    p.add_argument("--plan", action="store_true",
                   help="print what would run and how long it would take, then exit")
    p.add_argument("--out",
                   help="where latest.md, latest.json and the plots go (default "
                        "bench/results for a full run, bench/results/partial otherwise)")
    p.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    if not (_REPO / "bench" / "harness.py").exists():
        print("miresga bench: bench/ not found (run from a source checkout)", file=sys.stderr)
        return 2
    sys.path.insert(0, str(_REPO))
    from bench.harness import SECTIONS, Options, describe, run

    opts = Options(quick=args.quick, seconds=args.seconds, repeat=args.repeat,
                   only=args.only, objects=args.objects, protocols=args.protocols,
                   modes=args.modes, sections=args.sections,
                   out_dir=Path(args.out) if args.out else None,
                   argv=_argv_echo(args))
    try:  # selections are checked before anything is built
        text = describe(opts)
        if opts.sections is not None and not set(opts.sections) & set(SECTIONS):
            raise ValueError("no section selected")
    except ValueError as e:
        print(f"miresga bench: {e}", file=sys.stderr)
        return 2
    if args.plan:
        print(f"miresga bench: {text}")
        return 0
    if os.geteuid() != 0:
        print("miresga bench: needs root (it builds network namespaces)", file=sys.stderr)
        return 2
    run(opts)
    return 0


def _argv_echo(args: argparse.Namespace) -> list[str]:
    out = ["--quick"] if args.quick else []
    for flag in ("repeat", "seconds", "sections", "only", "objects", "protocols", "modes"):
        value = getattr(args, flag)
        if value is not None:
            out += [f"--{flag}", ",".join(value) if isinstance(value, list) else f"{value:g}"]
    return out
