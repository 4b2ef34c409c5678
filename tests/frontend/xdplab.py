"""The whole Miresga path in a lab: client -> switch (XDP) -> front-end -> agent -> nginx.

``XdpLab`` writes a miresga config (two pools on two nginx backends, a pinned route),
starts nginx in each backend namespace with a config it writes, and runs the ``xdp``
data plane's controller (the same code ``miresga serve`` runs). Clients are real curl /
wrk processes in the client namespace. Everything started is stopped in ``close``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import textwrap
import time
from pathlib import Path
from typing import Any

from miresga_core.config import load_config
from miresga_core.lab.netns import run_in_netns
from miresga_core.plugins import get_plugin_manager, registry_from
from miresga_core.xdpdp.controller import XdpController

PREFIX = "mrf-"
VIP = "10.77.255.1"
BACKENDS = ("10.77.3.1", "10.77.3.2")


def config_text(run_dir: Path, frontends: int = 1, idle: float = 30.0) -> str:
    return textwrap.dedent(f"""\
        [[listeners]]
        name = "web"
        listen = "{VIP}:80"
        default_pool = "blue"
        [[listeners.routes]]
        pool = "green"
        match = {{ path = {{ prefix = "/green" }} }}
        [[listeners.routes]]
        pool = "blue"
        offload = "pin"
        match = {{ path = {{ prefix = "/pin" }} }}
        [[listeners.routes]]
        pool = "blue"
        offload = "none"
        match = {{ path = {{ prefix = "/none/" }} }}
        [[listeners.routes]]
        pool = "both"
        match = {{ path = {{ prefix = "/rr" }} }}
        [pools.blue]
        backends = [{{ address = "{BACKENDS[0]}:8080" }}]
        [pools.green]
        backends = [{{ address = "{BACKENDS[1]}:8080" }}]
        [pools.both]
        policy = "round-robin"
        backends = [{{ address = "{BACKENDS[0]}:8080" }}, {{ address = "{BACKENDS[1]}:8080" }}]
        [dataplane]
        kind = "xdp"
        [dataplane.xdp]
        lab_prefix = "{PREFIX}"
        clients = 1
        frontends = {frontends}
        backends = 2
        idle_timeout_s = {idle}
        run_dir = "{run_dir}"
        """)


def nginx_conf(root: Path, work: Path, addr: str, name: str) -> str:
    return textwrap.dedent(f"""\
        user root;
        worker_processes 1;
        daemon off;
        pid {work}/nginx.pid;
        error_log {work}/error.log info;
        events {{ worker_connections 512; }}
        http {{
            access_log off;
            keepalive_requests 100000;
            keepalive_timeout 60s;
            client_body_temp_path {work}/body;
            proxy_temp_path {work}/proxy;
            fastcgi_temp_path {work}/fcgi;
            uwsgi_temp_path {work}/uwsgi;
            scgi_temp_path {work}/scgi;
            server {{
                listen {addr}:8080 backlog=1024;
                root {root};
                add_header X-Backend {name};
                location ~ whoami$ {{ return 200 "{name}\\n"; }}
                location /none/ {{ alias {root}/; }}
                location ~ echo$ {{ return 200 "{name} $request_method $content_length\\n"; }}
            }}
        }}
        """)


class XdpLab:
    def __init__(self, tmp: Path, frontends: int = 1, running: int | None = None) -> None:
        self.tmp = tmp
        self.www = tmp / "www"
        self.www.mkdir()
        (self.www / "index.html").write_text("hello through miresga\n")
        (self.www / "1k").write_bytes(os.urandom(1024))
        (self.www / "1m").write_bytes(os.urandom(1 << 20))
        self.nginx: list[subprocess.Popen[bytes]] = []
        self.config_path = tmp / "miresga.toml"
        self.config_path.write_text(config_text(tmp / "run", frontends))
        registry = registry_from(get_plugin_manager())
        self.config = load_config(self.config_path, registry)
        self.ctl = XdpController(self.config, self.config.dataplane.options)
        try:
            self.ctl.start(frontends=running)
            for i, addr in enumerate(BACKENDS):
                self.start_nginx(i, addr)
        except BaseException:
            self.close()
            raise

    def start_nginx(self, i: int, addr: str) -> None:
        work = self.tmp / f"nginx{i}"
        work.mkdir(exist_ok=True)
        conf = work / "nginx.conf"
        conf.write_text(nginx_conf(self.www, work, addr, f"b{i}"))
        # its own session: master and worker are killed together by process group
        proc = subprocess.Popen(["ip", "netns", "exec", f"{PREFIX}b{i}", "nginx", "-c",
                                 str(conf)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        self.nginx.append(proc)
        deadline = time.monotonic() + 10
        while True:
            out = run_in_netns(f"{PREFIX}b{i}", ["ss", "-ltnH", "sport", "= :8080"])
            if out.strip():
                return
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nginx b{i} did not start: "
                                   f"{(work / 'error.log').read_text()}")
            time.sleep(0.05)

    def kill_nginx(self, i: int) -> None:
        """SIGKILL master and worker (the backend dies mid-whatever it was doing)."""
        os.killpg(self.nginx[i].pid, signal.SIGKILL)
        self.nginx[i].wait(timeout=10)

    def close(self) -> None:
        for proc in self.nginx:
            if proc.poll() is None:
                proc.terminate()  # nginx's master stops its workers on SIGTERM
        for proc in self.nginx:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        self.ctl.stop()

    # ------------------------------------------------------------------ clients

    def client(self, argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(["ip", "netns", "exec", f"{PREFIX}c0", *argv],
                              capture_output=True, timeout=timeout, check=False)

    def curl(self, *urls: str, extra: tuple[str, ...] = (), timeout: float = 60
             ) -> subprocess.CompletedProcess[bytes]:
        return self.client(["curl", "-sS", "--max-time", str(timeout - 5), *extra,
                            *[f"http://{VIP}{u}" for u in urls]], timeout=timeout)

    def fe_stats(self, i: int = 0) -> dict[str, Any]:
        return self.ctl.frontend_stats().get(i, {})

    def switch_counters(self) -> dict[str, int]:
        return {k: p for k, (p, _b) in self.ctl.switch.counters().items()}

    def offload_entries(self) -> int:
        from miresga_core.dataplane import names

        maps = self.ctl.switch.maps
        return len(list(maps[names.OFFLOAD].keys(None))) + len(
            list(maps[names.OFFLOAD_REV].keys(None)))

    def agent_flows(self) -> int:
        from miresga_core.xdpdp.agents import agent_maps

        total = 0
        for i in range(len(BACKENDS)):
            maps = agent_maps(self.ctl.spec.pin_dir, f"{PREFIX}b{i}")
            try:
                total += len(maps.flows())
            finally:
                maps.close()
        return total
