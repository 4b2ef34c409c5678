"""``miresga compile -c FILE [--listener NAME] [--no-opt] [-o OUT]``: compile each listener's
routes + pools' policies + parser into one rule program; print its disassembly and size."""

from __future__ import annotations

import argparse
from typing import Any

from .bytecode.compiler import compile_listener
from .bytecode.disasm import disasm
from .config import load_config
from .errors import MiresgaError
from .plugins import get_plugin_manager, registry_from

__all__ = ["add_parser"]


def add_parser(sub: Any) -> None:
    p = sub.add_parser("compile", help="compile listeners to rule bytecode and disassemble")
    p.add_argument("-c", "--config", required=True, help="miresga.toml")
    p.add_argument("--listener", help="only this listener (default: all)")
    p.add_argument("--no-opt", action="store_true", help="skip the optimiser passes")
    p.add_argument("-o", "--output", help="write the program (one listener) to this file")
    p.set_defaults(func=cmd_compile)


def cmd_compile(args: argparse.Namespace) -> int:
    registry = registry_from(get_plugin_manager())
    config = load_config(args.config, registry)
    names = [listener.name for listener in config.listeners]
    if args.listener is not None and args.listener not in names:
        raise MiresgaError(f"no listener named {args.listener!r} in {args.config} "
                           f"(listeners: {', '.join(names)})")
    listeners = [config.listener(args.listener)] if args.listener else list(config.listeners)
    if args.listener is None and args.output and len(listeners) > 1:
        raise MiresgaError("-o needs --listener when the config has several listeners")
    for listener in listeners:
        program = compile_listener(config, listener, registry, optimize=not args.no_opt)
        data = program.to_bytes()
        print(f"; listener {listener.name} ({listener.protocol}, {listener.listen})")
        print(disasm(program), end="")
        print(f"; {len(program.code)} instructions, {len(program.consts)} constants, "
              f"{len(program.tables)} tables, {len(program.decisions)} decisions, "
              f"loop budget {program.loop_budget}; program size {len(data)} bytes")
        if args.output:
            with open(args.output, "wb") as fh:
                fh.write(data)
    return 0
