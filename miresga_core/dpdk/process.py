"""Run ``miresga-fe`` (the C/DPDK front-end) from Python: its configuration file, the
process in a network namespace, and the two unix datagram sockets around it.

* offload socket (we bind, it sends): numbered batches (u32 little-endian, then action
  records of fe_machine.h). The binary holds the frames of a batch's turn until the
  batch number is sent back (``ack``: the switch has it) or 50 ms pass. This is the
  *channel* offload mode; with ``switch_pins`` (the XdpSwitch pin directory) the binary
  applies its records to the switch's maps itself (*direct* mode, the default when the
  maps open: native/dpdk/shell/fe_switch.h) and nothing arrives here;
* control socket (it binds, we send): ``cookie <hex> [<hex>]``, ``stats``, ``quit``.

The EAL runs with ``--no-huge --no-pci`` and an af_packet vdev on the given interface,
which is what a lab namespace or a small VM has; on a real NIC pass other EAL arguments.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..api import Address
from ..bytecode.program import encode
from ..cookie import CookieSecrets
from ..frontend.machine import FrontendConfig
from ..frontend.state import Offload, Unoffload
from . import build
from .cfe import decode_actions
from .decider import ProgramDecider

__all__ = ["MAX_WORKERS", "OFFLOAD_MODES", "FeProcess", "direct_counters", "eal_lcores",
           "write_config"]

# af_packet ring: one 3-page frame per block (frames must tile the blocks exactly); the
# shell's mbufs hold a whole ring frame (12256 bytes), so a 9000-byte MTU fits
_RING = "framesz=12288,blocksz=12288,framecnt=256"
log = logging.getLogger("miresga.dpdk")
MAX_WORKERS = 32  # FE_MAX_SHARDS of native/dpdk/shell/fe_io.h
OFFLOAD_MODES = ("auto", "direct", "channel")  # miresga-fe --offload-mode


def eal_lcores(workers: int) -> str:
    """EAL ``--lcores``: lcores 0..workers-1, each free to run on any CPU this process may
    use. A shared machine's cores are busy with others; pinning an lcore to one CPU would
    make it wait for that CPU while another one idles."""
    cpus = ",".join(map(str, sorted(os.sched_getaffinity(0))))
    group = "0" if workers == 1 else f"(0-{workers - 1})"
    return f"{group}@({cpus})"


def write_config(directory: Path, config: FrontendConfig,
                 deciders: Mapping[Address, ProgramDecider], secrets: CookieSecrets) -> Path:
    """The configuration file (and one program file per VIP) in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    c = config
    lines = [f"cookie {secrets.current.hex()}"
             + (f" {secrets.previous.hex()}" if secrets.previous else ""),
             f"params {c.max_head} {c.syn_rto_ns} {c.syn_retries} {c.idle_timeout_ns} "
             f"{c.offloaded_idle_timeout_ns} {c.close_grace_ns} {int(c.pool_affinity)}"]
    for slot, key in enumerate(c.agent_keys):
        if key is not None:
            lines.append(f"agent_key {slot} {key.hex()} {int(slot == c.agent_key_slot)}")
    for i, (vip, vp) in enumerate(c.vips.items()):
        d = deciders[vip]
        prog = directory / f"vip{i}.mvm"
        prog.write_bytes(encode(d.program))
        lines.append(f"vip {vip.host} {vip.port} {vp.wscale} {vp.mss} {prog}")
        for pi, backends in enumerate(d.pools):
            lines += [f"backend {vip.host} {vip.port} {pi} {b.host} {b.port}" for b in backends]
    path = directory / "fe.conf"
    path.write_text("\n".join(lines) + "\n")
    return path


# the direct-mode counters of a shard's "io" under the Python OffloadApplier's names
_DIRECT = (("offload_applied", "offload_applied"), ("unoffload_applied", "unoffload_applied"),
           ("offload_failed", "offload_failed"), ("batches", "offload_batches"))


def direct_counters(stats: Mapping[str, Any]) -> dict[str, int]:
    """The direct-mode offload counters of a stats file, summed over the shards."""
    shards = stats.get("shards", [])
    return {k: sum(sh["io"].get(io, 0) for sh in shards) for k, io in _DIRECT}


