"""The benchmark's namespace topology (pyroute2), and process helpers.

  <p>-cli  10.77.1.2 ----veth---- 10.77.1.1  <p>-lb  10.77.2.1 ----veth---- 10.77.2.2  <p>-be
  (wrk, h2load)                   (the load balancers; forwards    (nginx backends)
                                   for the direct connection)

Everything is torn down in ``close()`` (namespaces take their veths with them).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from pyroute2 import NetNS, netns

__all__ = ["Hosts", "Topology", "descendants", "wait_port"]

CLI_IP, LB_IP, LB_BE_IP, BE_IP = "10.77.1.2", "10.77.1.1", "10.77.2.1", "10.77.2.2"


class Hosts:
    """Processes in named network namespaces (role -> namespace), stopped in ``close()``."""

    def __init__(self, names: dict[str, str]) -> None:
        self.names = names
        self.procs: list[subprocess.Popen[bytes]] = []

    def cmd(self, role: str, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.names[role], *argv]

    def run(self, role: str, argv: list[str], timeout: float = 60) -> str:
        out = subprocess.run(self.cmd(role, argv), capture_output=True, text=True,
                             timeout=timeout, check=True)
        return out.stdout

    def spawn(self, role: str, argv: list[str], log: Path, env: dict[str, str] | None = None,
              ) -> subprocess.Popen[bytes]:
        with open(log, "wb") as fh:
            proc = subprocess.Popen(self.cmd(role, argv), stdout=fh, stderr=subprocess.STDOUT,
                                    env=env, start_new_session=True)
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # its own session: only what we started
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        if proc in self.procs:
            self.procs.remove(proc)

    def close(self) -> None:
        for proc in list(self.procs):
            self.stop(proc)


class Topology(Hosts):
    def __init__(self, prefix: str = "mrb") -> None:
        super().__init__({role: f"{prefix}-{role}" for role in ("cli", "lb", "be")})

    def up(self) -> None:
        self.close()  # leftovers of an interrupted run
        for name in self.names.values():
            netns.create(name)
        self._link("cli", CLI_IP, "lb", LB_IP, "c0")
        self._link("lb", LB_BE_IP, "be", BE_IP, "b0")
        self._route("cli", "10.77.2.0/24", LB_IP)
        self._route("be", "10.77.1.0/24", LB_BE_IP)
        self.run("lb", ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
        for role in self.names:
            self.run(role, ["ip", "link", "set", "lo", "up"])

    def _link(self, a: str, a_ip: str, b: str, b_ip: str, tag: str) -> None:
        na, nb = self.names[a], self.names[b]
        with NetNS(na) as ns:
            ns.link("add", ifname=f"{tag}a", kind="veth", peer={"ifname": f"{tag}b",
                                                                  "net_ns_fd": nb})
            idx = ns.link_lookup(ifname=f"{tag}a")[0]
            ns.addr("add", index=idx, address=a_ip, prefixlen=24)
            ns.link("set", index=idx, state="up")
        with NetNS(nb) as ns:
            idx = ns.link_lookup(ifname=f"{tag}b")[0]
            ns.addr("add", index=idx, address=b_ip, prefixlen=24)
            ns.link("set", index=idx, state="up")

    def _route(self, role: str, dst: str, gateway: str) -> None:
        with NetNS(self.names[role]) as ns:
            ns.route("add", dst=dst, gateway=gateway)

    def close(self) -> None:
        super().close()
        existing = set(netns.listnetns())
        for name in self.names.values():
            if name in existing:
                netns.remove(name)


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def wait_port(topo: Hosts, role: str, host: str, port: int, timeout: float = 10,
              http2: bool = False) -> None:
    """Until ``host:port`` answers a GET of /1k (h2c prior knowledge with ``http2``)."""
    deadline = time.monotonic() + timeout
    h2 = ["--http2-prior-knowledge"] if http2 else []
    while time.monotonic() < deadline:
        probe = subprocess.run(topo.cmd(role, ["curl", "-sf", *h2, "-o", "/dev/null", "-m",
                                               "1", f"http://{host}:{port}/1k"]),
                               check=False)
        if probe.returncode == 0:
            return
        time.sleep(0.2)
    raise RuntimeError(f"nothing answers on {host}:{port} in {role}")
