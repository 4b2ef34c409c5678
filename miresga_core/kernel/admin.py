"""The admin API of the master: ``GET /status`` (JSON) and ``GET /metrics`` (Prometheus).

A deliberately small HTTP/1.0 responder on asyncio streams: one request per connection,
read-only, bound to the ``admin.listen`` address (keep it on loopback or a management net).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .master import Master

__all__ = ["render_metrics", "start_admin", "status_document"]


async def status_document(master: Master) -> dict[str, Any]:
    now = time.monotonic()
    workers = await master.worker_stats()
    pools = {name: state.status(now) for name, state in master.pools.items()}
    for name, backends in pools.items():
        for i, backend in enumerate(backends):
            # passive verdicts are per worker: sum the failures, count the workers avoiding it
            seen = [w["pools"][name][i] for w in workers if name in w.get("pools", {})]
            backend["passive_failures"] = sum(b["passive_failures"] for b in seen)
            backend["passive_out_workers"] = sum(1 for b in seen if b["passive_out"])
            backend["passive_out"] = backend["passive_out_workers"] > 0
            backend["health"] = master.config.pools[name].health.kind
    return {
        "dataplane": "kernel",
        "listeners": [{"name": lst.name, "listen": str(lst.listen), "protocol": lst.protocol,
                       "routes": len(lst.routes), "default_pool": lst.default_pool,
                       "route_scope": master.route_scopes.get(lst.name, "")}
                      for lst in master.config.listeners],
        "pools": pools,
        "workers": workers,
    }


def render_metrics(doc: dict[str, Any]) -> str:
    lines = ["# HELP miresga_backend_up Active health verdict of a backend (1 = up).",
             "# TYPE miresga_backend_up gauge"]
    for pool, backends in doc["pools"].items():
        for b in backends:
            lines.append(f'miresga_backend_up{{pool="{pool}",backend="{b["backend"]}"}} '
                         f'{int(b["up"])}')
    lines += ["# HELP miresga_backend_passive_failures_total Connect failures and resets seen "
              "by the workers.", "# TYPE miresga_backend_passive_failures_total counter"]
    for pool, backends in doc["pools"].items():
        for b in backends:
            lines.append(f'miresga_backend_passive_failures_total{{pool="{pool}",'
                         f'backend="{b["backend"]}"}} {b.get("passive_failures", 0)}')
    lines += ["# HELP miresga_requests_total Requests relayed, by listener, pool and backend.",
              "# TYPE miresga_requests_total counter"]
    totals: dict[tuple[str, str], int] = {}
    local: dict[tuple[str, int], int] = {}
    for worker in doc["workers"]:
        for listener, stats in worker.get("stats", {}).items():
            for key, count in stats["requests"].items():
                totals[(listener, key)] = totals.get((listener, key), 0) + count
            for code, count in stats["statuses"].items():
                local[(listener, int(code))] = local.get((listener, int(code)), 0) + count
    for (listener, key), count in sorted(totals.items()):
        pool, _, backend = key.partition("/")
        lines.append(f'miresga_requests_total{{listener="{listener}",pool="{pool}",'
                     f'backend="{backend}"}} {count}')
    lines += ["# HELP miresga_local_responses_total Responses the balancer answered itself.",
              "# TYPE miresga_local_responses_total counter"]
    for (listener, code), count in sorted(local.items()):
        lines.append(f'miresga_local_responses_total{{listener="{listener}",code="{code}"}} '
                     f'{count}')
    return "\n".join(lines) + "\n"


async def start_admin(master: Master) -> asyncio.base_events.Server:
    address = master.config.admin.listen
    assert address is not None

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 5)
            while (await asyncio.wait_for(reader.readline(), 5)) not in (b"\r\n", b"\n", b""):
                pass
            parts = line.split()
            path = parts[1].decode() if len(parts) > 1 else "/"
            if path == "/status":
                body, ctype, status = (json.dumps(await status_document(master), indent=1),
                                       "application/json", "200 OK")
            elif path == "/metrics":
                body, ctype, status = (render_metrics(await status_document(master)),
                                       "text/plain; version=0.0.4", "200 OK")
            else:
                body, ctype, status = "see /status and /metrics\n", "text/plain", "404 Not Found"
            data = body.encode()
            writer.write(f"HTTP/1.0 {status}\r\ncontent-type: {ctype}\r\ncontent-length: "
                         f"{len(data)}\r\n\r\n".encode() + data)
            await writer.drain()
        except (TimeoutError, OSError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, address.host, address.port)
