"""Load, attach, inspect and detach the back-end agent on one interface.

Attaching is one-shot: the programs stay attached (the kernel holds them through the XDP
and tc attachments) and the maps stay pinned under ``/sys/fs/bpf/miresga/<iface>`` after
the process exits, so no daemon has to run. Attaching again reuses the pinned maps
(live flows survive an upgrade of the programs) and replaces the programs in place.

XDP and tc go through libbpf (``miresga_core.bpf.attach``), not pyroute2: the program fd
comes from libbpf already, ``bpf_tc_attach`` creates clsact and a direct-action filter in
one call and gives back the exact handle/priority to detach later.
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..bpf import (
    BPFFS,
    TC_EGRESS,
    BpfError,
    BpfObject,
    Map,
    TcFilter,
    build_object,
    ensure_bpffs,
    pinned_id,
    remove_pin_dir,
    tc_attach,
    tc_detach,
    tc_query,
    xdp_attach,
    xdp_detach,
    xdp_query,
)
from ..errors import MiresgaError
from .maps import AgentMaps
from .shared import (
    COUNTERS,
    DEFAULT_GRACE_S,
    DEFAULT_IDLE_TIMEOUT_S,
    FLOW,
    MAP_CONFIG,
    MAP_COUNTERS,
    MAP_FLOWS,
    PROG_EGRESS,
    PROG_INGRESS,
)

__all__ = [
    "PIN_ROOT", "AgentStatus", "attach", "check_privileges", "detach", "enter_netns", "gc",
    "pin_dir", "status",
]

PIN_ROOT = BPFFS / "miresga"
TC_HANDLE = 0x4D52  # "MR": our filter's handle and priority on clsact egress
TC_PRIORITY = 0x4D52
_MAPS = (MAP_FLOWS, MAP_CONFIG, MAP_COUNTERS)
_CAP_NET_ADMIN, _CAP_SYS_ADMIN, _CAP_BPF = 12, 21, 39


def pin_dir(iface: str) -> Path:
    return PIN_ROOT / iface


def check_privileges() -> None:
    """Raise a clear MiresgaError unless we may load BPF and change interfaces."""
    caps = 0
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("CapEff:"):
                caps = int(line.split()[1], 16)
    has = lambda bit: bool(caps >> bit & 1)  # noqa: E731
    if (has(_CAP_BPF) or has(_CAP_SYS_ADMIN)) and has(_CAP_NET_ADMIN):
        return
    raise MiresgaError("the agent needs root (or CAP_BPF + CAP_NET_ADMIN) to load BPF "
                       "programs and attach them; run it with sudo")


def enter_netns(name: str) -> None:
    """Move this (single-threaded) process into the named network namespace."""
    path = Path("/run/netns") / name
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise MiresgaError(f"network namespace {name!r}: {exc.strerror}") from None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
            err = ctypes.get_errno()
            raise MiresgaError(f"enter network namespace {name!r}: {os.strerror(err)}")
    finally:
        os.close(fd)


def _ifindex(iface: str) -> int:
    try:
        return socket.if_nametoindex(iface)
    except OSError:
        raise MiresgaError(f"no network interface {iface!r} here") from None


def _check_pinned_layout(pins: Path) -> None:
    """Refuse maps pinned by an agent with another flow layout or counter set: the
    verifier would reject the new programs (flow too short) or counters past the old
    array's end would be lost silently."""
    flows, counters = Map.from_pinned(pins / MAP_FLOWS), Map.from_pinned(pins / MAP_COUNTERS)
    try:
        got = (flows.value_size, counters.max_entries)
    finally:
        flows.close()
        counters.close()
    want = (FLOW.size, len(COUNTERS.names))
    if got != want:
        raise MiresgaError(
            f"maps pinned under {pins} come from another agent version (flow {got[0]} B, "
            f"{got[1]} counters; this agent: {want[0]} B, {want[1]}): detach first "
            "(its flows are lost)")


@dataclass
class AgentStatus:
    """What ``miresga agent --status`` shows."""

    iface: str
    attached: bool
    xdp_mode: str | None = None
    xdp_prog_id: int = 0
    tc_prog_id: int = 0
    config: dict[str, Any] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    flows: list[dict[str, Any]] = field(default_factory=list)


