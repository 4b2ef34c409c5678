"""The benchmark's two topologies ("sections") and the targets each one can start.

``kernel``: bench/topology.py (client, load balancer and backend namespaces joined by
veths, routed by the kernel); HTTP/1.1 and HTTP/2 targets.

``xdp``: the xdp data plane's lab (miresga_core.lab: client, XDP switch, two front-end
hosts, two backend hosts). Every target there runs in the same lab, so the xdp data plane is
compared with direct, HAProxy and NGINX over the same switch and veths: the peers run on
front-end host 1 (client -> switch -> peer -> switch -> backend), the Miresga front-end on
front-end host 0, and "direct" is client -> switch -> backend. The switch sends every packet
from a configured backend address and port (10.77.3.x:8080) to the front-ends (it belongs to
a Miresga connection), so the backends' nginx also listens on 8081, which the switch just
routes: direct and the peers use 8081, Miresga 8080 -- the same nginx processes and files.

A section is set up once per run and torn down at its end; ``start`` brings one target up
(raising ``Skipped`` with the reason when it cannot run here) and ``stop`` takes it down.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import peers
from .topology import BE_IP, LB_IP, Hosts, Topology, wait_port

__all__ = ["OBJECTS", "KernelSection", "Skipped", "Started", "XdpSection"]

REPO = Path(__file__).resolve().parents[1]
OBJECTS = {"1k": 1024, "64k": 65536, "1m": 1 << 20}
PEERS = ("haproxy", "nginx")


class Skipped(RuntimeError):
    """This target cannot run on this machine; the message says why."""


@dataclass
class Started:
    procs: list[subprocess.Popen[bytes]]   # the load balancer's processes (CPU is theirs)
    urls: list[str]                         # the client splits its connections over these
    handle: Any = None                      # what ``stop`` needs besides the processes


def write_objects(root: Path) -> None:
    root.mkdir(mode=0o755, exist_ok=True)
    for obj, size in OBJECTS.items():
        (root / obj).write_bytes(os.urandom(size))


def _env() -> dict[str, str]:
    paths = [REPO, REPO / "plugins" / "http1", REPO / "plugins" / "policies",
             REPO / "plugins" / "http2"]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(str(p) for p in paths))


def _started(hosts: Hosts, role: str, name: str, argv: list[str], tmp: Path, host: str,
             port: int, http2: bool) -> subprocess.Popen[bytes]:
    """Spawn ``argv`` in ``role`` and wait until it answers on host:port."""
    proc = hosts.spawn(role, argv, tmp / f"{name}.log", env=_env())
    try:
        wait_port(hosts, "cli", host, port, timeout=30, http2=http2)
    except RuntimeError:
        hosts.stop(proc)
        raise RuntimeError(f"{name} did not start:\n"
                           + (tmp / f"{name}.log").read_text()[-2000:]) from None
    return proc


def _start_peer(hosts: Hosts, role: str, target: str, protocol: str, tmp: Path, host: str,
                port: int, backends: list[str]) -> subprocess.Popen[bytes]:
    h2 = protocol == "http2"
    name = f"{target}-{protocol}"
    listen = f"{host}:{port}"
    if target == "haproxy":
        (tmp / f"{name}.cfg").write_text(peers.haproxy_conf(listen, backends, h2))
        argv = ["haproxy", "-db", "-f", str(tmp / f"{name}.cfg")]
    else:
        (tmp / f"{name}.conf").write_text(peers.nginx_lb_conf(tmp, name, listen, backends, h2))
        argv = ["nginx", "-c", str(tmp / f"{name}.conf")]
    return _started(hosts, role, name, argv, tmp, host, port, h2)


def _start_miresga(hosts: Hosts, role: str, name: str, conf_text: str, tmp: Path, host: str,
                   port: int, http2: bool) -> subprocess.Popen[bytes]:
    conf = tmp / f"{name}.toml"
    conf.write_text(conf_text)
    argv = [sys.executable, "-m", "miresga_core.cli", "serve", "-c", str(conf)]
    return _started(hosts, role, name, argv, tmp, host, port, http2)


class KernelSection:
    name = "kernel"
    protocols = ("http1", "http2")
    H1_PORTS = ("8081", "8082")
    H2_PORTS = ("8091", "8092")

    def __init__(self, tmp: Path, prefix: str = "mrb") -> None:
        self.tmp = tmp
        self.hosts = Topology(prefix)

    def targets(self, protocol: str) -> list[str]:
        if protocol == "http2":
            return ["direct", *PEERS, *peers.MIRESGA_H2]
        return ["direct", *PEERS, *peers.MIRESGA_KERNEL]

    def modes(self, protocol: str) -> list[str]:
        # h2load has no connection-per-request mode: HTTP/2 is measured multiplexed only
        return ["keep-alive"] if protocol == "http2" else ["keep-alive", "close"]

    def port(self, target: str, protocol: str) -> int:
        order = self.targets(protocol)
        return (9101 if protocol == "http2" else 9001) + order.index(target) - 1

    def setup(self) -> None:
        self.hosts.up()
        root = self.tmp / "www"
        write_objects(root)
        conf = self.tmp / "be.conf"
        conf.write_text(peers.nginx_backend_conf(
            root, self.tmp, "be", [f"{BE_IP}:{p}" for p in self.H1_PORTS],
            [f"{BE_IP}:{p}" for p in self.H2_PORTS]))
        self.hosts.spawn("be", ["nginx", "-c", str(conf)], self.tmp / "be.log")
        wait_port(self.hosts, "cli", BE_IP, int(self.H1_PORTS[0]))
        wait_port(self.hosts, "cli", BE_IP, int(self.H2_PORTS[0]), http2=True)

    def teardown(self) -> None:
        self.hosts.close()

    def start(self, target: str, protocol: str) -> Started:
        h2 = protocol == "http2"
        be_ports = self.H2_PORTS if h2 else self.H1_PORTS
        if target == "direct":
            return Started([], [f"http://{BE_IP}:{be_ports[0]}"])
        port = self.port(target, protocol)
        # HAProxy and NGINX talk HTTP/1.1 to the backends (NGINX cannot proxy HTTP/2);
        # Miresga's http2 listener talks HTTP/2 to them (h2c ports of the same nginx)
        h1_backends = [f"{BE_IP}:{p}" for p in self.H1_PORTS]
        if target in PEERS:
            proc = _start_peer(self.hosts, "lb", target, protocol, self.tmp, LB_IP, port,
                               h1_backends)
        else:
            terminated, options = (peers.MIRESGA_H2[target] if h2 else
                                   (False, peers.MIRESGA_KERNEL[target]))
            text = peers.miresga_kernel_conf(f"{LB_IP}:{port}",
                                             [f"{BE_IP}:{p}" for p in be_ports],
                                             protocol, options, terminated)
            proc = _start_miresga(self.hosts, "lb", f"{target}-{protocol}", text, self.tmp,
                                  LB_IP, port, h2)
        return Started([proc], [f"http://{LB_IP}:{port}"])

    def stop(self, started: Started) -> None:
        for proc in started.procs:
            self.hosts.stop(proc)

    def tick(self, started: Started) -> None:
        pass


class XdpSection:
    """The xdp lab: prefix ``<p>``; VIP 10.77.255.1:80; backends 10.77.3.1/2:8080;
    peers on front-end host 1 (10.77.2.2)."""

    name = "xdp"
    protocols = ("http1",)
    VIP = "10.77.255.1"
    PEER_IP = "10.77.2.2"
    BACKENDS = ("10.77.3.1:8080", "10.77.3.2:8080")         # Miresga's pool
    PEER_BACKENDS = ("10.77.3.1:8081", "10.77.3.2:8081")    # direct and the peers
    FRONTENDS = {"xdp-python": "python", "xdp-c": "dpdk"}

    def __init__(self, tmp: Path, prefix: str = "mrx-") -> None:
        self.tmp = tmp / "xdp"
        self.prefix = prefix
        self.hosts = Hosts({"cli": f"{prefix}c0", "lb": f"{prefix}f1",
                            "be0": f"{prefix}b0", "be1": f"{prefix}b1"})
        self.spec: Any = None

    def targets(self, protocol: str) -> list[str]:
        return ["direct", *PEERS, *self.FRONTENDS]

    def modes(self, protocol: str) -> list[str]:
        return ["keep-alive", "close"]

    def _config(self, frontend: str) -> Any:
        from miresga_core.config import load_config
        from miresga_core.plugins import get_plugin_manager, registry_from

        path = self.tmp / f"miresga-{frontend}.toml"
        path.write_text(peers.miresga_xdp_conf(f"{self.VIP}:80", list(self.BACKENDS),
                                               self.prefix, self.tmp / "run", frontend))
        return load_config(path, registry_from(get_plugin_manager()))

    def setup(self) -> None:
        from miresga_core.lab import topology
        from miresga_core.xdpdp.controller import XdpController

        self.tmp.mkdir(mode=0o755, exist_ok=True)
        config = self._config("python")
        self.spec = XdpController(config, config.dataplane.options).spec
        topology.up(self.spec)
        root = self.tmp / "www"
        write_objects(root)
        for i, addr in enumerate(self.BACKENDS):
            conf = self.tmp / f"be{i}.conf"
            conf.write_text(peers.nginx_backend_conf(
                root, self.tmp, f"be{i}", [addr, self.PEER_BACKENDS[i]], user_root=True))
            self.hosts.spawn(f"be{i}", ["nginx", "-c", str(conf)], self.tmp / f"be{i}.log")
            host, port = self.PEER_BACKENDS[i].split(":")
            wait_port(self.hosts, "cli", host, int(port))

    def teardown(self) -> None:
        from miresga_core.lab import topology

        self.hosts.close()
        if self.spec is not None:
            topology.down(self.spec)

    def start(self, target: str, protocol: str) -> Started:
        if target == "direct":
            # both backend hosts, half the connections each: the same backend capacity
            # (two nginx, one worker each) as behind a load balancer
            return Started([], [f"http://{b}" for b in self.PEER_BACKENDS])
        if target in PEERS:
            port = 9001 + PEERS.index(target)
            proc = _start_peer(self.hosts, "lb", target, protocol, self.tmp, self.PEER_IP,
                               port, list(self.PEER_BACKENDS))
            return Started([proc], [f"http://{self.PEER_IP}:{port}"])
        return self._start_xdp(target)

    def _start_xdp(self, target: str) -> Started:
        from miresga_core.xdpdp.controller import XdpController

        frontend = self.FRONTENDS[target]
        if frontend == "dpdk":
            from miresga_core.dpdk.build import BuildError, binary
            try:
                binary()
            except BuildError as e:
                raise Skipped(str(e).splitlines()[0]) from None
        config = self._config(frontend)
        ctl = XdpController(config, config.dataplane.options)
        ctl.start(frontends=1)
        try:
            wait_port(self.hosts, "cli", self.VIP, 80, timeout=20)
        except RuntimeError:
            ctl.stop()
            raise
        return Started(list(ctl.frontends.values()), [f"http://{self.VIP}:80"], ctl)

    def stop(self, started: Started) -> None:
        if started.handle is not None:
            started.handle.stop()
        for proc in started.procs:
            if proc in self.hosts.procs:
                self.hosts.stop(proc)

    def tick(self, started: Started) -> None:
        # what `miresga serve` does periodically: rotate the cookie secret when due and
        # sweep the agents' flow maps (closed flows would otherwise fill them)
        if started.handle is not None:
            started.handle.tick()
