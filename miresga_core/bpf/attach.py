"""Attach programs to interfaces: XDP (native or generic) and tc clsact, through libbpf.

Why libbpf and not pyroute2 netlink messages: the fd we attach comes from libbpf already,
``bpf_xdp_attach`` takes the mode as plain flags, and ``bpf_tc_attach`` always installs a
direct-action filter and reports the handle/priority it chose, so detaching later is exact.
Both act on the calling thread's network namespace (enter one with pyroute2's ``setns`` or
run in a process started inside it).
"""

from __future__ import annotations

import ctypes
import errno
from dataclasses import dataclass

from . import _libbpf as L
from ._libbpf import check

__all__ = [
    "TC_EGRESS", "TC_INGRESS", "XDP_MODES", "TcFilter", "tc_attach", "tc_detach",
    "tc_query", "xdp_attach", "xdp_detach", "xdp_query",
]

# linux/if_link.h XDP_FLAGS_*
_XDP_UPDATE_IF_NOEXIST = 1 << 0
XDP_MODES = {"generic": 1 << 1, "native": 1 << 2, "offload": 1 << 3, "auto": 0}
TC_INGRESS, TC_EGRESS = 1, 2  # enum bpf_tc_attach_point


def xdp_attach(ifindex: int, prog_fd: int, mode: str = "native", *,
               replace: bool = False) -> None:
    """Attach an XDP program. Refuses (EBUSY/EEXIST) when one is attached unless ``replace``."""
    if mode not in XDP_MODES:
        raise ValueError(f"XDP mode {mode!r}: want one of {sorted(XDP_MODES)}")
    flags = XDP_MODES[mode] | (0 if replace else _XDP_UPDATE_IF_NOEXIST)
    check(L.lib.bpf_xdp_attach(ifindex, prog_fd, flags, None),
          f"attach XDP ({mode}) to ifindex {ifindex}")


def xdp_detach(ifindex: int, mode: str = "native") -> None:
    """Remove the XDP program attached in ``mode`` (no error when none is attached)."""
    check(L.lib.bpf_xdp_detach(ifindex, XDP_MODES[mode], None),
          f"detach XDP ({mode}) from ifindex {ifindex}")


def xdp_query(ifindex: int) -> dict[str, int]:
    """Attached program ids: ``{"prog": id, "drv": id, "skb": id, "hw": id, "mode": n}``."""
    opts = L.XdpQueryOpts(sz=ctypes.sizeof(L.XdpQueryOpts))
    check(L.lib.bpf_xdp_query(ifindex, 0, ctypes.byref(opts)), f"query XDP on {ifindex}")
    return {"prog": opts.prog_id, "drv": opts.drv_prog_id, "skb": opts.skb_prog_id,
            "hw": opts.hw_prog_id, "mode": opts.attach_mode}


@dataclass(frozen=True)
class TcFilter:
    """Where a tc BPF filter sits: enough to detach exactly that filter."""

    ifindex: int
    attach_point: int
    handle: int
    priority: int


def _hook(ifindex: int, attach_point: int) -> L.TcHook:
    hook = L.TcHook(sz=ctypes.sizeof(L.TcHook))
    hook.ifindex = ifindex
    hook.attach_point = attach_point
    return hook


def tc_attach(ifindex: int, prog_fd: int, attach_point: int = TC_EGRESS, *,
              handle: int = 1, priority: int = 1) -> TcFilter:
    """Create the clsact qdisc if needed and attach a direct-action BPF filter (replacing
    our own earlier filter with the same handle/priority)."""
    hook = _hook(ifindex, attach_point)
    ret = L.lib.bpf_tc_hook_create(ctypes.byref(hook))
    if ret < 0 and ret != -errno.EEXIST:
        check(ret, f"create clsact on ifindex {ifindex}")
    opts = L.TcOpts(sz=ctypes.sizeof(L.TcOpts), prog_fd=prog_fd, flags=1,  # BPF_TC_F_REPLACE
                    handle=handle, priority=priority)
    check(L.lib.bpf_tc_attach(ctypes.byref(hook), ctypes.byref(opts)),
          f"attach tc filter on ifindex {ifindex}")
    return TcFilter(ifindex, attach_point, opts.handle, opts.priority)


def tc_query(flt: TcFilter) -> int | None:
    """Program id of the filter at ``flt``, or None when there is no such filter."""
    hook = _hook(flt.ifindex, flt.attach_point)
    opts = L.TcOpts(sz=ctypes.sizeof(L.TcOpts), handle=flt.handle, priority=flt.priority)
    ret = L.lib.bpf_tc_query(ctypes.byref(hook), ctypes.byref(opts))
    if ret in (-errno.ENOENT, -errno.EINVAL, -errno.ENODEV):
        return None
    check(ret, f"query tc filter on ifindex {flt.ifindex}")
    return int(opts.prog_id)


def tc_detach(flt: TcFilter) -> bool:
    """Remove exactly this filter; False when it was already gone. The clsact qdisc stays
    (other filters may use it)."""
    hook = _hook(flt.ifindex, flt.attach_point)
    opts = L.TcOpts(sz=ctypes.sizeof(L.TcOpts), handle=flt.handle, priority=flt.priority)
    ret = L.lib.bpf_tc_detach(ctypes.byref(hook), ctypes.byref(opts))
    if ret in (-errno.ENOENT, -errno.ENODEV):
        return False
    check(ret, f"detach tc filter on ifindex {flt.ifindex}")
    return True
