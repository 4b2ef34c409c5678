"""Registers the ``xdp`` data plane through the same hook as any plugin."""

from __future__ import annotations

import logging
import signal
import time
from typing import Any

import pluggy

from .. import hookimpl
from ..config import Config
from ..plugins import Registry
from .controller import XdpController, XdpOptions

__all__ = ["XdpDataPlane", "miresga_add_dataplanes"]

log = logging.getLogger("miresga.xdp")


class XdpDataPlane:
    name = "xdp"
    options = XdpOptions

    def run(self, config: Config, pm: pluggy.PluginManager, registry: Registry) -> int:
        opts: XdpOptions = config.dataplane.options or XdpOptions()
        ctl = XdpController(config, opts)
        stop = False

        def on_signal(*_: object) -> None:
            nonlocal stop
            stop = True

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        ctl.start()
        log.info("xdp data plane up: lab %s, %d front-end(s), VIPs %s", opts.lab_prefix,
                 len(ctl.frontends), ", ".join(str(x.listen) for x in config.listeners))
        print(f"miresga: xdp data plane serving (lab {opts.lab_prefix})", flush=True)
        try:
            while not stop:
                ctl.tick()
                time.sleep(0.2)
        finally:
            ctl.stop()
        return 0


@hookimpl
def miresga_add_dataplanes() -> list[type[Any]]:
    return [XdpDataPlane]
