"""Build, inspect and tear down a lab (see spec.py for the layout, docs/lab.md for why).

``up`` is idempotent: a complete lab built from the same spec is left alone; a partial one,
or one built from another spec with the same prefix, is removed and rebuilt; any failure
while building removes everything it made. ``down`` removes the namespaces of the prefix
(whatever their number) and the switch's pinned maps.

Kernel details that decide whether packets flow (verified on this machine, docs/lab.md):
* XDP_TX and XDP_REDIRECT from a native-mode veth program deliver only when the receiving
  end runs NAPI. GRO on the peer was not enough here (kernel 6.18: the switch's ARP reply
  never arrived); an XDP_PASS program (native/xdp/lab_pass.bpf.c) on every host's eth0 is;
* a local TCP stack hands a veth partial checksums (TX offload): switched off on every
  host's eth0, so the switch's incremental checksum updates start from complete ones.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

from pyroute2 import NetNS, netns

from ..errors import MiresgaError
from .netns import in_netns, netns_exists, run_in_netns
from .spec import Host, LabSpec

__all__ = ["STATE_DIR", "Lab", "LabError", "down", "load_spec", "status", "up"]

STATE_DIR = Path("/run/miresga")
_NUD_PERMANENT = 0x80


class LabError(MiresgaError):
    """The lab could not be built or inspected; the message says what failed."""


def _state_file(spec: LabSpec) -> Path:
    return STATE_DIR / f"lab-{spec.prefix.rstrip('-')}.json"


def _is_complete(spec: LabSpec) -> bool:
    """The lab exists, entirely, and was built from this very spec."""
    if load_spec(spec.prefix) != spec or not all(netns_exists(n) for n in spec.namespaces()):
        return False
    return not spec.switch or (spec.pin_dir / "vip").exists()


# ----------------------------------------------------------------------------- building


def _quiet_ipv6() -> None:
    """IPv6 off in the calling thread's namespace: the lab is IPv4, and neighbour discovery
    and MLD chatter would only fill the switch's pass counters."""
    for scope in ("all", "default"):
        with open(f"/proc/sys/net/ipv6/conf/{scope}/disable_ipv6", "w") as f:
            f.write("1")


def _link_host(spec: LabSpec, host: Host) -> None:
    with NetNS(spec.switch_ns) as sw:
        sw.link("add", ifname=host.port_name, kind="veth",
                peer={"ifname": host.ifname, "net_ns_fd": host.ns})
        idx = sw.link_lookup(ifname=host.port_name)[0]
        sw.link("set", index=idx, address=spec.switch_mac, state="up")
    with NetNS(host.ns) as ns:
        idx = ns.link_lookup(ifname=host.ifname)[0]
        ns.link("set", index=idx, address=host.mac)
        ns.addr("add", index=idx, address=host.addr, prefixlen=spec.prefixlen)
        ns.link("set", index=idx, state="up")
        ns.link("set", index=ns.link_lookup(ifname="lo")[0], state="up")
        # every other lab host is reached through the switch; the VIPs are left to ARP,
        # which the switch program answers
        for other in spec.hosts():
            if other.addr != host.addr:
                ns.neigh("add", dst=other.addr, lladdr=spec.switch_mac, ifindex=idx,
                         state=_NUD_PERMANENT)
    run_in_netns(host.ns, ["ethtool", "-K", host.ifname, "tx", "off", "gro", "on"])


def _attach_pass(ifname: str, prog_fd: int) -> None:
    from ..bpf import xdp_attach

    # if_nametoindex opens its socket in the calling thread's namespace
    xdp_attach(socket.if_nametoindex(ifname), prog_fd, "native", replace=True)


