"""Configuration text of every process the benchmark starts: the nginx backends, the peers
(HAProxy, NGINX) for HTTP/1.1 and HTTP/2, and Miresga's `kernel` and `xdp` data planes.
Pure functions of addresses and ports; the sections (bench/sections.py) write and start them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["MIRESGA_H2", "MIRESGA_KERNEL", "WORKERS", "haproxy_conf", "miresga_kernel_conf",
           "miresga_xdp_conf", "nginx_backend_conf", "nginx_lb_conf"]

WORKERS = 2  # workers / threads of every load balancer

# The Miresga `kernel` data plane variants of the HTTP/1.1 table: target name -> the
# [dataplane.kernel] options it runs with (besides workers). Adding a variant is one line.
MIRESGA_KERNEL: dict[str, dict[str, str]] = {
    "miresga-native": {"engine": "native"},  # what the default engine = "auto" picks here
    "miresga-relay": {"engine": "python", "splice": "relay"},
    "miresga-sockmap": {"engine": "python", "splice": "sockmap"},
}

# The Miresga http2 listeners of the HTTP/2 table: target name -> (terminated, the
# [dataplane.kernel] options). Terminated: route scope "request", every stream routed on its
# own (as HAProxy and NGINX do); pinned: scope "connection", the first request picks the
# backend and the connection becomes a tunnel (docs/http2.md).
MIRESGA_H2: dict[str, tuple[bool, dict[str, str]]] = {
    "miresga-h2": (True, {}),
    "miresga-h2-pinned": (False, {}),
}


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return f'"{value}"'


def nginx_backend_conf(root: Path, tmp: Path, name: str, h1: Sequence[str],
                       h2: Sequence[str] = (), user_root: bool = False) -> str:
    """One nginx (1 worker) serving ``root`` on HTTP/1.1 addresses ``h1`` and on h2c
    (HTTP/2 with prior knowledge, `listen ... http2` without ssl) addresses ``h2``."""
    def server(addr: str, extra: str) -> str:
        return (f"server {{ listen {addr}{extra} reuseport backlog=4096; root {root}; "
                f"keepalive_requests 1000000; keepalive_timeout 60s; access_log off; }}")
    servers = "\n".join([server(a, "") for a in h1] + [server(a, " http2") for a in h2])
    temp = " ".join(f"{k}_temp_path {tmp}/{name}-{k};"
                    for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return (("user root;\n" if user_root else "")
            + f"worker_processes 1; daemon off; pid {tmp}/{name}.pid; "
            f"error_log {tmp}/{name}.err;\nevents {{ worker_connections 4096; }}\n"
            f"http {{ sendfile on; tcp_nopush on; {temp}\n{servers} }}\n")


def nginx_lb_conf(tmp: Path, name: str, listen: str, backends: Sequence[str],
                  http2: bool = False) -> str:
    """NGINX as reverse proxy: HTTP/1.1 or h2c to clients, HTTP/1.1 keep-alive upstream
    (NGINX cannot proxy HTTP/2 upstream)."""
    ups = " ".join(f"server {b};" for b in backends)
    temp = " ".join(f"{k}_temp_path {tmp}/{name}-{k};"
                    for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return (f"worker_processes {WORKERS}; daemon off; pid {tmp}/{name}.pid; "
            f"error_log {tmp}/{name}.err;\nevents {{ worker_connections 4096; }}\n"
            f"http {{ access_log off; {temp}\nupstream be {{ {ups} keepalive 64; }}\n"
            f"server {{ listen {listen}{' http2' if http2 else ''} reuseport backlog=4096; "
            f"keepalive_requests 1000000; location / {{ proxy_pass http://be; "
            f"proxy_http_version 1.1; proxy_set_header Connection \"\"; "
            f"proxy_buffering on; }} }} }}\n")


def haproxy_conf(listen: str, backends: Sequence[str], http2: bool = False) -> str:
    """HAProxy, HTTP mode, keep-alive to the servers (HTTP/1.1), h2c on the front with
    ``http2`` (`bind ... proto h2`)."""
    servers = "\n".join(f"  server b{i} {b}" for i, b in enumerate(backends))
    return (f"global\n  nbthread {WORKERS}\n  maxconn 4000\ndefaults\n  mode http\n"
            f"  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n"
            f"  option http-keep-alive\n  http-reuse always\n"
            f"frontend fe\n  bind {listen}{' proto h2' if http2 else ''}\n"
            f"  default_backend be\nbackend be\n  balance roundrobin\n{servers}\n")


def _pools(backends: Sequence[str], extra_pool: bool) -> str:
    bes = ", ".join(f'{{ address = "{b}", name = "b{i}" }}' for i, b in enumerate(backends))
    text = f'[pools.web]\npolicy = "round-robin"\nbackends = [{bes}]\n'
    if extra_pool:
        text += f'[pools.spare]\npolicy = "round-robin"\nbackends = [{bes}]\n'
    return text


def miresga_kernel_conf(listen: str, backends: Sequence[str], protocol: str = "http1",
                        options: Mapping[str, object] | None = None,
                        terminated: bool = False) -> str:
    """`miresga serve` with the kernel data plane. ``terminated`` (HTTP/2): a second route
    (to a pool of the same backends) that no benchmark request takes makes the listener's
    route scope "request", so Miresga terminates HTTP/2 and routes every stream; without it
    there is one place to go and the connection is pinned (docs/http2.md)."""
    opts = {"workers": WORKERS, **(options or {})}
    kernel = "".join(f"{k} = {_toml(v)}\n" for k, v in opts.items())
    route = ('[[listeners.routes]]\npool = "spare"\n'
             'match = { path = { prefix = "/never-requested/" } }\n' if terminated else "")
    return (f'[dataplane]\nkind = "kernel"\n[dataplane.kernel]\n{kernel}'
            f'[[listeners]]\nname = "web"\nlisten = "{listen}"\nprotocol = "{protocol}"\n'
            f'default_pool = "web"\nforwarded_for = false\n{route}'
            + _pools(backends, terminated))


def miresga_xdp_conf(vip: str, backends: Sequence[str], prefix: str, run_dir: Path,
                     frontend: str) -> str:
    """The `xdp` data plane on a lab that the benchmark brings up itself (manage_lab =
    false): two front-end hosts (front-end 0 serves, host 1 runs the peers), two backends."""
    return (f'[[listeners]]\nname = "web"\nlisten = "{vip}"\ndefault_pool = "web"\n'
            + _pools(backends, False)
            + f'[dataplane]\nkind = "xdp"\n[dataplane.xdp]\nlab_prefix = "{prefix}"\n'
            f'clients = 1\nfrontends = 2\nbackends = 2\nmanage_lab = false\n'
            f'idle_timeout_s = 30\nrun_dir = "{run_dir}"\nfrontend = "{frontend}"\n')