def attach(iface: str, keys: tuple[bytes | None, bytes | None], *, mode: str = "native",
           idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
           grace_s: float = DEFAULT_GRACE_S) -> AgentStatus:
    """Build, load, configure, pin and attach the agent on ``iface``."""
    check_privileges()
    ifindex = _ifindex(iface)
    ensure_bpffs()
    pins = pin_dir(iface)
    reuse = all((pins / m).exists() for m in _MAPS)
    if reuse:
        _check_pinned_layout(pins)
    obj = BpfObject.open(build_object("agent"))
    try:
        if reuse:
            for m in _MAPS:
                obj.reuse_map(m, pins / m)
        obj.load()
        AgentMaps.from_object(obj).set_config(keys, idle_timeout_s=idle_timeout_s,
                                              grace_s=grace_s)
        pins.mkdir(parents=True, exist_ok=True)
        if not reuse:
            for m in _MAPS:
                obj.map(m).pin(pins / m)
        for prog in (PROG_INGRESS, PROG_EGRESS):
            (pins / prog).unlink(missing_ok=True)
            obj.program(prog).pin(pins / prog)
        _attach_xdp(ifindex, obj.program(PROG_INGRESS).fd, mode, iface)
        tc_attach(ifindex, obj.program(PROG_EGRESS).fd, TC_EGRESS, handle=TC_HANDLE,
                  priority=TC_PRIORITY)
    except BaseException:
        if not reuse:
            remove_pin_dir(pins)
        raise
    finally:
        obj.close()
    return status(iface, flows=False)


def _attach_xdp(ifindex: int, fd: int, mode: str, iface: str) -> None:
    # one mode at a time: drop ours from the other mode first (replace within a mode)
    other = "generic" if mode == "native" else "native"
    ids = xdp_query(ifindex)
    if ids["drv" if other == "native" else "skb"]:
        xdp_detach(ifindex, other)
    try:
        xdp_attach(ifindex, fd, mode, replace=True)
    except BpfError as exc:
        if mode == "native" and exc.errno in (errno.EOPNOTSUPP, errno.EINVAL):
            raise MiresgaError(f"{iface}: the driver has no native XDP ({exc}); "
                               "use --mode generic") from None
        raise


def _filter(ifindex: int) -> TcFilter:
    return TcFilter(ifindex, TC_EGRESS, TC_HANDLE, TC_PRIORITY)


def status(iface: str, *, flows: bool = True, flow_limit: int = 100) -> AgentStatus:
    """Attachment state, config, counters and (some) flows of the agent on ``iface``."""
    check_privileges()
    ifindex = _ifindex(iface)
    pins = pin_dir(iface)
    st = AgentStatus(iface, attached=False)
    ids = xdp_query(ifindex)
    ours = pinned_id(pins / PROG_INGRESS) if (pins / PROG_INGRESS).exists() else -1
    if ours in (ids["drv"], ids["skb"]):
        st.xdp_mode = "native" if ids["drv"] == ours else "generic"
        st.xdp_prog_id = ours
    st.tc_prog_id = tc_query(_filter(ifindex)) or 0
    st.attached = bool(st.xdp_prog_id and st.tc_prog_id)
    if all((pins / m).exists() for m in _MAPS):
        maps = AgentMaps.from_pins(pins)
        try:
            cfg = maps.config()
            st.config = {"key_slots": [s for s in (0, 1) if cfg["key_mask"] >> s & 1],
                         "idle_timeout_s": cfg["idle_timeout_ns"] / 1e9,
                         "grace_s": cfg["grace_ns"] / 1e9}
            st.counters = maps.counters()
            if flows:
                st.flows = [{**{k: v for k, v in f.state.items() if not k.startswith("_")},
                             "client": f"{f.client}:{f.client_port}",
                             "backend": f"{f.backend}:{f.backend_port}", "flags": f.flags}
                            for f in maps.flows(flow_limit)]
        finally:
            maps.close()
    return st


def gc(iface: str) -> dict[str, int]:
    """Remove expired flows of the agent on ``iface`` now (see AgentMaps.sweep)."""
    check_privileges()
    pins = pin_dir(iface)
    if not all((pins / m).exists() for m in _MAPS):
        raise MiresgaError(f"no agent maps pinned for {iface} (is the agent attached?)")
    maps = AgentMaps.from_pins(pins)
    try:
        return maps.sweep()
    finally:
        maps.close()


def detach(iface: str) -> bool:
    """Detach both programs and unpin everything; False when nothing was attached."""
    check_privileges()
    ifindex = _ifindex(iface)
    pins = pin_dir(iface)
    found = False
    if (pins / PROG_INGRESS).exists():
        ours = pinned_id(pins / PROG_INGRESS)
        ids = xdp_query(ifindex)
        for mode, key in (("native", "drv"), ("generic", "skb")):
            if ids[key] == ours:
                xdp_detach(ifindex, mode)
                found = True
    found = tc_detach(_filter(ifindex)) or found
    remove_pin_dir(pins)
    return found
