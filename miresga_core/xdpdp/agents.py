"""Back-end agents on the lab's backend hosts, attached and removed by the controller.

``miresga agent`` pins under /sys/fs/bpf/miresga/<iface>; every lab host's interface is
called eth0 and bpffs is shared by all namespaces, so the lab's agents are pinned per host
under the lab's pin directory instead (``<pin_dir>/agent-<ns>``). The programs and the
configuration are the agent's own (miresga_core.agent).
"""

from __future__ import annotations

import socket
from pathlib import Path

from ..agent.loader import TC_HANDLE, TC_PRIORITY
from ..agent.maps import AgentMaps
from ..agent.shared import MAP_CONFIG, MAP_COUNTERS, MAP_FLOWS, PROG_EGRESS, PROG_INGRESS
from ..bpf import (
    TC_EGRESS,
    BpfObject,
    TcFilter,
    build_object,
    remove_pin_dir,
    tc_attach,
    tc_detach,
    xdp_attach,
    xdp_detach,
)
from ..lab.netns import in_netns

__all__ = ["agent_maps", "attach_agent", "detach_agent", "pins_for", "sweep"]


def pins_for(lab_pin_dir: Path, ns: str) -> Path:
    return lab_pin_dir / f"agent-{ns}"


def _attach(iface: str, keys: tuple[bytes | None, bytes | None], pins: Path, mode: str,
            idle_timeout_s: float, grace_s: float) -> None:
    ifindex = socket.if_nametoindex(iface)
    with BpfObject.load_file(build_object("agent")) as obj:
        AgentMaps.from_object(obj).set_config(keys, idle_timeout_s=idle_timeout_s,
                                              grace_s=grace_s)
        pins.mkdir(parents=True, exist_ok=True)
        for m in (MAP_FLOWS, MAP_CONFIG, MAP_COUNTERS):
            obj.map(m).pin(pins / m)
        xdp_attach(ifindex, obj.program(PROG_INGRESS).fd, mode, replace=True)
        tc_attach(ifindex, obj.program(PROG_EGRESS).fd, TC_EGRESS, handle=TC_HANDLE,
                  priority=TC_PRIORITY)


def attach_agent(ns: str, iface: str, keys: tuple[bytes | None, bytes | None],
                 lab_pin_dir: Path, *, mode: str = "native", idle_timeout_s: float = 300.0,
                 grace_s: float = 2.0) -> Path:
    """Attach the agent on ``iface`` inside ``ns``; returns its pin directory."""
    pins = pins_for(lab_pin_dir, ns)
    remove_pin_dir(pins)
    in_netns(ns, _attach, iface, keys, pins, mode, idle_timeout_s, grace_s)
    return pins


def _detach(iface: str) -> None:
    try:
        ifindex = socket.if_nametoindex(iface)
    except OSError:
        return  # the namespace's link is gone already
    for mode in ("native", "generic"):
        xdp_detach(ifindex, mode)
    tc_detach(TcFilter(ifindex, TC_EGRESS, TC_HANDLE, TC_PRIORITY))


def detach_agent(ns: str, iface: str, lab_pin_dir: Path) -> None:
    try:
        in_netns(ns, _detach, iface)
    except FileNotFoundError:
        pass
    remove_pin_dir(pins_for(lab_pin_dir, ns))


def agent_maps(lab_pin_dir: Path, ns: str) -> AgentMaps:
    """The agent's maps on a lab host (close them)."""
    return AgentMaps.from_pins(pins_for(lab_pin_dir, ns))


def sweep(maps: AgentMaps, now_ns: int, *, grace_s: float, idle_s: float) -> int:
    """Delete flows closed for longer than the grace period or idle for longer than the
    idle timeout. The agent itself only expires a flow when a packet of it arrives, and a
    closed flow sees none: the controller sweeps. ``now_ns`` is CLOCK_MONOTONIC (the
    clock of bpf_ktime_get_ns)."""
    from ..agent.maps import flow_key

    gone = 0
    for f in maps.flows():
        closed, last = f.state["closed_ns"], f.state["last_ns"]
        if (closed and now_ns - closed > grace_s * 1e9) or now_ns - last > idle_s * 1e9:
            key = flow_key(f.client, f.client_port, f.backend, f.backend_port)
            gone += bool(maps.flows_map.delete(key))
    return gone
