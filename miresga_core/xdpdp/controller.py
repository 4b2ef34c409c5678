"""The ``xdp`` data plane's controller: switch, agents and front-ends of a lab, in order.

``start`` brings the lab up (or uses a running one), programs the switch (VIPs from the
listeners, the backend table from the pools, a fresh cookie secret), attaches an agent on
every backend host the pools name, and starts one front-end process per front-end host.
``rotate_secret`` moves the cookie secret on (the previous one keeps validating for a
slot); ``add_frontend`` brings a stopped front-end in without breaking live connections
(the switch's two lb_index tables + Bloom filter); ``stop`` undoes everything.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Config, opt
from ..cookie import CookieSecrets
from ..errors import MiresgaError
from ..lab import topology
from ..lab.spec import LabSpec
from .agents import agent_maps, attach_agent, detach_agent, sweep

__all__ = ["XdpController", "XdpOptions"]

log = logging.getLogger("miresga.xdp")
REPO_ROOT = Path(__file__).resolve().parents[2]
AGENT_GRACE_S = 2.0


def _prefix(v: str) -> str | None:
    ok = re.fullmatch(r"[a-z][a-z0-9]{0,5}-", v)
    return None if ok else "1-6 lower-case letters/digits, then '-'"


def _count(low: int) -> Any:
    return lambda v: None if low <= v <= 200 else f"must be {low}..200"


@dataclass(frozen=True)
class XdpOptions:
    """``[dataplane.xdp]``: the lab the data plane runs in (see docs/xdp-dataplane.md)."""

    lab_prefix: str = opt("mx-", check=_prefix, doc="namespace prefix of the lab")
    clients: int = opt(1, check=_count(0), doc="client hosts in the lab")
    frontends: int = opt(1, check=_count(1), doc="front-end hosts (all start serving)")
    backends: int = opt(2, check=_count(1), doc="backend hosts (10.77.3.<i+1>)")
    manage_lab: bool = opt(True, doc="bring the lab up at start and down at exit")
    xdp_mode: str = opt("native", check=lambda v: None if v in ("native", "generic")
                        else "native or generic", doc="XDP attach mode of switch and agents")
    agent_secret_file: str = opt("", doc="agent key file (32 hex digits); empty: generated")
    cookie_rotate_s: float = opt(60.0, check=lambda v: None if v > 0 else "must be > 0",
                                 doc="seconds between SYN cookie secret rotations")
    idle_timeout_s: float = opt(300.0, check=lambda v: None if v > 0 else "must be > 0",
                                doc="idle connection state expiry (front-end and agents)")
    run_dir: str = opt("/run/miresga/xdp", doc="stats files and generated keys")
    frontend: str = opt("python", check=lambda v: None if v in ("python", "dpdk")
                        else "python or dpdk",
                        doc="front-end: the Python reference or the C/DPDK one (native/dpdk)")
    frontend_workers: int = opt(1, check=lambda v: None if 1 <= v <= 32 else "must be 1..32",
                                doc="lcores of each C/DPDK front-end (one flow-table shard "
                                "each); the Python front-end runs 1")
    demo_backends: bool = opt(False, doc="start the demo HTTP backend on every backend host "
                              "the pools name (miresga backend)")
    balance: str = opt("connection", check=lambda v: None if v in ("connection", "request")
                       else "connection or request",
                       doc="connection: a request routed to the pool of the connection's "
                       "current backend stays on that backend (no re-splice); request: "
                       "every request is balanced on its own (a re-splice whenever the "
                       "policy picks another backend)")


    def __post_init__(self) -> None:
        if self.frontend_workers > 1 and self.frontend != "dpdk":
            raise ValueError(f"frontend_workers = {self.frontend_workers} needs frontend = "
                             f"\"dpdk\": the Python front-end runs one worker",
                             "frontend_workers")


class XdpController:
    def __init__(self, config: Config, opts: XdpOptions) -> None:
        self.config = config
        self.opts = opts
        vips = tuple((lst.listen.host, lst.listen.port) for lst in config.listeners)
        self.spec = LabSpec(prefix=opts.lab_prefix, clients=opts.clients,
                            frontends=opts.frontends, backends=opts.backends, vips=vips,
                            xdp_mode=opts.xdp_mode)
        self.run_dir = Path(opts.run_dir) / opts.lab_prefix.rstrip("-")
        self.switch: Any = None
        self.secrets = CookieSecrets.generate()
        self.frontends: dict[int, subprocess.Popen[bytes]] = {}
        self.agents: list[str] = []
        self.demo: list[subprocess.Popen[bytes]] = []
        self.members: list[int] = []
        self.last_rotation = 0.0
        self.last_sweep = 0.0

    # ------------------------------------------------------------------ start / stop

    def start(self, frontends: int | None = None) -> None:
        """Everything up; ``frontends``: how many front-ends serve at first (default all)."""
        if self.opts.frontend == "dpdk":
            from ..dpdk.build import binary
            binary()  # builds it, or says clearly why the C/DPDK front-end is not built
        try:
            if self.opts.manage_lab:
                topology.up(self.spec)
            self.run_dir.mkdir(parents=True, exist_ok=True)
            from ..dataplane.xdp import XdpSwitch

            self.switch = XdpSwitch.from_pins(self.spec.pin_dir)
            self._program_switch()
            # the maps outlive front-ends: offloads of earlier ones have no owner now
            self.switch.offload_clear()
            self._agents()
            if self.opts.demo_backends:
                self._demo_backends()
            n = self.spec.frontends if frontends is None else frontends
            for i in range(n):
                self._start_frontend(i)
            self.members = list(range(n))
            self._set_members(drain=False)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for proc in self.frontends.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.frontends.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        self.frontends.clear()
        for proc in self.demo:
            proc.terminate()
        for proc in self.demo:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        self.demo.clear()
        for ns in self.agents:
            detach_agent(ns, "eth0", self.spec.pin_dir)
        self.agents.clear()
        if self.switch is not None:
            self.switch.offload_clear()  # their front-ends are gone (see start)
            self.switch.close()
            self.switch = None
        if self.opts.manage_lab:
            topology.down(self.spec)

    # ------------------------------------------------------------------ switch

    def backends(self) -> list[tuple[str, int]]:
        """Every backend of every pool, in a stable order: its switch backend index."""
        seen: dict[tuple[str, int], None] = {}
        for pool in self.config.pools.values():
            for b in pool.backend_objects():
                seen[(b.address.host, b.address.port)] = None
        return list(seen)

    def _program_switch(self) -> None:
        sw = self.switch
        for i, (addr, port) in enumerate(self.backends()):
            sw.set_backend(i, addr, port)
        sw.set_cookie_secret(self.secrets.current)
        self.last_rotation = time.monotonic()

    def rotate_secret(self) -> None:
        self.secrets = self.secrets.rotate()
        assert self.secrets.previous is not None
        self.switch.set_cookie_secret(self.secrets.current, self.secrets.previous)
        self.last_rotation = time.monotonic()

    def tick(self) -> None:
        """Periodic work: cookie rotation; restart nothing (a dead front-end is reported)."""
        if time.monotonic() - self.last_rotation >= self.opts.cookie_rotate_s:
            self.rotate_secret()
        if time.monotonic() - self.last_sweep >= 1.0:
            self.sweep_agents()
            self.last_sweep = time.monotonic()
        for i, proc in self.frontends.items():
            if proc.poll() is not None:
                raise MiresgaError(f"front-end {i} exited with status {proc.returncode}")

    # ------------------------------------------------------------------ agents

    def agent_secret_file(self) -> Path:
        if self.opts.agent_secret_file:
            return Path(self.opts.agent_secret_file)
        path = self.run_dir / "agent.key"
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(os.urandom(16).hex() + "\n")
        return path

    def _agents(self) -> None:
        from ..agent.maps import read_secret_file

        keys = read_secret_file(self.agent_secret_file())
        by_addr = {h.addr: h for h in self.spec.hosts("backend")}
        for addr, _port in self.backends():
            host = by_addr.get(addr)
            if host is None:
                raise MiresgaError(f"backend {addr} is not a backend host of lab "
                                   f"{self.spec.prefix} ({', '.join(by_addr)})")
            if host.ns not in self.agents:
                attach_agent(host.ns, host.ifname, keys, self.spec.pin_dir,
                             mode=self.opts.xdp_mode, idle_timeout_s=self.opts.idle_timeout_s,
                             grace_s=AGENT_GRACE_S)
                self.agents.append(host.ns)

    def sweep_agents(self) -> int:
        """Remove closed (after the grace period) and idle flows from every agent."""
        gone = 0
        for ns in self.agents:
            maps = agent_maps(self.spec.pin_dir, ns)
            try:
                gone += sweep(maps, time.monotonic_ns(), grace_s=AGENT_GRACE_S,
                              idle_s=self.opts.idle_timeout_s)
            finally:
                maps.close()
        return gone

    def _demo_backends(self) -> None:
        by_addr = {h.addr: h for h in self.spec.hosts("backend")}
        ports: dict[str, list[int]] = {}
        for addr, port in self.backends():
            ports.setdefault(addr, []).append(port)
        for addr, plist in ports.items():
            host = by_addr[addr]
            argv = ["ip", "netns", "exec", host.ns, sys.executable, "-m", "miresga_core.cli",
                    "backend", "--host", addr]
            for port in plist:
                argv += ["--port", str(port), "--name", f"b{host.index}"]
            self.demo.append(subprocess.Popen(argv, env=_env()))
        deadline = time.monotonic() + 15
        for addr, plist in ports.items():
            ns = by_addr[addr].ns
            while not all(_listening(ns, p) for p in plist):
                if time.monotonic() > deadline:
                    raise MiresgaError(f"demo backend on {addr} did not start")
                time.sleep(0.1)

    # ------------------------------------------------------------------ front-ends

    def stats_file(self, i: int) -> Path:
        return self.run_dir / f"frontend{i}.json"

    def _start_frontend(self, i: int) -> None:
        host = next(h for h in self.spec.hosts("frontend") if h.index == i)
        stats = self.stats_file(i)
        stats.unlink(missing_ok=True)
        module = "miresga_core.dpdk.run" if self.opts.frontend == "dpdk" else \
            "miresga_core.frontend.run"
        argv = [sys.executable, "-m", module, "--netns", host.ns,
                "--iface", host.ifname, "--config", str(self.config.file),
                "--pin-dir", str(self.spec.pin_dir),
                "--agent-secret-file", str(self.agent_secret_file()),
                "--gateway-mac", self.spec.switch_mac, "--stats-file", str(stats),
                "--idle-timeout", str(self.opts.idle_timeout_s),
                "--workers", str(self.opts.frontend_workers)]
        self.frontends[i] = subprocess.Popen(argv, env=_env())
        deadline = time.monotonic() + 30
        while not stats.exists():
            if self.frontends[i].poll() is not None or time.monotonic() > deadline:
                raise MiresgaError(f"front-end {i} did not start")
            time.sleep(0.05)

    def _set_members(self, drain: bool) -> None:
        from ..dataplane.xdp import rebalance

        self.switch.set_frontends(rebalance(self.switch.buckets(), self.members), drain=drain)

    def add_frontend(self, i: int, drain_timeout_s: float = 30.0) -> float:
        """Start front-end ``i`` and give it a share of the buckets (see ``_change``)."""
        self._start_frontend(i)
        return self._change(sorted({*self.members, i}), drain_timeout_s)

    def remove_frontend(self, i: int, drain_timeout_s: float = 30.0) -> float:
        """Move front-end ``i``'s buckets to the others, let its connections finish, then
        stop it (see ``_change``)."""
        if i not in self.members or len(self.members) == 1:
            raise MiresgaError(f"front-end {i} is not a member, or the last one")
        took = self._change([m for m in self.members if m != i], drain_timeout_s)
        proc = self.frontends.pop(i)
        proc.terminate()
        proc.wait(timeout=10)
        return took

    def _change(self, members: list[int], drain_timeout_s: float) -> float:
        """A front-end membership change without breaking live connections: while it
        runs, new flows follow the new assignment (the switch's Bloom filter) and
        existing ones stay with the front-end that holds their state. It finishes once
        every front-end that served before reports no connection older than the change
        (or after ``drain_timeout_s``: then connections still open on a moved bucket lose
        their front-end, docs/xdp-dataplane.md). Returns the seconds the drain took."""
        old = list(self.members)
        self.members = members
        started = time.time_ns()
        t0 = time.monotonic()
        self._set_members(drain=True)
        while time.monotonic() - t0 < drain_timeout_s:
            stats = self.frontend_stats()
            fresh = all(stats[j].get("written_ns", 0) > started for j in old)
            if fresh and all((stats[j].get("oldest_ns") or started) >= started for j in old):
                break
            time.sleep(0.2)
        self.switch.finish_change()
        return time.monotonic() - t0

    def frontend_stats(self) -> dict[int, dict[str, Any]]:
        out = {}
        for i in self.frontends:
            try:
                out[i] = json.loads(self.stats_file(i).read_text())
            except (OSError, ValueError):
                out[i] = {}
        return out


def _env() -> dict[str, str]:
    """Child processes import this checkout first."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO_ROOT), *os.environ.get("PYTHONPATH", "").split(os.pathsep)])}


def _listening(ns: str, port: int) -> bool:
    from ..lab.netns import run_in_netns

    return bool(run_in_netns(ns, ["ss", "-ltnH", "sport", "=", f":{port}"]).strip())
