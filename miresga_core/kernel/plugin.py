"""Registers the ``kernel`` data plane through the same hooks as any plugin."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
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
    engine: Literal["python", "native"] = opt(
        "python", doc="who serves requests: \"python\" = asyncio workers (every protocol), "
                      "\"native\" = C workers (native/kernel, HTTP/1 listeners only; see "
                      "docs/native-kernel.md)")
    rules: Literal["c", "python", "prototype"] = opt(
        "c", doc="how requests are decided: the compiled rule program in the C VM (Python VM "
                 "when the extension is missing, logged), the Python VM, or the parser's "
                 "Python prototype")


class KernelDataPlane:
    name = "kernel"
    options = KernelOptions

    def run(self, config: Config, pm: pluggy.PluginManager, registry: Registry) -> int:
        opts: KernelOptions = config.dataplane.options or KernelOptions()
        master = Master(config, registry, opts.workers, opts.uvloop, opts.splice,
                        opts.splice_min_body, opts.engine)
        check_bindable(config)
        if opts.engine == "python" and master.count == 1 and config.admin.listen is None \
                and not _has_health(config):
            serve_worker(config, registry, None, 0, opts.uvloop, opts.splice,  # no master
                         opts.splice_min_body)
        else:
            asyncio.run(master.main())
        return 0


def _has_health(config: Config) -> bool:
    return any(pool.health.kind != "none" for pool in config.pools.values())


@hookimpl
def miresga_add_dataplanes() -> list[type[Any]]:
    return [KernelDataPlane]
