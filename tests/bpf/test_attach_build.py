"""Attach helpers (XDP native/generic, tc egress) on a veth in a namespace, and the build
helper's errors."""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyroute2 import IPRoute, netns

from miresga_core.bpf import (
    TC_EGRESS,
    BpfError,
    BpfObject,
    BuildError,
    build_object,
    tc_attach,
    tc_detach,
    tc_query,
    xdp_attach,
    xdp_detach,
    xdp_query,
)
from miresga_core.bpf import build as build_mod

_libc = ctypes.CDLL(None, use_errno=True)


@contextlib.contextmanager
def in_netns(name: str) -> Iterator[None]:
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        assert _libc.setns(target, 0x40000000) == 0
        try:
            yield
        finally:
            assert _libc.setns(home, 0x40000000) == 0
    finally:
        os.close(target)
        os.close(home)


@pytest.fixture
def veth() -> Iterator[tuple[str, str]]:
    ns = ifname = f"mra-w{os.getpid() & 0xFFFF:04x}"
    netns.create(ns)
    try:
        with IPRoute() as ipr:
            ipr.link("add", ifname=ifname, kind="veth", peer={"ifname": ifname + "p"})
            for name in (ifname, ifname + "p"):
                ipr.link("set", index=ipr.link_lookup(ifname=name)[0], net_ns_fd=ns)
        yield ns, ifname
    finally:
        with contextlib.suppress(Exception):
            netns.remove(ns)


@pytest.mark.root
@pytest.mark.netns
def test_xdp_and_tc_attach_detach(veth: tuple[str, str]) -> None:
    ns, ifname = veth
    with BpfObject.load_file(build_object("selftest")) as obj, in_netns(ns):
        ifindex = socket.if_nametoindex(ifname)
        xdp, tc = obj.program("selftest_xdp"), obj.program("selftest_tc")
        xdp_attach(ifindex, xdp.fd, "native")
        assert xdp_query(ifindex)["drv"] > 0
        with pytest.raises(BpfError):  # without replace, a second attach is refused
            xdp_attach(ifindex, xdp.fd, "native")
        xdp_attach(ifindex, xdp.fd, "native", replace=True)
        xdp_detach(ifindex, "native")
        xdp_attach(ifindex, xdp.fd, "generic")
        ids = xdp_query(ifindex)
        assert ids["skb"] > 0 and ids["drv"] == 0
        xdp_detach(ifindex, "generic")
        assert xdp_query(ifindex)["prog"] == 0
        flt = tc_attach(ifindex, tc.fd, TC_EGRESS, handle=7, priority=3)
        assert (flt.handle, flt.priority) == (7, 3)
        assert tc_query(flt)
        assert tc_detach(flt) is True
        assert tc_query(flt) is None and tc_detach(flt) is False
    with pytest.raises(ValueError, match="XDP mode"):
        xdp_attach(1, 0, "turbo")


def test_build_error_without_clang(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build_mod.shutil, "which",
                        lambda tool: None if tool == "clang" else "/usr/bin/make")
    with pytest.raises(BuildError, match=r"`clang` is not installed.*apt install clang"):
        build_object("agent")


def test_build_error_for_missing_sources(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="not found"):
        build_object("agent", tmp_path / "nope")
    (tmp_path / "Makefile").write_text("build/%.bpf.o:\n\tfalse\n")
    with pytest.raises(BuildError, match="failed"):
        build_object("x", tmp_path)
