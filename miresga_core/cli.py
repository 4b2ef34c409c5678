"""The ``miresga`` command line.

Subcommands live in small modules (``cli_<name>.py``) that expose ``add_parser(sub)``;
``SUBCOMMAND_MODULES`` lists them. Errors the operator can fix (``MiresgaError``) print one
line and exit 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from .errors import MiresgaError

__all__ = ["main"]

SUBCOMMAND_MODULES: tuple[str, ...] = (
    "miresga_core.cli_serve",
    "miresga_core.cli_compile",
    "miresga_core.cli_lab",
    "miresga_core.cli_bench",
    "miresga_core.cli_status",
    "miresga_core.cli_agent",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="miresga", description="Miresga: a hybrid layer-7 load balancer.")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more logging (-vv for debug)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        return int(args.func(args) or 0)
    except MiresgaError as exc:
        print(f"miresga: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `miresga check ... | head`: the reader left, nothing to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