class FeProcess:
    """miresga-fe on ``iface`` (inside ``netns`` when given), ``workers`` lcores: one shard
    each, on its own queue pair of the af_packet vdev (``qpairs``). ``switch_pins``: the
    switch's pin directory, for direct offloads (``offload_mode``: auto = direct when the
    maps open, else the channel)."""

    def __init__(self, run_dir: Path, iface: str, *, netns: str | None = None,
                 gateway_mac: str = "ff:ff:ff:ff:ff:ff", workers: int = 1,
                 eal_extra: Sequence[str] = (), asan: bool = False,
                 switch_pins: Path | None = None, offload_mode: str = "auto") -> None:
        if not 1 <= workers <= MAX_WORKERS:
            raise ValueError(f"workers must be 1..{MAX_WORKERS}, got {workers}")
        if offload_mode not in OFFLOAD_MODES:
            raise ValueError(f"offload_mode must be one of {', '.join(OFFLOAD_MODES)}, "
                             f"got {offload_mode!r}")
        self.switch_pins = None if switch_pins is None else Path(switch_pins).resolve()
        self.offload_mode = offload_mode
        self.run_dir = run_dir
        self.iface = iface
        self.netns = netns
        self.gateway_mac = gateway_mac
        self.workers = workers
        self.asan = asan  # the ASan + UBSan build, stopping at the first error
        self.eal_extra = list(eal_extra)
        self.proc: subprocess.Popen[bytes] | None = None
        self.offload_path = run_dir / "offload.sock"
        self.ctl_path = run_dir / "ctl.sock"
        self.stats_path = run_dir / "stats.json"
        self.log_path = run_dir / "fe.log"
        self.sock: socket.socket | None = None
        self.ctl: socket.socket | None = None

    def _gro_off(self) -> None:
        """GRO off on the interface: the af_packet ring frame holds 12 KB, and a segment
        the kernel merged beyond that arrives truncated (the machine drops it as
        malformed, the client resends, and a large upload stalls or is reset). A DPDK
        port on a real NIC never sees merged segments either."""
        argv = ["ethtool", "-K", self.iface, "gro", "off"]
        if self.netns:
            argv = ["ip", "netns", "exec", self.netns, *argv]
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
        except FileNotFoundError:
            log.warning("ethtool missing: GRO stays on for %s (merged segments > 12 KB "
                        "are lost)", self.iface)
            return
        if r.returncode:
            log.warning("ethtool -K %s gro off: %s", self.iface, r.stderr.strip())

    def start(self, config_file: Path, timeout: float = 20.0) -> None:
        binary = build.binary(self.asan)
        self._gro_off()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for p in (self.offload_path, self.stats_path):
            p.unlink(missing_ok=True)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.offload_path))
        self.sock.setblocking(False)
        prefix = f"mfe-{os.getpid()}-{abs(hash(str(self.run_dir))) % 10**6}"
        argv = [str(binary), "--no-huge", "--no-pci", "-m", "256",
                f"--lcores={eal_lcores(self.workers)}", "--file-prefix", prefix,
                f"--vdev=net_af_packet0,iface={self.iface},qpairs={self.workers},{_RING}",
                "--log-level=lib.eal:notice", *self.eal_extra, "--",
                "--config", str(config_file), "--offload-socket", str(self.offload_path),
                "--ctl-socket", str(self.ctl_path), "--gateway-mac", self.gateway_mac,
                "--stats", str(self.stats_path), "--offload-mode", self.offload_mode]
        if self.switch_pins is not None:
            argv += ["--switch-pins", str(self.switch_pins)]
        if self.netns:
            argv = ["ip", "netns", "exec", self.netns, *argv]
        env = dict(os.environ)
        if self.asan:  # DPDK's own allocations live until exit: no leak check
            env.update(ASAN_OPTIONS="detect_leaks=0:abort_on_error=1",
                       UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1")
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        deadline = time.monotonic() + timeout
        while not self.stats_path.exists():  # the loop writes stats as soon as it runs
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"miresga-fe did not start:\n{self.log()}")
            time.sleep(0.05)
        self.ctl = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def control(self, msg: str) -> None:
        assert self.ctl is not None
        self.ctl.sendto(msg.encode(), str(self.ctl_path))

    def set_secrets(self, secrets: CookieSecrets) -> None:
        prev = f" {secrets.previous.hex()}" if secrets.previous else ""
        self.control(f"cookie {secrets.current.hex()}{prev}")

    def offload_batches(self) -> list[tuple[Any, int, list[Offload | Unoffload]]]:
        """The batches received so far, in order: (sender, number, requests)."""
        out: list[tuple[Any, int, list[Any]]] = []
        while self.sock is not None:
            try:
                data, addr = self.sock.recvfrom(65536)
            except BlockingIOError:
                break
            if len(data) >= 4:
                out.append((addr, struct.unpack_from("<I", data)[0], decode_actions(data[4:])))
        return out

    def ack(self, sender: Any, number: int) -> None:
        """Tell the shard that sent batch ``number`` it is applied: its frames may go."""
        assert self.sock is not None
        with contextlib.suppress(OSError):  # the shard is gone: nothing waits
            self.sock.sendto(struct.pack("<I", number), sender)

    def offloads(self) -> list[Offload | Unoffload]:
        """The offload requests received so far, in order, each batch acknowledged."""
        out: list[Any] = []
        for sender, number, requests in self.offload_batches():
            out += requests
            self.ack(sender, number)
        return out

    def stats(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self.stats_path.read_text()))
        except (OSError, ValueError):
            return {}

    def offload_mode_used(self) -> str:
        """What the binary chose: "direct", "channel" or "none" ("" before its first
        stats file)."""
        return str(self.stats().get("offload_mode", ""))

    def direct_counters(self) -> dict[str, int]:
        return direct_counters(self.stats())

    def machine_counters(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for shard in self.stats().get("shards", []):
            for k, v in shard["machine"].items():
                total[k] = total.get(k, 0) + v
        return total

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> int | None:
        rc = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            rc = self.proc.returncode
            self.proc = None
        for s in (self.sock, self.ctl):
            if s is not None:
                s.close()
        self.sock = self.ctl = None
        self.offload_path.unlink(missing_ok=True)
        return rc
