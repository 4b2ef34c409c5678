"""``miresga serve``, ``check``, ``plugins`` and ``backend``: the everyday commands."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Any

from .api import Address
from .config import Config, load_config
from .plugins import get_plugin_manager, plugin_infos, registry_from
from .routing import route_scope

log = logging.getLogger("miresga")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("serve", help="run the load balancer")
    p.add_argument("-c", "--config", default="miresga.toml", help="config file")
    p.add_argument("--demo-backends", action="store_true",
                   help="also start demo backends on the config's loopback backend addresses "
                        "that nothing listens on")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("check", help="validate a config and show what it means")
    p.add_argument("-c", "--config", default="miresga.toml")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("plugins", help="list plugins, versions and hooks")
    p.set_defaults(func=cmd_plugins)

    p = sub.add_parser("backend", help="run a demo HTTP backend (for demos and tests)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, action="append", required=True,
                   help="port to serve (repeat for several backends)")
    p.add_argument("--name", action="append", help="identity per --port (default b<port>)")
    p.set_defaults(func=cmd_backend)


def load(path: str) -> tuple[Config, Any, Any]:
    pm = get_plugin_manager()
    registry = registry_from(pm)
    config = load_config(path, registry)
    return config, pm, registry


def cmd_serve(args: argparse.Namespace) -> int:
    config, pm, registry = load(args.config)
    pm.hook.miresga_configure(config=config)
    demo = _start_demo_backends(config) if args.demo_backends else None
    try:
        dataplane = registry.dataplanes[config.dataplane.kind]()
        return int(dataplane.run(config, pm, registry) or 0)
    finally:
        if demo is not None:
            demo.send_signal(signal.SIGTERM)
            demo.wait(5)
        pm.hook.miresga_unconfigure(config=config)


def _start_demo_backends(config: Config) -> subprocess.Popen[bytes] | None:
    free: dict[Address, str] = {}
    for pool in config.pools.values():
        for b in pool.backends:
            if b.address.host == "127.0.0.1" and not _listening(b.address):
                free.setdefault(b.address, b.name or f"b{b.address.port}")
    if not free:
        return None
    cmd = [sys.executable, "-m", "miresga_core.cli", "backend", "--host", "127.0.0.1"]
    for addr, name in free.items():
        cmd += ["--port", str(addr.port), "--name", name]
    proc = subprocess.Popen(cmd)
    deadline = time.monotonic() + 10
    while not all(_listening(a) for a in free):
        if time.monotonic() > deadline or proc.poll() is not None:
            raise SystemExit("demo backends did not start")
        time.sleep(0.05)
    print(f"demo backends on {', '.join(map(str, free))}", flush=True)
    return proc


def _listening(addr: Address) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((addr.host, addr.port)) == 0


def cmd_check(args: argparse.Namespace) -> int:
    config, _, registry = load(args.config)
    engine = getattr(config.dataplane.options, "engine", "python")
    if config.dataplane.kind == "kernel" and engine == "native":
        from .kernel.native import check_native

        check_native(config, registry)  # what `serve` would refuse, refused here too
    print(f"{config.file}: OK (data plane {config.dataplane.kind})")
    if config.dataplane.kind == "kernel":
        from .kernel.plugin import KernelOptions, choose_engine

        choice = choose_engine(config, registry, config.dataplane.options or KernelOptions())
        print(f"engine {choice.engine}: {choice.reason}")
    policies = {name: (registry.policies[p.policy], p.options) for name, p in config.pools.items()}
    for listener in config.listeners:
        parser = registry.parsers[listener.protocol](max_head=listener.max_head)
        scope = route_scope(listener, parser, policies)
        print(f"listener {listener.name}: {listener.listen} protocol={listener.protocol} "
              f"route-scope={scope}")
        for route in listener.routes:
            conds = " and ".join(f"{m.field} {m.op} {'|'.join(m.values)}" for m in route.match)
            print(f"  route {route.name}: {conds or 'any'} -> pool {route.pool} "
                  f"(offload {route.offload.value})")
        print(f"  default -> {listener.default_pool or '404'}")
    for name, pool in config.pools.items():
        print(f"pool {name}: policy={pool.policy} health={pool.health.kind}")
        for b in pool.backends:
            print(f"  {b.name or b.address} {b.address} weight={b.weight}")
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    pm = get_plugin_manager()
    registry = registry_from(pm)
    for info in plugin_infos(pm):
        print(f"{info.name}  ({info.distribution} {info.version})")
        print(f"  hooks: {', '.join(info.hooks) or '-'}")
    print(f"parsers: {', '.join(sorted(registry.parsers))}")
    print(f"policies: {', '.join(sorted(registry.policies))}")
    print(f"data planes: {', '.join(sorted(registry.dataplanes))}")
    return 0


def cmd_backend(args: argparse.Namespace) -> int:
    from .demo import run_backends

    names = args.name or []
    specs = [(args.host, port, names[i] if i < len(names) else f"b{port}")
             for i, port in enumerate(args.port)]
    run_backends(specs)
    return 0


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
