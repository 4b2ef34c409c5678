"""Registers the ``kernel`` data plane through the same hooks as any plugin."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pluggy

from .. import hookimpl
from ..config import Config, opt
from ..plugins import Registry
from .master import Master, check_bindable
from .splice import SPLICE_MIN_BODY
from .worker import serve_worker

log = logging.getLogger("miresga.kernel")


@dataclass(frozen=True)
class KernelOptions:
    workers: int = opt(0, check=lambda v: None if v >= 0 else "must be >= 0",
                       doc="worker processes; 0 = one per CPU core")
    uvloop: bool = opt(True, doc="use uvloop when it is installed")
    splice: str = opt("auto", check=lambda v: None if v in ("auto", "sockmap", "relay")
                      else "must be \"auto\", \"sockmap\" or \"relay\"",
                      doc="response bodies and tunnels: sockmap = in-kernel splice (eBPF, "
                          "needs root), relay = user space, auto = sockmap when permitted")
    splice_min_body: int = opt(
        SPLICE_MIN_BODY, check=lambda v: None if v >= 0 else "must be >= 0",
        doc="sockmap: responses whose Content-Length is below this are relayed in user "
            "space (measured: the kernel hop only pays off for large bodies, docs/splice.md)")
    engine: Literal["auto", "python", "native"] = opt(
        "auto", doc="who serves requests: \"python\" = asyncio workers (every protocol), "
                    "\"native\" = C workers (native/kernel, HTTP/1 listeners only; see "
                    "docs/native-kernel.md), \"auto\" = native when the config allows it "
                    "(logged either way)")
    rules: Literal["c", "python", "prototype"] = opt(
        "c", doc="how requests are decided: the compiled rule program in the C VM (Python VM "
                 "when the extension is missing, logged), the Python VM, or the parser's "
                 "Python prototype")


class KernelDataPlane:
    name = "kernel"
    options = KernelOptions

    def run(self, config: Config, pm: pluggy.PluginManager, registry: Registry) -> int:
        opts: KernelOptions = config.dataplane.options or KernelOptions()
        choice = choose_engine(config, registry, opts)
        log.info("engine %s: %s", choice.engine, choice.reason)
        master = Master(config, registry, opts.workers, opts.uvloop, opts.splice,
                        opts.splice_min_body, choice.engine, choice.binary, choice.programs)
        if master.native is None:  # the native master holds the bound sockets already
            check_bindable(config)
        if choice.engine == "python" and master.count == 1 and config.admin.listen is None \
                and not _has_health(config):
            serve_worker(config, registry, None, 0, opts.uvloop, opts.splice,  # no master
                         opts.splice_min_body)
        else:
            asyncio.run(master.main())
        return 0


@dataclass(frozen=True)
class EngineChoice:
    """The engine that serves a config, why (what `serve` logs and `miresga check` prints),
    and what the choice had to make to know the native worker can run here (``auto``): the
    built binary and the compiled rule programs, so the master does not make them again."""

    engine: str
    reason: str
    binary: Path | None = None
    programs: dict[str, bytes] | None = None


def choose_engine(config: Config, registry: Registry, opts: KernelOptions) -> EngineChoice:
    """The engine that serves ``config`` and why. ``auto`` takes the native workers (5-15x
    less CPU per request, docs/native-kernel.md) unless the config asks for something only
    the Python engine does: a listener that is not HTTP/1 or has no compiled program, a
    policy without a compiled form, an explicit ``splice`` mode or ``rules`` other than the
    compiled program in C -- or the worker cannot be built here."""
    if opts.engine != "auto":
        return EngineChoice(opts.engine, "configured")
    if opts.splice != "auto":
        return EngineChoice("python", f"splice = {opts.splice!r} is the Python engine's")
    if opts.rules != "c":
        return EngineChoice("python", f"rules = {opts.rules!r} is the Python engine's")
    from ..bpf.build import BuildError
    from ..errors import ConfigError
    from .native import build_worker, check_native

    try:
        programs = check_native(config, registry)
    except ConfigError as exc:
        return EngineChoice("python", f"the native engine cannot serve this config ({exc})")
    try:
        binary = build_worker()
    except BuildError as exc:
        return EngineChoice("python", f"the native worker is not built ({exc})")
    return EngineChoice("native", "every listener is HTTP/1 with a compiled rule program",
                        binary, programs)


def _has_health(config: Config) -> bool:
    return any(pool.health.kind != "none" for pool in config.pools.values())


@hookimpl
def miresga_add_dataplanes() -> list[type[Any]]:
    return [KernelDataPlane]
