"""``miresga status``: health and traffic of a running load balancer, from its admin API.

Reads ``GET /status`` (JSON) of the admin address given with ``--admin`` or taken from the
config's ``[admin] listen``, and prints listeners (with their route scope), every backend's
active verdict, passive failures and the requests it served. ``--json`` prints the
document as is.
"""

from __future__ import annotations

import argparse
import http.client
import json
from typing import Any

from .api import Address, parse_address
from .errors import MiresgaError

__all__ = ["add_parser", "cmd_status", "fetch_status", "render_status"]


def add_parser(sub: Any) -> None:
    p = sub.add_parser("status", help="show backend health and traffic of a running balancer")
    p.add_argument("-c", "--config", default="miresga.toml",
                   help="config whose [admin] listen to ask (default miresga.toml)")
    p.add_argument("--admin", help="admin address ip:port (overrides the config)")
    p.add_argument("--json", action="store_true", help="print the raw JSON document")
    p.set_defaults(func=cmd_status)


def fetch_status(address: Address, timeout: float = 5.0) -> dict[str, Any]:
    conn = http.client.HTTPConnection(address.host, address.port, timeout=timeout)
    try:
        conn.request("GET", "/status")
        resp = conn.getresponse()
        body = resp.read()
    except OSError as exc:
        raise MiresgaError(f"admin API at {address} unreachable: {exc}") from None
    finally:
        conn.close()
    if resp.status != 200:
        raise MiresgaError(f"admin API at {address} answered {resp.status}")
    try:
        return json.loads(body)
    except ValueError as exc:
        raise MiresgaError(f"admin API at {address} sent bad JSON: {exc}") from None


def _admin_address(args: argparse.Namespace) -> Address:
    if args.admin:
        try:
            return parse_address(args.admin)
        except ValueError as exc:
            raise MiresgaError(f"--admin: {exc}") from None
    from .cli_serve import load

    config, _, _ = load(args.config)
    if config.admin.listen is None:
        raise MiresgaError(f"{config.file}: no [admin] listen address; pass --admin ip:port")
    return config.admin.listen


def render_status(doc: dict[str, Any]) -> str:
    served: dict[str, int] = {}
    for worker in doc.get("workers", []):
        for stats in worker.get("stats", {}).values():
            for key, count in stats.get("requests", {}).items():
                served[key] = served.get(key, 0) + count
    lines = []
    for lst in doc.get("listeners", []):
        scope = f" route-scope={lst['route_scope']}" if lst.get("route_scope") else ""
        lines.append(f"listener {lst['name']} {lst['listen']} {lst['protocol']}{scope}")
    for pool, backends in doc.get("pools", {}).items():
        lines.append(f"pool {pool}")
        for b in backends:
            state = "UP" if b["up"] else "DOWN"
            if b["up"] and b.get("passive_out"):
                state = "UP (passively out in some workers)"
            lines.append(f"  {b['backend']:<20} {b['address']:<22} {state:<6} "
                         f"weight={b['weight']} health={b.get('health', '?')} "
                         f"passive_failures={b.get('passive_failures', 0)} "
                         f"requests={served.get(pool + '/' + b['backend'], 0)}")
    workers = doc.get("workers", [])
    bad = [w for w in workers if "error" in w]
    lines.append(f"workers: {len(workers) - len(bad)} answering"
                 + (f", {len(bad)} not answering" if bad else ""))
    return "\n".join(lines)


def cmd_status(args: argparse.Namespace) -> int:
    doc = fetch_status(_admin_address(args))
    print(json.dumps(doc, indent=1) if args.json else render_status(doc))
    return 0