def _switch_program(spec: LabSpec) -> None:
    """Load the switch, pin its maps, fill its tables, attach it to every port. Runs in the
    switch namespace (devmap ifindexes and XDP attachment are per namespace)."""
    from ..bpf import ensure_bpffs
    from ..cookie import CookieSecrets
    from ..dataplane.xdp import XdpSwitch, rebalance

    hosts = spec.hosts()
    ensure_bpffs()
    sw = XdpSwitch.load(pin_dir=spec.pin_dir)
    try:
        with NetNS(spec.switch_ns) as ipr:
            ifindex = {h.port_name: ipr.link_lookup(ifname=h.port_name)[0] for h in hosts}
        for h in hosts:
            sw.set_port(h.port, ifindex[h.port_name])
            sw.set_route(f"{h.addr}/32", h.port, smac=spec.switch_mac, dmac=h.mac)
        for addr, port in spec.vips:
            sw.set_vip(addr, port, mac=spec.switch_mac, mss=spec.vip_mss)
        for h in spec.hosts("frontend"):
            sw.set_frontend(h.index, h.addr)
        for h in spec.hosts("backend"):
            sw.set_backend(h.index, h.addr, spec.backend_port)
        if spec.frontends:
            sw.set_frontends(rebalance(None, range(spec.frontends)), drain=False)
        sw.set_cookie_secret(CookieSecrets.generate().current)
        for h in hosts:
            sw.attach(ifindex[h.port_name], spec.xdp_mode)
        sw.attached.clear()  # the lab outlives this process: leave the programs attached
    finally:
        sw.close()


def _attach_peer_napi(spec: LabSpec) -> None:
    from ..bpf import BpfObject, build_object

    with BpfObject.load_file(build_object("lab_pass")) as obj:
        fd = obj.program("lab_pass").fd
        for host in spec.hosts():
            in_netns(host.ns, _attach_pass, host.ifname, fd)


def up(spec: LabSpec) -> str:
    """Build the lab; returns a one-line summary. Idempotent (see the module docstring)."""
    if os.geteuid() != 0:
        raise LabError("the lab needs root (namespaces, veth, XDP)")
    if _is_complete(spec):
        return f"lab {spec.prefix} already up"
    down(spec)  # a partial lab from an interrupted run
    try:
        for name in spec.namespaces():
            netns.create(name)
            if os.path.exists("/proc/sys/net/ipv6"):
                in_netns(name, _quiet_ipv6)
        with NetNS(spec.switch_ns) as sw:
            sw.link("set", index=sw.link_lookup(ifname="lo")[0], state="up")
        for host in spec.hosts():
            _link_host(spec, host)
        if spec.switch:
            if spec.xdp_mode == "native":
                _attach_peer_napi(spec)
            in_netns(spec.switch_ns, _switch_program, spec)
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        _state_file(spec).write_text(json.dumps(_describe(spec), indent=2))
    except BaseException as exc:
        down(spec)
        if isinstance(exc, Exception) and not isinstance(exc, LabError):
            raise LabError(f"lab {spec.prefix} failed to come up: {exc}") from exc
        raise
    return (f"lab {spec.prefix} up: {spec.clients} clients, {spec.frontends} front-ends, "
            f"{spec.backends} backends, switch {spec.switch_ns}"
            f"{' (XDP ' + spec.xdp_mode + ')' if spec.switch else ' (no program)'}")


def down(spec: LabSpec) -> str:
    """Remove every namespace of the prefix and the switch's pins; never fails on absence."""
    removed = 0
    for name in netns.listnetns():
        if spec.owns(name):
            netns.remove(name)
            removed += 1
    if spec.pin_dir.exists():
        from ..bpf import remove_pin_dir

        remove_pin_dir(spec.pin_dir)  # unlinking a pin unpins it
    _state_file(spec).unlink(missing_ok=True)
    return f"lab {spec.prefix} down ({removed} namespaces removed)"


# ----------------------------------------------------------------------------- status


