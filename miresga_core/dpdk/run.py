"""The C/DPDK front-end as an ``xdp`` data plane front-end process:
``python3 -m miresga_core.dpdk.run`` takes the same arguments as
``miresga_core.frontend.run`` (the controller picks one by ``frontend = "python" | "dpdk"``).

This process is the controller's hand next to ``miresga-fe``: it compiles the listeners'
rule programs and writes the binary's configuration (VIP parameters from the switch),
starts the binary on the front-end's interface (af_packet vdev, --no-huge --no-pci),
keeps the cookie secrets in step with the switch, and writes the stats file in the Python
front-end's shape. Packets never pass through it. Offloads: the binary applies them to
the switch's pinned maps itself (direct mode, the default: every keep-alive request is
re-spliced, so a hop through this process would sit in every request's path); only when
the maps do not open, or with ``--offload-mode channel``, does it send them here and this
process applies them (``OffloadApplier``, as the Python front-end) and acks.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import select
import signal
import struct
import sys
import time
from pathlib import Path
from typing import Any

from ..api import Address
from ..config import load_config
from ..cookie import CookieSecrets
from ..dataplane import names
from ..frontend.machine import FrontendConfig, S, VipParams
from ..frontend.run import add_process_args, pool_affinity
from ..plugins import get_plugin_manager, registry_from
from .build import BuildError
from .decider import ProgramDecider
from .process import MAX_WORKERS, OFFLOAD_MODES, FeProcess, direct_counters, write_config

__all__ = ["build_config", "main"]

log = logging.getLogger("miresga.dpdk")


def switch_secrets(switch: Any) -> CookieSecrets | None:
    keys = []
    for i in (0, 1):
        e = switch.read(names.COOKIE_SECRET, {"index": i})
        keys.append(None if e is None or not (e["k0"] or e["k1"])
                    else struct.pack("<II", e["k0"], e["k1"]))
    return None if keys[0] is None else CookieSecrets(keys[0], keys[1])


def build_config(config_path: str, switch: Any, agent_keys: tuple[bytes | None, bytes | None],
                 idle_timeout_s: float) -> tuple[FrontendConfig, dict[Address, ProgramDecider]]:
    registry = registry_from(get_plugin_manager())
    config = load_config(config_path, registry)
    deciders: dict[Address, ProgramDecider] = {}
    vips: dict[Address, VipParams] = {}
    for listener in config.listeners:
        deciders[listener.listen] = ProgramDecider.from_config(config, listener.name, registry)
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
    return fc, deciders


def _offload_stats(raw: dict[str, Any], applier: Any) -> dict[str, Any]:
    """The offload counters of both paths (one of them stays zero) and their sum under the
    Python front-end's names."""
    direct = direct_counters(raw)
    channel = dict(applier.counters)
    total = {k: direct.get(k, 0) + channel.get(k, 0) for k in {*direct, *channel}}
    return {"offload": total, "offload_direct": direct, "offload_channel": channel,
            "offload_mode": raw.get("offload_mode", "")}


def _stats(fe: FeProcess, applier: Any) -> dict[str, Any]:
    raw = fe.stats()
    shards = raw.get("shards", [])
    io: dict[str, int] = {}
    for sh in shards:
        for k, v in sh["io"].items():
            io[k] = io.get(k, 0) + v
    oldest = [sh["oldest_ns"] for sh in shards if sh.get("conns")]
    return {"frontend": "dpdk", "shell": io, "machine": fe.machine_counters(),
            **_offload_stats(raw, applier), "conns": sum(sh["conns"] for sh in shards),
            "legs": sum(sh["legs"] for sh in shards), "oldest_ns": min(oldest, default=None),
            "written_ns": raw.get("written_ns", 0),
            # per lcore (shard): who carried the flows, and the steering hand-offs
            "lcores": [{"conns": sh["conns"], "rx_client": sh["machine"]["rx_client"],
                        "rx_backend": sh["machine"]["rx_backend"],
                        "cookie_ok": sh["machine"]["cookie_ok"], "rx": sh["io"]["rx"],
                        "steer_out": sh["io"]["steer_out"], "steer_in": sh["io"]["steer_in"],
                        "steer_drop": sh["io"]["steer_drop"],
                        "offload_applied": sh["io"].get("offload_applied", 0),
                        "offload_failed": sh["io"].get("offload_failed", 0)}
                       for sh in shards]}


def _write(path: Path | None, stats: dict[str, Any]) -> None:
    if path is not None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(stats))
        os.replace(tmp, path)


def serve(fe: FeProcess, switch: Any, applier: Any, stats_file: Path | None,
          stop_file: Path | None) -> None:
    secrets: CookieSecrets | None = None
    last_secret = last_stats = 0.0
    assert fe.sock is not None
    while fe.alive():
        select.select([fe.sock], [], [], 0.05)
        for sender, number, batch in fe.offload_batches():
            applier.apply(batch)  # then the binary may send the frames of that turn
            fe.ack(sender, number)
        now = time.monotonic()
        if now - last_secret >= 1.0:
            s = switch_secrets(switch)
            if s is not None and s != secrets:
                fe.set_secrets(s)
                secrets = s
            last_secret = now
        if now - last_stats >= 0.5:
            fe.control("stats")
            time.sleep(0.02)  # the binary answers on its next drain tick (<= 5 ms)
            _write(stats_file, _stats(fe, applier))
            last_stats = now
            if stop_file is not None and stop_file.exists():
                break


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="miresga-frontend-dpdk", description=__doc__)
    add_process_args(ap)
    ap.add_argument("--offload-mode", choices=OFFLOAD_MODES, default="auto",
                    help="direct: the binary writes the switch's offload maps itself; "
                         "channel: it sends them to this process; auto: direct when the "
                         "maps open")
    args = ap.parse_args(argv)
    if not 1 <= args.workers <= MAX_WORKERS:
        print(f"miresga-frontend-dpdk: --workers must be 1..{MAX_WORKERS}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="frontend-dpdk %(levelname)s %(message)s")
    from ..agent.loader import enter_netns
    from ..agent.maps import read_secret_file
    from ..dataplane.xdp import XdpSwitch
    from ..frontend.shell import OffloadApplier
    from . import build

    try:
        build.binary()
    except BuildError as exc:
        print(f"miresga: {exc}", file=sys.stderr)
        return 2
    keys = read_secret_file(args.agent_secret_file)
    if args.netns:
        enter_netns(args.netns)  # the binary inherits the namespace
    switch = XdpSwitch.from_pins(args.pin_dir)
    fc, deciders = build_config(args.config, switch, keys, args.idle_timeout)
    base = args.stats_file.parent if args.stats_file else Path("/tmp")
    run_dir = base / f"dpdk-{args.netns or 'host'}-{os.getpid()}"
    secrets = switch_secrets(switch) or CookieSecrets.generate()
    conf = write_config(run_dir, fc, deciders, secrets)
    fe = FeProcess(run_dir, args.iface, gateway_mac=args.gateway_mac, workers=args.workers,
                   switch_pins=Path(args.pin_dir), offload_mode=args.offload_mode)
    applier = OffloadApplier(switch)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    fe.start(conf)
    log.info("C/DPDK front-end on %s (%s): VIPs %s; offloads: %s", args.iface,
             args.netns or "-", ", ".join(map(str, fc.vips)), fe.offload_mode_used())
    try:
        serve(fe, switch, applier, args.stats_file, args.stop_file)
    finally:
        rc = fe.stop()
        _write(args.stats_file, _stats(fe, applier))
        switch.close()
        if rc:
            log.warning("miresga-fe exited with %s:\n%s", rc, fe.log()[-2000:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
