"""One front-end process: ``python3 -m miresga_core.frontend.run --netns NS ...``.

Started by the ``xdp`` data plane's controller, one per front-end host. It enters the
front-end's network namespace (setns only: the bpffs with the switch's pinned maps stays
visible, which ``ip netns exec`` would hide), builds the machine from the same miresga
config the controller was given (listeners -> VIPs and their rules), and runs the
AF_PACKET shell until the stop file appears or it is signalled.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from ..api import Address
from ..config import Config, load_config
from ..dataplane import names
from ..plugins import get_plugin_manager, registry_from
from ..routing import Router, pool_states
from .decider import Decider, make_core_decider
from .machine import Frontend, FrontendConfig, S, VipParams

__all__ = ["build_frontend", "main", "pool_affinity"]

log = logging.getLogger("miresga.frontend")


def pool_affinity(config: Config) -> bool:
    """``[dataplane.xdp] balance``: "connection" (the default) keeps a connection's requests
    for one pool on one leg. A config of another data plane gets the default."""
    from ..xdpdp.controller import XdpOptions

    opts = config.dataplane.options
    return not isinstance(opts, XdpOptions) or opts.balance == "connection"


def build_frontend(config_path: str, switch: Any, agent_keys: tuple[bytes | None, bytes | None],
                   *, idle_timeout_s: float = 300.0, prefer: str = "c") -> Frontend:
    """The machine for every listener of the config; VIP parameters from the switch."""
    from .. import cookie

    registry = registry_from(get_plugin_manager())
    config = load_config(config_path, registry)
    pools = pool_states(config, registry)
    deciders: dict[Address, Decider] = {}
    vips: dict[Address, VipParams] = {}
    for listener in config.listeners:
        decider = make_core_decider(config, listener, registry, Router(listener, pools),
                                    prefer=prefer)
        log.info("listener %s: rules run by %s", listener.name, decider.kind)
        deciders[listener.listen] = decider
        entry = switch.read(names.VIP, {"vip_addr": listener.listen.host,
                                        "vip_port": listener.listen.port})
        if entry is None:
            raise SystemExit(f"listener {listener.name}: {listener.listen} is not a VIP on "
                             f"the switch")
        vips[listener.listen] = VipParams(wscale=int(entry["wscale"]), mss=int(entry["mss"]))
    slot = 0 if agent_keys[0] is not None else 1
    fc = FrontendConfig(vips, agent_keys, agent_key_slot=slot,
                        idle_timeout_ns=int(idle_timeout_s * S),
                        pool_affinity=pool_affinity(config))
    return Frontend(fc, deciders, cookie.CookieSecrets.generate())


def add_process_args(ap: argparse.ArgumentParser) -> None:
    """The flags the controller starts every front-end process with (Python or C/DPDK)."""
    ap.add_argument("--netns", help="network namespace to run in")
    ap.add_argument("--iface", default="eth0")
    ap.add_argument("--config", required=True, help="the miresga config (listeners, pools)")
    ap.add_argument("--pin-dir", required=True, help="the switch's pinned maps")
    ap.add_argument("--agent-secret-file", required=True)
    ap.add_argument("--gateway-mac", required=True, help="the switch port's MAC")
    ap.add_argument("--stats-file", type=Path)
    ap.add_argument("--stop-file", type=Path)
    ap.add_argument("--idle-timeout", type=float, default=300.0)
    ap.add_argument("--workers", type=int, default=1,
                    help="lcores (shards) of the C/DPDK front-end; the Python one runs one")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="miresga-frontend", description=__doc__)
    add_process_args(ap)
    args = ap.parse_args(argv)
    if args.workers != 1:
        print(f"miresga-frontend: --workers {args.workers}: the Python front-end runs one "
              f"worker ([dataplane.xdp] frontend_workers > 1 needs frontend = \"dpdk\")",
              file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="frontend %(levelname)s %(message)s")
    from ..agent.loader import enter_netns
    from ..agent.maps import read_secret_file
    from ..dataplane.xdp import XdpSwitch
    from .shell import OffloadApplier, PacketShell

    keys = read_secret_file(args.agent_secret_file)
    if args.netns:
        enter_netns(args.netns)
    switch = XdpSwitch.from_pins(args.pin_dir)
    fe = build_frontend(args.config, switch, keys, idle_timeout_s=args.idle_timeout)
    shell = PacketShell(fe, args.iface, OffloadApplier(switch), gateway_mac=args.gateway_mac,
                        stats_file=args.stats_file)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    log.info("front-end on %s (%s): VIPs %s", args.iface, args.netns or "-",
             ", ".join(map(str, fe.config.vips)))
    try:
        shell.run(stop_file=args.stop_file)
    finally:
        shell.write_stats()
        shell.close()
        switch.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
