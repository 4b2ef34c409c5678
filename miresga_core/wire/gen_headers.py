"""Generate the C headers whose source of truth is Python; ``--check`` reports drift.

    python3 -m miresga_core.wire.gen_headers          # rewrite the committed headers
    python3 -m miresga_core.wire.gen_headers --check  # exit 1 when any is stale
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from . import option
from .cstruct import render_header

__all__ = ["GENERATED", "render", "stale"]

_ROOT = Path(__file__).resolve().parents[2]


def _defines(consts: list[tuple[str, int, str]]) -> str:
    width = max(len(n) for n, _, _ in consts)
    def value(name: str, v: int) -> str:
        return f"{v:#x}" if "EXID" in name else str(v)

    return "\n".join(f"#define {n:<{width}} {value(n, v)} /* {d} */" for n, v, d in consts)


def _option_header() -> str:
    return render_header("MIRESGA_OPTION_H", "miresga_core/wire/option.py",
                         [_defines(option.c_constants())], includes=())


def _agent_header() -> str:
    from ..agent import shared

    blocks = [_defines(shared.c_constants()), shared.FLOW_FLAGS.c_decl(),
              shared.COUNTERS.c_decl(), shared.FLOW_KEY.c_decl(), shared.FLOW.c_decl(),
              shared.CONFIG.c_decl()]
    return render_header("MIRESGA_AGENT_SHARED_H", "miresga_core/agent/shared.py", blocks)


GENERATED: dict[str, Callable[[], str]] = {
    "native/xdp/miresga_option.h": _option_header,
    "native/xdp/agent_shared.h": _agent_header,
}


def render() -> dict[Path, str]:
    return {_ROOT / rel: fn() for rel, fn in GENERATED.items()}


def stale() -> list[Path]:
    """Generated files whose committed copy differs from what Python renders now."""
    return [p for p, text in render().items() if not p.exists() or p.read_text() != text]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only report stale headers")
    args = ap.parse_args(argv)
    if args.check:
        bad = stale()
        for p in bad:
            print(f"stale: {p.relative_to(_ROOT)}", file=sys.stderr)
        return 1 if bad else 0
    for path, text in render().items():
        path.write_text(text)
        print(f"wrote {path.relative_to(_ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