def load_spec(prefix: str) -> LabSpec | None:
    """The spec a running lab was built with (from its state file), or None."""
    path = STATE_DIR / f"lab-{prefix.rstrip('-')}.json"
    try:
        raw = json.loads(path.read_text())["spec"]
    except (OSError, ValueError, KeyError):
        return None
    raw["vips"] = tuple(tuple(v) for v in raw["vips"])
    raw["pin_root"] = Path(raw["pin_root"])
    return LabSpec(**raw)


def _describe(spec: LabSpec) -> dict[str, Any]:
    fields = {f: getattr(spec, f) for f in spec.__dataclass_fields__}
    fields["pin_root"] = str(spec.pin_root)
    return {
        "spec": fields,
        "prefix": spec.prefix, "switch_ns": spec.switch_ns, "pin_dir": str(spec.pin_dir),
        "vips": [f"{a}:{p}" for a, p in spec.vips],
        "hosts": [{"role": h.role, "index": h.index, "ns": h.ns, "addr": h.addr,
                   "mac": h.mac, "switch_port": h.port, "switch_if": h.port_name}
                  for h in spec.hosts()],
    }


def _port_states(spec: LabSpec) -> dict[str, tuple[str, int]]:
    from ..bpf import xdp_query

    out = {}
    with NetNS(spec.switch_ns) as sw:
        for link in sw.get_links():
            name = link.get("ifname")
            if name != "lo":
                out[name] = (link.get("operstate"), link["index"])
    return {name: (state, xdp_query(idx)["prog"]) for name, (state, idx) in out.items()}


def status(spec: LabSpec) -> str:
    """A readable status: namespaces, switch ports and their XDP program, counters."""
    present = [n for n in netns.listnetns() if spec.owns(n)]
    if not present:
        return f"lab {spec.prefix}: down"
    lines = [f"lab {spec.prefix}: {'up' if _is_complete(spec) else 'PARTIAL'}"
             f" ({len(present)} namespaces)"]
    for h in spec.hosts():
        mark = "" if netns_exists(h.ns) else "  MISSING"
        lines.append(f"  {h.role:9} {h.index:3} {h.ns:10} {h.addr:15} {h.mac}{mark}")
    lines.append("  VIPs: " + ", ".join(f"{a}:{p}" for a, p in spec.vips))
    if netns_exists(spec.switch_ns):
        ports = in_netns(spec.switch_ns, _port_states, spec)
        for name, (state, prog) in sorted(ports.items()):
            lines.append(f"  switch port {name:5} {state:5} xdp prog {prog or '-'}")
    if (spec.pin_dir / "counters").exists():
        from ..dataplane.xdp import XdpSwitch

        sw = XdpSwitch.from_pins(spec.pin_dir)
        try:
            counts = {k: v for k, v in sw.counters().items() if v[0]}
        finally:
            sw.close()
        lines.append("  counters: " + (", ".join(f"{k}={p}" for k, (p, _b) in counts.items())
                                       or "all zero"))
    return "\n".join(lines)


# ----------------------------------------------------------------------------- for tests


class Lab:
    """A lab for the duration of a ``with`` block: up on enter, down on exit."""

    def __init__(self, spec: LabSpec) -> None:
        self.spec = spec

    def __enter__(self) -> Lab:
        up(self.spec)
        return self

    def __exit__(self, *exc: object) -> None:
        down(self.spec)

    def host(self, role: str, index: int) -> Host:
        for h in self.spec.hosts(role):
            if h.index == index:
                return h
        raise KeyError(f"no {role} {index} in this lab")

    def client(self, i: int = 0) -> Host:
        return self.host("client", i)

    def frontend(self, i: int = 0) -> Host:
        return self.host("frontend", i)

    def backend(self, i: int = 0) -> Host:
        return self.host("backend", i)

    def switch(self) -> Any:
        """The running switch's tables (XdpSwitch over the pinned maps; close it)."""
        from ..dataplane.xdp import XdpSwitch

        return XdpSwitch.from_pins(self.spec.pin_dir)
